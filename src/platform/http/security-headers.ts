import type { FastifyInstance } from 'fastify'

/**
 * Security headers for a JSON API, set once per response from a precomputed list.
 * (@fastify/helmet re-derives its CSP header on every request, which cost a measurable share of
 * a small route's time in `npm run bench`; these values never change, so nothing is derived.)
 * Swagger UI sets its own, looser CSP on /docs (its staticCSP option), replacing this one there.
 */
const HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"],
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'no-referrer'],
  ['strict-transport-security', 'max-age=15552000; includeSubDomains'],
  ['cross-origin-opener-policy', 'same-origin'],
  ['cross-origin-resource-policy', 'same-site'],
  ['x-permitted-cross-domain-policies', 'none'],
]

export function registerSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of HEADERS) reply.header(name, value)
    done()
  })
}
