import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { buildTestApp } from '../helpers/app.js'
import { type FakeKeycloak, startFakeKeycloak } from '../helpers/keycloak.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Account takeover through invites: an admin used to put an active user back to `invited`, send
 * them an invite and choose their password. An invite is now only for a user who never had a
 * password; taking an account back is a credential reset, which needs strictly higher rank, ends
 * every session and key of the user, and is audited.
 */
let app: FastifyInstance
let realm: string
let superuser: SeededUser
let admin: SeededUser

beforeAll(async () => {
  app = await buildTestApp()
  realm = uniqueRealm('takeover')
  superuser = await seedUser(app, { realm, role: 'super_admin', isSuperuser: true })
  admin = await seedUser(app, { realm, role: 'admin' })
})

afterAll(() => app.close())

const db = () => app.platform.database.db
const sha256Hex = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex')

function call(who: SeededUser, method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) {
  return app.inject({ method, url, headers: bearer(who.accessToken), ...(payload ? { payload } : {}) })
}
const login = (address: string, password: string) =>
  app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: address, password, tenant: realm } })
const acceptInvite = (token: string, password: string) =>
  app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token, password } })
const me = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/v1/auth/me', headers })

async function userRow(id: string) {
  return (
    await db().execute(sql`select status, password_hash, sessions_valid_after, version from users where id = ${id}`)
  ).rows[0] as { status: string; password_hash: string | null; sessions_valid_after: string | null; version: number }
}
async function invitesOf(id: string) {
  return (
    await db().execute(sql`select purpose, token_hash, expires_at, used_at from user_invites where user_id = ${id} order by created_at`)
  ).rows as Array<{ purpose: string; token_hash: string; expires_at: Date; used_at: Date | null }>
}

/** Plants an open token of the given purpose straight in the table: data left by the old code, or a forged row. */
async function plantToken(userId: string, purpose: 'invite' | 'reset'): Promise<string> {
  const token = randomBytes(32).toString('base64url')
  await db().execute(sql`
    insert into user_invites (user_id, token_hash, purpose, expires_at)
    values (${userId}, ${sha256Hex(token)}, ${purpose}, now() + interval '1 day')`)
  return token
}

describe('security: the takeover sequence is refused at every step', () => {
  it('cannot put an active user with a password back to invited, nor invite them; the user keeps their password and session', async () => {
    const victim = await seedUser(app, { realm, role: 'developer' })
    const before = await userRow(victim.id)

    const toInvited = await call(admin, 'PUT', `/ai/admin/users/${victim.id}`, { status: 'invited' })
    expect(toInvited.statusCode).toBe(409)
    expect(toInvited.json().errorCode).toBe('USER_HAS_PASSWORD')

    const invite = await call(admin, 'POST', `/ai/admin/users/${victim.id}/invite`)
    expect(invite.statusCode).toBe(409)
    expect(invite.json().errorCode).toBe('USER_NOT_INVITED')
    expect(invite.json()).not.toHaveProperty('token')

    expect(await userRow(victim.id)).toEqual(before)
    expect(await invitesOf(victim.id)).toEqual([])
    expect((await login(victim.email, victim.password)).statusCode).toBe(200)
    expect((await me(bearer(victim.accessToken))).statusCode).toBe(200)
  })

  it('accept-invite never replaces a password that is set, whatever token row exists for the user', async () => {
    const victim = await seedUser(app, { realm, role: 'developer' })
    // An invite row for an active user (as the old code could leave), and a reset row that was never
    // paired with a reset (the password is still set).
    const stale = await plantToken(victim.id, 'invite')
    const forged = await plantToken(victim.id, 'reset')
    // A user the old code put back to `invited` while they kept their password.
    await db().execute(sql`update users set status = 'invited' where id = ${victim.id}`)
    const legacyInvited = await plantToken(victim.id, 'invite')
    await db().execute(sql`update users set status = 'active' where id = ${victim.id}`)
    const before = await userRow(victim.id)

    for (const token of [stale, forged, legacyInvited]) {
      const response = await acceptInvite(token, 'attacker-chosen-password')
      expect(response.statusCode).toBe(400)
      expect(response.json().errorCode).toBe('INVALID_INVITE')
    }
    await db().execute(sql`update users set status = 'invited' where id = ${victim.id}`)
    const whileInvited = await acceptInvite(legacyInvited, 'attacker-chosen-password')
    expect(whileInvited.statusCode).toBe(400)
    await db().execute(sql`update users set status = 'active' where id = ${victim.id}`)

    expect((await userRow(victim.id)).password_hash).toBe(before.password_hash)
    expect((await login(victim.email, 'attacker-chosen-password')).statusCode).toBe(401)
    expect((await login(victim.email, victim.password)).statusCode).toBe(200)
  })
})

