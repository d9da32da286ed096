import type { FastifyInstance } from 'fastify'
import { decodeJwt } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * Auth in embedded mode: the API is its own Keycloak-shaped issuer. Every test works in realms of
 * its own, so runs and files never see each other's users.
 */
const DAPR_TOKEN = 'dapr-app-token-0123456789'
let app: FastifyInstance
let realm: string
let admin: SeededUser
let viewer: SeededUser

beforeAll(async () => {
  app = await buildTestApp({ APP_API_TOKEN: DAPR_TOKEN, DAPR_TRUSTED_APPS: 'budgateway=viewer,ops-bot=devops' })
  realm = uniqueRealm('emb')
  admin = await seedUser(app, { realm, role: 'admin' })
  viewer = await seedUser(app, { realm, role: 'viewer' })
})

afterAll(() => app.close())

const me = (headers: Record<string, string>) => app.inject({ method: 'GET', url: '/v1/auth/me', headers })

describe('happy', () => {
  it('logs in, shows the caller with sorted permissions, refreshes and logs out', async () => {
    const user = await seedUser(app, { realm, role: 'developer' })
    const claims = decodeJwt(user.accessToken)
    expect(claims).toMatchObject({
      iss: `http://localhost:8080/realms/${realm}`,
      typ: 'Bearer',
      azp: 'modelplane',
      aud: 'account',
      realm_access: { roles: ['developer'] },
      email: user.email,
    })

    const profile = await me(bearer(user.accessToken))
    expect(profile.statusCode).toBe(200)
    const body = profile.json()
    expect(body).toMatchObject({ kind: 'user', role: 'developer', user: { id: user.id, email: user.email }, tenant: { realm } })
    expect(body.permissions).toEqual([...body.permissions].sort())
    expect(body.permissions).toContain('model:manage')
    expect(body.permissions).not.toContain('cluster:manage')

    const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: user.refreshToken } })
    expect(refreshed.statusCode).toBe(200)
    const pair = refreshed.json()
    expect(pair).toMatchObject({ tokenType: 'Bearer', expiresIn: 300 })
    expect((await me(bearer(pair.accessToken))).statusCode).toBe(200)

    const out = await app.inject({
      method: 'POST',
      url: '/v1/auth/logout',
      headers: bearer(pair.accessToken),
      payload: { refreshToken: pair.refreshToken },
    })
    expect(out.statusCode).toBe(204)
    const after = await me(bearer(pair.accessToken))
    expect(after.statusCode).toBe(401)
    expect(after.json().errorCode).toBe('UNAUTHENTICATED')
    // The refresh token given at logout is dead too.
    const again = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: pair.refreshToken } })
    expect(again.statusCode).toBe(401)
  })

  it('creates an API key shown once, accepts it in both headers, lists it without the secret, refuses it once deleted', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/v1/auth/api-keys',
      headers: bearer(admin.accessToken),
      payload: { name: 'ci', scopes: ['cluster:view', 'events:view'], expiresInDays: 30 },
    })
    expect(created.statusCode).toBe(201)
    const key = created.json()
    expect(key.key).toMatch(/^mp_[a-f0-9]{8}_[A-Za-z0-9_-]{43}$/)
    expect(key.key.startsWith(`mp_${key.prefix}_`)).toBe(true)

    const viaBearer = await me(bearer(key.key))
    expect(viaBearer.statusCode).toBe(200)
    expect(viaBearer.json()).toMatchObject({ kind: 'api_key', permissions: ['cluster:view', 'events:view'] })
    const viaHeader = await app.inject({ method: 'GET', url: '/v1/events/outbox?limit=1', headers: { 'x-api-key': key.key } })
    expect(viaHeader.statusCode).toBe(200)
    // Scopes bound the key: the owner may manage users, the key may not.
    const beyond = await app.inject({ method: 'GET', url: '/v1/audit', headers: { 'x-api-key': key.key } })
    expect(beyond.statusCode).toBe(403)

    const listed = await app.inject({ method: 'GET', url: '/v1/auth/api-keys', headers: bearer(admin.accessToken) })
    expect(listed.statusCode).toBe(200)
    const item = listed.json().items.find((k: { id: string }) => k.id === key.id)
    expect(item).toMatchObject({ name: 'ci', prefix: key.prefix, scopes: ['cluster:view', 'events:view'] })
    // The secret is everything after `mp_<prefix>_` (base64url: it may hold underscores itself).
    expect(JSON.stringify(listed.json())).not.toContain(key.key.slice(`mp_${key.prefix}_`.length))
    expect(Object.keys(item)).not.toContain('keyHash')

    const deleted = await app.inject({ method: 'DELETE', url: `/v1/auth/api-keys/${key.id}`, headers: bearer(admin.accessToken) })
    expect(deleted.statusCode).toBe(204)
    expect((await me({ 'x-api-key': key.key })).statusCode).toBe(401)
  })

  it('lets a trusted Dapr caller with the sidecar token act with its mapped role', async () => {
    const response = await me({ 'dapr-api-token': DAPR_TOKEN, 'dapr-caller-app-id': 'budgateway' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ kind: 'service', role: 'viewer', user: null })
    const manage = await app.inject({
      method: 'POST',
      url: '/v1/tenants',
      headers: { 'dapr-api-token': DAPR_TOKEN, 'dapr-caller-app-id': 'budgateway' },
      payload: { realm: uniqueRealm(), displayName: 'x' },
    })
    expect(manage.statusCode).toBe(403)
  })

  it('records mutations in the audit log, readable by an admin of the tenant', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/v1/auth/api-keys',
      headers: bearer(admin.accessToken),
      payload: { name: 'audited', scopes: ['model:view'] },
    })
    const keyId = created.json().id as string
    await app.inject({ method: 'DELETE', url: `/v1/auth/api-keys/${keyId}`, headers: bearer(admin.accessToken) })
    let entries: Array<Record<string, unknown>> = []
    await waitFor(async () => {
      const response = await app.inject({
        method: 'GET',
        url: `/v1/audit?actor=${admin.id}&limit=100`,
        headers: bearer(admin.accessToken),
      })
      entries = response.json().items
      return entries.some((e) => e.action === 'deleteApiKey' && e.resourceId === keyId)
    })
    const deletion = entries.find((e) => e.action === 'deleteApiKey' && e.resourceId === keyId)
    expect(deletion).toMatchObject({
      actorKind: 'user',
      tenantId: admin.tenantId,
      resourceKind: 'api-keys',
      outcome: 204,
      method: 'DELETE',
      path: '/v1/auth/api-keys/:id',
    })
    const creation = entries.find((e) => e.action === 'createApiKey' && e.outcome === 201)
    expect(creation).toBeDefined()
    // Newest first.
    expect(entries.indexOf(deletion!)).toBeLessThan(entries.indexOf(creation!))
    const forViewer = await app.inject({ method: 'GET', url: '/v1/audit', headers: bearer(viewer.accessToken) })
    expect(forViewer.statusCode).toBe(403)
  })

  it('serves the realm JWKS and discovery document publicly', async () => {
    const jwks = await app.inject({ method: 'GET', url: `/realms/${realm}/protocol/openid-connect/certs` })
    expect(jwks.statusCode).toBe(200)
    const kid = (JSON.parse(Buffer.from(admin.accessToken.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid
    expect(jwks.json().keys.map((k: { kid: string }) => k.kid)).toContain(kid)
    expect(JSON.stringify(jwks.json())).not.toMatch(/"d":/)
    const discovery = await app.inject({ method: 'GET', url: `/realms/${realm}/.well-known/openid-configuration` })
    expect(discovery.json()).toMatchObject({ issuer: `http://localhost:8080/realms/${realm}` })
    const unknown = await app.inject({ method: 'GET', url: `/realms/${uniqueRealm()}/protocol/openid-connect/certs` })
    expect(unknown.statusCode).toBe(404)
  })
})

describe('tenants', () => {
  let superuser: SeededUser
  beforeAll(async () => {
    superuser = await seedUser(app, { realm: uniqueRealm('su'), role: 'super_admin', isSuperuser: true })
  })

  it('lets a superuser create, read, list and update tenants', async () => {
    const newRealm = uniqueRealm('new')
    const created = await app.inject({
      method: 'POST',
      url: '/v1/tenants',
      headers: bearer(superuser.accessToken),
      payload: { realm: newRealm, displayName: 'New Co' },
    })
    expect(created.statusCode).toBe(201)
    const tenant = created.json()
    expect(tenant).toMatchObject({ realm: newRealm, displayName: 'New Co', status: 'active' })

    const read = await app.inject({ method: 'GET', url: `/v1/tenants/${tenant.id}`, headers: bearer(superuser.accessToken) })
    expect(read.statusCode).toBe(200)
    const etag = read.headers.etag as string

    const stale = await app.inject({
      method: 'PATCH',
      url: `/v1/tenants/${tenant.id}`,
      headers: { ...bearer(superuser.accessToken), 'if-match': 'W/"stale"' },
      payload: { displayName: 'Renamed' },
    })
    expect(stale.statusCode).toBe(412)
    const patched = await app.inject({
      method: 'PATCH',
      url: `/v1/tenants/${tenant.id}`,
      headers: { ...bearer(superuser.accessToken), 'if-match': etag },
      payload: { displayName: 'Renamed' },
    })
    expect(patched.statusCode).toBe(200)
    expect(patched.json().displayName).toBe('Renamed')

    const duplicate = await app.inject({
      method: 'POST',
      url: '/v1/tenants',
      headers: bearer(superuser.accessToken),
      payload: { realm: newRealm, displayName: 'again' },
    })
    expect(duplicate.statusCode).toBe(409)
    const list = await app.inject({ method: 'GET', url: '/v1/tenants?limit=100', headers: bearer(superuser.accessToken) })
    expect(list.json().total).toBeGreaterThanOrEqual(2)
  })

  it('refuses tenant management to an admin with 403', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/tenants', headers: bearer(admin.accessToken) })
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('FORBIDDEN')
  })

  it("answers 404 for another tenant's row to a non-superuser holding tenant:manage", async () => {
    const other = await seedUser(app, { realm: uniqueRealm('oth'), role: 'viewer' })
    const granted = await seedUser(app, { realm: uniqueRealm('grn'), role: 'admin' })
    // Only someone who holds tenant:manage may grant it: here a superuser of the platform.
    const su = await seedUser(app, { realm: uniqueRealm('sug'), role: 'super_admin', isSuperuser: true })
    const grantor = await app.services.auth.authenticator.fromBearerToken(su.accessToken)
    await app.services.auth.addUserGrant(grantor, { id: granted.id, role: 'admin', isSuperuser: false }, 'tenant:manage')
    const own = await app.inject({ method: 'GET', url: `/v1/tenants/${granted.tenantId}`, headers: bearer(granted.accessToken) })
    expect(own.statusCode).toBe(200)
    const foreign = await app.inject({ method: 'GET', url: `/v1/tenants/${other.tenantId}`, headers: bearer(granted.accessToken) })
    expect(foreign.statusCode).toBe(404)
    const list = await app.inject({ method: 'GET', url: '/v1/tenants', headers: bearer(granted.accessToken) })
    expect(list.json()).toMatchObject({ total: 1, items: [{ id: granted.tenantId }] })
  })
})

