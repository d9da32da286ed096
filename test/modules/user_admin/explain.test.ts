import type { FastifyInstance } from 'fastify'
import { fillPlaceholders, sql } from 'drizzle-orm'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uniqueRealm } from '../../helpers/auth.js'
import { buildTestApp } from '../../helpers/app.js'
import { nodesOf } from '../../helpers/plans.js'
import { listUsersQueries, type UserListFilter, type UserSortField, type UserStatus } from '../../../src/modules/user_admin/crud.js'

/**
 * Every filter and sort combination of GET /ai/admin/users is served by an index: on 100,000 users
 * in 10 tenants, EXPLAIN of the exact statements the endpoint runs (the page and the capped count,
 * from the same builder) shows no sequential scan of `users`. The endpoint runs them as named
 * prepared statements, so both plans PostgreSQL may choose are checked: the custom plan of the
 * first executions and the generic plan it may settle on.
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

const seqScansOfUsers = (plan: unknown) => nodesOf(plan).filter((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'users')

let statementCounter = 0

/** The custom and the generic plan of a statement, prepared in SQL the way the endpoint prepares it over the protocol. */
async function plansOf(client: pg.PoolClient, query: { toSQL(): { sql: string; params: unknown[] } }, values: Record<string, unknown>) {
  const { sql: text, params } = query.toSQL()
  const name = `explain_${++statementCounter}`
  await client.query(`prepare ${name} as ${text}`)
  // EXECUTE inside EXPLAIN takes no protocol parameters: the values go in as quoted literals.
  const args = fillPlaceholders(params, values)
    .map((v) => client.escapeLiteral(v instanceof Date ? v.toISOString() : String(v)))
    .join(', ')
  const plans: Record<'custom' | 'generic', unknown> = { custom: undefined, generic: undefined }
  for (const mode of ['custom', 'generic'] as const) {
    await client.query(`set plan_cache_mode = force_${mode}_plan`)
    const { rows } = await client.query(`explain (format json) execute ${name}(${args})`)
    plans[mode] = rows[0]['QUERY PLAN']
  }
  await client.query(`deallocate ${name}`)
  await client.query('reset plan_cache_mode')
  return plans
}

describe('indexes', () => {
  it('serves every filter and sort combination (page and total) without a sequential scan of users', async () => {
    const client = await app.platform.database.pool!.connect()
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
    try {
      for (let mask = 0; mask < 1 << keys.length; mask++) {
        const chosen = Object.fromEntries(keys.filter((_, i) => mask & (1 << i)).map((k) => [k, optional[k]]))
        for (const status of statuses) {
          for (const field of sorts) {
            for (const direction of ['asc', 'desc'] as const) {
              for (const offset of [0, 2_000]) {
                const filter: UserListFilter = { tenantId, ...chosen, status, sort: { field, direction }, limit: 20, offset }
                const { page, total, values } = listUsersQueries(app.platform.database.db, filter)
                for (const [what, query] of [['page', page], ['total', total]] as const) {
                  const plans = await plansOf(client, query, values)
                  for (const mode of ['custom', 'generic'] as const) {
                    checked++
                    if (seqScansOfUsers(plans[mode]).length > 0) {
                      failures.push(`${what} (${mode} plan) ${JSON.stringify({ ...chosen, status, field, direction, offset })}`)
                    }
                  }
                }
              }
            }
          }
        }
      }
    } finally {
      client.release()
    }
    expect(checked).toBe(64 * 5 * 3 * 2 * 2 * 2 * 2)
    expect(failures.slice(0, 20), `${failures.length} statements scan users sequentially`).toEqual([])
  }, 600_000)

  it('reads the default listing (live users, newest first) in index order and counts it from the index alone', async () => {
    const client = await app.platform.database.pool!.connect()
    try {
      const filter: UserListFilter = { tenantId, sort: { field: 'createdAt', direction: 'desc' }, limit: 20, offset: 0 }
      const { page, total, values } = listUsersQueries(app.platform.database.db, filter)
      const pagePlans = await plansOf(client, page, values)
      const totalPlans = await plansOf(client, total, values)
      for (const mode of ['custom', 'generic'] as const) {
        // No Sort node: the page stops after 20 index entries instead of sorting every live user.
        const withoutSubplans = { subplans: false }
        expect(nodesOf(pagePlans[mode], withoutSubplans).map((n) => n['Node Type'])).not.toContain('Sort')
        expect(nodesOf(totalPlans[mode], withoutSubplans).map((n) => n['Node Type'])).not.toContain('Sort')
        const scan = nodesOf(totalPlans[mode]).find((n) => n['Relation Name'] === 'users')
        expect(scan?.['Node Type'], mode).toBe('Index Only Scan')
        expect(scan?.['Index Name']).toBe('users_tenant_live_created_at_idx')
      }
    } finally {
      client.release()
    }
  })
})
