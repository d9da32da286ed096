import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepareRows } from '../../src/modules/user_admin/import-rows.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { buildTestApp } from '../helpers/app.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Nobody acts above their own rank (src/modules/auth/rank.ts): every attack is made with the
 * attacker's real request, answered 403 with a stable code, and shown to have changed nothing —
 * the target's row, their login and session, their grants — while the audit log holds only refusals.
 */
let app: FastifyInstance
let realm: string
let superuser: SeededUser
let admin: SeededUser

beforeAll(async () => {
  app = await buildTestApp()
  realm = uniqueRealm('rank')
  // The platform superuser and a tenant admin in one tenant: the admin can see the superuser's row.
  superuser = await seedUser(app, { realm, role: 'super_admin', isSuperuser: true })
  admin = await seedUser(app, { realm, role: 'admin' })
})

afterAll(() => app.close())

const email = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}@example.test`
const db = () => app.platform.database.db

function call(who: SeededUser, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) {
  return app.inject({ method, url, headers: bearer(who.accessToken), ...(payload ? { payload } : {}) })
}

/** Everything about a user an attack could change, the password hash and session cut-off included. */
async function userRow(id: string) {
  const result = await db().execute(sql`
    select email, name, role, status, is_superuser, tag, attributes, secrets, password_hash,
           sessions_valid_after, version, updated_at
      from users where id = ${id}`)
  return result.rows[0]
}

const grantsOf = async (id: string) =>
  (await db().execute(sql`select permission from user_grants where user_id = ${id} order by 1`)).rows.map((r) => r.permission)
const openInvites = async (id: string) =>
  (await db().execute(sql`select count(*)::int as n from user_invites where user_id = ${id} and used_at is null`)).rows[0]!.n

async function login(user: SeededUser) {
  return app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: user.email, password: user.password, tenant: user.realm } })
}

/** Audit outcomes recorded against the user, once `count` entries have arrived (the audit is written after the answer). */
async function auditOutcomes(resourceId: string, actorId: string, count: number): Promise<number[]> {
  const read = async () =>
    (
      await db().execute(sql`select outcome from audit_log where resource_id = ${resourceId} and actor_id = ${actorId} order by created_at`)
    ).rows.map((r) => Number(r.outcome))
  await waitFor(async () => (await read()).length >= count, 5_000, 'audit entries did not arrive')
  return read()
}

/** Grants a permission through the API, as the superuser (who holds every permission). */
async function grant(target: SeededUser, permission: string) {
  const response = await call(superuser, 'PUT', `/ai/admin/users/${target.id}/grants/${permission}`)
  expect(response.statusCode, response.body).toBe(200)
  expect(response.json().grants).toContain(permission)
}

describe('security: a tenant admin against the platform superuser', () => {
  it('refuses every change to the superuser with 403 RANK_TOO_LOW, and the superuser row, login and session stay as they were', async () => {
    const before = await userRow(superuser.id)
    const target = `/ai/admin/users/${superuser.id}`
    const attacks = [
      call(admin, 'PUT', target, { email: email('hijack') }),
      call(admin, 'PUT', target, { name: 'pwned' }),
      call(admin, 'PUT', target, { status: 'disabled' }),
      call(admin, 'PUT', target, { secrets: { planted: 'attacker-value' } }),
      call(admin, 'PUT', target, { role: 'viewer' }),
      call(admin, 'PUT', target, { attributes: { owner: 'attacker' } }),
      call(admin, 'DELETE', target),
      call(admin, 'POST', `${target}/invite`),
      call(admin, 'POST', `${target}/reset-credentials`),
      call(admin, 'PUT', `${target}/grants/audit:view`),
      call(admin, 'DELETE', `${target}/grants/audit:view`),
    ]
    for (const response of await Promise.all(attacks)) {
      expect(response.statusCode, response.body).toBe(403)
      expect(response.json().errorCode).toBe('RANK_TOO_LOW')
      expect(response.body).not.toContain('attacker-value')
    }
    expect(await userRow(superuser.id)).toEqual(before)
    expect(await openInvites(superuser.id)).toBe(0)
    expect(await grantsOf(superuser.id)).toEqual([])
    expect((await login(superuser)).statusCode).toBe(200)
    expect((await call(superuser, 'GET', '/v1/auth/me')).statusCode).toBe(200)
    // Each attempt is on the record, and only as a refusal.
    expect(new Set(await auditOutcomes(superuser.id, admin.id, attacks.length))).toEqual(new Set([403]))
  })

  it('refuses a tenant super_admin without the superuser flag too: the flag, not the role name, is what outranks', async () => {
    const tenantSuper = await seedUser(app, { realm, role: 'super_admin' })
    const before = await userRow(superuser.id)
    const response = await call(tenantSuper, 'PUT', `/ai/admin/users/${superuser.id}`, { status: 'disabled' })
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('RANK_TOO_LOW')
    expect(await userRow(superuser.id)).toEqual(before)
    // It still outranks an admin.
    const peer = await seedUser(app, { realm, role: 'admin' })
    expect((await call(tenantSuper, 'PUT', `/ai/admin/users/${peer.id}`, { name: 'Renamed by rank' })).statusCode).toBe(200)
  })

  it("refuses through an admin's API key as through their session: a key acts with its owner's rank", async () => {
    const key = await call(admin, 'POST', '/v1/auth/api-keys', { name: 'admin-script', scopes: ['user:manage', 'user:view'] })
    expect(key.statusCode, key.body).toBe(201)
    const before = await userRow(superuser.id)
    const response = await app.inject({
      method: 'PUT',
      url: `/ai/admin/users/${superuser.id}`,
      headers: { 'x-api-key': key.json().key },
      payload: { status: 'disabled' },
    })
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('RANK_TOO_LOW')
    expect(await userRow(superuser.id)).toEqual(before)
  })

  it('the superuser may change the admin: rank is enforced one way only', async () => {
    const target = await seedUser(app, { realm, role: 'admin' })
    const response = await call(superuser, 'PUT', `/ai/admin/users/${target.id}`, { name: 'Renamed by superuser' })
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json().name).toBe('Renamed by superuser')
  })
})

describe('security: roles and grants above one\'s own rank', () => {
  it('an admin cannot create a super_admin, promote anyone to super_admin, or make a superuser; nothing is written', async () => {
    const address = email('would-be-super')
    const created = await call(admin, 'POST', '/ai/admin/users', { email: address, role: 'super_admin' })
    expect(created.statusCode).toBe(403)
    expect(created.json().errorCode).toBe('ROLE_NOT_ALLOWED')
    // No way to ask for the flag: the body schema refuses the field.
    const flagged = await call(admin, 'POST', '/ai/admin/users', { email: address, role: 'viewer', isSuperuser: true })
    expect(flagged.statusCode).toBe(400)
    expect(flagged.json().errorCode).toBe('VALIDATION_ERROR')
    const rows = await db().execute(sql`select 1 from users where lower(email) = lower(${address})`)
    expect(rows.rows).toHaveLength(0)

    const viewer = await seedUser(app, { realm, role: 'viewer' })
    const before = await userRow(viewer.id)
    const promoted = await call(admin, 'PUT', `/ai/admin/users/${viewer.id}`, { role: 'super_admin' })
    expect(promoted.statusCode).toBe(403)
    expect(promoted.json().errorCode).toBe('ROLE_NOT_ALLOWED')
    expect(await userRow(viewer.id)).toEqual(before)
  })

  it('a developer granted user:manage cannot touch an admin, nor create or promote above developer (devops ranks above developer)', async () => {
    const developer = await seedUser(app, { realm, role: 'developer' })
    await grant(developer, 'user:manage')
    const victim = await seedUser(app, { realm, role: 'admin' })
    const before = await userRow(victim.id)
    for (const response of [
      await call(developer, 'PUT', `/ai/admin/users/${victim.id}`, { name: 'renamed by a developer' }),
      await call(developer, 'PUT', `/ai/admin/users/${victim.id}`, { status: 'disabled' }),
      await call(developer, 'DELETE', `/ai/admin/users/${victim.id}`),
      await call(developer, 'POST', `/ai/admin/users/${victim.id}/reset-credentials`),
    ]) {
      expect(response.statusCode, response.body).toBe(403)
      expect(response.json().errorCode).toBe('RANK_TOO_LOW')
    }
    expect(await userRow(victim.id)).toEqual(before)
    expect((await login(victim)).statusCode).toBe(200)

    for (const role of ['admin', 'devops']) {
      const response = await call(developer, 'POST', '/ai/admin/users', { email: email(`dev-made-${role}`), role })
      expect(response.statusCode).toBe(403)
      expect(response.json().errorCode).toBe('ROLE_NOT_ALLOWED')
    }
    const viewer = await seedUser(app, { realm, role: 'viewer' })
    const viewerBefore = await userRow(viewer.id)
    const promoted = await call(developer, 'PUT', `/ai/admin/users/${viewer.id}`, { role: 'devops' })
    expect(promoted.statusCode).toBe(403)
    expect(promoted.json().errorCode).toBe('ROLE_NOT_ALLOWED')
    expect(await userRow(viewer.id)).toEqual(viewerBefore)
    // Within their rank the grant works: a developer may create a developer.
    const peer = await call(developer, 'POST', '/ai/admin/users', { email: email('dev-made-dev'), role: 'developer' })
    expect(peer.statusCode, peer.body).toBe(201)
  })

  it('grants only permissions the granter holds: an admin cannot grant tenant:manage, a developer with user:manage cannot grant cluster:manage', async () => {
    const viewer = await seedUser(app, { realm, role: 'viewer' })
    const refused = await call(admin, 'PUT', `/ai/admin/users/${viewer.id}/grants/tenant:manage`)
    expect(refused.statusCode).toBe(403)
    expect(refused.json()).toMatchObject({ errorCode: 'GRANT_NOT_ALLOWED', details: { permissions: ['tenant:manage'] } })

    const developer = await seedUser(app, { realm, role: 'developer' })
    await grant(developer, 'user:manage')
    const beyond = await call(developer, 'PUT', `/ai/admin/users/${viewer.id}/grants/cluster:manage`)
    expect(beyond.statusCode).toBe(403)
    expect(beyond.json().errorCode).toBe('GRANT_NOT_ALLOWED')
    expect(await grantsOf(viewer.id)).toEqual([])
    // The viewer's effective permissions did not move either.
    expect((await call(viewer, 'GET', '/v1/auth/me')).json().permissions).not.toContain('cluster:manage')

    // What the developer holds, they may pass on (to someone of no higher rank).
    const held = await call(developer, 'PUT', `/ai/admin/users/${viewer.id}/grants/model:manage`)
    expect(held.statusCode, held.body).toBe(200)
    expect(held.json()).toEqual({ userId: viewer.id, grants: ['model:manage'] })
    expect((await call(viewer, 'GET', '/v1/auth/me')).json().permissions).toContain('model:manage')
    const taken = await call(developer, 'DELETE', `/ai/admin/users/${viewer.id}/grants/model:manage`)
    expect(taken.statusCode).toBe(204)
    expect(await grantsOf(viewer.id)).toEqual([])

    const unknown = await call(admin, 'PUT', `/ai/admin/users/${viewer.id}/grants/root:everything`)
    expect(unknown.statusCode).toBe(400)
    const stranger = await seedUser(app, { realm: uniqueRealm('rank-other'), role: 'viewer' })
    const foreign = await call(admin, 'PUT', `/ai/admin/users/${stranger.id}/grants/model:view`)
    expect(foreign.statusCode).toBe(404)
    expect(await grantsOf(stranger.id)).toEqual([])
  })

  it('refuses import rows whose role ranks above the importer, row by row', () => {
    const rows = ['super_admin', 'admin', 'devops', 'developer', 'viewer'].map((role) => ({ email: `${role}@import.test`, role }))
    const asDeveloper = prepareRows(rows, { importer: { role: 'developer', isSuperuser: false }, defaultStatus: 'invited' })
    expect(asDeveloper.map((r) => ('code' in r ? r.code : r.role))).toEqual([
      'ROLE_NOT_ALLOWED',
      'ROLE_NOT_ALLOWED',
      'ROLE_NOT_ALLOWED',
      'developer',
      'viewer',
    ])
    const asAdmin = prepareRows(rows, { importer: { role: 'admin', isSuperuser: false }, defaultStatus: 'invited' })
    expect(asAdmin.filter((r) => 'code' in r).map((r) => r.email)).toEqual(['super_admin@import.test'])
    const asSuperuser = prepareRows(rows, { importer: { role: 'super_admin', isSuperuser: true }, defaultStatus: 'invited' })
    expect(asSuperuser.filter((r) => 'code' in r)).toEqual([])
  })
})

describe('happy: peers of equal rank', () => {
  it('an admin may make ordinary changes to a peer admin, but not reset their credentials', async () => {
    const peer = await seedUser(app, { realm, role: 'admin' })
    const renamed = await call(admin, 'PUT', `/ai/admin/users/${peer.id}`, { name: 'Peer', attributes: { team: 'ops' } })
    expect(renamed.statusCode, renamed.body).toBe(200)
    expect(renamed.json()).toMatchObject({ name: 'Peer', attributes: { team: 'ops' } })

    const before = await userRow(peer.id)
    const reset = await call(admin, 'POST', `/ai/admin/users/${peer.id}/reset-credentials`)
    expect(reset.statusCode).toBe(403)
    expect(reset.json().errorCode).toBe('RANK_TOO_LOW')
    expect(await userRow(peer.id)).toEqual(before)
    expect((await login(peer)).statusCode).toBe(200)
    expect((await call(peer, 'GET', '/v1/auth/me')).statusCode).toBe(200)
  })
})
