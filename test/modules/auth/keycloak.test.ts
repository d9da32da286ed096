import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'
import { type FakeKeycloak, startFakeKeycloak } from '../../helpers/keycloak.js'

/** Keycloak mode against the stand-in: tokens come from "Keycloak", realms are created through its admin API. */
let kc: FakeKeycloak
let app: FastifyInstance
const realm = uniqueRealm('kc')
const platformRealm = 'local'

beforeAll(async () => {
  kc = await startFakeKeycloak()
  await kc.addRealm(realm)
  await kc.addRealm(platformRealm)
  app = await buildTestApp({
    KEYCLOAK_URL: kc.url,
    KEYCLOAK_REALMS: `${realm},${platformRealm}`,
    KEYCLOAK_ADMIN_CLIENT_ID: kc.adminCredentials.clientId,
    KEYCLOAK_ADMIN_CLIENT_SECRET: kc.adminCredentials.clientSecret,
    KEYCLOAK_CLIENT_ID: 'modelplane-api',
    KEYCLOAK_CLIENT_SECRET: 'api-client-secret',
  })
  kc.addClient(realm, { clientId: 'modelplane-api', secret: 'api-client-secret' })
})

afterAll(async () => {
  await app?.close()
  await kc?.close()
})

async function usersWithAuthId(authId: string) {
  const result = await app.platform.database.db.execute(
    sql`select email, role, tenant_id from users where auth_id = ${authId}`,
  )
  return result.rows as Array<{ email: string; role: string }>
}

describe('keycloak mode', () => {
  it('authenticates a token of an allowed realm and creates the user row on first sight', async () => {
    const sub = randomUUID()
    const token = await kc.mint(realm, { sub, email: `dev-${sub.slice(0, 8)}@example.test`, realm_access: { roles: ['developer'] } })
    expect(await usersWithAuthId(sub)).toHaveLength(0)
    const response = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(token) })
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json()).toMatchObject({ role: 'developer', tenant: { realm } })
    expect(await usersWithAuthId(sub)).toMatchObject([{ role: 'developer', email: `dev-${sub.slice(0, 8)}@example.test` }])

    // A changed role in Keycloak is picked up once the cached principal lapses or the user changes.
    await app.services.auth.invalidateUser((await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(token) })).json().user.id)
    const promoted = await kc.mint(realm, { sub, email: `dev-${sub.slice(0, 8)}@example.test`, realm_access: { roles: ['admin'] } })
    const again = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(promoted) })
    expect(again.json().role).toBe('admin')
  })

  it('logs in through the realm token endpoint, refreshes, and refuses a wrong password alike', async () => {
    const email = `kc-${randomUUID().slice(0, 8)}@example.test`
    kc.addUser(realm, { username: email, email, password: 'right-password', roles: ['viewer'] })
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'right-password', tenant: realm } })
    expect(login.statusCode, login.body).toBe(200)
    const me = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(login.json().accessToken) })
    expect(me.json()).toMatchObject({ role: 'viewer', user: { email } })
    const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: login.json().refreshToken } })
    expect(refreshed.statusCode, refreshed.body).toBe(200)
    const wrong = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password: 'wrong', tenant: realm } })
    expect(wrong.statusCode).toBe(401)
    expect(wrong.json().message).toBe('invalid credentials')
  })

  it('refuses a token of a realm that is not allowed', async () => {
    const stranger = uniqueRealm('no')
    await kc.addRealm(stranger)
    const token = await kc.mint(stranger, { realm_access: { roles: ['admin'] } })
    const response = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(token) })
    expect(response.statusCode).toBe(401)
  })

  it('creates the realm and its roles in Keycloak when a tenant is created', async () => {
    const sub = randomUUID()
    const token = await kc.mint(platformRealm, { sub, realm_access: { roles: ['super_admin'] } })
    const newRealm = uniqueRealm('made')
    const response = await app.inject({
      method: 'POST',
      url: '/v1/tenants',
      headers: bearer(token),
      payload: { realm: newRealm, displayName: 'Made Here' },
    })
    expect(response.statusCode, response.body).toBe(201)
    expect(kc.realmsCreated()).toContain(newRealm)
    expect(kc.adminRoles(newRealm)).toEqual(expect.arrayContaining(['super_admin', 'admin', 'developer', 'devops', 'tester', 'viewer']))
  })

  it('answers 502 IDENTITY_PROVIDER_ERROR and writes nothing when Keycloak refuses', async () => {
    const token = await kc.mint(platformRealm, { sub: randomUUID(), realm_access: { roles: ['super_admin'] } })
    const failed = uniqueRealm('fail')
    kc.failAdminCalls(true)
    try {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/tenants',
        headers: bearer(token),
        payload: { realm: failed, displayName: 'Nope' },
      })
      expect(response.statusCode).toBe(502)
      expect(response.json().errorCode).toBe('IDENTITY_PROVIDER_ERROR')
    } finally {
      kc.failAdminCalls(false)
    }
    const rows = await app.platform.database.db.execute(sql`select 1 from tenants where realm = ${failed}`)
    expect(rows.rows).toHaveLength(0)
  })
})
