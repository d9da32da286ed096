import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * The catalog's totals and facet counts are kept per process until a model of the tenant changes
 * (src/platform/db/kept-counts.ts, scope models:<tenant id>). Whoever changes a model — this replica, another one,
 * or SQL from outside — the next list or facets that can see the change report it.
 */
let replicaA: FastifyInstance
let replicaB: FastifyInstance
let outside: pg.Client
let admin: SeededUser
let other: SeededUser
let tenantId: string

beforeAll(async () => {
  replicaA = await buildTestApp()
  replicaB = await buildTestApp()
  const realm = uniqueRealm('cat')
  admin = await seedUser(replicaA, { realm, role: 'admin' })
  other = await seedUser(replicaA, { realm: uniqueRealm('cat-other'), role: 'admin' })
  outside = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await outside.connect()
  const { rows } = await outside.query<{ id: string }>('select id from tenants where realm = $1', [realm])
  tenantId = rows[0]!.id
  for (const [name, tags] of [
    ['count-a', ['chat']],
    ['count-b', ['chat', 'small']],
  ] as const) {
    const created = await replicaA.inject({ method: 'POST', url: '/v1/models', headers: bearer(admin.accessToken), payload: { source: 'upload', name, tags } })
    expect(created.statusCode, created.body).toBe(201)
  }
  // The notifications of those inserts arrive after their commits: let them, so that they do not
  // land in the middle of the first test (a late one makes the replica count again, as it should).
  await new Promise((resolve) => setTimeout(resolve, 500))
}, 60_000)

afterAll(async () => {
  await outside?.end()
  await replicaA?.close()
  await replicaB?.close()
})

async function total(app: FastifyInstance, query = 'limit=1', user = admin): Promise<number> {
  const response = await app.inject({ method: 'GET', url: `/v1/models?${query}`, headers: bearer(user.accessToken) })
  expect(response.statusCode, response.body).toBe(200)
  return response.json().total
}

async function tagCounts(app: FastifyInstance, query = ''): Promise<Record<string, number>> {
  const response = await app.inject({ method: 'GET', url: `/v1/models/facets?${query}`, headers: bearer(admin.accessToken) })
  expect(response.statusCode, response.body).toBe(200)
  return Object.fromEntries((response.json().tag as Array<{ value: string; count: number }>).map((t) => [t.value, t.count]))
}

/** A model written behind the catalog's back: triggers off for this statement's session, so no notification. */
async function insertUnannounced(name: string): Promise<void> {
  await outside.query('begin')
  try {
    await outside.query("set local session_replication_role = 'replica'")
    await outside.query(
      `insert into models (id, tenant_id, name, display_name, source, tags, status, created_by) values ($1, $2, $3, $3, 'upload', '{chat}', 'importing', 'outside')`,
      [randomUUID(), tenantId, name],
    )
    await outside.query('commit')
  } catch (err) {
    await outside.query('rollback')
    throw err
  }
}

describe('catalog totals and facets', () => {
  it('are kept between requests: a model written without a notification is not counted until the next change', async () => {
    const [listed, tags] = [await total(replicaA), await tagCounts(replicaA)]
    await insertUnannounced(`unannounced-${randomUUID().slice(0, 8)}`)
    // The page itself is read fresh; the kept counts are what a cache would show.
    expect(await total(replicaA)).toBe(listed)
    expect((await tagCounts(replicaA)).chat).toBe(tags.chat)
    // Any change of the tenant's models (here through the API) makes both count again, the unannounced one included.
    const created = await replicaA.inject({ method: 'POST', url: '/v1/models', headers: bearer(admin.accessToken), payload: { source: 'upload', name: `after-${randomUUID().slice(0, 8)}` } })
    expect(created.statusCode).toBe(201)
    expect(await total(replicaA)).toBe(listed + 2)
    expect((await tagCounts(replicaA)).chat).toBe(tags.chat! + 1)
  })

  it('count a write through the API at once on the same replica and soon on another', async () => {
    const [onA, onB] = [await total(replicaA, 'tag=small'), await total(replicaB, 'tag=small')]
    const facetsB = await tagCounts(replicaB)
    const created = await replicaA.inject({
      method: 'POST',
      url: '/v1/models',
      headers: bearer(admin.accessToken),
      payload: { source: 'upload', name: `small-${randomUUID().slice(0, 8)}`, tags: ['small'] },
    })
    expect(created.statusCode, created.body).toBe(201)
    expect(await total(replicaA, 'tag=small')).toBe(onA + 1)
    await waitFor(async () => (await total(replicaB, 'tag=small')) === onB + 1, 5_000, 'replica B kept the old total')
    await waitFor(async () => (await tagCounts(replicaB)).small === facetsB.small! + 1, 5_000, 'replica B kept the old facets')

    // A change of a filtered column: the model leaves tag=small on the replica that wrote it at once.
    const id = created.json().id as string
    const patched = await replicaA.inject({ method: 'PATCH', url: `/v1/models/${id}`, headers: bearer(admin.accessToken), payload: { tags: ['large'] } })
    expect(patched.statusCode, patched.body).toBe(200)
    expect(await total(replicaA, 'tag=small')).toBe(onA)
    expect((await tagCounts(replicaA)).large).toBe(1)

    const removed = await replicaB.inject({ method: 'DELETE', url: `/v1/models/${id}`, headers: bearer(admin.accessToken) })
    expect(removed.statusCode).toBe(204)
    expect((await tagCounts(replicaB)).large).toBeUndefined()
    await waitFor(async () => (await tagCounts(replicaA)).large === undefined, 5_000, 'replica A kept the deleted model in its facets')
  })

  it('count models changed by SQL from outside the API, per filter, and per tenant', async () => {
    const query = 'license=zanzibar-1.0'
    expect(await total(replicaA, query)).toBe(0)
    expect(await tagCounts(replicaA, query)).toEqual({})
    await outside.query(`update models set license = 'zanzibar-1.0' where tenant_id = $1 and name = 'count-a'`, [tenantId])
    await waitFor(async () => (await total(replicaA, query)) === 1, 5_000, 'the total missed an outside update')
    expect(await tagCounts(replicaA, query)).toEqual({ chat: 1 })
    // Another tenant's counts are its own.
    expect(await total(replicaA, query, other)).toBe(0)
    expect(await total(replicaA, 'limit=1', other)).toBe(0)
  })
})

describe('search totals', () => {
  it('are right whether the page shows the end of the matches, is full, or is past the end', async () => {
    for (const n of [1, 2, 3]) {
      const created = await replicaA.inject({ method: 'POST', url: '/v1/models', headers: bearer(admin.accessToken), payload: { source: 'upload', name: `findme-${n}` } })
      expect(created.statusCode).toBe(201)
    }
    // Each case spells the term differently (the match ignores case), so no total is kept from another.
    for (const [query, items] of [
      ['q=findme&limit=2', 2],
      ['q=FINDME&limit=10', 3],
      ['q=FindMe&limit=2&page=2', 1],
      ['q=fINDME&limit=2&page=5', 0],
    ] as const) {
      const response = await replicaA.inject({ method: 'GET', url: `/v1/models?${query}`, headers: bearer(admin.accessToken) })
      expect(response.json().items, query).toHaveLength(items)
      expect(response.json(), query).toMatchObject({ total: 3, totalExact: true })
    }
  })
})
