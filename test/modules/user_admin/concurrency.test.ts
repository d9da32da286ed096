import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'

/** Two replicas on one database, so the row lock and the unique indexes — not one process — decide. */
let one: FastifyInstance
let two: FastifyInstance
let admin: SeededUser

beforeAll(async () => {
  one = await buildTestApp({ DATABASE_POOL_MAX: '10' })
  two = await buildTestApp({ DATABASE_POOL_MAX: '10' })
  admin = await seedUser(one, { realm: uniqueRealm('uac'), role: 'admin' })
})

afterAll(async () => {
  await one.close()
  await two.close()
})

describe('concurrency', () => {
  it('keeps all 50 changes of 50 parallel read-modify-write PUTs to one user (no lost update)', async () => {
    const created = await one.inject({
      method: 'POST',
      url: '/ai/admin/users',
      headers: bearer(admin.accessToken),
      payload: { email: `rmw-${randomUUID().slice(0, 8)}@example.test`, role: 'viewer', attributes: { seed: true } },
    })
    const { id } = created.json()
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? one : two).inject({
          method: 'PUT',
          url: `/ai/admin/users/${id}`,
          headers: bearer(admin.accessToken),
          payload: { attributes: { [`key${i}`]: i }, secrets: { [`s${i % 5}`]: `value-${i}` } },
        }),
      ),
    )
    expect(responses.map((r) => r.statusCode)).toEqual(Array(50).fill(200))
    const user = (await one.inject({ method: 'GET', url: `/ai/admin/users/${id}`, headers: bearer(admin.accessToken) })).json()
    expect(Object.keys(user.attributes).sort()).toEqual(['seed', ...Array.from({ length: 50 }, (_, i) => `key${i}`)].sort())
    for (let i = 0; i < 50; i++) expect(user.attributes[`key${i}`]).toBe(i)
    expect(user.secretNames).toEqual(['s0', 's1', 's2', 's3', 's4'])
    // Every write moved the version: the ETag of the last one is unique.
    const versions = await one.platform.database.db.execute(sql`select version from users where id = ${id}`)
    expect(versions.rows[0]).toEqual({ version: 51 })
  })

  it('gives exactly one 201 and 49 409 DUPLICATE_EMAIL to 50 parallel POSTs with one email', async () => {
    const email = `race-${randomUUID().slice(0, 8)}@example.test`
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? one : two).inject({
          method: 'POST',
          url: '/ai/admin/users',
          headers: bearer(admin.accessToken),
          // Mixed case: the uniqueness is on lower(email).
          payload: { email: i % 3 ? email : email.toUpperCase(), role: 'viewer' },
        }),
      ),
    )
    const statuses = responses.map((r) => r.statusCode)
    expect(statuses.filter((s) => s === 201)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(49)
    expect(new Set(responses.filter((r) => r.statusCode === 409).map((r) => r.json().errorCode))).toEqual(new Set(['DUPLICATE_EMAIL']))
    const rows = await one.platform.database.db.execute(sql`select count(*)::int as n from users where lower(email) = ${email}`)
    expect(rows.rows[0]).toEqual({ n: 1 })
  })
})
