import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import pg from 'pg'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export interface Measurement {
  name: string
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  errors: number
  non2xx: number
}

export interface Server {
  url: string
  child: ChildProcess
  stop(): Promise<void>
}

/** Starts a server script in its own process (the load generator must not share its event loop). */
export async function startServer(script: string, env: Record<string, string>, readyPath = '/healthz'): Promise<Server> {
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  // Compiled JavaScript runs as is; TypeScript (the baseline) through tsx.
  const args = /\.m?js$/.test(script) ? [script] : ['--import', 'tsx', script]
  // BENCH_PROFILE_DIR=/some/dir writes a CPU profile of every server a benchmark starts.
  if (process.env.BENCH_PROFILE_DIR) args.unshift('--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`)
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  await waitForStatus(`${url}${readyPath}`, 200, 60_000)
  return {
    url,
    child,
    stop: async () => {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await new Promise((resolve) => child.once('exit', resolve))
    },
  }
}

export async function waitForStatus(url: string, status: number, timeoutMs: number): Promise<number> {
  const started = performance.now()
  for (;;) {
    try {
      const res = await fetch(url)
      await res.arrayBuffer()
      if (res.status === status) return performance.now() - started
    } catch {
      // not listening yet
    }
    if (performance.now() - started > timeoutMs) throw new Error(`${url} did not answer ${status} in ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

export interface LoadOptions {
  connections?: number
  durationSeconds?: number
  headers?: Record<string, string>
  /** Called for every request: the part after the URL's path, so that requests differ. */
  pathOf?: () => string
  /** GET unless given; a body is sent as JSON. */
  method?: 'GET' | 'POST'
  body?: unknown
  /** Called for every request: its JSON body, so that requests differ (`body` is the first one's shape). */
  bodyOf?: () => unknown
}

export async function load(
  name: string,
  url: string,
  options: LoadOptions = {},
): Promise<Measurement> {
  // A new path per request when asked for (relative to url's path: "?q=…" or "/…").
  const requests =
    options.pathOf || options.bodyOf
      ? [
          {
            setupRequest: (request: autocannon.Request) => ({
              ...request,
              ...(options.pathOf ? { path: new URL(url).pathname + options.pathOf() } : {}),
              ...(options.bodyOf ? { body: JSON.stringify(options.bodyOf()) } : {}),
            }),
          },
        ]
      : undefined
  const send = options.body === undefined ? { method: options.method ?? 'GET' } : { method: options.method ?? 'POST', body: JSON.stringify(options.body) }
  const headers = options.body === undefined ? options.headers : { 'content-type': 'application/json', ...options.headers }
  // A short warm-up so JIT and pools are hot before the measured run.
  await autocannon({ url, connections: options.connections ?? 32, duration: 2, ...send, headers, requests })
  const result = await autocannon({
    url,
    connections: options.connections ?? 32,
    duration: options.durationSeconds ?? 10,
    ...send,
    headers,
    requests,
  })
  return {
    name,
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  }
}

export const BENCH_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

/**
 * Baseline and candidate loaded in turn, BENCH_ROUNDS times each, so a change in what else the
 * machine is doing hits both alike; each side reports its median run (by requests/s).
 */
export async function compare(
  baseline: Side,
  candidate: Side,
  options: { connections?: number; durationSeconds?: number } = {},
): Promise<[Measurement, Measurement]> {
  const [a, b] = await compareAll([baseline, candidate], options)
  return [a!, b!]
}

export interface Side {
  name: string
  url: string
  headers?: Record<string, string>
  pathOf?: () => string
  method?: 'GET' | 'POST'
  body?: unknown
  bodyOf?: () => unknown
}

/** compare() for any number of sides: each loaded in turn, BENCH_ROUNDS times, median run each. */
export async function compareAll(sides: Side[], options: { connections?: number; durationSeconds?: number } = {}): Promise<Measurement[]> {
  const runs: Measurement[][] = sides.map(() => [])
  for (let round = 0; round < BENCH_ROUNDS; round++) {
    for (const [i, side] of sides.entries()) {
      runs[i]!.push(await load(side.name, side.url, { ...options, headers: side.headers, pathOf: side.pathOf, method: side.method, body: side.body, bodyOf: side.bodyOf }))
    }
  }
  // A run that got errors measured something else (an expired token, say): its numbers are void.
  const failed = runs.flat().find((r) => r.errors > 0 || r.non2xx > 0)
  if (failed) throw new Error(`${failed.name}: ${failed.errors} errors and ${failed.non2xx} non-2xx answers`)
  const median = (side: Measurement[]) => [...side].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor(side.length / 2)]!
  return runs.map(median)
}

/** Cores this process may run on: what the load generator and the servers it starts share. */
export function cores(): number {
  return os.availableParallelism()
}

/** Whether a server URL points at this machine (so it shares the cores with the benchmark). */
function where(url: string): string {
  const { hostname, port } = new URL(url)
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname)
  return local ? `on this machine (${hostname}:${port})` : `at ${hostname}:${port}`
}

/** PostgreSQL's version as the server reports it, e.g. "15.8". */
export async function postgresVersion(url = BENCH_PG_ADMIN_URL): Promise<string> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ server_version: string }>('show server_version')
    return rows[0]!.server_version.split(' ')[0]!
  } finally {
    await client.end()
  }
}

/** Redis's version from INFO server, or "unreachable". */
export async function redisVersion(url = BENCH_REDIS_URL): Promise<string> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown'
  } catch {
    return 'unreachable'
  } finally {
    redis.disconnect()
  }
}

/**
 * The machine and the servers a benchmark ran on, read from the system and the servers themselves
 * (nothing typed in): cores and CPU model, memory, Node, kernel, and PostgreSQL's (and, when the
 * benchmark uses it, Redis's) version and whether it runs on this machine.
 */
export async function machine(options: { redis?: boolean } = {}): Promise<string> {
  const cpus = os.cpus()
  const parts = [
    `${cores()} × ${cpus[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`,
    `PostgreSQL ${await postgresVersion()} ${where(BENCH_PG_ADMIN_URL)}`,
  ]
  if (options.redis) parts.push(`Redis ${await redisVersion()} ${where(BENCH_REDIS_URL)}`)
  return parts.join('; ')
}

export function table(rows: Measurement[], baseline?: Record<string, string>): string {
  return tableVs(rows, { 'vs baseline': baseline ?? {} })
}

/** The results table with one ratio column per named baseline map (run name → its baseline's name). */
export function tableVs(rows: Measurement[], baselines: Record<string, Record<string, string>>): string {
  const headers = Object.keys(baselines)
  const lines = [
    `| run | req/s | p50 ms | p99 ms | errors | non-2xx | ${headers.join(' | ')} |`,
    `|---|---:|---:|---:|---:|---:|${headers.map(() => '---:').join('|')}|`,
  ]
  const byName = new Map(rows.map((r) => [r.name, r]))
  for (const r of rows) {
    const ratios = headers.map((h) => {
      const base = baselines[h]![r.name] ? byName.get(baselines[h]![r.name]!) : undefined
      return base ? `${(r.requestsPerSecond / base.requestsPerSecond).toFixed(2)}×` : '—'
    })
    lines.push(`| ${r.name} | ${r.requestsPerSecond} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} | ${r.non2xx} | ${ratios.join(' | ')} |`)
  }
  return lines.join('\n')
}

/** Replaces the section between the markers in bench/RESULTS.md, keeping the other benchmarks' sections. */
export function writeSection(id: string, body: string): void {
  const file = path.join(ROOT, 'bench', 'RESULTS.md')
  const start = `<!-- ${id}:start -->`
  const end = `<!-- ${id}:end -->`
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n\nEach section is rewritten by its benchmark; numbers are from the machine and date it names.\n'
  const block = `${start}\n${body.trim()}\n${end}`
  const at = text.indexOf(start)
  const until = text.indexOf(end)
  text = at >= 0 && until > at ? text.slice(0, at) + block + text.slice(until + end.length) : `${text.trimEnd()}\n\n${block}\n`
  fs.writeFileSync(file, text)
}

/** Where the benchmarks find PostgreSQL and Redis (the same servers the tests use, by default). */
export const BENCH_PG_ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0'
/** A fixed key ring for benchmark servers only. */
export const BENCH_VAULT_KEYS = `bench:${Buffer.alloc(32, 7).toString('base64')}`
export const BENCH_SECONDS = Number(process.env.BENCH_SECONDS ?? 10)

/** A database of its own for one benchmark, dropped and created again on each run. */
export function benchDatabase(name: string) {
  const url = new URL(BENCH_PG_ADMIN_URL)
  url.pathname = `/${name}`
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: BENCH_PG_ADMIN_URL })
    await client.connect()
    try {
      await client.query(statement)
    } finally {
      await client.end()
    }
  }
  return {
    url: url.toString(),
    recreate: async () => {
      await admin(`drop database if exists ${name} with (force)`)
      await admin(`create database ${name}`)
    },
    drop: () => admin(`drop database if exists ${name} with (force)`),
    /**
     * Writes every dirty buffer now. Dropping a database forces a checkpoint that PostgreSQL spreads
     * over minutes; a measurement started meanwhile shares the disk with it (seen here: the second of
     * two back-to-back workflow runs at half the throughput of the first). Needs superuser or
     * pg_checkpoint; skipped with a warning otherwise.
     */
    settle: () =>
      admin('checkpoint').catch((err: unknown) => {
        console.warn(`checkpoint before measuring refused (${err instanceof Error ? err.message : String(err)})`)
      }),
  }
}

/** Logs in through the embedded issuer and returns the Authorization header to load a guarded route with. */
export async function loginHeaders(
  baseUrl: string,
  credentials: { email: string; password: string; realm: string },
): Promise<{ authorization: string }> {
  const response = await fetch(`${baseUrl}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: credentials.email, password: credentials.password, tenant: credentials.realm }),
  })
  if (response.status !== 200) throw new Error(`bench login failed: ${response.status} ${await response.text()}`)
  const { accessToken } = (await response.json()) as { accessToken: string }
  return { authorization: `Bearer ${accessToken}` }
}
