import { AppError } from '../errors.js'

export type KubeErrorCode =
  | 'CLUSTER_UNREACHABLE'
  | 'CLUSTER_TLS_ERROR'
  | 'CLUSTER_UNAUTHORIZED'
  | 'CLUSTER_FORBIDDEN'
  | 'CLUSTER_CONFLICT'
  | 'CLUSTER_INVALID_OBJECT'
  | 'CLUSTER_NOT_FOUND'
  | 'CLUSTER_ERROR'

export interface KubeCause {
  field?: string
  message: string
}

/**
 * What a cluster answered (or why it could not answer), in one taxonomy. It is an AppError so that
 * a module letting it bubble up still gives the caller a sensible envelope: the cluster's own
 * 401/403/404 become 502 here, because they are about our credentials there, not the caller's
 * here; an unreachable cluster is 503 (try again later); a conflict stays 409.
 */
export class KubeError extends AppError {
  declare readonly code: KubeErrorCode
  readonly httpStatus?: number
  /** The `reason` of the API server's Status (NotFound, AlreadyExists, Conflict, Invalid, …). */
  readonly reason?: string
  readonly causes?: KubeCause[]
  readonly retryable: boolean

  constructor(
    code: KubeErrorCode,
    message: string,
    extra: { httpStatus?: number; reason?: string; causes?: KubeCause[]; retryable?: boolean } = {},
  ) {
    const retryable = extra.retryable ?? code === 'CLUSTER_UNREACHABLE'
    super(code, ourStatus(code), message, {
      ...(extra.httpStatus !== undefined ? { clusterStatus: extra.httpStatus } : {}),
      ...(extra.reason ? { reason: extra.reason } : {}),
      ...(extra.causes ? { causes: extra.causes } : {}),
      retryable,
    })
    this.name = 'KubeError'
    if (extra.httpStatus !== undefined) this.httpStatus = extra.httpStatus
    if (extra.reason) this.reason = extra.reason
    if (extra.causes) this.causes = extra.causes
    this.retryable = retryable
  }
}

function ourStatus(code: KubeErrorCode): number {
  if (code === 'CLUSTER_UNREACHABLE') return 503
  if (code === 'CLUSTER_CONFLICT') return 409
  return 502
}

/** Longest server-supplied text we pass on: a Status message is shown to users and stored in run records. */
const MAX_MESSAGE = 1_000
const MAX_CAUSES = 20

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_ADDRESS_REFUSED',
])

// Node's TLS verification codes (from OpenSSL) and its own name check.
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
])

const RETRYABLE_REASONS = new Set(['ServerTimeout', 'Timeout', 'TooManyRequests', 'ServiceUnavailable'])

interface Status {
  message?: unknown
  reason?: unknown
  code?: unknown
  details?: { causes?: Array<{ field?: unknown; message?: unknown; reason?: unknown }> }
}

/**
 * Maps whatever a call to a cluster threw into a KubeError: client-node's ApiException (status
 * code and the response text as `body`), errors of our own transport, node socket/TLS/DNS errors
 * and aborts, looking through `.cause` chains since fetch-style libraries wrap the real error.
 */
export function toKubeError(err: unknown): KubeError {
  if (err instanceof KubeError) return err
  const status = httpStatusOf(err)
  if (status !== undefined) return fromHttp(status, (err as { body?: unknown }).body)

  for (const e of causeChain(err)) {
    const code = typeof e.code === 'string' ? e.code : undefined
    if (code && TLS_CODES.has(code)) {
      return new KubeError('CLUSTER_TLS_ERROR', `TLS with the cluster failed: ${short(e.message)}`, { retryable: false })
    }
    if (code && NETWORK_CODES.has(code)) {
      return new KubeError('CLUSTER_UNREACHABLE', `the cluster cannot be reached: ${short(e.message)}`)
    }
    if (e.name === 'AbortError' || e.name === 'TimeoutError' || code === 'ABORT_ERR' || e.type === 'aborted') {
      return new KubeError('CLUSTER_UNREACHABLE', 'the cluster did not answer in time')
    }
  }
  const message = err instanceof Error ? err.message : String(err)
  return new KubeError('CLUSTER_ERROR', `the call to the cluster failed: ${short(message)}`, { retryable: false })
}

