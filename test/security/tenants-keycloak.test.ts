import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp } from '../helpers/app.js'
import { bearer, uniqueRealm } from '../helpers/auth.js'
import { type FakeKeycloak, startFakeKeycloak } from '../helpers/keycloak.js'

/**
 * Keycloak mode: a new tenant's first admin is created in the new realm with role admin and a
 * temporary password, which Keycloak makes them replace at the first sign-in. No KEYCLOAK_REALMS:
 * the tenants table decides which realms are trusted, so a tenant made here can sign in at once.
 */
let kc: FakeKeycloak
let app: FastifyInstance
let superuserToken: string
const clientSecret = `api-secret-${randomUUID()}`

beforeAll(async () => {
  kc = await startFakeKeycloak()
  await kc.addRealm('local')
  app = await buildTestApp({
    KEYCLOAK_URL: kc.url,
    KEYCLOAK_ADMIN_CLIENT_ID: kc.adminCredentials.clientId,
    KEYCLOAK_ADMIN_CLIENT_SECRET: kc.adminCredentials.clientSecret,
    KEYCLOAK_CLIENT_SECRET: clientSecret,
  })
  // The platform realm's tenant (an embedded start, or KEYCLOAK_REALMS, would have made it).
  await app.platform.database.db.execute(sql`insert into tenants (realm, display_name) values ('local', 'Local') on conflict do nothing`)
  // A super_admin of the platform realm is a superuser (see syncUserFromToken).
  superuserToken = await kc.mint('local', { sub: randomUUID(), email: `su-${randomUUID().slice(0, 8)}@example.test`, realm_access: { roles: ['super_admin'] } })
})

afterAll(async () => {
  await app?.close()
  await kc?.close()
})

const tenantRows = async (realm: string) => (await app.platform.database.db.execute(sql`select id from tenants where realm = ${realm}`)).rows
const create = (payload: object) => app.inject({ method: 'POST', url: '/v1/tenants', headers: bearer(superuserToken), payload })
const login = (realm: string, email: string, password: string) =>
  app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password, tenant: realm } })

describe("a new Keycloak tenant's first admin", () => {
  it('is created in the new realm with role admin and a temporary password that Keycloak makes them replace', async () => {
    const realm = uniqueRealm('kcnew')
    const email = `boss-${randomUUID().slice(0, 8)}@example.test`
    const response = await create({ realm, displayName: 'New Realm Co', initialAdmin: { email, name: 'Boss' } })
    expect(response.statusCode, response.body).toBe(201)
    const grant = response.json().initialAdmin
    expect(grant).toMatchObject({ email, requiredActions: ['UPDATE_PASSWORD'], temporaryPassword: expect.stringMatching(/^.{20,}$/) })
    expect(grant).not.toHaveProperty('invite')
    const kcUser = kc.adminUsers(realm).find((u) => u.email === email)
    expect(kcUser).toMatchObject({ enabled: true, roles: ['admin'], requiredActions: ['UPDATE_PASSWORD'], password: grant.temporaryPassword })
    const rows = await app.platform.database.db.execute(sql`select role, status, auth_id from users where id = ${grant.userId}`)
    expect(rows.rows).toEqual([{ role: 'admin', status: 'active', auth_id: kcUser!.id }])

    // The realm came with the API's own login client: confidential, with the configured secret, password grant only.
    expect(kc.adminClients(realm).find((c) => c.clientId === 'modelplane-api')).toEqual({
      clientId: 'modelplane-api',
      publicClient: false,
      secret: clientSecret,
      directAccessGrants: true,
      serviceAccount: false,
    })
    expect(kc.adminRoles(realm)).toEqual(expect.arrayContaining(['super_admin', 'admin', 'devops', 'developer', 'tester', 'viewer']))
    // Keycloak refuses the temporary password on its own: the password must be changed at sign-in first.
    expect((await login(realm, email, grant.temporaryPassword)).statusCode).toBe(401)
    const chosen = `chosen-${randomUUID()}`
    kc.updatePasswordAtLogin(realm, email, grant.temporaryPassword, chosen)
    const session = await login(realm, email, chosen)
    expect(session.statusCode, session.body).toBe(200)
    const me = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(session.json().accessToken) })
    expect(me.json()).toMatchObject({ role: 'admin', tenant: { realm }, user: { id: grant.userId, email } })
  })

  it('takes the tenant and its realm back when Keycloak refuses the admin (502)', async () => {
    const realm = uniqueRealm('kcfail')
    kc.failAdminCalls((call) => call.method === 'POST' && call.path === `/admin/realms/${realm}/users`)
    try {
      const response = await create({ realm, displayName: 'Half Made', initialAdmin: { email: `x-${randomUUID().slice(0, 8)}@example.test`, name: 'X' } })
      expect(response.statusCode).toBe(502)
      expect(response.json().errorCode).toBe('IDENTITY_PROVIDER_ERROR')
    } finally {
      kc.failAdminCalls(false)
    }
    expect(await tenantRows(realm)).toHaveLength(0)
    expect(kc.realmNames()).not.toContain(realm)
    // Nothing is left to block a second try.
    const again = await create({ realm, displayName: 'Made', initialAdmin: { email: `y-${randomUUID().slice(0, 8)}@example.test`, name: 'Y' } })
    expect(again.statusCode, again.body).toBe(201)
  })

  it('refuses the realm master before anything reaches Keycloak', async () => {
    const before = kc.requests().filter((c) => c.method === 'POST' && c.path === '/admin/realms').length
    const response = await create({ realm: 'master', displayName: 'Takeover', initialAdmin: { email: 'evil@example.test', name: 'Evil' } })
    expect(response.statusCode).toBe(400)
    expect(response.json().errorCode).toBe('REALM_RESERVED')
    expect(kc.requests().filter((c) => c.method === 'POST' && c.path === '/admin/realms')).toHaveLength(before)
    expect(kc.adminUsers('master').map((u) => u.email)).not.toContain('evil@example.test')
  })
})
