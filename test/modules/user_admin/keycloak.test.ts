import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'
import { type FakeKeycloak, startFakeKeycloak } from '../../helpers/keycloak.js'

/** Keycloak mode: user administration is mirrored to the tenant's realm through the admin client. */
let kc: FakeKeycloak
let app: FastifyInstance
let token: string
const realm = uniqueRealm('uakc')

beforeAll(async () => {
  kc = await startFakeKeycloak()
  await kc.addRealm(realm)
  // The realm's roles exist in Keycloak (created with the tenant in real life).
  kc.addUser(realm, { username: 'roles', email: 'roles@example.test', password: 'x', roles: ['admin', 'developer', 'viewer', 'devops', 'tester'] })
  app = await buildTestApp({
    KEYCLOAK_URL: kc.url,
    KEYCLOAK_REALMS: realm,
    KEYCLOAK_ADMIN_CLIENT_ID: kc.adminCredentials.clientId,
    KEYCLOAK_ADMIN_CLIENT_SECRET: kc.adminCredentials.clientSecret,
  })
  token = await kc.mint(realm, { sub: randomUUID(), email: `boss-${randomUUID().slice(0, 6)}@example.test`, realm_access: { roles: ['admin'] } })
})

afterAll(async () => {
  await app?.close()
  await kc?.close()
})

