import { randomInt, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import { Writable } from 'node:stream'
import { sql } from 'drizzle-orm'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { decodeJwt } from 'jose'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { ChangePasswordBody } from '../../src/modules/auth/schema.js'
import { AcceptInviteBody } from '../../src/modules/user_admin/schema.js'
import { loggerOptions } from '../../src/platform/logger.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { type FakeKeycloak, startFakeKeycloak } from '../helpers/keycloak.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Sessions and credentials, from the attacker's side: each test sends what an attacker would,
 * checks the refusal, and checks that nothing changed for the owner. Embedded mode unless the
 * describe says Keycloak; every test works in realms of its own.
 */
let app: FastifyInstance
let realm: string

beforeAll(async () => {
  // The defaults, spelled out: the tests below count to them.
  app = await buildTestApp({ LOGIN_LOCKOUT_THRESHOLD: '5', LOGIN_LOCKOUT_BASE_SECONDS: '30', LOGIN_LOCKOUT_MAX_SECONDS: '900' })
  realm = uniqueRealm('ses')
})

afterAll(() => app.close())

const me = (on: FastifyInstance, token: string) => on.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(token) })
const refresh = (on: FastifyInstance, refreshToken: string) =>
  on.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken } })
const login = (on: FastifyInstance, body: { email: string; password: string; tenant: string }, remoteAddress?: string) =>
  on.inject({ method: 'POST', url: '/v1/auth/login', payload: body, ...(remoteAddress ? { remoteAddress } : {}) })
const changePassword = (on: FastifyInstance, headers: Record<string, string>, payload: unknown) =>
  on.inject({ method: 'POST', url: '/v1/auth/password', headers, payload: payload as object })
