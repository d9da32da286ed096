import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'
import { waitFor } from '../../helpers/wait.js'

/** The `/ai/admin/users` contract in embedded mode, each test in a tenant of its own where it matters. */
let app: FastifyInstance
let realm: string
let admin: SeededUser
let viewer: SeededUser

beforeAll(async () => {
  app = await buildTestApp()
  realm = uniqueRealm('ua')
  admin = await seedUser(app, { realm, role: 'admin' })
  viewer = await seedUser(app, { realm, role: 'viewer' })
})

afterAll(() => app.close())

const email = (prefix = 'u') => `${prefix}-${randomUUID().slice(0, 8)}@example.test`

function create(payload: Record<string, unknown>, who: SeededUser = admin) {
  return app.inject({ method: 'POST', url: '/ai/admin/users', headers: bearer(who.accessToken), payload })
}
function update(id: string, payload: unknown, headers: Record<string, string> = {}, who: SeededUser = admin) {
  return app.inject({ method: 'PUT', url: `/ai/admin/users/${id}`, headers: { ...bearer(who.accessToken), ...headers }, payload: payload as object })
}
function remove(id: string, who: SeededUser = admin) {
  return app.inject({ method: 'DELETE', url: `/ai/admin/users/${id}`, headers: bearer(who.accessToken) })
}
function list(query: string, who: SeededUser = admin) {
  return app.inject({ method: 'GET', url: `/ai/admin/users?${query}`, headers: bearer(who.accessToken) })
}
function get(id: string, who: SeededUser = admin) {
  return app.inject({ method: 'GET', url: `/ai/admin/users/${id}`, headers: bearer(who.accessToken) })
}

async function rawUser(id: string) {
  const result = await app.platform.database.db.execute(sql`select secrets, status, password_hash from users where id = ${id}`)
  return result.rows[0] as { secrets: Record<string, string>; status: string; password_hash: string | null }
}