describe('error', () => {
  it('answers 401 with one message for an unknown user and a wrong password', async () => {
    const unknown = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: 'nobody@example.test', password: 'x', tenant: realm },
    })
    const wrong = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: admin.email, password: 'wrong', tenant: realm },
    })
    expect(unknown.statusCode).toBe(401)
    expect(wrong.statusCode).toBe(401)
    expect(unknown.json().message).toBe('invalid credentials')
    expect(wrong.json().message).toBe(unknown.json().message)
  })

  it('answers 403 FORBIDDEN to a viewer calling a manage route', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/tenants',
      headers: bearer(viewer.accessToken),
      payload: { realm: uniqueRealm(), displayName: 'nope' },
    })
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('FORBIDDEN')
  })

  it('refuses an API key with scopes its owner does not hold', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/auth/api-keys',
      headers: bearer(viewer.accessToken),
      payload: { name: 'greedy', scopes: ['cluster:manage'] },
    })
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('SCOPE_NOT_ALLOWED')
  })

  it.each([
    ['an unknown field', { email: 'a@b.c', password: 'x', tenant: 'local', admin: true }],
    ['an over-long password', { email: 'a@b.c', password: 'x'.repeat(2000), tenant: 'local' }],
    ['a realm with a slash', { email: 'a@b.c', password: 'x', tenant: '../master' }],
    ['a number for a string', { email: 1, password: 'x', tenant: 'local' }],
  ])('answers 400 to a login with %s', async (_case, payload) => {
    const response = await app.inject({ method: 'POST', url: '/v1/auth/login', payload })
    expect(response.statusCode).toBe(400)
    expect(response.json().errorCode).toBe('VALIDATION_ERROR')
  })

  it('answers 400 to hostile API key and tenant bodies, never 500', async () => {
    const bodies: Array<[string, string, unknown]> = [
      ['POST', '/v1/auth/api-keys', { name: 'x'.repeat(101), scopes: ['model:view'] }],
      ['POST', '/v1/auth/api-keys', { name: 'x', scopes: ['root'] }],
      ['POST', '/v1/auth/api-keys', { name: 'x', scopes: ['model:view'], expiresInDays: 1e9 }],
      ['POST', '/v1/auth/refresh', { refreshToken: 'x'.repeat(20_000) }],
      ['DELETE', '/v1/auth/api-keys/not-a-uuid', undefined],
    ]
    for (const [method, url, payload] of bodies) {
      const response = await app.inject({ method: method as 'POST', url, headers: bearer(admin.accessToken), payload: payload as object })
      expect(response.statusCode, `${method} ${url}`).toBe(400)
    }
  })
})

