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

/** What ajv (and Fastify's validation errors) report per failed keyword. */
export interface SchemaError {
  keyword: string
  instancePath: string
  schemaPath: string
  params: Record<string, unknown>
  message?: string
}

export interface FieldMessage {
  /** Dotted path inside the validated value ('' for the value itself). */
  field: string
  message: string
}

const listOf = (values: readonly unknown[]) => values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')

/** A failed anyOf in one sentence: the allowed values when its members are constants, else what its members asked. */
function describeAnyOf(branches: SchemaError[]): string {
  const values = branches.flatMap((e) =>
    e.keyword === 'const' ? [e.params.allowedValue] : e.keyword === 'enum' ? ((e.params.allowedValues as unknown[]) ?? []) : [],
  )
  if (values.length > 0 && branches.every((e) => ['const', 'enum', 'type'].includes(e.keyword))) {
    return `must be one of ${listOf([...new Set(values)])}`
  }
  // A nullable value fails its own branch on the real problem and the null branch on its type: the first is the news.
  const telling = branches.filter((e) => e.keyword !== 'type')
  if (telling.length > 0) return [...new Set(telling.map(messageOf))].join('; ')
  const types = branches.map((e) => e.params.type).filter((t): t is string => typeof t === 'string')
  return types.length > 0 ? `must be ${[...new Set(types)].join(' or ')}` : 'must match one of the allowed shapes'
}

function messageOf(error: SchemaError): string {
  switch (error.keyword) {
    case 'enum':
      return `must be one of ${listOf((error.params.allowedValues as unknown[]) ?? [])}`
    case 'const':
      return `must be ${listOf([error.params.allowedValue])}`
    case 'required':
      return 'is required'
    default:
      return error.message ?? 'is invalid'
  }
}

function fieldOf(error: SchemaError): string {
  const base = error.instancePath.replace(/^\//, '').replace(/\//g, '.')
  const child =
    typeof error.params.missingProperty === 'string'
      ? error.params.missingProperty
      : typeof error.params.additionalProperty === 'string'
        ? error.params.additionalProperty
        : undefined
  return child === undefined ? base : base ? `${base}.${child}` : child
}

/**
 * ajv's errors as one message per field, naming what is allowed. A union of constants fails on
 * every member (six "must be equal to constant" for a role) and then on the anyOf; an enum fails
 * once with its list. Both read "must be one of viewer, developer, …". Unknown fields read
 * `unknownField`.
 */
export function describeSchemaErrors(errors: readonly SchemaError[], options: { unknownField?: string } = {}): FieldMessage[] {
  const consumed = new Set<SchemaError>()
  const messages = new Map<SchemaError, string>()
  // Outer unions first: a branch error of an outer anyOf is never described twice.
  const unions = errors.filter((e) => e.keyword === 'anyOf').sort((a, b) => a.schemaPath.length - b.schemaPath.length)
  for (const union of unions) {
    if (consumed.has(union)) continue
    const prefix = union.schemaPath.replace(/\/anyOf$/, '/anyOf/')
    const branches = errors.filter((e) => e !== union && e.schemaPath.startsWith(prefix))
    for (const branch of branches) consumed.add(branch)
    messages.set(union, describeAnyOf(branches))
  }
  const byField = new Map<string, string[]>()
  for (const error of errors) {
    if (consumed.has(error)) continue
    const field = fieldOf(error)
    const message =
      messages.get(error) ?? (typeof error.params.additionalProperty === 'string' ? (options.unknownField ?? 'unknown field') : messageOf(error))
    const list = byField.get(field) ?? []
    if (!list.includes(message)) list.push(message)
    byField.set(field, list)
  }
  return [...byField].map(([field, list]) => ({ field, message: list.join('; ') }))
}