/** What a client sees of an answer, without the per-request id. */
const seen = (response: LightMyRequestResponse) => {
  const { requestId: _requestId, ...body } = response.json() as Record<string, unknown>
  return { status: response.statusCode, retryAfter: response.headers['retry-after'], body }
}
const randomAddress = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`

async function passwordHashOf(on: FastifyInstance, userId: string): Promise<string> {
  const result = await on.platform.database.db.execute(sql`select password_hash from users where id = ${userId}`)
  return (result.rows[0] as { password_hash: string }).password_hash
}

async function createApiKey(on: FastifyInstance, user: SeededUser): Promise<string> {
  const created = await on.inject({
    method: 'POST',
    url: '/v1/auth/api-keys',
    headers: bearer(user.accessToken),
    payload: { name: 'script', scopes: ['model:view'] },
  })
  expect(created.statusCode, created.body).toBe(201)
  return created.json().key as string
}

describe('refresh token reuse ends the session (embedded)', () => {
  it("refuses a rotated refresh token presented again, then the holder's newest refresh token and the session's access tokens", async () => {
    const victim = await seedUser(app, { realm, role: 'viewer' })
    const otherSession = await login(app, { email: victim.email, password: victim.password, tenant: realm })
    expect(otherSession.statusCode).toBe(200)
    // Another replica has verified the victim's newest access token already and remembers it.
    const replica = await buildTestApp()
    try {
      const rotated = await refresh(app, victim.refreshToken)
      expect(rotated.statusCode).toBe(200)
      const newest = rotated.json() as { accessToken: string; refreshToken: string }
      expect((await me(replica, newest.accessToken)).statusCode).toBe(200)

      // The attacker replays the copy they stole before the rotation.
      const replay = await refresh(app, victim.refreshToken)
      expect(replay.statusCode).toBe(401)
      expect(replay.json()).toMatchObject({ errorCode: 'UNAUTHENTICATED' })
      expect(replay.body).not.toContain('accessToken')

      // The whole family is dead: the newest refresh token, and every access token of the session.
      expect((await refresh(app, newest.refreshToken)).statusCode).toBe(401)
      expect((await me(app, newest.accessToken)).statusCode).toBe(401)
      expect((await me(app, victim.accessToken)).statusCode).toBe(401)
      await waitFor(async () => (await me(replica, newest.accessToken)).statusCode === 401, 5_000, 'the other replica still accepts the session')
      // Only that session: the user's other login is untouched.
      expect((await me(app, otherSession.json().accessToken)).statusCode).toBe(200)
      expect((await refresh(app, otherSession.json().refreshToken)).statusCode).toBe(200)
    } finally {
      await replica.close()
    }
  })

  it('carries the session id in the access token, the same across rotations', async () => {
    const user = await seedUser(app, { realm, role: 'viewer' })
    const sid = decodeJwt(user.accessToken).sid
    expect(typeof sid).toBe('string')
    const rotated = await refresh(app, user.refreshToken)
    expect(decodeJwt(rotated.json().accessToken).sid).toBe(sid)
    expect(decodeJwt(rotated.json().refreshToken).sid).toBe(sid)
  })
})

describe('logout ends the session (embedded)', () => {
  it("revokes the session's refresh token without being given it", async () => {
    const user = await seedUser(app, { realm, role: 'viewer' })
    const otherSession = (await login(app, { email: user.email, password: user.password, tenant: realm })).json()
    const out = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: bearer(user.accessToken) })
    expect(out.statusCode).toBe(204)
    // Whoever holds the refresh token (a thief, or a forgotten tab) cannot mint a new access token.
    expect((await refresh(app, user.refreshToken)).statusCode).toBe(401)
    expect((await me(app, user.accessToken)).statusCode).toBe(401)
    // Logging out of one device leaves the others signed in.
    expect((await me(app, otherSession.accessToken)).statusCode).toBe(200)
  })

  it("still takes a refresh token in the body, and ends that token's session too", async () => {
    const user = await seedUser(app, { realm, role: 'viewer' })
    const otherSession = (await login(app, { email: user.email, password: user.password, tenant: realm })).json()
    const out = await app.inject({
      method: 'POST',
      url: '/v1/auth/logout',
      headers: bearer(user.accessToken),
      payload: { refreshToken: otherSession.refreshToken },
    })
    expect(out.statusCode).toBe(204)
    expect((await refresh(app, user.refreshToken)).statusCode).toBe(401)
    expect((await refresh(app, otherSession.refreshToken)).statusCode).toBe(401)
    expect((await me(app, otherSession.accessToken)).statusCode).toBe(401)
  })

  it('answers 400 to a logout body that is not a refresh token, and the session stays', async () => {
    const user = await seedUser(app, { realm, role: 'viewer' })
    for (const payload of [{ refreshToken: 'x' }, { refreshToken: 1 }, { other: true }]) {
      const response = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: bearer(user.accessToken), payload })
      expect(response.statusCode, JSON.stringify(payload)).toBe(400)
    }
    expect((await me(app, user.accessToken)).statusCode).toBe(200)
  })
})

describe('password change (embedded)', () => {
  it('ends every session of the user, answers the caller with a new pair that works, and leaves API keys alone', async () => {
    const user = await seedUser(app, { realm: uniqueRealm('pw'), role: 'viewer' })
    const secondDevice = (await login(app, { email: user.email, password: user.password, tenant: user.realm })).json()
    const apiKey = await createApiKey(app, user)
    const newPassword = `new-${randomUUID()}`

    const changed = await changePassword(app, bearer(user.accessToken), { currentPassword: user.password, newPassword })
    expect(changed.statusCode, changed.body).toBe(200)
    const pair = changed.json() as { accessToken: string; refreshToken: string; tokenType: string }
    expect(pair.tokenType).toBe('Bearer')
    expect(changed.body).not.toContain(newPassword)
    expect(changed.body).not.toContain(user.password)

    // Someone who stole a token before the change is out: both sessions, access and refresh tokens.
    expect((await me(app, user.accessToken)).statusCode).toBe(401)
    expect((await refresh(app, user.refreshToken)).statusCode).toBe(401)
    expect((await me(app, secondDevice.accessToken)).statusCode).toBe(401)
    expect((await refresh(app, secondDevice.refreshToken)).statusCode).toBe(401)
    // The caller stays signed in with the new pair, which rotates as usual.
    expect((await me(app, pair.accessToken)).statusCode).toBe(200)
    expect((await refresh(app, pair.refreshToken)).statusCode).toBe(200)
    // The password itself changed.
    expect((await login(app, { email: user.email, password: user.password, tenant: user.realm })).statusCode).toBe(401)
    expect((await login(app, { email: user.email, password: newPassword, tenant: user.realm })).statusCode).toBe(200)
    // API keys are not sessions.
    expect((await app.inject({ method: 'GET', url: '/v1/auth/me', headers: { 'x-api-key': apiKey } })).statusCode).toBe(200)
    // Audited like every mutation.
    await waitFor(async () => {
      const rows = await app.platform.database.db.execute(
        sql`select outcome from audit_log where actor_id = ${user.id} and action = 'changePassword'`,
      )
      return rows.rows.some((r) => (r as { outcome: number }).outcome === 200)
    })
  })

  it('refuses a wrong current password with 403 INVALID_CURRENT_PASSWORD and changes nothing', async () => {
    const user = await seedUser(app, { realm: uniqueRealm('pw'), role: 'viewer' })
    const before = await passwordHashOf(app, user.id)
    // A thief with the access token tries to take the account over.
    const response = await changePassword(app, bearer(user.accessToken), { currentPassword: 'a guess', newPassword: 'attacker-chosen-password' })
    expect(response.statusCode).toBe(403)
    expect(response.json()).toMatchObject({ errorCode: 'INVALID_CURRENT_PASSWORD' })
    expect(await passwordHashOf(app, user.id)).toBe(before)
    expect((await me(app, user.accessToken)).statusCode).toBe(200)
    expect((await refresh(app, user.refreshToken)).statusCode).toBe(200)
  })

  it('enforces the invite password policy and refuses the current password as the new one, changing nothing', async () => {
    const user = await seedUser(app, { realm: uniqueRealm('pw'), role: 'viewer' })
    const before = await passwordHashOf(app, user.id)
    const cases: Array<[unknown, number, string]> = [
      [{ currentPassword: user.password, newPassword: 'short-11ch' }, 400, 'VALIDATION_ERROR'],
      [{ currentPassword: user.password, newPassword: 'x'.repeat(1025) }, 400, 'VALIDATION_ERROR'],
      [{ currentPassword: user.password }, 400, 'VALIDATION_ERROR'],
      [{ currentPassword: user.password, newPassword: 'long-enough-password', admin: true }, 400, 'VALIDATION_ERROR'],
      [{ currentPassword: 1, newPassword: 'long-enough-password' }, 400, 'VALIDATION_ERROR'],
      [{ currentPassword: user.password, newPassword: user.password }, 400, 'PASSWORD_UNCHANGED'],
    ]
    for (const [payload, status, code] of cases) {
      const response = await changePassword(app, bearer(user.accessToken), payload)
      expect(response.statusCode, JSON.stringify(payload)).toBe(status)
      expect(response.json().errorCode).toBe(code)
    }
    expect(await passwordHashOf(app, user.id)).toBe(before)
    expect((await me(app, user.accessToken)).statusCode).toBe(200)
    // One policy for every password a user chooses.
    const invite = AcceptInviteBody.properties.password as unknown as { minLength: number; maxLength: number }
    const change = ChangePasswordBody.properties.newPassword as unknown as { minLength: number; maxLength: number }
    expect([change.minLength, change.maxLength]).toEqual([invite.minLength, invite.maxLength])
  })

  it('refuses an API key and an anonymous caller, changing nothing', async () => {
    const user = await seedUser(app, { realm: uniqueRealm('pw'), role: 'viewer' })
    const before = await passwordHashOf(app, user.id)
    const apiKey = await createApiKey(app, user)
    const body = { currentPassword: user.password, newPassword: 'a-new-long-password' }
    const viaKey = await changePassword(app, { 'x-api-key': apiKey }, body)
    expect(viaKey.statusCode).toBe(403)
    expect(viaKey.json().errorCode).toBe('FORBIDDEN')
    expect((await changePassword(app, {}, body)).statusCode).toBe(401)
    expect(await passwordHashOf(app, user.id)).toBe(before)
    expect((await me(app, user.accessToken)).statusCode).toBe(200)
  })

  it('counts wrong current passwords toward the login lock, so a stolen token cannot guess the password', async () => {
    const user = await seedUser(app, { realm: uniqueRealm('pw'), role: 'viewer' })
    for (let i = 0; i < 5; i++) {
      const response = await changePassword(app, bearer(user.accessToken), { currentPassword: `guess-${i}`, newPassword: 'a-new-long-password' })
      expect(response.statusCode).toBe(403)
    }
    // The right current password is refused now too, and so is the login.
    const locked = await changePassword(app, bearer(user.accessToken), { currentPassword: user.password, newPassword: 'a-new-long-password' })
    expect(locked.statusCode).toBe(429)
    expect(locked.json().errorCode).toBe('LOGIN_LOCKED')
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0)
    expect((await login(app, { email: user.email, password: user.password, tenant: user.realm })).statusCode).toBe(429)
  })
})

describe('login lockout per account', () => {
  it('locks an account after 5 wrong passwords from any address and any case of the email, refusing even the right password', async () => {
    const user = await seedUser(app, { realm: uniqueRealm('lk'), role: 'viewer' })
    const variants = [user.email, user.email.toUpperCase(), user.email.replace(/^./, (c) => c.toUpperCase())]
    for (let i = 0; i < 5; i++) {
      const response = await login(app, { email: variants[i % variants.length]!, password: `guess-${i}`, tenant: user.realm }, randomAddress())
      expect(response.statusCode).toBe(401)
    }
    const sixth = await login(app, { email: user.email, password: 'guess-6', tenant: user.realm }, randomAddress())
    expect(sixth.statusCode).toBe(429)
    expect(sixth.json()).toMatchObject({ errorCode: 'LOGIN_LOCKED', requestId: expect.any(String) })
    const retryAfter = Number(sixth.headers['retry-after'])
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(30)
    // No oracle: the right password gets the same answer while the lock holds, and no tokens.
    const right = await login(app, { email: user.email, password: user.password, tenant: user.realm }, randomAddress())
    expect(right.statusCode).toBe(429)
    expect(right.json().errorCode).toBe('LOGIN_LOCKED')
    expect(right.body).not.toContain('accessToken')
    // Sessions the owner already has are untouched.
    expect((await me(app, user.accessToken)).statusCode).toBe(200)
  })

  it('answers an unknown email exactly as it answers a real account', async () => {
    const tenant = uniqueRealm('lk')
    const user = await seedUser(app, { realm: tenant, role: 'viewer' })
    const answers = async (email: string) => {
      const out = []
      for (let i = 0; i < 7; i++) out.push(seen(await login(app, { email, password: `guess-${i}`, tenant })))
      return out
    }
    const known = await answers(user.email)
    const unknown = await answers(`nobody-${randomUUID().slice(0, 8)}@example.test`)
    expect(known.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 429, 429])
    expect(unknown.map((a) => a.status)).toEqual(known.map((a) => a.status))
    expect(unknown.map((a) => a.body)).toEqual(known.map((a) => a.body))
    expect(unknown.map((a) => a.retryAfter === undefined)).toEqual(known.map((a) => a.retryAfter === undefined))
  })

  it('forgets the failures after a successful login', async () => {
    const user = await seedUser(app, { realm: uniqueRealm('lk'), role: 'viewer' })
    const credentials = { email: user.email, tenant: user.realm }
    for (let i = 0; i < 4; i++) expect((await login(app, { ...credentials, password: `guess-${i}` })).statusCode).toBe(401)
    expect((await login(app, { ...credentials, password: user.password })).statusCode).toBe(200)
    // Four more mistakes do not lock: the count started again.
    for (let i = 0; i < 4; i++) expect((await login(app, { ...credentials, password: `again-${i}` })).statusCode).toBe(401)
    expect((await login(app, { ...credentials, password: user.password })).statusCode).toBe(200)
  })

  it('lets the owner back in once the lock expires', async () => {
    const quick = await buildTestApp({ LOGIN_LOCKOUT_THRESHOLD: '2', LOGIN_LOCKOUT_BASE_SECONDS: '1', LOGIN_LOCKOUT_MAX_SECONDS: '2' })
    try {
      const user = await seedUser(quick, { realm: uniqueRealm('lk'), role: 'viewer' })
      const credentials = { email: user.email, tenant: user.realm }
      for (let i = 0; i < 2; i++) expect((await login(quick, { ...credentials, password: `guess-${i}` })).statusCode).toBe(401)
      expect((await login(quick, { ...credentials, password: user.password })).statusCode).toBe(429)
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect((await login(quick, { ...credentials, password: user.password })).statusCode).toBe(200)
    } finally {
      await quick.close()
    }
  })

  it('doubles the lock with each further failure, up to the cap', async () => {
    const quick = await buildTestApp({ LOGIN_LOCKOUT_THRESHOLD: '1', LOGIN_LOCKOUT_BASE_SECONDS: '1', LOGIN_LOCKOUT_MAX_SECONDS: '2' })
    try {
      const user = await seedUser(quick, { realm: uniqueRealm('lk'), role: 'viewer' })
      const credentials = { email: user.email, tenant: user.realm }
      const waitOut = async () => {
        for (;;) {
          const response = await login(quick, { ...credentials, password: 'wrong' })
          if (response.statusCode !== 429) return response
          await new Promise((resolve) => setTimeout(resolve, Number(response.headers['retry-after']) * 1000))
        }
      }
      expect((await login(quick, { ...credentials, password: 'wrong' })).statusCode).toBe(401)
      const retryAfters: number[] = []
      for (let i = 0; i < 2; i++) {
        const locked = await login(quick, { ...credentials, password: 'wrong' })
        expect(locked.statusCode).toBe(429)
        retryAfters.push(Number(locked.headers['retry-after']))
        expect((await waitOut()).statusCode).toBe(401)
      }
      const capped = await login(quick, { ...credentials, password: 'wrong' })
      retryAfters.push(Number(capped.headers['retry-after']))
      // 1 s after the first failure, 2 s after the second, and still 2 s (the cap) after the third.
      expect(retryAfters).toEqual([1, 2, 2])
    } finally {
      await quick.close()
    }
  })

  it('counts failures on every replica sharing Redis together', async () => {
    const replica = await buildTestApp()
    try {
      const user = await seedUser(app, { realm: uniqueRealm('lk'), role: 'viewer' })
      const credentials = { email: user.email, tenant: user.realm }
      for (let i = 0; i < 5; i++) {
        const on = i % 2 === 0 ? app : replica
        expect((await login(on, { ...credentials, password: `guess-${i}` })).statusCode).toBe(401)
      }
      expect((await login(replica, { ...credentials, password: user.password })).statusCode).toBe(429)
      expect((await login(app, { ...credentials, password: user.password })).statusCode).toBe(429)
    } finally {
      await replica.close()
    }
  })

  it('refuses LOGIN_LOCKOUT_MAX_SECONDS below the base at start', () => {
    expect(() => loadConfig({ LOGIN_LOCKOUT_BASE_SECONDS: '60', LOGIN_LOCKOUT_MAX_SECONDS: '10' })).toThrow(ConfigError)
    expect(loadConfig({}).auth.loginLockout).toEqual({ threshold: 5, baseSeconds: 30, maxSeconds: 900, windowSeconds: 3600 })
  })
})

describe('per-address limit on login and refresh', () => {
  it('holds with the API rate limit off (RATE_LIMIT_MAX=0), per address, on every replica sharing Redis', async () => {
    const env = { RATE_LIMIT_MAX: '0', LOGIN_RATE_LIMIT_MAX: '3', LOGIN_RATE_LIMIT_WINDOW_SECONDS: '60' }
    const a = await buildTestApp(env)
    const b = await buildTestApp(env)
    try {
      const tenant = uniqueRealm('rl')
      const attacker = randomAddress()
      // Different accounts, so the per-account lock is not what answers.
      const attempt = (on: FastifyInstance, remoteAddress: string) =>
        login(on, { email: `x-${randomUUID().slice(0, 8)}@example.test`, password: 'guess', tenant }, remoteAddress)
      expect((await attempt(a, attacker)).statusCode).toBe(401)
      expect((await attempt(b, attacker)).statusCode).toBe(401)
      expect((await attempt(a, attacker)).statusCode).toBe(401)
      const limited = await attempt(b, attacker)
      expect(limited.statusCode).toBe(429)
      expect(limited.json().errorCode).toBe('RATE_LIMITED')
      expect(limited.headers['retry-after']).toBeDefined()
      // Refresh has the same limit, and other addresses are not affected.
      const refreshFrom = (on: FastifyInstance) =>
        on.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: 'x'.repeat(20) }, remoteAddress: attacker })
      for (let i = 0; i < 3; i++) expect((await refreshFrom(i % 2 === 0 ? a : b)).statusCode).toBe(401)
      expect((await refreshFrom(a)).statusCode).toBe(429)
      expect((await attempt(a, randomAddress())).statusCode).toBe(401)
      // The rest of the API is not limited.
      for (let i = 0; i < 5; i++) expect((await a.inject({ url: '/healthz', remoteAddress: attacker })).statusCode).toBe(200)
    } finally {
      await a.close()
      await b.close()
    }
  })
})

describe('secrets stay out of answers and logs', () => {
  it('never writes a password or a token to the log, through login, lockout, refresh reuse, logout and password change', async () => {
    const lines: string[] = []
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk))
        done()
      },
    })
    const logged = await buildApp(testConfig({ LOG_LEVEL: 'trace' }), { logger: pino(loggerOptions('trace'), stream) })
    await logged.ready()
    try {
      const user = await seedUser(logged, { realm: uniqueRealm('log'), role: 'viewer' })
      const newPassword = `new-${randomUUID()}`
      const wrong = `wrong-${randomUUID()}`
      for (let i = 0; i < 6; i++) await login(logged, { email: user.email, password: wrong, tenant: user.realm })
      await refresh(logged, user.refreshToken)
      await refresh(logged, user.refreshToken)
      const fresh = await seedUser(logged, { realm: user.realm, role: 'viewer' })
      const changed = await changePassword(logged, bearer(fresh.accessToken), { currentPassword: fresh.password, newPassword })
      expect(changed.statusCode).toBe(200)
      await changePassword(logged, bearer(changed.json().accessToken), { currentPassword: wrong, newPassword: `${newPassword}-2` })
      await logged.inject({ method: 'POST', url: '/v1/auth/logout', headers: bearer(changed.json().accessToken) })
      const written = lines.join('')
      expect(written).toContain('password changed')
      expect(written).toContain('refresh token was presented again')
      for (const secret of [user.password, fresh.password, newPassword, wrong, user.refreshToken, user.accessToken, changed.json().accessToken]) {
        expect(written).not.toContain(secret)
      }
    } finally {
      await logged.close()
    }
  })
})

describe('Keycloak mode', () => {
  let kc: FakeKeycloak
  let kcApp: FastifyInstance
  const kcRealm = uniqueRealm('kcs')
  const platformRealm = 'local'

  beforeAll(async () => {
    kc = await startFakeKeycloak()
    await kc.addRealm(kcRealm, { revokeRefreshToken: true, refreshTokenMaxReuse: 0 })
    await kc.addRealm(platformRealm)
    kc.addClient(kcRealm, { clientId: 'modelplane-api', secret: 'api-client-secret' })
    kcApp = await buildTestApp({
      KEYCLOAK_URL: kc.url,
      KEYCLOAK_REALMS: `${kcRealm},${platformRealm}`,
      KEYCLOAK_ADMIN_CLIENT_ID: kc.adminCredentials.clientId,
      KEYCLOAK_ADMIN_CLIENT_SECRET: kc.adminCredentials.clientSecret,
      KEYCLOAK_CLIENT_ID: 'modelplane-api',
      KEYCLOAK_CLIENT_SECRET: 'api-client-secret',
    })
  })

  afterAll(async () => {
    await kcApp?.close()
    await kc?.close()
  })

  async function keycloakUser() {
    const email = `kc-${randomUUID().slice(0, 8)}@example.test`
    const password = `pw-${randomUUID()}`
    kc.addUser(kcRealm, { username: email, email, password, roles: ['viewer'] })
    const response = await login(kcApp, { email, password, tenant: kcRealm })
    expect(response.statusCode, response.body).toBe(200)
    return { email, password, ...(response.json() as { accessToken: string; refreshToken: string }) }
  }

  /** The realm's token endpoint, as a client holding a refresh token would call it directly. */
  const keycloakRefresh = (refreshToken: string) =>
    fetch(`${kc.url}/realms/${kcRealm}/protocol/openid-connect/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'modelplane-api', client_secret: 'api-client-secret' }),
    })

  it('sets refresh token rotation in the imported realm and in every realm it creates', async () => {
    const imported = JSON.parse(fs.readFileSync('deploy/keycloak/modelplane-realm.json', 'utf8')) as Record<string, unknown>
    expect(imported).toMatchObject({ revokeRefreshToken: true, refreshTokenMaxReuse: 0 })
    const superAdmin = await kc.mint(platformRealm, { sub: randomUUID(), realm_access: { roles: ['super_admin'] } })
    const newRealm = uniqueRealm('made')
    const created = await kcApp.inject({
      method: 'POST',
      url: '/v1/tenants',
      headers: bearer(superAdmin),
      payload: { realm: newRealm, displayName: 'Made' },
    })
    expect(created.statusCode, created.body).toBe(201)
    expect(kc.realmSettings(newRealm)).toMatchObject({ revokeRefreshToken: true, refreshTokenMaxReuse: 0 })
  })

  it('has the stand-in refuse a reused refresh token with 400 invalid_grant, as Keycloak does, and the API answer 401', async () => {
    const user = await keycloakUser()
    const first = await keycloakRefresh(user.refreshToken)
    expect(first.status).toBe(200)
    const reused = await keycloakRefresh(user.refreshToken)
    expect(reused.status).toBe(400)
    expect(await reused.json()).toMatchObject({ error: 'invalid_grant' })
    expect((await refresh(kcApp, user.refreshToken)).statusCode).toBe(401)
    // A realm without the setting lets it be reused: the setting is what refuses it.
    const loose = uniqueRealm('loose')
    await kc.addRealm(loose)
    kc.addClient(loose, { clientId: 'c', secret: 's' })
    kc.addUser(loose, { username: 'u@example.test', password: 'p' })
    const token = (form: Record<string, string>) =>
      fetch(`${kc.url}/realms/${loose}/protocol/openid-connect/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: 'c', client_secret: 's', ...form }),
      })
    const { refresh_token: looseRefresh } = (await (await token({ grant_type: 'password', username: 'u@example.test', password: 'p' })).json()) as { refresh_token: string }
    expect((await token({ grant_type: 'refresh_token', refresh_token: looseRefresh })).status).toBe(200)
    expect((await token({ grant_type: 'refresh_token', refresh_token: looseRefresh })).status).toBe(200)
  })

  it("logs out without the refresh token by refusing the access token's session here, whatever Keycloak still issues for it", async () => {
    const user = await keycloakUser()
    const sessions = kc.activeSessions(kcRealm)
    const out = await kcApp.inject({ method: 'POST', url: '/v1/auth/logout', headers: bearer(user.accessToken) })
    expect(out.statusCode).toBe(204)
    expect((await me(kcApp, user.accessToken)).statusCode).toBe(401)
    // Through the API the refresh token is refused before Keycloak is asked.
    expect((await refresh(kcApp, user.refreshToken)).statusCode).toBe(401)
    expect(kc.activeSessions(kcRealm)).toBe(sessions)
    // Straight from Keycloak the session still mints tokens, but the API refuses them.
    const direct = await keycloakRefresh(user.refreshToken)
    expect(direct.status).toBe(200)
    const { access_token: reissued } = (await direct.json()) as { access_token: string }
    expect(decodeJwt(reissued).sid).toBe(decodeJwt(user.accessToken).sid)
    expect((await me(kcApp, reissued)).statusCode).toBe(401)
  })

  it('logs out with the refresh token by ending the Keycloak session too', async () => {
    const user = await keycloakUser()
    const sessions = kc.activeSessions(kcRealm)
    const out = await kcApp.inject({
      method: 'POST',
      url: '/v1/auth/logout',
      headers: bearer(user.accessToken),
      payload: { refreshToken: user.refreshToken },
    })
    expect(out.statusCode).toBe(204)
    expect(kc.activeSessions(kcRealm)).toBe(sessions - 1)
    expect((await keycloakRefresh(user.refreshToken)).status).toBe(400)
    expect((await me(kcApp, user.accessToken)).statusCode).toBe(401)
  })

  it('answers a password change with 409 PASSWORD_CHANGE_UNAVAILABLE naming the account console, and changes nothing', async () => {
    const user = await keycloakUser()
    const response = await changePassword(kcApp, bearer(user.accessToken), { currentPassword: user.password, newPassword: 'a-new-long-password' })
    expect(response.statusCode).toBe(409)
    expect(response.json()).toMatchObject({ errorCode: 'PASSWORD_CHANGE_UNAVAILABLE' })
    expect(response.json().message).toContain(`${kc.url}/realms/${kcRealm}/account`)
    expect(kc.adminUsers(kcRealm).find((u) => u.email === user.email)?.password).toBe(user.password)
    expect((await me(kcApp, user.accessToken)).statusCode).toBe(200)
  })
})