function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  // client-node's ApiException: `code` is the HTTP status (a number, unlike node's string codes).
  const code = (err as { code?: unknown }).code
  if (typeof code === 'number' && code >= 100 && code <= 599) return code
  return undefined
}

function fromHttp(httpStatus: number, body: unknown): KubeError {
  const status = parseStatus(body)
  const reason = typeof status?.reason === 'string' ? status.reason.slice(0, 100) : undefined
  const serverMessage = typeof status?.message === 'string' && status.message ? short(status.message) : undefined
  const causes = parseCauses(status)
  const extra = { httpStatus, ...(reason ? { reason } : {}), ...(causes.length ? { causes } : {}) }

  switch (httpStatus) {
    case 401:
      return new KubeError('CLUSTER_UNAUTHORIZED', 'the cluster did not accept our credentials', {
        ...extra,
        retryable: false,
      })
    case 403:
      return new KubeError(
        'CLUSTER_FORBIDDEN',
        serverMessage ?? 'the cluster refused the request: our credentials lack the rights',
        { ...extra, retryable: false },
      )
    case 404:
      return new KubeError('CLUSTER_NOT_FOUND', serverMessage ?? 'not found in the cluster', {
        ...extra,
        retryable: false,
      })
    case 409:
      // A server-side apply conflict names each field in its causes; the message carries them too.
      return new KubeError('CLUSTER_CONFLICT', serverMessage ?? conflictMessage(causes), {
        ...extra,
        retryable: false,
      })
    case 422:
      return new KubeError('CLUSTER_INVALID_OBJECT', serverMessage ?? 'the cluster refused the object as invalid', {
        ...extra,
        retryable: false,
      })
    default: {
      const retryable = [429, 502, 503, 504].includes(httpStatus) || (reason !== undefined && RETRYABLE_REASONS.has(reason))
      return new KubeError('CLUSTER_ERROR', serverMessage ?? `the cluster answered HTTP ${httpStatus}`, {
        ...extra,
        retryable,
      })
    }
  }
}

function conflictMessage(causes: KubeCause[]): string {
  const fields = causes.flatMap((c) => (c.field ? [c.field] : []))
  return fields.length ? `the cluster reported a conflict on ${fields.join(', ')}` : 'the cluster reported a conflict'
}

function parseStatus(body: unknown): Status | undefined {
  let value = body
  if (typeof body === 'string') {
    if (body.length > 1_000_000) return undefined
    try {
      value = JSON.parse(body)
    } catch {
      return undefined
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  return value as Status
}

function parseCauses(status: Status | undefined): KubeCause[] {
  const raw = status?.details?.causes
  if (!Array.isArray(raw)) return []
  return raw.slice(0, MAX_CAUSES).flatMap((c) => {
    if (typeof c !== 'object' || c === null || typeof c.message !== 'string') return []
    return [{ ...(typeof c.field === 'string' ? { field: c.field.slice(0, 300) } : {}), message: short(c.message) }]
  })
}

interface ErrorLike {
  name?: unknown
  message: string
  code?: unknown
  type?: unknown
}

function* causeChain(err: unknown): Generator<ErrorLike> {
  let current: unknown = err
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const e = current as {
      name?: unknown
      message?: unknown
      code?: unknown
      type?: unknown
      cause?: unknown
      errors?: unknown
    }
    yield { name: e.name, message: typeof e.message === 'string' ? e.message : '', code: e.code, type: e.type }
    // Node's happy-eyeballs connect throws an AggregateError of one error per address tried.
    current = e.cause ?? (Array.isArray(e.errors) ? e.errors[0] : undefined)
  }
}

function short(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text
}