describe('security: credential reset needs strictly higher rank', () => {
  it('a peer admin cannot reset an admin: 403 RANK_TOO_LOW, and the admin keeps password, session and keys', async () => {
    const peer = await seedUser(app, { realm, role: 'admin' })
    const before = await userRow(peer.id)
    const response = await call(admin, 'POST', `/ai/admin/users/${peer.id}/reset-credentials`)
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('RANK_TOO_LOW')
    expect(await userRow(peer.id)).toEqual(before)
    expect(await invitesOf(peer.id)).toEqual([])
    expect((await login(peer.email, peer.password)).statusCode).toBe(200)
    expect((await me(bearer(peer.accessToken))).statusCode).toBe(200)
  })

  it('answers 409 USER_INVITED for a user who never set a password, and 404 for another tenant\'s user', async () => {
    const created = await call(admin, 'POST', '/ai/admin/users', { email: `inv-${randomUUID().slice(0, 8)}@example.test`, role: 'viewer' })
    const invited = created.json()
    const response = await call(admin, 'POST', `/ai/admin/users/${invited.id}/reset-credentials`)
    expect(response.statusCode).toBe(409)
    expect(response.json().errorCode).toBe('USER_INVITED')
    // The original invite still works: the refused reset closed nothing.
    expect((await acceptInvite(invited.invite.token, 'a-long-new-password')).statusCode).toBe(204)

    const stranger = await seedUser(app, { realm: uniqueRealm('takeover-other'), role: 'viewer' })
    const foreign = await call(admin, 'POST', `/ai/admin/users/${stranger.id}/reset-credentials`)
    expect(foreign.statusCode).toBe(404)
    expect(foreign.json().errorCode).toBe('USER_NOT_FOUND')
    const theirLogin = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: stranger.email, password: stranger.password, tenant: stranger.realm },
    })
    expect(theirLogin.statusCode).toBe(200)
  })
})