const kcUser = (email: string) => kc.adminUsers(realm).find((u) => u.email === email)
const call = (method: 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  app.inject({ method, url, headers: bearer(token), payload })
const rowsWithEmail = async (email: string) =>
  (await app.platform.database.db.execute(sql`select status, role, auth_id from users where lower(email) = lower(${email})`)).rows

describe('keycloak mirroring', () => {
  it('creates the user enabled with its realm role, mirrors updates, and deletes it on delete', async () => {
    const email = `kc-${randomUUID().slice(0, 8)}@example.test`
    const created = await call('POST', '/ai/admin/users', { email, name: 'Mirrored', role: 'developer' })
    expect(created.statusCode, created.body).toBe(201)
    const user = created.json()
    expect(user).toMatchObject({ status: 'active' })
    expect(user).not.toHaveProperty('invite')
    expect(kcUser(email)).toMatchObject({ enabled: true, firstName: 'Mirrored', roles: ['developer'] })
    expect((await rowsWithEmail(email))[0]).toMatchObject({ auth_id: kcUser(email)!.id })
    // Keycloak invites its own users; the API issues no invite tokens for them.
    const invite = await call('POST', `/ai/admin/users/${user.id}/invite`)
    expect(invite.statusCode).toBe(409)
    expect(invite.json().errorCode).toBe('INVITE_UNAVAILABLE')

    const updated = await call('PUT', `/ai/admin/users/${user.id}`, { role: 'viewer', status: 'disabled', name: 'Renamed' })
    expect(updated.statusCode, updated.body).toBe(200)
    expect(kcUser(email)).toMatchObject({ enabled: false, firstName: 'Renamed', roles: ['viewer'] })

    expect((await call('DELETE', `/ai/admin/users/${user.id}`)).statusCode).toBe(204)
    expect(kcUser(email)).toBeUndefined()
  })

  it('answers 502 IDENTITY_PROVIDER_ERROR and leaves the database unchanged when Keycloak fails', async () => {
    const email = `fail-${randomUUID().slice(0, 8)}@example.test`
    kc.failAdminCalls(true)
    try {
      const response = await call('POST', '/ai/admin/users', { email, role: 'viewer' })
      expect(response.statusCode).toBe(502)
      expect(response.json().errorCode).toBe('IDENTITY_PROVIDER_ERROR')
    } finally {
      kc.failAdminCalls(false)
    }
    expect(await rowsWithEmail(email)).toHaveLength(0)

    const user = (await call('POST', '/ai/admin/users', { email, role: 'viewer' })).json()
    kc.failAdminCalls((c) => c.method === 'PUT' || c.method === 'DELETE')
    try {
      const update = await call('PUT', `/ai/admin/users/${user.id}`, { status: 'disabled' })
      expect(update.statusCode).toBe(502)
      const remove = await call('DELETE', `/ai/admin/users/${user.id}`)
      expect(remove.statusCode).toBe(502)
    } finally {
      kc.failAdminCalls(false)
    }
    expect(await rowsWithEmail(email)).toMatchObject([{ status: 'active', role: 'viewer' }])
    expect(kcUser(email)).toMatchObject({ enabled: true })
  })

  it('takes the Keycloak user back when the database refuses the row (duplicate tag)', async () => {
    const tag = `kc-${randomUUID().slice(0, 6)}`
    expect((await call('POST', '/ai/admin/users', { email: `t1-${tag}@example.test`, role: 'viewer', tag })).statusCode).toBe(201)
    const email = `t2-${tag}@example.test`
    const clash = await call('POST', '/ai/admin/users', { email, role: 'viewer', tag })
    expect(clash.statusCode).toBe(409)
    expect(clash.json().errorCode).toBe('DUPLICATE_TAG')
    expect(kcUser(email)).toBeUndefined()
  })

  it('keeps the email and name in the realm when a user is disabled, enabled or renamed (Keycloak clears what a PUT leaves out)', async () => {
    const email = `keep-${randomUUID().slice(0, 8)}@example.test`
    const user = (await call('POST', '/ai/admin/users', { email, name: 'Kept', role: 'viewer' })).json()
    const id = kcUser(email)!.id

    expect((await call('PUT', `/ai/admin/users/${user.id}`, { status: 'disabled' })).statusCode).toBe(200)
    expect(kc.adminUsers(realm).find((u) => u.id === id)).toMatchObject({ enabled: false, email, firstName: 'Kept' })
    expect((await call('PUT', `/ai/admin/users/${user.id}`, { status: 'active' })).statusCode).toBe(200)
    expect((await call('PUT', `/ai/admin/users/${user.id}`, { name: 'Renamed' })).statusCode).toBe(200)
    expect(kc.adminUsers(realm).find((u) => u.id === id)).toMatchObject({ enabled: true, email, firstName: 'Renamed' })
    const moved = `moved-${randomUUID().slice(0, 8)}@example.test`
    expect((await call('PUT', `/ai/admin/users/${user.id}`, { email: moved })).statusCode).toBe(200)
    expect(kc.adminUsers(realm).find((u) => u.id === id)).toMatchObject({ enabled: true, email: moved, firstName: 'Renamed' })
  })

  it("creates a user whose email Keycloak refuses as a username (o'brien@…), who then signs in with it", async () => {
    kc.addClient(realm, { clientId: 'modelplane-api' })
    const email = `o'brien-${randomUUID().slice(0, 8)}@example.test`
    const created = await call('POST', '/ai/admin/users', { email, name: "Miles O'Brien", role: 'viewer' })
    expect(created.statusCode, created.body).toBe(201)
    const inRealm = kcUser(email)!
    expect(inRealm).toMatchObject({ email, firstName: "Miles O'Brien", enabled: true })
    // The username is opaque, so an email change never has to edit it (usernames are read-only by default).
    expect(inRealm.username).not.toContain('@')
    // The user chooses a password in Keycloak (in real life at their first sign-in).
    const password = `pw-${randomUUID()}`
    kc.setPassword(realm, inRealm.id, password)
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password, tenant: realm } })
    expect(login.statusCode, login.body).toBe(200)
    const me = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(login.json().accessToken) })
    expect(me.json()).toMatchObject({ user: { id: created.json().id, email, name: "Miles O'Brien" } })
  })

  it('answers 400 IDENTITY_PROVIDER_REJECTED naming the field when Keycloak refuses a value, and writes nothing', async () => {
    const email = `paren-${randomUUID().slice(0, 8)}@example.test`
    const refused = await call('POST', '/ai/admin/users', { email, name: 'Smith (Ops)', role: 'viewer' })
    expect(refused.statusCode).toBe(400)
    expect(refused.json()).toMatchObject({ errorCode: 'IDENTITY_PROVIDER_REJECTED', details: { fields: [{ field: 'body.name' }] } })
    expect(await rowsWithEmail(email)).toHaveLength(0)
    expect(kcUser(email)).toBeUndefined()

    const user = (await call('POST', '/ai/admin/users', { email, name: 'Smith', role: 'viewer' })).json()
    const rename = await call('PUT', `/ai/admin/users/${user.id}`, { name: 'Smith & Sons' })
    expect(rename.statusCode).toBe(400)
    expect(rename.json().errorCode).toBe('IDENTITY_PROVIDER_REJECTED')
    expect((await app.inject({ method: 'GET', url: `/ai/admin/users/${user.id}`, headers: bearer(token) })).json()).toMatchObject({ name: 'Smith' })
    expect(kcUser(email)).toMatchObject({ firstName: 'Smith' })
  })

  it('puts Keycloak back when the database refuses an update (duplicate tag)', async () => {
    const tag = `kcu-${randomUUID().slice(0, 6)}`
    await call('POST', '/ai/admin/users', { email: `${tag}-a@example.test`, role: 'viewer', tag })
    const email = `${tag}-b@example.test`
    const second = (await call('POST', '/ai/admin/users', { email, name: 'Before', role: 'viewer' })).json()
    const response = await call('PUT', `/ai/admin/users/${second.id}`, { tag, name: 'After', role: 'developer' })
    expect(response.statusCode).toBe(409)
    expect(response.json().errorCode).toBe('DUPLICATE_TAG')
    // Keycloak took the new name and role first; both were put back.
    expect(kcUser(email)).toMatchObject({ firstName: 'Before', roles: ['viewer'] })
  })
})
