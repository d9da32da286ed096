import type { FastifyInstance } from 'fastify'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'
import { listUsersQueries, type UserListFilter, type UserSortField, type UserStatus } from '../../../src/modules/user_admin/crud.js'

/**
 * Every filter and sort combination of GET /ai/admin/users is served by an index: on 100,000 users
 * in 10 tenants, EXPLAIN of the exact statements the endpoint runs (the page and the capped count,
 * from the same builder) shows no sequential scan of `users`.
 */
let app: FastifyInstance
let tenantId: string
const TENANTS = 10
const USERS = 100_000

beforeAll(async () => {
  app = await buildTestApp()
  const db = app.platform.database.db
  const prefix = uniqueRealm('ex')
  const tenants = await db.execute(sql`
    insert into tenants (realm, display_name)
    select ${prefix} || '-' || g, 'explain ' || g from generate_series(1, ${TENANTS}) g
    returning id`)
  const ids = tenants.rows.map((r) => (r as { id: string }).id)
  tenantId = ids[3]!
  await db.execute(sql`
    insert into users (tenant_id, auth_id, email, name, role, status, tag, attributes, created_at)
    select (${`{${ids.join(",")}}`}::uuid[])[1 + g % ${TENANTS}],
           'seed-' || g,
           'user' || g || '@' || (array['acme.test','example.org','corp.test'])[1 + g % 3],
           (array['Ada','Grace','Alan','Linus','Barbara','Ken','Margaret','Dennis'])[1 + g % 8] || ' ' ||
             (array['Lovelace','Hopper','Turing','Torvalds','Liskov','Thompson','Hamilton','Ritchie'])[1 + (g / 8) % 8] || ' ' || g,
           (array['viewer','developer','devops','tester','admin'])[1 + (g / 10) % 5],
           case when g % 50 = 0 then 'deleted' when g % 17 = 0 then 'disabled' when g % 7 = 0 then 'invited' else 'active' end,
           case when g % 3 = 0 then 'tag-' || g end,
           jsonb_build_object('n', g),
           now() - g * interval '1 minute'
    from generate_series(1, ${USERS}) g`)
  await db.execute(sql`analyze users`)
}, 120_000)

afterAll(() => app.close())

function seqScansOfUsers(plan: unknown): string[] {
  const found: string[] = []
  const walk = (node: Record<string, unknown>) => {
    if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'users') found.push(String(node['Filter'] ?? ''))
    for (const child of (node.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child)
  }
  walk((plan as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan)
  return found
}

describe('indexes', () => {
  it('serves every filter and sort combination (page and total) without a sequential scan of users', async () => {
    const pool = app.platform.database.pool!
    const statuses: Array<UserStatus | undefined> = [undefined, 'active', 'invited', 'disabled', 'deleted']
    const sorts: UserSortField[] = ['createdAt', 'name', 'email']
    const optional = {
      q: 'lovelace 12',
      email: 'user1203@corp.test',
      role: 'developer',
      tag: 'tag-1203',
      createdFrom: new Date(Date.now() - 30 * 86_400_000),
      createdTo: new Date(Date.now() - 86_400_000),
    }
    const keys = Object.keys(optional) as Array<keyof typeof optional>
    const failures: string[] = []
    let checked = 0
    for (let mask = 0; mask < 1 << keys.length; mask++) {
      const chosen = Object.fromEntries(keys.filter((_, i) => mask & (1 << i)).map((k) => [k, optional[k]]))
      for (const status of statuses) {
        for (const field of sorts) {
          for (const direction of ['asc', 'desc'] as const) {
            for (const offset of [0, 2_000]) {
              const filter: UserListFilter = { tenantId, ...chosen, status, sort: { field, direction }, limit: 20, offset }
              const { page, total } = listUsersQueries(app.platform.database.db, filter)
              for (const [what, query] of [['page', page], ['total', total]] as const) {
                const { sql: text, params } = query.toSQL()
                const { rows } = await pool.query(`explain (format json) ${text}`, params)
                const scans = seqScansOfUsers(rows[0]['QUERY PLAN'])
                checked++
                if (scans.length > 0) failures.push(`${what} ${JSON.stringify({ ...chosen, status, field, direction, offset })}`)
              }
            }
          }
        }
      }
    }
    expect(checked).toBe(64 * 5 * 3 * 2 * 2 * 2)
    expect(failures.slice(0, 20), `${failures.length} statements scan users sequentially`).toEqual([])
  }, 300_000)
})