describe('happy', () => {
  it('creates a user with an ETag and location, stores secrets sealed and returns only their names', async () => {
    const address = email('create')
    const response = await create({
      email: address,
      name: 'Ada Lovelace',
      role: 'developer',
      tag: `ada-${randomUUID().slice(0, 6)}`,
      attributes: { team: 'ml', quota: { gpus: 2 } },
      secrets: { hfToken: 'hf_super_secret_value', openai: 'sk-another-secret' },
    })
    expect(response.statusCode, response.body).toBe(201)
    const user = response.json()
    expect(response.headers.etag).toMatch(/^W\/"/)
    expect(response.headers.location).toBe(`/ai/admin/users/${user.id}`)
    expect(user).toMatchObject({
      email: address,
      name: 'Ada Lovelace',
      role: 'developer',
      status: 'invited',
      attributes: { team: 'ml', quota: { gpus: 2 } },
      secretNames: ['hfToken', 'openai'],
    })
    expect(response.body).not.toContain('hf_super_secret_value')
    const stored = await rawUser(user.id)
    expect(stored.secrets.hfToken).toMatch(/^v1\./)
    expect(JSON.stringify(stored.secrets)).not.toContain('hf_super_secret_value')
    // The ciphertext is bound to this user and name: the vault opens it only with that context.
    expect(app.platform.vault.decrypt(stored.secrets.hfToken!, `user:${user.id}:secret:hfToken`)).toBe('hf_super_secret_value')
    expect(() => app.platform.vault.decrypt(stored.secrets.hfToken!, `user:${user.id}:secret:openai`)).toThrow()

    const read = await get(user.id)
    expect(read.statusCode).toBe(200)
    expect(read.headers.etag).toBe(response.headers.etag)
    expect(read.json()).toEqual(Object.fromEntries(Object.entries(user).filter(([k]) => k !== 'invite')))
    expect(read.body).not.toContain('secret_value')
  })

  it('invites a created user: the one-time token sets the password, activates the account, and works once', async () => {
    const address = email('invite')
    const created = await create({ email: address, name: 'Invited', role: 'viewer' })
    expect(created.statusCode).toBe(201)
    const { id, invite } = created.json()
    expect(invite.token).toEqual(expect.any(String))
    expect(new Date(invite.expiresAt).getTime()).toBeGreaterThan(Date.now() + 86_400_000)
    // Invited users cannot log in yet.
    const early = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: address, password: 'whatever-password', tenant: realm } })
    expect(early.statusCode).toBe(401)

    const accept = await app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token: invite.token, password: 'a-long-new-password' } })
    expect(accept.statusCode, accept.body).toBe(204)
    expect((await get(id)).json().status).toBe('active')
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: address, password: 'a-long-new-password', tenant: realm } })
    expect(login.statusCode).toBe(200)

    const again = await app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token: invite.token, password: 'another-password!' } })
    expect(again.statusCode).toBe(400)
    expect(again.json().errorCode).toBe('INVALID_INVITE')
    // The invite token is stored hashed, never in the clear.
    const invites = await app.platform.database.db.execute(sql`select token_hash from user_invites where user_id = ${id}`)
    expect(JSON.stringify(invites.rows)).not.toContain(invite.token)
  })

  it('sends a new invite to an invited user: the earlier token stops working, the new one activates, and then no more invites', async () => {
    const address = email('reinvite')
    const created = (await create({ email: address, role: 'viewer' })).json()
    const sendInvite = (id: string, who: SeededUser = admin) =>
      app.inject({ method: 'POST', url: `/ai/admin/users/${id}/invite`, headers: bearer(who.accessToken) })

    const fresh = await sendInvite(created.id)
    expect(fresh.statusCode, fresh.body).toBe(201)
    const { token, expiresAt } = fresh.json()
    expect(token).not.toBe(created.invite.token)
    expect(new Date(expiresAt).getTime()).toBeGreaterThan(Date.now() + 86_400_000)

    const stale = await app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token: created.invite.token, password: 'a-long-new-password' } })
    expect(stale.statusCode).toBe(400)
    const accept = await app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token, password: 'a-long-new-password' } })
    expect(accept.statusCode).toBe(204)
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: address, password: 'a-long-new-password', tenant: realm } })
    expect(login.statusCode).toBe(200)

    // Active now: an invite would let its holder reset the password.
    const again = await sendInvite(created.id)
    expect(again.statusCode).toBe(409)
    expect(again.json().errorCode).toBe('USER_NOT_INVITED')
    expect((await sendInvite(randomUUID())).statusCode).toBe(404)
    const outsider = await seedUser(app, { realm: uniqueRealm('ua-other'), role: 'admin' })
    expect((await sendInvite(created.id, outsider)).statusCode).toBe(404)
    expect((await sendInvite(created.id, viewer)).statusCode).toBe(403)
    const bad = await app.inject({ method: 'POST', url: '/ai/admin/users/not-a-uuid/invite', headers: bearer(admin.accessToken) })
    expect(bad.statusCode).toBe(400)
  })

  it('refuses an expired invite', async () => {
    const created = (await create({ email: email('exp'), role: 'viewer' })).json()
    await app.platform.database.db.execute(sql`update user_invites set expires_at = now() - interval '1 minute' where user_id = ${created.id}`)
    const accept = await app.inject({ method: 'POST', url: '/v1/auth/accept-invite', payload: { token: created.invite.token, password: 'a-long-new-password' } })
    expect(accept.statusCode).toBe(400)
    expect((await get(created.id)).json().status).toBe('invited')
  })

  it('updates fields, merges attributes and secrets key by key, and removes keys set to null', async () => {
    const created = await create({
      email: email('merge'),
      role: 'developer',
      attributes: { a: 1, b: 2 },
      secrets: { one: 'first-secret', two: 'second-secret' },
    })
    const { id } = created.json()
    const response = await update(
      id,
      { name: 'Renamed', role: 'devops', attributes: { b: null, c: [1, 2] }, secrets: { one: null, three: 'third-secret' } },
      { 'if-match': created.headers.etag as string },
    )
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json()).toMatchObject({ name: 'Renamed', role: 'devops', attributes: { a: 1, c: [1, 2] }, secretNames: ['three', 'two'] })
    expect(response.json().attributes).not.toHaveProperty('b')
    expect(response.headers.etag).not.toBe(created.headers.etag)
    const stored = await rawUser(id)
    expect(app.platform.vault.decrypt(stored.secrets.two!, `user:${id}:secret:two`)).toBe('second-secret')
    expect(app.platform.vault.decrypt(stored.secrets.three!, `user:${id}:secret:three`)).toBe('third-secret')
  })

  it('filters by q, email, role, status, tag and creation time, sorts, pages, and reports the total', async () => {
    const tenant = uniqueRealm('ual')
    const boss = await seedUser(app, { realm: tenant, role: 'admin', email: `boss-${randomUUID().slice(0, 6)}@corp.test` })
    const made: Array<{ id: string; email: string; name: string }> = []
    for (const [i, name] of ['Zoe Zebra', 'Adam Apple', 'Mia Mango', 'Bob Banana'].entries()) {
      const r = await create({ email: `p${i}-${name.split(' ')[0]!.toLowerCase()}@corp.test`, name, role: i % 2 ? 'viewer' : 'developer', tag: `tag-${i}` }, boss)
      expect(r.statusCode, r.body).toBe(201)
      made.push(r.json())
    }
    const names = async (query: string) => {
      const r = await list(query, boss)
      expect(r.statusCode, r.body).toBe(200)
      return r.json().items.map((u: { name: string }) => u.name)
    }
    // Newest first by default.
    expect((await names('')).slice(0, 4)).toEqual(['Bob Banana', 'Mia Mango', 'Adam Apple', 'Zoe Zebra'])
    expect(await names('sort=name:asc&role=viewer')).toEqual(['Adam Apple', 'Bob Banana'])
    expect(await names('sort=name:desc&role=developer')).toEqual(['Zoe Zebra', 'Mia Mango'])
    expect(await names('q=MANGO')).toEqual(['Mia Mango'])
    expect(await names('q=p1-adam%40corp')).toEqual(['Adam Apple'])
    expect(await names(`email=${encodeURIComponent(made[3]!.email.toUpperCase())}`)).toEqual(['Bob Banana'])
    expect(await names('tag=tag-2')).toEqual(['Mia Mango'])
    expect(await names('status=invited&sort=email:asc')).toEqual(['Zoe Zebra', 'Adam Apple', 'Mia Mango', 'Bob Banana'])
    expect(await names('status=active')).toEqual([''])
    const cut = (await get(made[2]!.id, boss)).json().createdAt
    expect(await names(`createdFrom=${encodeURIComponent(cut)}&sort=createdAt:asc`)).toEqual(['Mia Mango', 'Bob Banana'])
    expect(await names(`createdTo=${encodeURIComponent(cut)}&status=invited&sort=createdAt:asc`)).toEqual(['Zoe Zebra', 'Adam Apple', 'Mia Mango'])

    const page = await list('limit=2&page=2&sort=name:asc', boss)
    expect(page.json()).toMatchObject({ total: 5, totalExact: true, page: 2, limit: 2 })
    expect(page.json().items.map((u: { name: string }) => u.name)).toEqual(['Bob Banana', 'Mia Mango'])
    // Secrets never appear in a list either.
    expect(page.json().items[0]).not.toHaveProperty('secrets')
    expect(boss.id).toBeDefined()
  })

  it('soft-deletes: 204, hidden from lists unless status=deleted, email and tag reusable, second delete 404', async () => {
    const address = email('del')
    const tag = `del-${randomUUID().slice(0, 6)}`
    const { id } = (await create({ email: address, role: 'viewer', tag })).json()
    expect((await remove(id)).statusCode).toBe(204)
    expect((await get(id)).statusCode).toBe(404)
    expect((await list(`email=${encodeURIComponent(address)}`)).json().items).toHaveLength(0)
    const deleted = await list(`status=deleted&email=${encodeURIComponent(address)}`)
    expect(deleted.json().items).toMatchObject([{ id, status: 'deleted' }])
    const again = await remove(id)
    expect(again.statusCode).toBe(404)
    expect(again.json().errorCode).toBe('USER_NOT_FOUND')
    const reused = await create({ email: address, role: 'viewer', tag })
    expect(reused.statusCode, reused.body).toBe(201)
    expect(reused.json().id).not.toBe(id)
  })

  it('revokes the deleted user\'s tokens and API keys at once, on another replica too', async () => {
    const other = await buildTestApp()
    try {
      const victim = await seedUser(app, { realm, role: 'developer' })
      const key = await app.inject({
        method: 'POST',
        url: '/v1/auth/api-keys',
        headers: bearer(victim.accessToken),
        payload: { name: 'script', scopes: ['model:view'] },
      })
      const apiKey = key.json().key as string
      const me = (target: FastifyInstance, credential: string) =>
        target.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(credential) })
      // Both replicas have the principals cached.
      for (const target of [app, other]) {
        expect((await me(target, victim.accessToken)).statusCode).toBe(200)
        expect((await me(target, apiKey)).statusCode).toBe(200)
      }
      expect((await remove(victim.id)).statusCode).toBe(204)
      expect((await me(app, victim.accessToken)).statusCode).toBe(401)
      expect((await me(app, apiKey)).statusCode).toBe(401)
      await waitFor(async () => (await me(other, victim.accessToken)).statusCode === 401, 5_000, 'token still accepted on the other replica')
      await waitFor(async () => (await me(other, apiKey)).statusCode === 401, 5_000, 'API key still accepted on the other replica')
      const keys = await app.platform.database.db.execute(sql`select revoked_at from api_keys where user_id = ${victim.id}`)
      expect(keys.rows.every((r) => (r as { revoked_at: unknown }).revoked_at !== null)).toBe(true)
    } finally {
      await other.close()
    }
  })

  it('takes effect at once when a user is disabled or demoted', async () => {
    const target = await seedUser(app, { realm, role: 'developer' })
    const me = () => app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(target.accessToken) })
    expect((await me()).json().permissions).toContain('model:manage')
    expect((await update(target.id, { role: 'viewer' })).statusCode).toBe(200)
    expect((await me()).json().permissions).not.toContain('model:manage')
    expect((await update(target.id, { status: 'disabled' })).statusCode).toBe(200)
    expect((await me()).statusCode).toBe(401)
  })

  it('records each change in the audit log with the acting principal and the user id', async () => {
    const created = await create({ email: email('audit'), role: 'viewer' })
    const { id } = created.json()
    await update(id, { name: 'Audited' })
    await remove(id)
    await waitFor(async () => {
      const rows = await app.platform.database.db.execute(sql`select 1 from audit_log where resource_id = ${id}`)
      return rows.rows.length === 3
    })
    const rows = await app.platform.database.db.execute(
      sql`select action, actor_id, resource_kind, outcome from audit_log where resource_id = ${id} order by created_at`,
    )
    expect(rows.rows).toEqual([
      { action: 'createAiUser', actor_id: admin.id, resource_kind: 'users', outcome: 201 },
      { action: 'updateAiUser', actor_id: admin.id, resource_kind: 'users', outcome: 200 },
      { action: 'deleteAiUser', actor_id: admin.id, resource_kind: 'users', outcome: 204 },
    ])
  })

  it('publishes the schemas AiUserCreate, AiUserUpdate and AiUser in the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
    const text = JSON.stringify(doc)
    for (const title of ['AiUserCreate', 'AiUserUpdate', 'AiUser']) expect(text).toContain(`"title":"${title}"`)
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/ai/admin/users', '/ai/admin/users/{UserID}']))
    const parameters = doc.paths['/ai/admin/users/{UserID}'].put.parameters as Array<{ name: string; in: string }>
    expect(parameters.filter((p) => p.in === 'path').map((p) => p.name)).toEqual(['UserID'])
    expect(parameters.filter((p) => p.in === 'query').map((p) => p.name)).toEqual(['tenant'])
  })
})

