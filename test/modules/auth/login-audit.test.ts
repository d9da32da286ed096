import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { waitFor } from '../../helpers/wait.js'

/** 401 challenges (RFC 6750) and login attempts in the audit log, on the run's PostgreSQL and Redis. */

let app: FastifyInstance
let admin: SeededUser
let viewer: SeededUser
let otherAdmin: SeededUser

beforeAll(async () => {
  // Three wrong passwords lock an account, so a test reaches 429 quickly.
  app = await buildTestApp({ LOGIN_LOCKOUT_THRESHOLD: '3' })
  const realm = uniqueRealm('la')
  admin = await seedUser(app, { realm, role: 'admin' })
  viewer = await seedUser(app, { realm, role: 'viewer' })
  otherAdmin = await seedUser(app, { realm: uniqueRealm('la-other'), role: 'admin' })
})

afterAll(async () => {
  await app?.close()
})

interface AuditItem {
  tenantId: string | null
  actorKind: string
  actorId: string
  action: string
  outcome: number
  path: string
}

async function logins(user: SeededUser, actor?: string): Promise<{ status: number; items: AuditItem[]; body: string }> {
  const response = await app.inject({
    method: 'GET',
    url: `/v1/audit?action=login&limit=100${actor ? `&actor=${encodeURIComponent(actor)}` : ''}`,
    headers: bearer(user.accessToken),
  })
  return { status: response.statusCode, items: response.statusCode === 200 ? response.json().items : [], body: response.body }
}

const login = (email: string, password: string, tenant: string) =>
  app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password, tenant } })

describe('401 challenges', () => {
  it('names the realm when no credential came, and invalid_token when one was refused', async () => {
    const none = await app.inject({ method: 'GET', url: '/v1/workflows' })
    expect(none.statusCode).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Bearer realm="modelplane"')
    for (const headers of [bearer('not-a-token'), { 'x-api-key': 'mp_00000000_nope' }]) {
      const refused = await app.inject({ method: 'GET', url: '/v1/workflows', headers })
      expect(refused.statusCode).toBe(401)
      expect(refused.headers['www-authenticate']).toBe('Bearer realm="modelplane", error="invalid_token"')
    }
    const basic = await app.inject({ method: 'GET', url: '/v1/workflows', headers: { authorization: 'Basic dXNlcjpwdw==' } })
    expect(basic.statusCode).toBe(401)
    expect(basic.headers['www-authenticate']).toBe('Bearer realm="modelplane", error="invalid_request"')
    // Not on other refusals.
    const forbidden = await app.inject({ method: 'GET', url: '/v1/audit', headers: bearer(viewer.accessToken) })
    expect(forbidden.statusCode).toBe(403)
    expect(forbidden.headers['www-authenticate']).toBeUndefined()
  })
})

describe('login audit', () => {
  it('records a successful login and a wrong password under the user id, in their tenant', async () => {
    const user = await seedUser(app, { realm: admin.realm, role: 'developer' })
    const wrong = `wrong-${user.password}`
    expect((await login(user.email, wrong, user.realm)).statusCode).toBe(401)
    // seedUser logged in once already; this is the second success.
    expect((await login(user.email, user.password, user.realm)).statusCode).toBe(200)
    let rows: AuditItem[] = []
    await waitFor(async () => (rows = (await logins(admin, user.id)).items).length === 3, 5_000, 'the login attempts were not audited')
    expect(rows.map((r) => r.outcome).sort()).toEqual([200, 200, 401])
    for (const row of rows) expect(row).toMatchObject({ tenantId: user.tenantId, actorKind: 'user', actorId: user.id, action: 'login', path: '/v1/auth/login' })
    const { body } = await logins(admin)
    expect(body).not.toContain(wrong)
    expect(body).not.toContain(user.password)
  })

  it('records an unknown account by a hash, never its email or password', async () => {
    const email = `nobody-${Date.now()}@example.test`
    expect((await login(email, 'guess-1', admin.realm)).statusCode).toBe(401)
    let row: AuditItem | undefined
    await waitFor(
      async () => (row = (await logins(admin)).items.find((r) => r.actorKind === 'anonymous' && r.outcome === 401)) !== undefined,
      5_000,
      'the unknown account was not audited',
    )
    expect(row!.actorId).toMatch(/^account:[A-Za-z0-9_-]{22}$/)
    const { body } = await logins(admin)
    expect(body).not.toContain(email)
    expect(body).not.toContain('guess-1')
  })

  it('records a locked account as 429', async () => {
    const user = await seedUser(app, { realm: admin.realm, role: 'tester' })
    for (let i = 0; i < 3; i++) expect((await login(user.email, `bad-${i}`, user.realm)).statusCode).toBe(401)
    expect((await login(user.email, user.password, user.realm)).statusCode).toBe(429)
    await waitFor(
      async () => (await logins(admin, user.id)).items.some((r) => r.outcome === 429),
      5_000,
      'the locked attempt was not audited',
    )
  })

  it("shows another tenant's admin none of it, and a viewer nothing at all", async () => {
    await waitFor(async () => (await logins(admin, viewer.id)).items.length > 0, 5_000, 'the seeded login was not audited')
    const foreign = await logins(otherAdmin, viewer.id)
    expect(foreign.status).toBe(200)
    expect(foreign.items).toEqual([])
    const lower = await logins(viewer)
    expect(lower.status).toBe(403)
    expect(lower.body).not.toContain(viewer.id)
  })
})
