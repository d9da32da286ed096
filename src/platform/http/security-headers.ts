import type { FastifyInstance } from 'fastify'
import { clientRequestIdOf } from './request-id.js'

/**
 * Security headers, set once per response from precomputed lists. (@fastify/helmet re-derives its
 * CSP header on every request, which cost a measurable share of a small route's time in
 * `npm run bench`; these values never change, so nothing is derived.)
 *
 * JSON answers get what the OWASP REST Security Cheat Sheet asks of an API: no framing, no MIME
 * sniffing, HSTS, and no caching of what are mostly authenticated answers. Headers that only mean
 * something to a rendered document (referrer, opener and embedding policies) go to the Swagger UI
 * pages under /docs alone: every header is validated and written on every response, and on a read
 * by id the full set cost about 5 % of throughput. Swagger UI sets its own, looser CSP on /docs
 * (its staticCSP option), replacing this one there.
 */
const API_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'"],
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['strict-transport-security', 'max-age=15552000; includeSubDomains'],
  ['cache-control', 'no-store'],
]

const DOCUMENT_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"],
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['strict-transport-security', 'max-age=15552000; includeSubDomains'],
  ['referrer-policy', 'no-referrer'],
  ['cross-origin-opener-policy', 'same-origin'],
  ['cross-origin-resource-policy', 'same-site'],
  ['x-permitted-cross-domain-policies', 'none'],
]

/**
 * The request ids and the security headers, in the first hook of every request (one hook, not
 * two: it runs on every response). A client's own X-Request-Id is echoed as X-Client-Request-Id.
 */
export function registerResponseHeaders(app: FastifyInstance, options: { documentPrefix: string }): void {
  const { documentPrefix } = options
  app.decorateRequest('clientRequestId', null)
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    const clientRequestId = clientRequestIdOf(request.headers)
    if (clientRequestId) {
      request.clientRequestId = clientRequestId
      reply.header('x-client-request-id', clientRequestId)
    }
    const headers = request.url.startsWith(documentPrefix) ? DOCUMENT_HEADERS : API_HEADERS
    for (const [name, value] of headers) reply.header(name, value)
    done()
  })
}
