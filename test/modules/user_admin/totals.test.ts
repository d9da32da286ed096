import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { loadConfig } from '../../../src/config.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp, tempDir } from '../../helpers/app.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * Listing totals are kept per process until a user of the tenant changes (src/modules/user_admin/totals.ts).
 * Whoever changes the users — this replica, another one, or SQL from outside — the next listing
 * that can see the change reports it, including after the listening connection was lost.
 */
let replicaA: FastifyInstance
let replicaB: FastifyInstance
let outside: pg.Client
let realm: string
let admin: SeededUser
let tenantId: string

beforeAll(async () => {
  replicaA = await buildTestApp()
  replicaB = await buildTestApp()
  realm = uniqueRealm('tot')
  admin = await seedUser(replicaA, { realm, role: 'admin' })
  outside = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await outside.connect()
  const { rows } = await outside.query<{ id: string }>('select id from tenants where realm = $1', [realm])
  tenantId = rows[0]!.id
})

afterAll(async () => {
  await outside.end()
  await replicaA.close()
  await replicaB.close()
})

async function total(app: FastifyInstance, query = 'limit=5'): Promise<number> {
  const response = await app.inject({ method: 'GET', url: `/ai/admin/users?${query}`, headers: bearer(admin.accessToken) })
  expect(response.statusCode, response.body).toBe(200)
  return response.json().total
}

const insertOutside = (name: string) =>
  outside.query(`insert into users (tenant_id, auth_id, email, name, role, status) values ($1, $2, $3, $4, 'viewer', 'active')`, [
    tenantId,
    randomUUID(),
    `${randomUUID().slice(0, 8)}@outside.test`,
    name,
  ])

describe('listing totals', () => {
  it('counts a user created through the API at once on the same replica and soon on another', async () => {
    const [onA, onB] = [await total(replicaA), await total(replicaB)]
    const created = await replicaA.inject({
      method: 'POST',
      url: '/ai/admin/users',
      headers: bearer(admin.accessToken),
      payload: { email: `${randomUUID().slice(0, 8)}@example.test`, role: 'viewer', name: 'Totals One' },
    })
    expect(created.statusCode, created.body).toBe(201)
    expect(await total(replicaA)).toBe(onA + 1)
    await waitFor(async () => (await total(replicaB)) === onB + 1, 5_000, 'replica B kept the old total')
    const removed = await replicaB.inject({ method: 'DELETE', url: `/ai/admin/users/${created.json().id}`, headers: bearer(admin.accessToken) })
    expect(removed.statusCode).toBe(204)
    expect(await total(replicaB)).toBe(onB)
    await waitFor(async () => (await total(replicaA)) === onA, 5_000, 'replica A kept the old total')
  })

  it('counts users written by SQL from outside the API, per filter', async () => {
    const query = 'q=zanzibar&limit=5'
    expect(await total(replicaA, query)).toBe(0)
    await insertOutside('Zanzibar Outside')
    await waitFor(async () => (await total(replicaA, query)) === 1, 5_000, 'the search total missed an outside insert')
    await outside.query(`update users set status = 'disabled' where tenant_id = $1 and name = 'Zanzibar Outside'`, [tenantId])
    await waitFor(async () => (await total(replicaA, `${query}&status=active`)) === 0, 5_000, 'the total missed an outside update')
    expect(await total(replicaA, `${query}&status=disabled`)).toBe(1)
  })

  it('never serves a total from before a lost notification connection', async () => {
    const query = 'q=kilimanjaro&limit=5'
    expect(await total(replicaA, query)).toBe(0)
    // Cut the listening connections of every replica, then change users while they reconnect.
    const { rows: cut } = await outside.query<{ pid: number }>(
      `select pid from pg_stat_activity where application_name = 'modelplane-user-totals'`,
    )
    expect(cut.length).toBeGreaterThanOrEqual(2)
    await outside.query('select pg_terminate_backend(pid) from unnest($1::int[]) as pid', [cut.map((r) => r.pid)])
    await insertOutside('Kilimanjaro Outside')
    // Its notification went nowhere. Once both listeners are back on new connections, the replicas
    // have seen theirs drop, and the total they kept from before must not be served. (How soon after
    // the drop the replica stops trusting it is a matter of timing, not asserted here.)
    await waitFor(async () => {
      const { rows } = await outside.query<{ pid: number }>(`select pid from pg_stat_activity where application_name = 'modelplane-user-totals'`)
      return rows.filter((r) => !cut.some((c) => c.pid === r.pid)).length >= 2
    }, 20_000, 'the listeners did not come back')
    expect(await total(replicaA, query)).toBe(1)
    await insertOutside('Kilimanjaro Again')
    await waitFor(async () => (await total(replicaA, query)) === 2, 5_000, 'the total missed a change after the reconnect')
  })
})