describe('error', () => {
  it('answers 409 DUPLICATE_EMAIL case-insensitively and 409 DUPLICATE_TAG', async () => {
    const address = email('dup')
    const tag = `dup-${randomUUID().slice(0, 6)}`
    expect((await create({ email: address, role: 'viewer', tag })).statusCode).toBe(201)
    const sameEmail = await create({ email: address.toUpperCase(), role: 'viewer' })
    expect(sameEmail.statusCode).toBe(409)
    expect(sameEmail.json().errorCode).toBe('DUPLICATE_EMAIL')
    const sameTag = await create({ email: email('dup2'), role: 'viewer', tag })
    expect(sameTag.statusCode).toBe(409)
    expect(sameTag.json().errorCode).toBe('DUPLICATE_TAG')
    const other = (await create({ email: email('dup3'), role: 'viewer' })).json()
    const tagClash = await update(other.id, { tag })
    expect(tagClash.statusCode).toBe(409)
    expect(tagClash.json().errorCode).toBe('DUPLICATE_TAG')
    const emailClash = await update(other.id, { email: address })
    expect(emailClash.json().errorCode).toBe('DUPLICATE_EMAIL')
  })

  it('answers 400 VALIDATION_ERROR naming the failing fields', async () => {
    const bad = await create({ email: 'not-an-email', role: 'wizard', extra: true })
    expect(bad.statusCode).toBe(400)
    const body = bad.json()
    expect(body.errorCode).toBe('VALIDATION_ERROR')
    const fields = body.details.fields.map((d: { field: string }) => d.field)
    expect(fields).toEqual(expect.arrayContaining(['body.email', 'body.extra']))
    // One entry per field; the role's names what is allowed, lowest rank first.
    expect(new Set(fields).size).toBe(fields.length)
    expect(body.details.fields).toContainEqual({ field: 'body.role', message: 'must be one of viewer, tester, developer, devops, admin, super_admin' })
    const empty = await update(admin.id, {})
    expect(empty.statusCode).toBe(400)
    const deep = await create({ email: email('deep'), role: 'viewer', attributes: { x: { a: { b: { c: { d: { e: { f: 1 } } } } } } } })
    expect(deep.statusCode).toBe(400)
    expect(deep.json().details.fields[0].field).toBe('body.attributes.x')
    const big = await create({ email: email('big'), role: 'viewer', attributes: { x: 'y'.repeat(5000) } })
    expect(big.statusCode).toBe(400)
    const many = await create({ email: email('many'), role: 'viewer', attributes: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, i])) })
    expect(many.statusCode).toBe(400)
    const badKey = await create({ email: email('key'), role: 'viewer', attributes: { 'no spaces': 1 } })
    expect(badKey.statusCode).toBe(400)
  })

  it('answers 412 to a stale If-Match and leaves the user unchanged', async () => {
    const created = await create({ email: email('etag'), role: 'viewer' })
    const { id } = created.json()
    expect((await update(id, { name: 'first' }, { 'if-match': created.headers.etag as string })).statusCode).toBe(200)
    const stale = await update(id, { name: 'second' }, { 'if-match': created.headers.etag as string })
    expect(stale.statusCode).toBe(412)
    expect(stale.json().errorCode).toBe('PRECONDITION_FAILED')
    expect((await get(id)).json().name).toBe('first')
  })

  it('answers 404 USER_NOT_FOUND for an unknown id and for a user of another tenant', async () => {
    const stranger = await seedUser(app, { realm: uniqueRealm('other'), role: 'admin' })
    const theirs = (await create({ email: email('theirs'), role: 'viewer' }, stranger)).json()
    for (const id of [randomUUID(), theirs.id]) {
      for (const response of [await get(id), await update(id, { name: 'x' }), await remove(id)]) {
        expect(response.statusCode).toBe(404)
        expect(response.json().errorCode).toBe('USER_NOT_FOUND')
      }
    }
    expect((await list(`email=${encodeURIComponent(theirs.email)}`)).json().items).toHaveLength(0)
    expect((await get(theirs.id, stranger)).json().name).toBe('')
  })

  it("answers 409 LAST_ADMIN to demoting, disabling or deleting the tenant's last admin", async () => {
    const tenant = uniqueRealm('last')
    const only = await seedUser(app, { realm: tenant, role: 'admin' })
    for (const response of [await update(only.id, { role: 'viewer' }, {}, only), await update(only.id, { status: 'disabled' }, {}, only), await remove(only.id, only)]) {
      expect(response.statusCode).toBe(409)
      expect(response.json().errorCode).toBe('LAST_ADMIN')
    }
    // With a second active admin, one of them may step down — but not both at once.
    const second = await seedUser(app, { realm: tenant, role: 'admin' })
    const both = await Promise.all([update(only.id, { role: 'viewer' }, {}, only), update(second.id, { role: 'viewer' }, {}, second)])
    expect(both.map((r) => r.statusCode).sort()).toEqual([200, 409])
    const admins = await app.platform.database.db.execute(
      sql`select count(*)::int as n from users u join tenants t on t.id = u.tenant_id where t.realm = ${tenant} and u.role = 'admin' and u.status = 'active'`,
    )
    expect(admins.rows[0]).toEqual({ n: 1 })
  })

  it('answers 403 ROLE_NOT_ALLOWED when a plain admin hands out super_admin', async () => {
    const response = await create({ email: email('sup'), role: 'super_admin' })
    expect(response.statusCode).toBe(403)
    expect(response.json().errorCode).toBe('ROLE_NOT_ALLOWED')
  })
})