describe('happy: a superuser resets an admin', () => {
  it('ends every session and key, clears the password, answers a one-time token that sets a new one; audited', async () => {
    const target = await seedUser(app, { realm, role: 'admin' })
    const key = (await call(target, 'POST', '/v1/auth/api-keys', { name: 'ci', scopes: ['user:view'] })).json().key as string
    expect((await me({ 'x-api-key': key })).statusCode).toBe(200)
    expect((await me(bearer(target.accessToken))).statusCode).toBe(200)

    const response = await call(superuser, 'POST', `/ai/admin/users/${target.id}/reset-credentials`)
    expect(response.statusCode, response.body).toBe(200)
    expect(response.headers['cache-control']).toBe('no-store')
    const reset = response.json()
    expect(reset).toMatchObject({ userId: target.id, revokedApiKeys: 1, token: expect.any(String) })
    expect(reset).not.toHaveProperty('temporaryPassword')
    const expiresIn = new Date(reset.expiresAt).getTime() - Date.now()
    expect(expiresIn).toBeGreaterThan(0)
    expect(expiresIn).toBeLessThanOrEqual(7 * 86_400_000)

    // Everything the user (or whoever had their credentials) held is refused now.
    expect((await me(bearer(target.accessToken))).statusCode).toBe(401)
    expect((await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: target.refreshToken } })).statusCode).toBe(401)
    expect((await me({ 'x-api-key': key })).statusCode).toBe(401)
    const keys = await db().execute(sql`select revoked_at from api_keys where user_id = ${target.id}`)
    expect(keys.rows.map((r) => r.revoked_at !== null)).toEqual([true])
    expect((await login(target.email, target.password)).statusCode).toBe(401)
    // Still active (so the reset token applies), but no password until it is redeemed.
    const row = await userRow(target.id)
    expect(row.status).toBe('active')
    expect(row.password_hash).toBeNull()
    const tokens = await invitesOf(target.id)
    expect(tokens).toMatchObject([{ purpose: 'reset', used_at: null }])
    expect(tokens[0]!.token_hash).toBe(sha256Hex(reset.token))

    // While the reset is pending, a peer admin cannot turn it into an invite they hold.
    const toInvited = await call(admin, 'PUT', `/ai/admin/users/${target.id}`, { status: 'invited' })
    expect(toInvited.statusCode).toBe(409)
    expect(toInvited.json().errorCode).toBe('USER_HAS_PASSWORD')
    expect((await call(admin, 'POST', `/ai/admin/users/${target.id}/invite`)).statusCode).toBe(409)

    expect((await acceptInvite(reset.token, 'a-brand-new-password')).statusCode).toBe(204)
    // At once, within the cut-off's second too: the login is minted as of the cut-off.
    expect(new Date(row.sessions_valid_after!).getTime()).toBeGreaterThan(Date.now() - 60_000)
    const relogin = await login(target.email, 'a-brand-new-password')
    expect(relogin.statusCode).toBe(200)
    expect((await me(bearer(relogin.json().accessToken))).statusCode).toBe(200)
    expect((await acceptInvite(reset.token, 'another-new-password')).statusCode).toBe(400)
    expect((await login(target.email, 'another-new-password')).statusCode).toBe(401)

    let entries: Array<{ action: string; resourceId: string; outcome: number; actorId: string }> = []
    await waitFor(async () => {
      const audit = await call(superuser, 'GET', '/v1/audit?action=resetAiUserCredentials&limit=100')
      entries = audit.json().items
      return entries.some((e) => e.resourceId === target.id)
    }, 5_000, 'the reset is not in the audit log')
    expect(entries.find((e) => e.resourceId === target.id)).toMatchObject({ action: 'resetAiUserCredentials', outcome: 200, actorId: superuser.id })
  })

  it('a second reset closes the first token', async () => {
    const target = await seedUser(app, { realm, role: 'developer' })
    const first = (await call(admin, 'POST', `/ai/admin/users/${target.id}/reset-credentials`)).json()
    const second = (await call(admin, 'POST', `/ai/admin/users/${target.id}/reset-credentials`)).json()
    expect((await acceptInvite(first.token, 'a-brand-new-password')).statusCode).toBe(400)
    expect((await acceptInvite(second.token, 'a-brand-new-password')).statusCode).toBe(204)
    expect((await login(target.email, 'a-brand-new-password')).statusCode).toBe(200)
  })
})

