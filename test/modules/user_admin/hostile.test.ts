import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'

/**
 * Hostile input: every answer is a 4xx or a correct 2xx, never a 500, and nothing a hostile request
 * sends changes the table (compared as a snapshot of the tenant's rows before and after).
 */
let app: FastifyInstance
let admin: SeededUser
let realm: string
let otherRealm: string
let otherAdmin: SeededUser
const ids: Record<string, string> = {}

/** Rows a query that escaped its filters would reveal: none matches any hostile query below literally. */
const decoys: Record<string, string> = {}

beforeAll(async () => {
  app = await buildTestApp()
  realm = uniqueRealm('uah')
  admin = await seedUser(app, { realm, role: 'admin' })
  for (const [key, name, email] of [
    ['percent', '100% Sure', 'percent@example.test'],
    ['underscore', 'snake_case', 'under_score@example.test'],
    ['plain', 'Plain Person', 'plainxscore@example.test'],
    ['unicode', 'Zoë Ünïcødé 日本', 'zoe@example.test'],
    // The one row whose name holds the first injection string: a literal search finds it and nothing else.
    ['literal', "O' or 1=1 -- Connor", 'oconnor@example.test'],
  ] as const) {
    const r = await app.inject({ method: 'POST', url: '/ai/admin/users', headers: bearer(admin.accessToken), payload: { email, name, role: 'viewer' } })
    expect(r.statusCode, r.body).toBe(201)
    ids[key] = r.json().id
  }
  // A tagged admin-role user and a deleted user of this tenant, and a user of another tenant.
  const tagged = await app.inject({
    method: 'POST',
    url: '/ai/admin/users',
    headers: bearer(admin.accessToken),
    payload: { email: 'tagged@example.test', name: 'Tagged Admin', role: 'admin', tag: 'vip' },
  })
  expect(tagged.statusCode, tagged.body).toBe(201)
  decoys.tagged = tagged.json().id
  const gone = await app.inject({ method: 'POST', url: '/ai/admin/users', headers: bearer(admin.accessToken), payload: { email: 'gone@example.test', name: 'Gone', role: 'viewer' } })
  decoys.deleted = gone.json().id
  const deleted = await app.inject({ method: 'DELETE', url: `/ai/admin/users/${decoys.deleted}`, headers: bearer(admin.accessToken) })
  expect(deleted.statusCode, deleted.body).toBeLessThan(300)
  otherRealm = uniqueRealm('uah-other')
  otherAdmin = await seedUser(app, { realm: otherRealm, role: 'admin' })
  const outsider = await app.inject({
    method: 'POST',
    url: '/ai/admin/users',
    headers: bearer(otherAdmin.accessToken),
    payload: { email: 'outsider@example.test', name: 'Outsider', role: 'viewer', tag: 'vip' },
  })
  expect(outsider.statusCode, outsider.body).toBe(201)
  decoys.outsider = outsider.json().id
})

afterAll(() => app.close())

async function snapshot(): Promise<unknown> {
  const result = await app.platform.database.db.execute(sql`
    select u.id, u.email, u.name, u.role, u.status, u.tag, u.attributes, u.secrets, u.version, u.updated_at
    from users u join tenants t on t.id = u.tenant_id where t.realm = ${realm} order by u.id`)
  // The tenant's rows, not the whole table's count: other test files create users at the same time.
  return { count: result.rows.length, rows: result.rows }
}

const list = (query: string) => app.inject({ method: 'GET', url: `/ai/admin/users?${query}`, headers: bearer(admin.accessToken) })
const idsOf = (body: { items: Array<{ id: string }> }) => body.items.map((u) => u.id).sort()