describe('security', () => {
  it('needs user:view to read and user:manage to change', async () => {
    expect((await list('', viewer)).statusCode).toBe(200)
    const created = await create({ email: email('perm'), role: 'viewer' }, viewer)
    expect(created.statusCode).toBe(403)
    expect((await update(admin.id, { name: 'x' }, {}, viewer)).statusCode).toBe(403)
    expect((await remove(admin.id, viewer)).statusCode).toBe(403)
    const tester = await seedUser(app, { realm, role: 'tester' })
    expect((await list('', tester)).statusCode).toBe(403)
    expect((await get(admin.id, tester)).statusCode).toBe(403)
    expect((await app.inject({ method: 'GET', url: '/ai/admin/users' })).statusCode).toBe(401)
    const access = (method: string, url: string) => app.routeAccess.find((r) => r.method === method && r.url === url)?.access
    expect(access('GET', '/ai/admin/users')).toBe('user:view')
    expect(access('GET', '/ai/admin/users/:UserID')).toBe('user:view')
    expect(access('POST', '/ai/admin/users')).toBe('user:manage')
    expect(access('PUT', '/ai/admin/users/:UserID')).toBe('user:manage')
    expect(access('DELETE', '/ai/admin/users/:UserID')).toBe('user:manage')
  })
})
