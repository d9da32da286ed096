import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
// @ts-expect-error the build script is plain JavaScript without declarations
import { buildDist } from '../scripts/build.mjs'
import { load, machine, type Measurement, startServer, table, writeSection } from './lib.js'

/**
 * `npm run bench:auth`: what authentication costs. The same database-backed read route, public and
 * guarded (embedded-issuer RS256 bearer token, revocation lookup in Redis, permission check), in
 * the same process and run.
 */
const ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0'
const DB_NAME = 'modelplane_bench_auth'
const dbUrl = (() => {
  const u = new URL(ADMIN_URL)
  u.pathname = `/${DB_NAME}`
  return u.toString()
})()
const VAULT_KEYS = `bench:${Buffer.alloc(32, 7).toString('base64')}`
const DURATION = Number(process.env.BENCH_SECONDS ?? 10)

async function admin(sql: string) {
  const client = new pg.Client({ connectionString: ADMIN_URL })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

async function main() {
  await admin(`drop database if exists ${DB_NAME} with (force)`)
  await admin(`create database ${DB_NAME}`)
  await buildDist()
  const credentials = { realm: 'bench', email: 'bench@example.test', password: `pw-${randomUUID()}` }
  const server = await startServer('bench/servers/auth-probe.ts', {
    DATABASE_URL: dbUrl,
    REDIS_URL,
    VAULT_KEYS,
    RATE_LIMIT_MAX: '0',
    BENCH_REALM: credentials.realm,
    BENCH_EMAIL: credentials.email,
    BENCH_PASSWORD: credentials.password,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-auth-')),
  })
  const results: Measurement[] = []
  try {
    const login = await fetch(`${server.url}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: credentials.email, password: credentials.password, tenant: credentials.realm }),
    })
    if (login.status !== 200) throw new Error(`login failed: ${login.status} ${await login.text()}`)
    const { accessToken } = (await login.json()) as { accessToken: string }
    const opts = { connections: 32, durationSeconds: DURATION }
    results.push(await load('public GET /bench/public', `${server.url}/bench/public`, opts))
    results.push(
      await load('authenticated GET /bench/guarded (bearer JWT)', `${server.url}/bench/guarded`, {
        ...opts,
        headers: { authorization: `Bearer ${accessToken}` },
      }),
    )
  } finally {
    await server.stop()
    await admin(`drop database if exists ${DB_NAME} with (force)`)
  }
  const [open, guarded] = results as [Measurement, Measurement]
  const cost = 1 - guarded.requestsPerSecond / open.requestsPerSecond
  const report = `## Authentication cost (\`npm run bench:auth\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}.
autocannon, 32 connections, ${DURATION} s per run after a 2 s warm-up, load generator and server in separate
processes on the same machine. One compiled modelplane process (PostgreSQL and Redis on localhost,
LOG_LEVEL=warn, rate limiting off) serves two identical routes reading 20 tenants: one public, one
guarded by \`workflow:view\` and called with an embedded-issuer RS256 access token (signature check,
revocation lookup in Redis, principal cached in-process, permission check).

${table(results, { 'authenticated GET /bench/guarded (bearer JWT)': 'public GET /bench/public' })}

Authentication costs ${(cost * 100).toFixed(1)}% of throughput (target: under 10%).
`
  writeSection('auth', report)
  process.stdout.write(`${report}\n`)
}

await main()
