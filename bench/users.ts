import { execSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
// @ts-expect-error the build script is plain JavaScript without declarations
import { buildDist } from '../scripts/build.mjs'
import { compareAll, cores, machine, type Measurement, type Side, startServer, tableVs, writeSection, benchDatabase, BENCH_REDIS_URL, BENCH_VAULT_KEYS, BENCH_SECONDS, BENCH_ROUNDS, loginHeaders } from './lib.js'

/**
 * `npm run bench:users`: GET /ai/admin/users on 100,000 users in 10 tenants, with auth (embedded
 * issuer bearer token), validation and the capped, remembered total, beside two bare Fastify + pg
 * baselines in the same run: one running the same statements modelplane runs (same columns, capped
 * count) on every request, and the naive one (select *, a full count(*)). The first ratio is what
 * modelplane's layers and its remembered total cost or save against the same SQL; the second adds
 * what the capped count and the column list change.
 */
const database = benchDatabase('modelplane_bench_users')
const dbUrl = database.url
const USERS = 100_000
const TENANTS = 10
/** What the seed made, counted from the table for the report. */
let seeded = { users: 0, tenant: 0, roles: 0, statuses: 0, tagged: 0 }
const CONNECTIONS = 32

/** 10 tenants (the bench realm among them) sharing 100,000 users, in one statement; returns the bench tenant's id and one of its users. */
async function seed(realm: string): Promise<{ tenantId: string; userId: string }> {
  const client = new pg.Client({ connectionString: dbUrl })
  await client.connect()
  try {
    await client.query(
      `insert into tenants (realm, display_name) select 'bench-other-' || g, 'other ' || g from generate_series(1, $1) g`,
      [TENANTS - 1],
    )
    const { rows: tenants } = await client.query<{ id: string; realm: string }>(
      `select id, realm from tenants where realm = $1 or realm like 'bench-other-%' order by realm`,
      [realm],
    )
    await client.query(
      `insert into users (tenant_id, auth_id, email, name, role, status, tag, attributes, created_at)
       select ($1::uuid[])[1 + g % $2], 'seed-' || g,
              'user' || g || '@' || (array['acme.test','example.org','corp.test'])[1 + g % 3],
              (array['Ada','Grace','Alan','Linus','Barbara','Ken','Margaret','Dennis'])[1 + g % 8] || ' ' ||
                (array['Lovelace','Hopper','Turing','Torvalds','Liskov','Thompson','Hamilton','Ritchie'])[1 + (g / 8) % 8] || ' ' || g,
              (array['viewer','developer','devops','tester','admin'])[1 + (g / 10) % 5],
              case when g % 50 = 0 then 'deleted' when g % 17 = 0 then 'disabled' when g % 7 = 0 then 'invited' else 'active' end,
              case when g % 3 = 0 then 'tag-' || g end,
              jsonb_build_object('team', 'team-' || (g % 20), 'n', g),
              now() - g * interval '1 minute'
       from generate_series(1, $3) g`,
      [`{${tenants.map((t) => t.id).join(',')}}`, TENANTS, USERS],
    )
    await client.query('vacuum analyze users')
    const tenantId = tenants.find((t) => t.realm === realm)!.id
    const { rows: shape } = await client.query<{ users: number; tenant: number; roles: number; statuses: number; tagged: number }>(
      `select count(*)::int as users, count(*) filter (where tenant_id = $1)::int as tenant, count(distinct role)::int as roles,
              count(distinct status)::int as statuses, avg((tag is not null)::int)::float as tagged
         from users where auth_id like 'seed-%'`,
      [tenantId],
    )
    seeded = shape[0]!
    const { rows } = await client.query<{ id: string }>(
      "select id from users where tenant_id = $1 and status = 'active' and auth_id like 'seed-%' order by created_at desc offset 500 limit 1",
      [tenantId],
    )
    return { tenantId, userId: rows[0]!.id }
  } finally {
    await client.end()
  }
}

async function main() {
  const loadBefore = os.loadavg()
  await database.recreate()
  await buildDist()
  const credentials = { realm: 'bench', email: 'bench-admin@example.test', password: `pw-${randomUUID()}` }
  const common = { DATABASE_URL: dbUrl, DATABASE_POOL_MAX: '20' }
  const app = await startServer('bench/servers/users-app.mjs', {
    ...common,
    REDIS_URL: BENCH_REDIS_URL,
    VAULT_KEYS: BENCH_VAULT_KEYS,
    RATE_LIMIT_MAX: '0',
    // One app process, its objects in its own DATA_DIR (the shared-parts rule, src/config.ts).
    SINGLE_REPLICA: 'true',
    BENCH_REALM: credentials.realm,
    BENCH_EMAIL: credentials.email,
    BENCH_PASSWORD: credentials.password,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-users-')),
  })
  const results: Measurement[] = []
  let baseline: Awaited<ReturnType<typeof startServer>> | undefined
  try {
    const { tenantId, userId } = await seed(credentials.realm)
    baseline = await startServer('bench/servers/users-baseline.ts', { ...common, BENCH_TENANT_ID: tenantId })
    // Access tokens live minutes; a scenario logs in afresh so that none expires while it runs.
    let auth = await loginHeaders(app.url, credentials)
    const opts = { connections: CONNECTIONS, durationSeconds: BENCH_SECONDS }
    // The three sides of every scenario: modelplane and the two baselines (see the report).
    const sides = (name: string, query: string, auth: Record<string, string>, pathOf?: () => string): Side[] => [
      { name: `naive baseline ${name}`, url: `${baseline!.url}/users${query}`, pathOf },
      { name: `same-work baseline ${name}`, url: `${baseline!.url}/users-same-work${query}`, pathOf },
      { name: `modelplane ${name}`, url: `${app.url}/ai/admin/users${query}`, headers: auth, pathOf },
    ]
    const scenarios = [
      { name: 'filtered page', query: 'status=active&role=developer&sort=name:asc&page=3&limit=20' },
      { name: 'default page', query: 'page=1&limit=20' },
      { name: 'search q', query: 'q=lovelace&sort=createdAt:desc&limit=20' },
    ]
    // BENCH_ONLY=<regex> runs the matching scenarios only and prints without writing RESULTS.md.
    const only = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined
    for (const s of scenarios) {
      if (only && !only.test(s.name)) continue
      auth = await loginHeaders(app.url, credentials)
      const check = await fetch(`${app.url}/ai/admin/users?${s.query}`, { headers: auth })
      if (check.status !== 200) throw new Error(`${s.name}: ${check.status} ${await check.text()}`)
      const same = await fetch(`${baseline.url}/users-same-work?${s.query}`)
      if (same.status !== 200) throw new Error(`same-work baseline ${s.name}: ${same.status} ${await same.text()}`)
      results.push(...(await compareAll(sides(s.name, `?${s.query}`, auth), opts)))
    }
    // A term never asked for before on every request: no total is known, every count is made.
    if (!only || only.test('search, a new term each request')) {
      auth = await loginHeaders(app.url, credentials)
      let term = 10_000
      const pathOf = () => `?q=${term++ % 90_000 + 10_000}&sort=createdAt:desc&limit=20`
      results.push(...(await compareAll(sides('search, a new term each request', '', auth, pathOf), opts)))
    }
    if (!only || only.test('read by id')) {
      auth = await loginHeaders(app.url, credentials)
      results.push(...(await compareAll(sides('read by id', `/${userId}`, auth), opts)))
    }
  } finally {
    await baseline?.stop()
    await app.stop()
    if (!process.env.BENCH_KEEP_DB) await database.drop()
  }
  const loadAfter = os.loadavg()
  const others = (() => {
    try {
      return execSync("ps -eo pcpu,comm --sort=-pcpu | awk 'NR>1 && $1>20 {print $2\" \"$1\"%\"}' | head -5", { encoding: 'utf8' })
        .trim()
        .split('\n')
        .filter(Boolean)
        .join(', ')
    } catch {
      return 'unknown'
    }
  })()
  const against = (prefix: string) =>
    Object.fromEntries(
      results
        .filter((r) => r.name.startsWith('modelplane ') || (prefix === 'naive' && r.name.startsWith('same-work ')))
        .map((r) => [r.name, r.name.replace(/^(modelplane|same-work baseline) /, `${prefix} baseline `)]),
    )
  const report = `## User administration (\`npm run bench:users\`)

Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${await machine({ redis: true })}.
Load average before the run ${loadBefore.map((l) => l.toFixed(2)).join(' / ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' / ')}
(1/5/15 min)${loadBefore[0]! > 0.5 ? ': **the machine was not idle** (other work was running), so absolute numbers are low and noisy; the ratio is what to read' : ''}.
Busy processes at the end: ${others || 'none above 20% CPU'}.

${seeded.users.toLocaleString('en-US')} users in ${TENANTS} tenants (${seeded.tenant.toLocaleString('en-US')} in the bench tenant; ${seeded.roles} roles, ${seeded.statuses} statuses,
${Math.round(seeded.tagged * 100)}% tagged), seeded in one INSERT … SELECT and VACUUM ANALYZEd. autocannon, ${CONNECTIONS} connections,
${BENCH_SECONDS} s per run after a 2 s warm-up; the three sides loaded in turn ${BENCH_ROUNDS} times each, each row the
median run by requests/s. Load generator and servers share the same ${cores()} cores (the database is where the line above says); pools of ${common.DATABASE_POOL_MAX}.

Three sides per scenario:
- **modelplane**: the compiled app as \`npm start\` runs it (LOG_LEVEL=warn, rate limiting off), called with an
  embedded-issuer bearer token (signature check, revocation, permission), TypeBox validation, the
  AiUser serializer, ETag, metrics and security headers. Its list statements are named prepared
  statements, one per filter shape (substring searches excepted: they are planned for their term),
  read in index order; the total is counted to page end + 1,000 at most and then **kept in the process**
  until a user of the tenant changes (a trigger NOTIFYs every replica), so a repeated query counts once.
- **same-work baseline**: bare Fastify + pg running modelplane's statements on every request: the same
  columns, order and LIKE escaping, the total counted to page end + 1,000 at most; no auth, no
  validation, nothing kept between requests. modelplane against it is the cost of its layers, less
  what the kept total saves.
- **naive baseline**: bare Fastify + pg with the naive queries: the same filter, \`select *\`,
  \`ORDER BY … LIMIT/OFFSET\` and a full \`count(*)\` on every request. Its ratio mostly measures the
  capped and kept total, not the request path.

Scenarios: filtered page = \`status=active&role=developer&sort=name:asc&page=3\`; default page =
\`page=1\` (all non-deleted users, newest first); search q = \`q=lovelace\` (substring of name or email,
trigram index; the same term on every request, so modelplane knows its total after the first); search, a new
term each request = \`q=<a five-digit number never asked before>\` (no total is known: modelplane counts
on every request, as the same-work baseline does); read by id = one user of the tenant.

${tableVs(results, { 'vs same-work baseline': against('same-work'), 'vs naive baseline': against('naive') })}
`
  if (!process.env.BENCH_ONLY) writeSection('users', report)
  process.stdout.write(`${report}\n`)
}

await main()
