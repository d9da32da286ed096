import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { buildTestApp } from '../helpers/app.js'
import { waitFor } from '../helpers/wait.js'

/**
 * API keys never outlive or out-scope the user who made them, and a key cannot manage keys: a
 * leaked key must not be able to mint its own successor, list its siblings or revoke them.
 */
let app: FastifyInstance
let realm: string
let admin: SeededUser

beforeAll(async () => {
  app = await buildTestApp()
  realm = uniqueRealm('keys')
  admin = await seedUser(app, { realm, role: 'admin' })
})

afterAll(() => app.close())

const db = () => app.platform.database.db
const DAY_MS = 86_400_000

async function createKey(owner: SeededUser, scopes: string[], extra: Record<string, unknown> = {}) {
  const response = await app.inject({
    method: 'POST',
    url: '/v1/auth/api-keys',
    headers: bearer(owner.accessToken),
    payload: { name: 'script', scopes, ...extra },
  })
  expect(response.statusCode, response.body).toBe(201)
  return response.json() as { id: string; key: string; expiresAt: string | null }
}

async function keysOf(userId: string) {
  return (await db().execute(sql`select id, revoked_at from api_keys where user_id = ${userId} order by created_at`)).rows as Array<{
    id: string
    revoked_at: string | null
  }>
}

const me = (target: FastifyInstance, headers: Record<string, string>) => target.inject({ method: 'GET', url: '/v1/auth/me', headers })
const setUser = (id: string, payload: object) =>
  app.inject({ method: 'PUT', url: `/ai/admin/users/${id}`, headers: bearer(admin.accessToken), payload })

describe('security: a key cannot manage keys', () => {
  it('answers 403 SESSION_REQUIRED to create, list and delete with a key, by either header, and no key is created or revoked', async () => {
    const owner = await seedUser(app, { realm, role: 'developer' })
    const key = await createKey(owner, ['model:view', 'model:manage'])
    const sibling = await createKey(owner, ['model:view'])
    const before = await keysOf(owner.id)

    for (const headers of [bearer(key.key), { 'x-api-key': key.key }]) {
      const attempts = [
        await app.inject({ method: 'POST', url: '/v1/auth/api-keys', headers, payload: { name: 'successor', scopes: ['model:view'] } }),
        await app.inject({ method: 'GET', url: '/v1/auth/api-keys', headers }),
        await app.inject({ method: 'DELETE', url: `/v1/auth/api-keys/${sibling.id}`, headers }),
        await app.inject({ method: 'DELETE', url: `/v1/auth/api-keys/${key.id}`, headers }),
      ]
      for (const response of attempts) {
        expect(response.statusCode, response.body).toBe(403)
        expect(response.json().errorCode).toBe('SESSION_REQUIRED')
        expect(response.body).not.toContain('mp_')
      }
    }
    expect(await keysOf(owner.id)).toEqual(before)
    expect(before.every((k) => k.revoked_at === null)).toBe(true)
    // Both keys still work for what they are for.
    expect((await me(app, { 'x-api-key': sibling.key })).statusCode).toBe(200)
    // The owner's session manages them as before.
    const listed = await app.inject({ method: 'GET', url: '/v1/auth/api-keys', headers: bearer(owner.accessToken) })
    expect(listed.statusCode).toBe(200)
    expect(listed.json().total).toBe(2)
  })
})

describe('security: a key never outlives its maximum', () => {
  it('refuses an expiry beyond 365 days with 400 and gives a key without one 365 days', async () => {
    const owner = await seedUser(app, { realm, role: 'viewer' })
    const tooLong = await app.inject({
      method: 'POST',
      url: '/v1/auth/api-keys',
      headers: bearer(owner.accessToken),
      payload: { name: 'forever', scopes: ['model:view'], expiresInDays: 366 },
    })
    expect(tooLong.statusCode).toBe(400)
    expect(tooLong.json().errorCode).toBe('VALIDATION_ERROR')
    expect(await keysOf(owner.id)).toEqual([])

    const defaulted = await createKey(owner, ['model:view'])
    const lifetime = new Date(defaulted.expiresAt!).getTime() - Date.now()
    expect(lifetime).toBeGreaterThan(364 * DAY_MS)
    expect(lifetime).toBeLessThanOrEqual(365 * DAY_MS)
    const week = await createKey(owner, ['model:view'], { expiresInDays: 7 })
    expect(new Date(week.expiresAt!).getTime() - Date.now()).toBeLessThanOrEqual(7 * DAY_MS)
  })

  it('refuses a key stored without an expiry once it is older than the maximum', async () => {
    const owner = await seedUser(app, { realm, role: 'viewer' })
    const young = await createKey(owner, ['model:view'])
    const old = await createKey(owner, ['model:view'])
    // Keys made before the cap have no expiry stored.
    await db().execute(sql`update api_keys set expires_at = null where id in (${young.id}, ${old.id})`)
    await db().execute(sql`update api_keys set created_at = now() - interval '366 days' where id = ${old.id}`)
    expect((await me(app, { 'x-api-key': young.key })).statusCode).toBe(200)
    const refused = await me(app, { 'x-api-key': old.key })
    expect(refused.statusCode).toBe(401)
    expect(refused.json().message).toContain('expired')
  })
})

describe('security: a key never outlives or out-scopes its owner', () => {
  it('disabling the owner revokes every key at once; enabling them again does not bring the keys back', async () => {
    const owner = await seedUser(app, { realm, role: 'developer' })
    const keys = [await createKey(owner, ['model:view']), await createKey(owner, ['model:manage'])]
    for (const key of keys) expect((await me(app, { 'x-api-key': key.key })).statusCode).toBe(200)

    const disabled = await setUser(owner.id, { status: 'disabled' })
    expect(disabled.statusCode, disabled.body).toBe(200)
    for (const key of keys) expect((await me(app, { 'x-api-key': key.key })).statusCode).toBe(401)
    expect((await keysOf(owner.id)).every((k) => k.revoked_at !== null)).toBe(true)

    const enabled = await setUser(owner.id, { status: 'active' })
    expect(enabled.statusCode, enabled.body).toBe(200)
    for (const key of keys) expect((await me(app, { 'x-api-key': key.key })).statusCode).toBe(401)
    expect((await keysOf(owner.id)).every((k) => k.revoked_at !== null)).toBe(true)
    // The sessions from before the disable stay ended too; a fresh login works.
    expect((await me(app, bearer(owner.accessToken))).statusCode).toBe(401)
    expect((await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: owner.refreshToken } })).statusCode).toBe(401)
  })

  it('a key loses a permission at once when its owner is demoted, on every replica', async () => {
    const other = await buildTestApp()
    try {
      const owner = await seedUser(app, { realm, role: 'developer' })
      const key = await createKey(owner, ['model:view', 'model:manage'])
      const permissions = async (target: FastifyInstance) => (await me(target, { 'x-api-key': key.key })).json().permissions as string[]
      // Both replicas have the key's principal cached with model:manage.
      expect(await permissions(app)).toContain('model:manage')
      expect(await permissions(other)).toContain('model:manage')

      expect((await setUser(owner.id, { role: 'viewer' })).statusCode).toBe(200)
      expect(await permissions(app)).toEqual(['model:view'])
      await waitFor(async () => !(await permissions(other)).includes('model:manage'), 5_000, 'the other replica kept the demoted permission')
      // The key itself stays live: its scopes are cut to the owner's at each use, not rewritten.
      expect((await keysOf(owner.id)).map((k) => k.revoked_at)).toEqual([null])
    } finally {
      await other.close()
    }
  })
})