describe('listing on the embedded database (PGlite)', () => {
  let app: FastifyInstance
  let owner: SeededUser

  beforeAll(async () => {
    app = await buildApp(loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: tempDir(), RATE_LIMIT_MAX: '0' }))
    await app.ready()
    owner = await seedUser(app, { realm: uniqueRealm('lite'), role: 'admin' })
  })

  afterAll(() => app?.close())

  it('filters, sorts and counts with the same prepared statements, and counts new users at once', async () => {
    const list = async (query: string) => {
      const response = await app.inject({ method: 'GET', url: `/ai/admin/users?${query}`, headers: bearer(owner.accessToken) })
      expect(response.statusCode, response.body).toBe(200)
      return response.json() as { items: Array<{ name: string }>; total: number; totalExact: boolean }
    }
    const before = await list('limit=2')
    for (const name of ['Grace Hopper', 'Alan Turing', 'Grace Kelly']) {
      const created = await app.inject({
        method: 'POST',
        url: '/ai/admin/users',
        headers: bearer(owner.accessToken),
        payload: { email: `${randomUUID().slice(0, 8)}@lite.test`, role: 'developer', name, status: 'active' },
      })
      expect(created.statusCode, created.body).toBe(201)
    }
    expect((await list('limit=2')).total).toBe(before.total + 3)
    const graces = await list('q=grace&sort=name:desc&limit=10')
    expect(graces.items.map((u) => u.name)).toEqual(['Grace Kelly', 'Grace Hopper'])
    expect(graces).toMatchObject({ total: 2, totalExact: true })
    const yesterday = new Date(Date.now() - 86_400_000).toISOString()
    const recent = await list(`role=developer&status=active&createdFrom=${yesterday}&sort=name:asc&limit=10`)
    expect(recent.items.map((u) => u.name)).toEqual(['Alan Turing', 'Grace Hopper', 'Grace Kelly'])
    expect((await list(`role=developer&createdTo=${yesterday}`)).total).toBe(0)
  })

  it('reports a search total right whether the page shows the end or not', async () => {
    const list = async (query: string) => {
      const response = await app.inject({ method: 'GET', url: `/ai/admin/users?${query}`, headers: bearer(owner.accessToken) })
      expect(response.statusCode, response.body).toBe(200)
      return response.json() as { items: Array<{ name: string }>; total: number; totalExact: boolean }
    }
    // Two Graces: a full page has to count, a short one shows the end, a page past the end counts.
    // Each case spells the term differently (the match ignores case), so no total is known yet.
    for (const [query, items] of [
      ['q=grace&limit=1', 1],
      ['q=GRACE&limit=10', 2],
      ['q=Grace&limit=1&page=2', 1],
      ['q=gRACE&limit=1&page=7', 0],
    ] as const) {
      const page = await list(`${query}&sort=name:asc`)
      expect(page.items, query).toHaveLength(items)
      expect(page, query).toMatchObject({ total: 2, totalExact: true })
    }
  })
})
