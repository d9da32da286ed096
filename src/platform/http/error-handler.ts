import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AppError, type ErrorDetails, type FieldProblem } from '../errors.js'
import { describeSchemaErrors, type SchemaError } from './validation.js'

interface Envelope {
  errorCode: string
  message: string
  details: ErrorDetails
  requestId: string
}

/** The details of an error about no input in particular. */
export const NO_DETAILS: Readonly<ErrorDetails> = Object.freeze({ fields: [] })

/** Fastify's own client-error codes, mapped to stable codes a caller can branch on. */
const FASTIFY_CODES: Record<string, { code: string; message?: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'MALFORMED_JSON', message: 'the request body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'MALFORMED_JSON', message: 'the request body is empty but declared as JSON' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', message: 'the request body is larger than allowed' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'unsupported content type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'BAD_REQUEST', message: 'content-length does not match the body' },
  FST_ERR_RATE_LIMIT: { code: 'RATE_LIMITED' },
}

const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  412: 'PRECONDITION_FAILED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
}

/** One problem per field, named as `<part>.<dotted path>` ("body.spec.replicas", "querystring.status"). */
function fieldProblems(error: FastifyError): FieldProblem[] {
  const context = error.validationContext ?? 'body'
  const unknownField = context === 'querystring' ? 'unknown query parameter' : 'unknown field'
  return describeSchemaErrors((error.validation ?? []) as SchemaError[], { unknownField }).map(({ field, message }) => ({
    field: field ? `${context}.${field}` : context,
    message,
  }))
}

export function toEnvelope(error: unknown, requestId: string): { status: number; body: Envelope } {
  if (error instanceof AppError) {
    return {
      status: error.status,
      body: { errorCode: error.code, message: error.message, details: error.details, requestId },
    }
  }
  const fe = error as FastifyError
  if (fe?.validation) {
    const problems = fieldProblems(fe)
    return {
      status: 400,
      body: {
        errorCode: 'VALIDATION_ERROR',
        message: `invalid request: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`,
        details: { fields: problems },
        requestId,
      },
    }
  }
  const status = typeof fe?.statusCode === 'number' ? fe.statusCode : 500
  if (status >= 400 && status < 500) {
    const known = fe.code ? FASTIFY_CODES[fe.code] : undefined
    return {
      status,
      body: {
        errorCode: known?.code ?? STATUS_CODES[status] ?? 'BAD_REQUEST',
        message: known?.message ?? fe.message,
        details: NO_DETAILS,
        requestId,
      },
    }
  }
  return {
    status: status >= 500 && status < 600 ? status : 500,
    body: { errorCode: 'INTERNAL_ERROR', message: 'an internal error occurred', details: NO_DETAILS, requestId },
  }
}

/**
 * RFC 6750's challenge: the realm alone when no credential came, `invalid_token` when one was
 * presented and refused, `invalid_request` when the Authorization header was not a bearer token.
 */
function bearerChallenge(request: FastifyRequest): string {
  const authorization = request.headers.authorization
  const ticket = (request.query as { ticket?: unknown } | undefined)?.ticket
  let error: string | undefined
  if (typeof authorization === 'string') error = /^Bearer[ \t]+\S/i.test(authorization) ? 'invalid_token' : 'invalid_request'
  else if (request.headers['x-api-key'] !== undefined || typeof ticket === 'string') error = 'invalid_token'
  return error ? `Bearer realm="modelplane", error="${error}"` : 'Bearer realm="modelplane"'
}

/** A 503 that names no wait of its own asks the caller to come back after this. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5

/**
 * `Retry-After` (RFC 9110) for an answer that says "not now": a 503 always carries one (the
 * error's `details.retryAfterSeconds`, else a default), a 429 when the error names its wait.
 */
function retryAfterOf(status: number, body: Envelope): number | undefined {
  const named = body.details.retryAfterSeconds
  const seconds = typeof named === 'number' && Number.isFinite(named) && named > 0 ? Math.ceil(named) : undefined
  if (status === 503) return seconds ?? DEFAULT_RETRY_AFTER_SECONDS
  if (status === 429) return seconds
  return undefined
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body } = toEnvelope(error, request.id)
    if (status >= 500) request.log.error({ err: error }, 'request failed')
    else request.log.info({ errorCode: body.errorCode, status }, 'request rejected')
    // The rest of a body that came too slowly is not waited for: the connection goes with the answer.
    if (status === 408) reply.header('connection', 'close')
    if (status === 401) reply.header('www-authenticate', bearerChallenge(request))
    const retryAfter = retryAfterOf(status, body)
    if (retryAfter !== undefined && !reply.hasHeader('retry-after')) reply.header('retry-after', String(retryAfter))
    return reply.status(status).send(body)
  })

  app.setNotFoundHandler((request, reply) => {
    const body: Envelope = {
      errorCode: 'NOT_FOUND',
      message: `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 200)}`,
      details: NO_DETAILS,
      requestId: request.id,
    }
    return reply.status(404).send(body)
  })
}
