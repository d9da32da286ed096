import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp } from '../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Superusers and tenants (embedded mode): tenants are the superuser flag's to make and change, a
 * role name grants nothing across tenants, a new tenant gets its first admin through the API, and a
 * superuser administers another tenant's users in the open, audited in that tenant.
 */
let app: FastifyInstance
let superuser: SeededUser
/** super_admin by role in a tenant of their own, but not a superuser. */
let roleOnly: SeededUser
/** An ordinary tenant and its admin. */
let tenantAdmin: SeededUser
let member: SeededUser

beforeAll(async () => {
  app = await buildTestApp()
  superuser = await seedUser(app, { realm: uniqueRealm('su'), role: 'super_admin', isSuperuser: true })
  roleOnly = await seedUser(app, { realm: uniqueRealm('ro'), role: 'super_admin' })
  tenantAdmin = await seedUser(app, { realm: uniqueRealm('ten'), role: 'admin' })
  member = await seedUser(app, { realm: tenantAdmin.realm, role: 'viewer' })
})

afterAll(async () => {
  await app?.close()
})

const db = () => app.platform.database.db
const tenantRows = async (realm: string) =>
  (await db().execute(sql`select id, display_name, status, updated_at from tenants where lower(realm) = lower(${realm})`)).rows
const userRow = async (id: string) =>
  (await db().execute(sql`select name, role, status, updated_at from users where id = ${id}`)).rows[0]
const usersWithEmail = async (email: string) => (await db().execute(sql`select id from users where lower(email) = lower(${email})`)).rows
const createTenant = (who: SeededUser, payload: object) =>
  app.inject({ method: 'POST', url: '/v1/tenants', headers: bearer(who.accessToken), payload })

describe('superusers and tenants', () => {
  it('refuses tenant creation to a super_admin who is not a superuser (403) and writes no tenant', async () => {
    const realm = uniqueRealm('grab')
    const response = await createTenant(roleOnly, { realm, displayName: 'Grabbed' })
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('SUPERUSER_REQUIRED')
    expect(await tenantRows(realm)).toHaveLength(0)
  })

  it("answers 404 to a non-superuser patching another tenant, 403 for their own, and changes neither", async () => {
    const [victimBefore] = await tenantRows(tenantAdmin.realm)
    const foreign = await app.inject({
      method: 'PATCH',
      url: `/v1/tenants/${tenantAdmin.tenantId}`,
      headers: bearer(roleOnly.accessToken),
      payload: { status: 'disabled' },
    })
    expect(foreign.statusCode).toBe(404)
    expect(foreign.json().errorCode).toBe('TENANT_NOT_FOUND')
    expect((await tenantRows(tenantAdmin.realm))[0]).toEqual(victimBefore)

    const [ownBefore] = await tenantRows(roleOnly.realm)
    const own = await app.inject({
      method: 'PATCH',
      url: `/v1/tenants/${roleOnly.tenantId}`,
      headers: bearer(roleOnly.accessToken),
      payload: { displayName: 'Self-promoted' },
    })
    expect(own.statusCode).toBe(403)
    expect((await tenantRows(roleOnly.realm))[0]).toEqual(ownBefore)
  })

  it("lists a non-superuser's own tenant alone, and every tenant to a superuser", async () => {
    const mine = await app.inject({ method: 'GET', url: '/v1/tenants?limit=100', headers: bearer(roleOnly.accessToken) })
    expect(mine.json()).toMatchObject({ total: 1, items: [{ id: roleOnly.tenantId }] })
    const all = await app.inject({ method: 'GET', url: '/v1/tenants?limit=100', headers: bearer(superuser.accessToken) })
    expect(all.json().total).toBeGreaterThanOrEqual(3)
  })

  it.each(['master', 'MASTER', 'Master'])('refuses the reserved realm %s with 400 even to a superuser', async (realm) => {
    const response = await createTenant(superuser, { realm, displayName: 'Keycloak admin' })
    expect(response.statusCode).toBe(400)
    expect(response.json().errorCode).toBe('REALM_RESERVED')
    expect(await tenantRows('master')).toHaveLength(0)
  })

  it("lets a tenant's admin read their own tenant, and answers 404 for another", async () => {
    const own = await app.inject({ method: 'GET', url: `/v1/tenants/${tenantAdmin.tenantId}`, headers: bearer(tenantAdmin.accessToken) })
    expect(own.statusCode).toBe(200)
    expect(own.json()).toMatchObject({ id: tenantAdmin.tenantId, realm: tenantAdmin.realm })
    const other = await app.inject({ method: 'GET', url: `/v1/tenants/${superuser.tenantId}`, headers: bearer(tenantAdmin.accessToken) })
    expect(other.statusCode).toBe(404)
    expect(other.body).not.toContain(superuser.realm)
  })
})

