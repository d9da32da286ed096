import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'

/**
 * Route schemas are compiled on a route's first use instead of at start-up. Compiling every
 * validator (ajv) and serializer (fast-json-stringify) up front took about a quarter of the
 * embedded start-up; a route's first request now pays its own few milliseconds instead.
 * The schemas themselves are still checked at start-up by the OpenAPI document build, and every
 * route is exercised by the tests.
 */
type AnyFunction = ((...args: never[]) => unknown) & { errors?: unknown }

export function lazily<F extends AnyFunction>(compile: () => F): F {
  let compiled: F | undefined
  const run = ((...args: Parameters<F>) => {
    compiled ??= compile()
    const result = compiled(...args)
    // Fastify reads a validator's errors from the function it was given.
    run.errors = compiled.errors
    return result
  }) as unknown as F
  return run
}

type SerializerFactory = ReturnType<typeof SerializerSelector>

/** Fastify's own serializer compiler, deferred per route and status code. */
export function lazySerializerFactory(): SerializerFactory {
  const build = SerializerSelector()
  return ((externalSchemas: unknown, options: unknown) => {
    const compilerFor = (build as (e: unknown, o: unknown) => (route: unknown) => (data: unknown) => string)(
      externalSchemas,
      options,
    )
    return (route: unknown) => lazily(() => compilerFor(route))
  }) as unknown as SerializerFactory
}