describe('hostile input', () => {
  it('matches % and _ in q literally', async () => {
    expect(idsOf((await list(`q=${encodeURIComponent('%')}`)).json())).toEqual([ids.percent])
    expect(idsOf((await list(`q=${encodeURIComponent('_')}`)).json())).toEqual([ids.underscore])
    expect(idsOf((await list(`q=${encodeURIComponent('r_s')}`)).json())).toEqual([ids.underscore])
    expect(idsOf((await list(`q=${encodeURIComponent('\\')}`)).json())).toEqual([])
    expect(idsOf((await list(`q=${encodeURIComponent('ÜNÏ')}`)).json())).toEqual([ids.unicode])
    expect(idsOf((await list(`q=${encodeURIComponent('日本')}`)).json())).toEqual([ids.unicode])
  })

  it('shows the decoys to the filters meant to find them (the control for the test below)', async () => {
    expect(idsOf((await list('tag=vip')).json())).toEqual([decoys.tagged])
    expect(idsOf((await list('status=deleted')).json())).toEqual([decoys.deleted])
    const outsiders = await app.inject({ method: 'GET', url: '/ai/admin/users?tag=vip', headers: bearer(otherAdmin.accessToken) })
    expect(idsOf(outsiders.json())).toEqual([decoys.outsider])
  })

  it('answers every hostile query string with a 4xx or exactly its literal matches, and changes nothing', async () => {
    const before = await snapshot()
    // Each query with what it must give: a status (refused in the error envelope) or the ids a
    // literal reading matches. An injection that widened the filter would list the other users of the
    // tenant, the deleted one or the other tenant's, and fail the exact comparison.
    const cases: Array<[string, number | string[]]> = [
      [`q=${encodeURIComponent("' or 1=1 --")}`, [ids.literal!]],
      [`q=${encodeURIComponent("'; drop table users; --")}`, []],
      [`q=${encodeURIComponent("%' or '%'='")}`, []],
      [`email=${encodeURIComponent("x' or 'a'='a")}`, []],
      [`email=${encodeURIComponent("' or ''='")}`, []],
      [`tag=${encodeURIComponent('") or true; --')}`, []],
      [`tag=${encodeURIComponent("vip' or '1'='1")}`, []],
      // role is an enumeration: anything but a role's name is refused before any query runs.
      [`role=${encodeURIComponent("admin' --")}`, 400],
      [`role=${encodeURIComponent("viewer' or role <> '")}`, 400],
      [`q=${'a'.repeat(10_000)}`, 400],
      [`email=${'b'.repeat(10_000)}`, 400],
      ['q=a&q=b', 400],
      ['role=viewer&role=admin', 400],
      ['status=deleted&status=active', 400],
      ['status=gone', 400],
      ['sort=password_hash:asc', 400],
      ['sort=createdAt:sideways', 400],
      [`sort=${encodeURIComponent('name; drop table users')}`, 400],
      ['sort=name:asc:desc', 400],
      ['page=0', 400],
      ['page=-1', 400],
      ['limit=1000', 400],
      ['limit=abc', 400],
      ['createdFrom=yesterday', 400],
      [`createdTo=${encodeURIComponent('2020-01-01T00:00:00Z; select 1')}`, 400],
      [`q=${encodeURIComponent('\u0000')}`, 400],
      [`email=${encodeURIComponent('a\u0000@b.c')}`, 400],
      [`tag=${encodeURIComponent('\u0000')}`, 400],
      [`q=${encodeURIComponent('😀'.repeat(50))}`, []],
      // A lone surrogate and bytes that are not UTF-8, percent-encoded raw: read as replacement characters.
      ['q=%ED%A0%80', []],
      ['q=%FF%FE', []],
    ]
    for (const [query, expected] of cases) {
      const response = await list(query)
      const label = `${query.slice(0, 60)} → ${response.body.slice(0, 200)}`
      if (typeof expected === 'number') {
        expect(response.statusCode, label).toBe(expected)
        expect(response.json().errorCode, label).toEqual(expect.any(String))
      } else {
        expect(response.statusCode, label).toBe(200)
        expect(idsOf(response.json()), label).toEqual([...expected].sort())
        expect(response.json().total, label).toBe(expected.length)
      }
    }
    expect(await snapshot()).toEqual(before)
  })

  it('refuses hostile bodies with a 4xx and leaves the table unchanged', async () => {
    const before = await snapshot()
    const bodies: unknown[] = [
      { email: ['a@b.c'], role: 'viewer' },
      { email: 'x@y.z', role: ['admin'] },
      { email: 'x@y.z', role: 'viewer', name: ['a'] },
      { email: 'x@y.z', role: 'viewer', name: 'n'.repeat(10_000) },
      { email: `${'e'.repeat(10_000)}@example.test`, role: 'viewer' },
      { email: "x'); drop table users; --@y.z", role: "viewer'; --" },
      { email: 'x@y.z', role: 'viewer', tag: "t' or '1'='1" },
      { email: 'x@y.z', role: 'viewer', attributes: ['not', 'an', 'object'] },
      { email: 'x@y.z', role: 'viewer', attributes: { k: 'v'.repeat(10_000) } },
      { email: 'x@y.z', role: 'viewer', secrets: { k: 42 } },
      { email: 'x@y.z', role: 'viewer', secrets: { k: 's'.repeat(10_000) } },
      { email: 'x@y.z', role: 'viewer', secrets: ['a'] },
      { email: 'x@y.z', role: 'viewer', status: 'deleted' },
      { email: 'x@y.z', role: 'viewer', name: 'nul\u0000byte' },
      { email: 'x\u0000@y.z', role: 'viewer' },
      { email: 'x@y.z', role: 'viewer', attributes: { k: 'nul\u0000' } },
      { email: 'x@y.z', role: 'viewer', secrets: { k: 'nul\u0000' } },
      'just a string',
      [1, 2, 3],
      null,
    ]
    for (const payload of bodies) {
      const response = await app.inject({
        method: 'POST',
        url: '/ai/admin/users',
        headers: { ...bearer(admin.accessToken), 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      })
      expect(response.statusCode, `${JSON.stringify(payload).slice(0, 80)} → ${response.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400)
      expect(response.statusCode).toBeLessThan(500)
    }
    const proto = await app.inject({
      method: 'PUT',
      url: `/ai/admin/users/${ids.plain}`,
      headers: { ...bearer(admin.accessToken), 'content-type': 'application/json' },
      payload: '{"attributes":{"__proto__":{"polluted":true}}}',
    })
    expect(proto.statusCode).toBe(400)
    for (const [url, payload] of [
      [`/ai/admin/users/${ids.plain}`, { name: ['x'] }],
      [`/ai/admin/users/${ids.plain}`, { attributes: { k: { a: { b: { c: { d: { e: { f: 1 } } } } } } } }],
      [`/ai/admin/users/${ids.plain}`, { email: 'q'.repeat(10_000) }],
      [`/ai/admin/users/${ids.plain}`, { role: 'owner' }],
      [`/ai/admin/users/${ids.plain}`, { tag: 7 }],
      ['/ai/admin/users/not-a-uuid', { name: 'x' }],
      [`/ai/admin/users/${encodeURIComponent("1' or '1'='1")}`, { name: 'x' }],
    ] as const) {
      const response = await app.inject({ method: 'PUT', url, headers: bearer(admin.accessToken), payload })
      expect(response.statusCode, `${url} ${response.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400)
      expect(response.statusCode).toBeLessThan(500)
    }
    expect(await snapshot()).toEqual(before)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('stores SQL metacharacters and unicode as data, verbatim', async () => {
    const name = `Robert'); DROP TABLE users; -- ${randomUUID().slice(0, 4)} 🚀 ñ`
    const created = await app.inject({
      method: 'POST',
      url: '/ai/admin/users',
      headers: bearer(admin.accessToken),
      payload: { email: `o'brien-${randomUUID().slice(0, 6)}@example.test`, name, role: 'viewer', attributes: { key: "v'al; drop table users" } },
    })
    expect(created.statusCode, created.body).toBe(201)
    expect(created.json()).toMatchObject({ name, attributes: { key: "v'al; drop table users" } })
    const found = await list(`q=${encodeURIComponent("Robert'); DROP")}`)
    expect(found.json().items.map((u: { name: string }) => u.name)).toEqual([name])
  })
})