describe('keycloak mode: reset through the admin API', () => {
  let kc: FakeKeycloak
  let kcApp: FastifyInstance
  const kcRealm = uniqueRealm('takeover-kc')

  beforeAll(async () => {
    kc = await startFakeKeycloak()
    await kc.addRealm(kcRealm)
    kcApp = await buildTestApp({
      KEYCLOAK_URL: kc.url,
      KEYCLOAK_REALMS: kcRealm,
      KEYCLOAK_ADMIN_CLIENT_ID: kc.adminCredentials.clientId,
      KEYCLOAK_ADMIN_CLIENT_SECRET: kc.adminCredentials.clientSecret,
      KEYCLOAK_CLIENT_ID: 'admin-cli',
    })
  })

  afterAll(async () => {
    await kcApp?.close()
    await kc?.close()
  })

  const kcLogin = (username: string, password: string) =>
    kcApp.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: username, password, tenant: kcRealm } })

  it('a peer is refused; a higher rank logs the user out of Keycloak and gets a temporary password Keycloak makes them change', async () => {
    const address = `kc-admin-${randomUUID().slice(0, 8)}@example.test`
    const kcUser = kc.addUser(kcRealm, { username: address, email: address, password: 'original-password', roles: ['admin'] })
    const tokens = (await kcLogin(address, 'original-password')).json()
    const own = await kcApp.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(tokens.accessToken) })
    expect(own.statusCode, own.body).toBe(200)
    const userId = own.json().user.id as string
    expect(kc.activeSessions(kcRealm)).toBe(1)

    const peer = await kc.mint(kcRealm, { sub: randomUUID(), realm_access: { roles: ['admin'] } })
    const refused = await kcApp.inject({ method: 'POST', url: `/ai/admin/users/${userId}/reset-credentials`, headers: bearer(peer) })
    expect(refused.statusCode).toBe(403)
    expect(refused.json().errorCode).toBe('RANK_TOO_LOW')
    expect(kc.adminUsers(kcRealm).find((u) => u.id === kcUser.id)).toMatchObject({ password: 'original-password', requiredActions: [] })
    expect(kc.activeSessions(kcRealm)).toBe(1)

    // A tenant super_admin ranks above an admin.
    const higher = await kc.mint(kcRealm, { sub: randomUUID(), realm_access: { roles: ['super_admin'] } })
    const response = await kcApp.inject({ method: 'POST', url: `/ai/admin/users/${userId}/reset-credentials`, headers: bearer(higher) })
    expect(response.statusCode, response.body).toBe(200)
    const reset = response.json()
    expect(reset).toMatchObject({ userId, revokedApiKeys: 0, temporaryPassword: expect.any(String) })
    expect(reset).not.toHaveProperty('token')
    const after = kc.adminUsers(kcRealm).find((u) => u.id === kcUser.id)!
    expect(after.password).toBe(reset.temporaryPassword)
    expect(after.requiredActions).toEqual(['UPDATE_PASSWORD'])
    expect(kc.activeSessions(kcRealm)).toBe(0)
    expect(kc.requests()).toEqual(expect.arrayContaining([{ method: 'POST', path: `/admin/realms/${kcRealm}/users/${kcUser.id}/logout` }]))

    expect((await kcApp.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(tokens.accessToken) })).statusCode).toBe(401)
    expect((await kcApp.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: tokens.refreshToken } })).statusCode).toBe(401)
    expect((await kcLogin(address, 'original-password')).statusCode).toBe(401)
  })

  it('answers 502 and changes nothing here when Keycloak refuses the reset', async () => {
    const address = `kc-fail-${randomUUID().slice(0, 8)}@example.test`
    kc.addUser(kcRealm, { username: address, email: address, password: 'original-password', roles: ['developer'] })
    const tokens = (await kcLogin(address, 'original-password')).json()
    const userId = (await kcApp.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(tokens.accessToken) })).json().user.id as string
    const higher = await kc.mint(kcRealm, { sub: randomUUID(), realm_access: { roles: ['admin'] } })
    kc.failAdminCalls((c) => c.path.endsWith('/logout'))
    try {
      const response = await kcApp.inject({ method: 'POST', url: `/ai/admin/users/${userId}/reset-credentials`, headers: bearer(higher) })
      expect(response.statusCode).toBe(502)
      expect(response.json().errorCode).toBe('IDENTITY_PROVIDER_ERROR')
    } finally {
      kc.failAdminCalls(false)
    }
    const row = (await kcApp.platform.database.db.execute(sql`select sessions_valid_after from users where id = ${userId}`)).rows[0]
    expect(row).toEqual({ sessions_valid_after: null })
    expect((await kcApp.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(tokens.accessToken) })).statusCode).toBe(200)
  })
})