describe("a new tenant's first admin", () => {
  it('answers a one-time invite that the admin redeems, then logs in as admin of the new tenant', async () => {
    const realm = uniqueRealm('fresh')
    const email = `first-${randomUUID().slice(0, 8)}@example.test`
    const created = await createTenant(superuser, { realm, displayName: 'Fresh Co', initialAdmin: { email, name: 'First Admin' } })
    expect(created.statusCode, created.body).toBe(201)
    const body = created.json()
    expect(body).toMatchObject({ realm, initialAdmin: { email, invite: { token: expect.any(String) } } })
    expect(body.initialAdmin).not.toHaveProperty('temporaryPassword')

    const password = `pw-${randomUUID()}`
    const accept = await app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token: body.initialAdmin.invite.token, password } })
    expect(accept.statusCode, accept.body).toBe(204)
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password, tenant: realm } })
    expect(login.statusCode, login.body).toBe(200)
    const me = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(login.json().accessToken) })
    expect(me.json()).toMatchObject({ role: 'admin', tenant: { id: body.id, realm }, user: { email, isSuperuser: false } })
    // The admin administers their tenant (and only it): their own account is in its user list.
    const users = await app.inject({ method: 'GET', url: '/ai/admin/users', headers: bearer(login.json().accessToken) })
    expect(users.json().items.map((u: { email: string }) => u.email)).toEqual([email])

    const again = await app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token: body.initialAdmin.invite.token, password: `${password}-2` } })
    expect(again.statusCode).toBe(400)
    expect(again.json().errorCode).toBe('INVALID_INVITE')
  })

  it('refuses a malformed initial admin with 400 and creates no tenant', async () => {
    const realm = uniqueRealm('bad')
    const response = await createTenant(superuser, { realm, displayName: 'Bad', initialAdmin: { email: 'not-an-email', name: 'x' } })
    expect(response.statusCode).toBe(400)
    expect(response.json().errorCode).toBe('VALIDATION_ERROR')
    expect(await tenantRows(realm)).toHaveLength(0)
  })
})

describe("superusers administer another tenant's users", () => {
  it("lists tenant X's users with ?tenant=<X's id>, and their own without it", async () => {
    const theirs = await app.inject({ method: 'GET', url: `/ai/admin/users?tenant=${tenantAdmin.tenantId}&limit=100`, headers: bearer(superuser.accessToken) })
    expect(theirs.statusCode, theirs.body).toBe(200)
    expect(theirs.json().items.map((u: { id: string }) => u.id).sort()).toEqual([tenantAdmin.id, member.id].sort())
    const own = await app.inject({ method: 'GET', url: '/ai/admin/users?limit=100', headers: bearer(superuser.accessToken) })
    expect(own.json().items.map((u: { id: string }) => u.id)).toEqual([superuser.id])
  })

  it("records the superuser's change in the audit of the tenant acted on, naming the actor's tenant", async () => {
    const response = await app.inject({
      method: 'PUT',
      url: `/ai/admin/users/${member.id}?tenant=${tenantAdmin.tenantId}`,
      headers: bearer(superuser.accessToken),
      payload: { name: 'Renamed by the platform' },
    })
    expect(response.statusCode, response.body).toBe(200)
    expect((await userRow(member.id))?.name).toBe('Renamed by the platform')

    type Entry = { action: string; actorId: string; resourceId: string; tenantId: string; actorTenantId: string | null }
    let entry: Entry | undefined
    await waitFor(async () => {
      const audit = await app.inject({ method: 'GET', url: '/v1/audit?action=updateAiUser&limit=100', headers: bearer(tenantAdmin.accessToken) })
      entry = (audit.json().items as Entry[]).find((e) => e.actorId === superuser.id && e.resourceId === member.id)
      return entry !== undefined
    }, 5_000, "the superuser's change never reached the tenant's audit")
    expect(entry).toMatchObject({ tenantId: tenantAdmin.tenantId, actorTenantId: superuser.tenantId })
  })

  it("answers 404 TENANT_NOT_FOUND to a tenant admin naming another tenant, and changes nothing there", async () => {
    const victim = await seedUser(app, { realm: uniqueRealm('vic'), role: 'viewer' })
    const before = await userRow(victim.id)
    const as = bearer(tenantAdmin.accessToken)
    const q = `?tenant=${victim.tenantId}`
    const email = `planted-${randomUUID().slice(0, 8)}@example.test`
    const attempts = await Promise.all([
      app.inject({ method: 'GET', url: `/ai/admin/users${q}`, headers: as }),
      app.inject({ method: 'GET', url: `/ai/admin/users/${victim.id}${q}`, headers: as }),
      app.inject({ method: 'POST', url: `/ai/admin/users${q}`, headers: as, payload: { email, role: 'admin' } }),
      app.inject({ method: 'PUT', url: `/ai/admin/users/${victim.id}${q}`, headers: as, payload: { role: 'admin', name: 'owned' } }),
      app.inject({ method: 'POST', url: `/ai/admin/users/${victim.id}/invite${q}`, headers: as }),
      app.inject({ method: 'DELETE', url: `/ai/admin/users/${victim.id}${q}`, headers: as }),
    ])
    for (const response of attempts) {
      expect(response.statusCode, response.body).toBe(404)
      expect(response.json().errorCode).toBe('TENANT_NOT_FOUND')
      expect(response.body).not.toContain(victim.email)
    }
    expect(await userRow(victim.id)).toEqual(before)
    expect(await usersWithEmail(email)).toHaveLength(0)

    // Their own tenant's id is no different from leaving it out.
    const own = await app.inject({ method: 'GET', url: `/ai/admin/users?tenant=${tenantAdmin.tenantId}`, headers: as })
    expect(own.statusCode).toBe(200)
  })
})
