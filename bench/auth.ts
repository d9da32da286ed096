import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
// @ts-expect-error the build script is plain JavaScript without declarations
import { buildDist } from '../scripts/build.mjs'
import { compare, cores, machine, type Measurement, startServer, table, writeSection, benchDatabase, BENCH_REDIS_URL, BENCH_VAULT_KEYS, BENCH_SECONDS, BENCH_ROUNDS, loginHeaders } from './lib.js'

/**
 * `npm run bench:auth`: what authentication costs. The same database-backed read route, public and
 * guarded (embedded-issuer RS256 bearer token, revocation lookup in Redis, permission check), in
 * the same process and run.
 */
const database = benchDatabase('modelplane_bench_auth')
const dbUrl = database.url

async function main() {
  await database.recreate()
  await buildDist()
  const credentials = { realm: 'bench', email: 'bench@example.test', password: `pw-${randomUUID()}` }
  const server = await startServer('bench/servers/auth-probe.ts', {
    DATABASE_URL: dbUrl,
    REDIS_URL: BENCH_REDIS_URL,
    VAULT_KEYS: BENCH_VAULT_KEYS,
    RATE_LIMIT_MAX: '0',
    // One app process, its objects in its own DATA_DIR (the shared-parts rule, src/config.ts).
    SINGLE_REPLICA: 'true',
    BENCH_REALM: credentials.realm,
    BENCH_EMAIL: credentials.email,
    BENCH_PASSWORD: credentials.password,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-auth-')),
  })
  const results: Measurement[] = []
  try {
    const authorization = await loginHeaders(server.url, credentials)
    const opts = { connections: 32, durationSeconds: BENCH_SECONDS }
    results.push(
      ...(await compare(
        { name: 'public GET /bench/public', url: `${server.url}/bench/public` },
        { name: 'authenticated GET /bench/guarded (bearer JWT)', url: `${server.url}/bench/guarded`, headers: authorization },
        opts,
      )),
    )
  } finally {
    await server.stop()
    await database.drop()
  }
  const [open, guarded] = results as [Measurement, Measurement]
  const cost = 1 - guarded.requestsPerSecond / open.requestsPerSecond
  const report = `## Authentication cost (\`npm run bench:auth\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${await machine({ redis: true })}.
autocannon, 32 connections, ${BENCH_SECONDS} s per run after a 2 s warm-up, public and guarded in turn ${BENCH_ROUNDS} times\neach (the median run is shown), load generator and server in separate
processes sharing the same ${cores()} cores. One compiled modelplane process (LOG_LEVEL=warn, rate
limiting off) serves two identical routes reading 20 tenants: one public, one
guarded by \`workflow:view\` and called with an embedded-issuer RS256 access token (signature check,
revocation lookup in Redis, principal cached in-process, permission check).

${table(results, { 'authenticated GET /bench/guarded (bearer JWT)': 'public GET /bench/public' })}

Authentication costs ${(cost * 100).toFixed(1)}% of throughput (target: under 10%).
`
  writeSection('auth', report)
  process.stdout.write(`${report}\n`)
}

await main()
