import type { LoggerOptions } from 'pino'
import type { FastifyRequest } from 'fastify'

/** A key whose name says it holds a credential is never logged, however deep it sits. */
const SECRET_KEY = /pass(word)?|secret|token|authorization|cookie|api[-_]?key|credential|private[-_]?key|kubeconfig|signature|^sig$|^ticket$/i
export const REDACTED = '[redacted]'

export function redactSecrets(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1))
  // Only plain data is walked; requests, errors and buffers go to their serializers untouched.
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return value
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) ? REDACTED : redactSecrets(v, depth + 1)
  }
  return out
}

/** Query parameters such as ?sig=, ?token= or a stream's ?ticket= are credentials too. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  if (q < 0) return url
  const params = new URLSearchParams(url.slice(q + 1))
  let changed = false
  for (const key of [...params.keys()]) {
    if (SECRET_KEY.test(key)) {
      params.set(key, REDACTED)
      changed = true
    }
  }
  return changed ? `${url.slice(0, q)}?${params.toString()}` : url
}

/** Fields of pg's DatabaseError that name things, never values; `detail`, `where` and `hint` may quote row data. */
const DATABASE_ERROR_FIELDS = ['severity', 'code', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'] as const

/** Never copied from any error: they hold a query's values (or, for `cause`, are serialized on their own). */
const VALUE_FIELDS = new Set(['cause', 'params', 'parameters', 'detail', 'where', 'hint', 'internalQuery'])

interface SerializedError {
  type: string
  message: string
  stack?: string
  code?: unknown
  [field: string]: unknown
}

/**
 * Errors as logged. A failed query must not put its bound values in the log: drizzle's
 * DrizzleQueryError carries them in `params` and repeats them in its message and stack, and pg's
 * DatabaseError quotes them in `detail`, `where` and, for invalid input (SQLSTATE class 22), in its
 * message. Those are dropped or masked; the query text, the SQLSTATE and the names of the table,
 * column and constraint stay, which is what finding the bug needs.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error) || depth > 4) return err
  const fields = err as Error & Record<string, unknown>
  let message = err.message
  const out: SerializedError = { type: err.constructor?.name ?? err.name, message }
  if (typeof fields.query === 'string' && 'params' in fields) {
    message = `Failed query: ${fields.query}`
    out.query = fields.query
  } else if (typeof fields.severity === 'string' && typeof fields.code === 'string') {
    if (fields.code.startsWith('22')) message = message.replace(/"(?:[^"]|"")*"/g, '"[value]"')
    for (const key of DATABASE_ERROR_FIELDS) if (fields[key] !== undefined) out[key] = fields[key]
  } else {
    for (const [key, value] of Object.entries(fields)) {
      if (!VALUE_FIELDS.has(key) && (value === null || typeof value !== 'object')) out[key] = value
    }
  }
  out.message = message
  if (fields.code !== undefined) out.code = fields.code
  // The stack's first line repeats the raw message: it is rebuilt from the cleaned one and the frames.
  const frames = err.stack?.split('\n').filter((line) => line.startsWith('    at '))
  if (frames) out.stack = [`${out.type}: ${message}`, ...frames].join('\n')
  if (err.cause !== undefined) out.cause = serializeError(err.cause, depth + 1)
  return out
}

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    // Known header paths are cut by pino's fast redaction; everything else goes through redactSecrets.
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-api-key"]',
        'req.headers["dapr-api-token"]',
        'res.headers["set-cookie"]',
      ],
      censor: REDACTED,
    },
    formatters: {
      log: (object) => redactSecrets(object) as Record<string, unknown>,
    },
    serializers: {
      err: serializeError,
      req: (req: FastifyRequest) => ({
        method: req.method,
        url: redactUrl(req.url),
        remoteAddress: req.ip,
      }),
    },
  }
}