describe('security', () => {
  it('refuses a refresh token used twice (rotation)', async () => {
    const user = await seedUser(app, { realm, role: 'viewer' })
    const first = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: user.refreshToken } })
    expect(first.statusCode).toBe(200)
    const replay = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: user.refreshToken } })
    expect(replay.statusCode).toBe(401)
  })

  it('refuses a refresh token presented as an access token', async () => {
    const response = await me(bearer(viewer.refreshToken))
    expect(response.statusCode).toBe(401)
  })

  it('refuses missing and garbage credentials with 401 UNAUTHENTICATED', async () => {
    for (const headers of [{}, bearer('garbage'), { authorization: 'Basic abc' }, { 'x-api-key': 'mp_deadbeef_short' }]) {
      const response = await me(headers as Record<string, string>)
      expect(response.statusCode).toBe(401)
      expect(response.json().errorCode).toBe('UNAUTHENTICATED')
    }
  })

  it('ignores dapr-caller-app-id without a valid sidecar token, and an untrusted app with one', async () => {
    expect((await me({ 'dapr-caller-app-id': 'budgateway' })).statusCode).toBe(401)
    expect((await me({ 'dapr-api-token': 'wrong-token-0123456789', 'dapr-caller-app-id': 'budgateway' })).statusCode).toBe(401)
    expect((await me({ 'dapr-api-token': DAPR_TOKEN, 'dapr-caller-app-id': 'stranger' })).statusCode).toBe(401)
  })

  it("answers 404 when deleting another user's API key, and leaves the key working", async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/v1/auth/api-keys',
      headers: bearer(viewer.accessToken),
      payload: { name: 'mine', scopes: ['model:view'] },
    })
    const key = created.json()
    const stranger = await seedUser(app, { realm: uniqueRealm('b'), role: 'admin' })
    const response = await app.inject({ method: 'DELETE', url: `/v1/auth/api-keys/${key.id}`, headers: bearer(stranger.accessToken) })
    expect(response.statusCode).toBe(404)
    expect((await me({ 'x-api-key': key.key })).statusCode).toBe(200)
  })

  it('refuses a tampered API key secret', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/v1/auth/api-keys',
      headers: bearer(viewer.accessToken),
      payload: { name: 'tamper', scopes: ['model:view'] },
    })
    const key = created.json().key as string
    expect((await me({ 'x-api-key': key })).statusCode).toBe(200)
    const tampered = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`
    expect((await me({ 'x-api-key': tampered })).statusCode).toBe(401)
  })

  it('refuses a disabled tenant at once', async () => {
    const su = await seedUser(app, { realm: uniqueRealm('su2'), role: 'super_admin', isSuperuser: true })
    const victim = await seedUser(app, { realm: uniqueRealm('dis'), role: 'admin' })
    expect((await me(bearer(victim.accessToken))).statusCode).toBe(200)
    const patched = await app.inject({
      method: 'PATCH',
      url: `/v1/tenants/${victim.tenantId}`,
      headers: bearer(su.accessToken),
      payload: { status: 'disabled' },
    })
    expect(patched.statusCode).toBe(200)
    expect((await me(bearer(victim.accessToken))).statusCode).toBe(401)
  })

  it('keeps a revoked token refused after a restart of the app (memory cache reloads from the table)', async () => {
    const local = await buildTestApp({ REDIS_URL: undefined })
    const realmOfRestart = uniqueRealm('rst')
    let revoked: SeededUser
    let kept: SeededUser
    try {
      revoked = await seedUser(local, { realm: realmOfRestart, role: 'viewer' })
      kept = await seedUser(local, { realm: realmOfRestart, role: 'viewer' })
      const out = await local.inject({ method: 'POST', url: '/v1/auth/logout', headers: bearer(revoked.accessToken) })
      expect(out.statusCode, out.body).toBe(204)
    } finally {
      // The first instance is gone before the second starts: nothing it holds in memory survives.
      await local.close()
    }
    const restarted = await buildTestApp({ REDIS_URL: undefined })
    try {
      // The control: the restarted app accepts a token that was never revoked.
      const control = await restarted.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(kept.accessToken) })
      expect(control.statusCode, control.body).toBe(200)
      const response = await restarted.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(revoked.accessToken) })
      expect(response.statusCode).toBe(401)
    } finally {
      await restarted.close()
    }
  })

  it('refuses a token logged out on one replica on another replica sharing PostgreSQL and Redis', async () => {
    const other = await buildTestApp()
    try {
      const user = await seedUser(app, { realm, role: 'viewer' })
      // The other replica has verified and cached the token already.
      expect((await other.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(user.accessToken) })).statusCode).toBe(200)
      const out = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: bearer(user.accessToken) })
      expect(out.statusCode, out.body).toBe(204)
      expect((await me(bearer(user.accessToken))).statusCode).toBe(401)
      await waitFor(
        async () => (await other.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(user.accessToken) })).statusCode === 401,
        5_000,
        'logged-out token still accepted on the other replica',
      )
    } finally {
      await other.close()
    }
  })
})
