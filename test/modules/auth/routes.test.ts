import Fastify, { type FastifyInstance } from 'fastify'
import { registerAuthGuard } from '../../../src/platform/auth/guard.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AUTHENTICATED, requirePermission } from '../../../src/platform/auth/principal.js'
import { PERMISSIONS } from '../../../src/modules/auth/permissions.js'
import { buildTestApp } from '../../helpers/app.js'

/** The guard's promise: no route is reachable by accident. */
let app: FastifyInstance

beforeAll(async () => {
  app = await buildTestApp()
})

afterAll(() => app.close())

const PUBLIC_ON_PURPOSE = [
  /^\/healthz$/,
  /^\/readyz$/,
  /^\/metrics$/,
  /^\/openapi\.json$/,
  /^\/docs(\/|$)/,
  /^\/v1\/blobs\/\*$/,
  /^\/dapr\//,
  /^\/v1\/auth\/(login|refresh|accept-invite)$/,
  /^\/realms\/:realm\//,
]

describe('route access', () => {
  it('gives every registered route either public access on purpose or a known permission', () => {
    expect(app.routeAccess.length).toBeGreaterThan(20)
    const known = new Set<string>([...PERMISSIONS, AUTHENTICATED])
    for (const route of app.routeAccess) {
      const name = `${route.method} ${route.url}`
      if (route.access === 'public') expect(PUBLIC_ON_PURPOSE.some((p) => p.test(route.url)), name).toBe(true)
      else expect(known.has(route.access), name).toBe(true)
    }
    const access = (method: string, url: string) => app.routeAccess.find((r) => r.method === method && r.url === url)?.access
    expect(access('GET', '/v1/events/outbox')).toBe('events:view')
    expect(access('POST', '/v1/tenants')).toBe('tenant:manage')
    expect(access('GET', '/v1/audit')).toBe('audit:view')
  })

  it('lists only routes Fastify really serves', () => {
    for (const route of app.routeAccess) {
      expect(app.hasRoute({ method: route.method as 'GET', url: route.url }), `${route.method} ${route.url}`).toBe(true)
    }
  })

  it('stops the app at start-up when a route declares neither', async () => {
    const other = Fastify()
    registerAuthGuard(other, { authenticator: app.services.auth.authenticator, audit: { record: () => undefined } })
    other.get('/fine', { config: { public: true } }, async () => 'ok')
    other.get('/guarded', { config: requirePermission('model:view') }, async () => 'ok')
    expect(() => other.get('/v1/forgotten', async () => 'x')).toThrow(/declares neither config.public nor a permission/)
    await other.close()
  })
})
