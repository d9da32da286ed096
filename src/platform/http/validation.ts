import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyInstance, FastifySchema } from 'fastify'
import { lazily } from './lazy-schemas.js'

// ajv-formats is CommonJS: under NodeNext its default import is the module object, under tsx the function.
const formatsPlugin = ((addFormats as unknown as { default?: unknown }).default ?? addFormats) as unknown as (
  ajv: Ajv,
) => Ajv

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    removeAdditional: false,
    strict: false,
    ...options,
  })
  formatsPlugin(ajv)
  return ajv
}

/**
 * Bodies are validated strictly: a string where a number belongs is a 400, not a silent
 * conversion. Query strings, params and headers arrive as text and are converted to the declared
 * types ("?limit=10" is the integer 10).
 */
export function registerValidation(app: FastifyInstance): void {
  const strict = makeAjv({ coerceTypes: false })
  const coercing = makeAjv({ coerceTypes: 'array' })
  app.setValidatorCompiler(({ schema, httpPart }: { schema: FastifySchema; httpPart?: string }) =>
    lazily(() => (httpPart === 'body' ? strict : coercing).compile(schema as object)),
  )
}
