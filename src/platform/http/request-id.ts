import { randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's X-Request-Id, when sane; `request.id` is always the server's own. */
    clientRequestId: string | null
  }
}

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * The server's own id for every request. A client's X-Request-Id is never adopted: the id ends up
 * in the audit log and in every log line, and a client could otherwise make two requests share
 * one, or make its request look like someone else's.
 */
export function newRequestId(): string {
  return randomUUID()
}

/** The client's X-Request-Id when it is a sane token, kept beside ours for correlation; null otherwise. */
export function clientRequestIdOf(headers: IncomingHttpHeaders): string | null {
  const header = headers['x-request-id']
  return typeof header === 'string' && CLIENT_REQUEST_ID.test(header) ? header : null
}
