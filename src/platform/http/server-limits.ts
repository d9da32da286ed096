import type { Socket } from 'node:net'
import type { ServerOptions, ServerResponse } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../../config.js'
import { newRequestId } from './request-id.js'

/**
 * What Node's HTTP server enforces before Fastify sees a request: header size and time, idle
 * sockets, and the number of connections.
 *
 * Node's own `requestTimeout` is left at 0 on purpose: it bounds the whole request, body included,
 * and cannot be lifted for one route, so it would cut off a large signed upload however steadily
 * it arrives. The body deadline is enforced per request instead (see body-guards.ts), where the
 * upload route can ask for a minimum transfer rate in its place. Headers keep Node's deadline.
 */
export function serverLimitOptions(limits: Config['http']): {
  http: ServerOptions
  requestTimeout: number
  connectionTimeout: number
  keepAliveTimeout: number
} {
  return {
    http: {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      // Node looks for expired header deadlines only this often (30 s by default): a fraction of the
      // deadline keeps it close to what is configured.
      connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    requestTimeout: 0,
    connectionTimeout: limits.connectionIdleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
  }
}

/** Node's client errors, as the API's error codes. */
function describe(code: string | undefined): { status: number; errorCode: string; message: string } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { status: 408, errorCode: 'REQUEST_TIMEOUT', message: 'the request did not arrive in time' }
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return { status: 431, errorCode: 'HEADERS_TOO_LARGE', message: 'the request headers are larger than allowed' }
  }
  return { status: 400, errorCode: 'BAD_REQUEST', message: 'the request is not valid HTTP' }
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }

/**
 * Fastify's clientErrorHandler: requests Node refuses while parsing (headers too large or too slow,
 * malformed HTTP, NUL bytes in headers) are answered in the error envelope like every other
 * error, then the connection is closed. Only the error's code is logged: Node attaches the bytes
 * it could not parse (`rawPacket`), which may hold credentials.
 */
export function clientErrorHandler(log: FastifyBaseLogger) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage
    const { status, errorCode, message } = describe(err.code)
    log.debug({ errorCode, status, code: err.code }, 'request refused by the HTTP parser')
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy()
      return
    }
    const requestId = newRequestId()
    const body = JSON.stringify({ errorCode, message, details: { fields: [] }, requestId })
    // Destroyed once written out, not at once: destroying drops what is still buffered.
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status]}\r\n` +
        'content-type: application/json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${requestId}\r\n` +
        'cache-control: no-store\r\n' +
        'x-content-type-options: nosniff\r\n' +
        'connection: close\r\n\r\n' +
        body,
      () => socket.destroy(),
    )
  }
}
