import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
// @ts-expect-error the build script is plain JavaScript without declarations
import { buildDist } from '../scripts/build.mjs'
import { compare, cores, machine, type Measurement, ROOT, startServer, table, waitForStatus, writeSection, benchDatabase, BENCH_REDIS_URL, BENCH_VAULT_KEYS, BENCH_SECONDS, BENCH_ROUNDS, loginHeaders } from './lib.js'

/**
 * `npm run bench`: the platform's own overhead. modelplane's GET /healthz and a database-backed
 * list route against a bare Fastify + pg server running the same query, in the same run, then
 * start-up to ready on the embedded database.
 */
const database = benchDatabase('modelplane_bench')
const dbUrl = database.url
const ADMIN_EMAIL = 'bench-admin@example.test'
const OUTBOX_ROWS = 10_000
const ADMIN_PASSWORD = `bench-${Math.random().toString(36).slice(2)}-password`

async function seedOutbox(rows: number) {
  const client = new pg.Client({ connectionString: dbUrl })
  await client.connect()
  try {
    await client.query(
      `insert into outbox_events (topic, payload, source, created_at, delivered_at)
       select 'bench.event', jsonb_build_object('n', g), 'modelplane', now() - g * interval '1 second', now()
       from generate_series(1, $1) g`,
      [rows],
    )
    await client.query('analyze outbox_events')
  } finally {
    await client.end()
  }
}

/** Milliseconds from spawning the process to the first 200 from /readyz. */
async function startupMs(command: string[], dataDir: string): Promise<number> {
  const port = 40_000 + Math.floor(Math.random() * 10_000)
  const started = performance.now()
  const child = spawn(process.execPath, command, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: os.homedir(), PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  })
  try {
    await waitForStatus(`http://127.0.0.1:${port}/readyz`, 200, 60_000)
    return Math.round(performance.now() - started)
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function main() {
  await database.recreate()

  await buildDist()
  const app = await startServer('dist/server.js', {
    DATABASE_URL: dbUrl,
    REDIS_URL: BENCH_REDIS_URL,
    VAULT_KEYS: BENCH_VAULT_KEYS,
    RATE_LIMIT_MAX: '0',
    // One app process, its objects in its own DATA_DIR (the shared-parts rule, src/config.ts).
    SINGLE_REPLICA: 'true',
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-')),
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
  })
  await seedOutbox(OUTBOX_ROWS)
  // The outbox list needs events:view: log in as the first admin, as an operator would.
  const authorization = await loginHeaders(app.url, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD, realm: 'local' })
  const baseline = await startServer('bench/servers/baseline.ts', { DATABASE_URL: dbUrl })

  const results: Measurement[] = []
  try {
    const opts = { connections: 32, durationSeconds: BENCH_SECONDS }
    results.push(
      ...(await compare({ name: 'baseline GET /healthz', url: `${baseline.url}/healthz` }, { name: 'modelplane GET /healthz', url: `${app.url}/healthz` }, opts)),
    )
    results.push(
      ...(await compare(
        { name: 'baseline GET /outbox (page + count)', url: `${baseline.url}/outbox?limit=20` },
        { name: 'modelplane GET /v1/events/outbox', url: `${app.url}/v1/events/outbox?limit=20`, headers: authorization },
        opts,
      )),
    )
  } finally {
    await Promise.all([app.stop(), baseline.stop()])
    await database.drop()
  }

  // Start-up on PGlite: a first start initializes the data folder once; restarts reopen it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-start-'))
  const tsx = ['--import', 'tsx', 'src/server.ts']
  const first = await startupMs(['dist/server.js'], dir)
  const restarts = [await startupMs(tsx, dir), await startupMs(tsx, dir), await startupMs(tsx, dir)]
  const compiled = [
    await startupMs(['dist/server.js'], dir),
    await startupMs(['dist/server.js'], dir),
    await startupMs(['dist/server.js'], dir),
  ]
  fs.rmSync(dir, { recursive: true, force: true })

  const report = `## HTTP platform overhead (\`npm run bench\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${await machine({ redis: true })}.
autocannon, 32 connections, ${BENCH_SECONDS} s per run after a 2 s warm-up, baseline and modelplane in turn ${BENCH_ROUNDS} times\neach (the median run is shown), load generator and server in separate
processes sharing the same ${cores()} cores. modelplane runs with LOG_LEVEL=warn and rate limiting off (one client
address would hit the limit). The outbox table holds ${OUTBOX_ROWS.toLocaleString('en-US')} rows.
The outbox list is called with an admin's bearer token (it needs \`events:view\`), so it includes
authentication. The baseline is bare Fastify + pg with the same query and no auth, validation, envelope or metrics.

${table(results, {
  'modelplane GET /healthz': 'baseline GET /healthz',
  'modelplane GET /v1/events/outbox': 'baseline GET /outbox (page + count)',
})}

Start-up to ready (spawn → first 200 from /readyz) on the embedded database (PGlite):

| case | ms |
|---|---:|
| first start, new data folder (initdb runs once), \`node dist/server.js\` | ${first} |
| restart, existing data folder, \`node dist/server.js\` (what \`npm start\` runs after its build), median of 3 | ${median(compiled)} |
| restart, existing data folder, TypeScript through tsx (\`npm run dev\` without watch), median of 3 | ${median(restarts)} |
`
  writeSection('http', report)
  process.stdout.write(`${report}\n`)
}

await main()
