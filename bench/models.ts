import { execFile, execSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Client as Minio } from 'minio'
import pg from 'pg'
import pino from 'pino'
import { insertModel, type NewModel } from '../src/modules/model_ops/crud.js'
import { openDatabase } from '../src/platform/db/client.js'
import { configJson, type HubStandIn, startHubStandIn } from '../test/helpers/hub/index.js'
import { type SigV4Gateway, startSigV4Gateway } from '../test/helpers/s3-gateway.js'
// @ts-expect-error the build script is plain JavaScript without declarations
import { buildDist } from '../scripts/build.mjs'
import {
  benchDatabase,
  BENCH_REDIS_URL,
  BENCH_ROUNDS,
  BENCH_SECONDS,
  BENCH_VAULT_KEYS,
  compareAll,
  cores,
  loginHeaders,
  machine,
  type Measurement,
  ROOT,
  type Server,
  startServer,
  tableVs,
  writeSection,
} from './lib.js'

/**
 * `npm run bench:models`, two measurements of model_ops:
 *
 * 1. A hub import of one large generated LFS file (2 GiB) plus config.json, from the hub stand-in
 *    (test/helpers/hub, in this process) into S3 (s3rver behind the SigV4 gateway, in this process)
 *    and into the filesystem store, by the compiled app in a child process: POST /v1/models/import
 *    → the run completed. Beside it, in the same run and just before it, a plain copy of the same
 *    bytes from the same stand-in into the same store (bench/servers/models-copy.ts, a child process
 *    too). The app's RSS is sampled from /proc/<pid>/status.
 * 2. GET /v1/models (default page, a filtered page) and GET /v1/models/facets over 10,000 models
 *    written through model_ops' crud, beside a bare Fastify + pg baseline running the same SQL.
 *
 * BENCH_MODELS_QUICK=1: a 128 MiB file and 1,000 models (a quick check; RESULTS.md is left alone).
 * BENCH_MODEL_MB and BENCH_MODELS override either size. BENCH_ONLY=import or BENCH_ONLY=catalog runs
 * one part (and rewrites only its section of RESULTS.md): the catalog alone takes minutes, not the
 * 2 GiB hashing and copies.
 */
const QUICK = process.env.BENCH_MODELS_QUICK === '1'
const ONLY = process.env.BENCH_ONLY
if (ONLY && ONLY !== 'import' && ONLY !== 'catalog') throw new Error(`BENCH_ONLY is import or catalog, not ${ONLY}`)
const RUN_IMPORT = ONLY !== 'catalog'
const RUN_CATALOG = ONLY !== 'import'
const MiB = 1024 * 1024
const FILE_BYTES = Number(process.env.BENCH_MODEL_MB ?? (QUICK ? 128 : 2048)) * MiB
const MODELS = Number(process.env.BENCH_MODELS ?? (QUICK ? 1_000 : 10_000))
const CONNECTIONS = 32
const DEFAULT_PART_MB = 16
const LARGER_PART_MB = 256
const IMPORT_TIMEOUT_MS = 30 * 60_000
const BUCKET = 'modelplane-bench'
const REPO = 'bench/big-model'
const BIG_FILE = 'model.safetensors'
const S3_KEYS = { S3_ACCESS_KEY: 'S3RVER', S3_SECRET_KEY: 'S3RVER', S3_BUCKET: BUCKET, S3_REGION: 'us-east-1' }
const run = promisify(execFile)

// ---- the app's process, seen from outside ---------------------------------------------------

function memoryOf(pid: number): { rssMb: number; hwmMb: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0)
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 }
}

const TICKS = Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100

/** User + system CPU seconds the process has used (all its threads). */
function cpuSecondsOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS
}

/** JSON text with every object's keys sorted: two answers that differ only in key order compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  )
}

const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// ---- the object stores ------------------------------------------------------------------------

interface S3StandIn {
  endpoint: string
  client: Minio
  /** Removes every object of the bucket (so one run's 2 GiB does not stay on disk for the next). */
  empty(): Promise<void>
  close(): Promise<void>
}

async function startS3(): Promise<S3StandIn> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-models-s3-'))
  const S3rver = createRequire(import.meta.url)('s3rver') as new (o: Record<string, unknown>) => { run(): Promise<{ port: number }>; close(): Promise<void> }
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir })
  const { port } = await server.run()
  const gateway: SigV4Gateway = await startSigV4Gateway({ upstream: `http://127.0.0.1:${port}`, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1' })
  const url = new URL(gateway.url)
  const client = new Minio({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1', pathStyle: true })
  await client.makeBucket(BUCKET, 'us-east-1')
  return {
    endpoint: gateway.url,
    client,
    async empty() {
      const keys: string[] = []
      for await (const item of client.listObjectsV2(BUCKET, '', true)) if (item.name) keys.push(item.name)
      for (const key of keys) await client.removeObject(BUCKET, key)
    },
    async close() {
      await gateway.close()
      await server.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

// ---- part 1: the import -----------------------------------------------------------------------

interface Transfer {
  label: string
  store: 's3' | 'filesystem'
  kind: 'copy' | 'import'
  partMb?: number
  ms: number
  mbPerSecond: number
  /** Import only. */
  idleRssMb?: number
  peakRssMb?: number
  cpuSeconds?: number
  /** From POST to the ledger counting every byte of the big file stored (its parts, for a parted file). */
  fetchedMs?: number
  hubBytes?: number
  steps?: Array<{ message: string; ms: number }>
}

const mbps = (bytes: number, ms: number) => bytes / MiB / (ms / 1000)

async function plainCopy(hub: HubStandIn, store: 's3' | 'filesystem', s3: S3StandIn, label: string): Promise<Transfer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-models-copy-'))
  try {
    const env = {
      ...process.env,
      COPY_URL: `${hub.url}/${REPO}/resolve/main/${BIG_FILE}`,
      COPY_TO: store === 's3' ? 's3' : 'file',
      COPY_KEY: `copies/${randomUUID()}`,
      COPY_FILE: path.join(dir, 'copy.bin'),
      S3_ENDPOINT: s3.endpoint,
      ...S3_KEYS,
    }
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/servers/models-copy.ts'], { cwd: ROOT, env, maxBuffer: 1 << 20 })
    const { ms, bytes } = JSON.parse(stdout.trim().split('\n').pop()!) as { ms: number; bytes: number }
    if (bytes !== FILE_BYTES) throw new Error(`the copy moved ${bytes} bytes of ${FILE_BYTES}`)
    return { label, store, kind: 'copy', ms, mbPerSecond: mbps(bytes, ms) }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
    if (store === 's3') await s3.empty()
  }
}

interface RunView {
  status: string
  error: { code: string; message: string } | null
  steps?: Array<{ message: string; startedAt: string; finishedAt: string | null }>
}

async function importOnce(
  app: Server,
  auth: { authorization: string },
  db: pg.Client,
  hub: HubStandIn,
  store: 's3' | 'filesystem',
  partMb: number,
  label: string,
): Promise<Transfer> {
  const pid = app.child.pid!
  await idle(2_000)
  const idleRssMb = memoryOf(pid).rssMb
  let peak = idleRssMb
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, memoryOf(pid).rssMb)
    } catch {
      // the process went away; the wait below notices
    }
  }, 100)
  const cpuBefore = cpuSecondsOf(pid)
  const hubBefore = hub.stats.bytesServed(BIG_FILE)
  try {
    const started = performance.now()
    const answer = await fetch(`${app.url}/v1/models/import`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'hub', repo: REPO, name: `big-${label.replace(/[^a-z0-9]+/gi, '-')}-${randomUUID().slice(0, 8)}` }),
    })
    if (answer.status !== 202) throw new Error(`import ${label}: ${answer.status} ${await answer.text()}`)
    const { workflowId, versionId } = (await answer.json()) as { workflowId: string; versionId: string }
    let fetchedMs: number | undefined
    for (;;) {
      const view = (await (await fetch(`${app.url}/v1/workflows/${workflowId}`, { headers: auth })).json()) as RunView
      if (view.status === 'completed') {
        const ms = performance.now() - started
        const steps = (view.steps ?? []).map((s) => ({ message: s.message, ms: s.finishedAt ? Date.parse(s.finishedAt) - Date.parse(s.startedAt) : NaN }))
        return {
          label,
          store,
          kind: 'import',
          partMb,
          ms,
          mbPerSecond: mbps(FILE_BYTES, ms),
          idleRssMb,
          peakRssMb: peak,
          cpuSeconds: cpuSecondsOf(pid) - cpuBefore,
          fetchedMs,
          hubBytes: hub.stats.bytesServed(BIG_FILE) - hubBefore,
          steps,
        }
      }
      if (['failed', 'cancelled'].includes(view.status)) throw new Error(`import ${label}: ${view.status} ${JSON.stringify(view.error)}`)
      if (performance.now() - started > IMPORT_TIMEOUT_MS) throw new Error(`import ${label}: not done in ${IMPORT_TIMEOUT_MS} ms`)
      if (fetchedMs === undefined) {
        const { rows } = await db.query<{ done: string }>('select bytes_done as done from model_version_files where version_id = $1 and path = $2', [versionId, BIG_FILE])
        if (rows[0] && Number(rows[0].done) >= FILE_BYTES) fetchedMs = performance.now() - started
      }
      await idle(100)
    }
  } finally {
    clearInterval(sampler)
  }
}

// ---- part 2: the catalog ----------------------------------------------------------------------

const SOURCES = ['hub', 'hub', 'hub', 'upload', 'url', 'cloud'] as const
const TASKS = ['text-generation', 'text-classification', 'token-classification', 'feature-extraction', 'image-classification', 'automatic-speech-recognition', 'text-to-image', 'translation', 'summarization', 'question-answering']
const MODALITIES: Record<string, string[]> = {
  'image-classification': ['image'],
  'automatic-speech-recognition': ['audio', 'text'],
  'text-to-image': ['text', 'image'],
}
const FORMATS = ['safetensors', 'safetensors', 'gguf', 'pytorch', 'onnx', 'other']
const LICENSES = ['apache-2.0', 'mit', 'llama3.1', 'gemma', 'cc-by-4.0', 'cc-by-nc-4.0', 'openrail', 'other']
const TAGS = Array.from({ length: 40 }, (_, i) => `tag-${String(i).padStart(2, '0')}`)
const CLOUD_PROVIDERS = ['openai', 'anthropic', 'azure_openai', 'aws_bedrock', 'vllm_compatible']

/** The i-th benchmark model: every facet varied, deterministic. */
function modelRow(i: number, tenantId: string, userId: string): NewModel {
  const source = SOURCES[i % SOURCES.length]!
  const task = TASKS[(i * 7) % TASKS.length]!
  const tasks = i % 5 === 0 ? [task, TASKS[(i * 3 + 1) % TASKS.length]!].filter((t, k, all) => all.indexOf(t) === k) : [task]
  const cloud = source === 'cloud'
  return {
    id: randomUUID(),
    tenantId,
    name: `model-${String(i).padStart(5, '0')}`,
    displayName: `Model ${i}`,
    source,
    providerId: cloud ? CLOUD_PROVIDERS[i % CLOUD_PROVIDERS.length]! : source === 'hub' ? 'hugging_face' : null,
    uri: cloud ? `remote-model-${i % 50}` : source === 'hub' ? `org-${i % 97}/model-${i}` : null,
    tasks,
    modalities: [...new Set(tasks.flatMap((t) => MODALITIES[t] ?? ['text']))],
    architecture: cloud ? null : ['LlamaForCausalLM', 'BertModel', 'Qwen2ForCausalLM', 'WhisperForConditionalGeneration'][i % 4]!,
    parameterCount: cloud ? null : 1_000_000 * ((i * 131) % 70_000),
    contextLength: [2048, 4096, 8192, 32768, 131072][i % 5]!,
    dtype: cloud ? null : ['bfloat16', 'float16', 'float32'][i % 3]!,
    format: cloud ? null : FORMATS[i % FORMATS.length]!,
    license: i % 11 === 0 ? null : LICENSES[(i * 5) % LICENSES.length]!,
    tags: TAGS.filter((_, t) => (i * 13 + t * 7) % 17 === 0).slice(0, 4),
    description: `A benchmark model number ${i}, ${task} with ${source} weights.`,
    metadata: { numHiddenLayers: 12 + (i % 24), vocabSize: 32_000 + (i % 7) * 1000 },
    status: i % 50 === 0 ? 'failed' : i % 97 === 0 ? 'deleted' : 'ready',
    createdBy: userId,
    createdAt: new Date(Date.UTC(2026, 0, 1) + i * 60_000),
    updatedAt: new Date(Date.UTC(2026, 0, 1) + i * 60_000),
  }
}

async function seedModels(dbUrl: string, realm: string, email: string): Promise<string> {
  const handle = await openDatabase({ url: dbUrl, dataDir: os.tmpdir(), poolMax: 8, log: pino({ level: 'warn' }) })
  try {
    const client = handle.pool!
    const { rows } = await client.query<{ tenant_id: string; user_id: string }>(
      'select t.id as tenant_id, u.id as user_id from tenants t join users u on u.tenant_id = t.id where t.realm = $1 and u.email = $2',
      [realm, email],
    )
    const { tenant_id: tenantId, user_id: userId } = rows[0]!
    for (let i = 0; i < MODELS; i += 8) {
      await Promise.all(Array.from({ length: Math.min(8, MODELS - i) }, (_, k) => insertModel(handle.db, modelRow(i + k, tenantId, userId))))
    }
    await client.query('vacuum analyze models')
    return tenantId
  } finally {
    await handle.close()
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  const loadBefore = os.loadavg()
  const database = benchDatabase('modelplane_bench_models')
  await database.recreate()
  await buildDist()
  const hub = await startHubStandIn()
  const s3 = await startS3()
  hub.addRepo({
    id: REPO,
    files: [
      { path: 'config.json', content: configJson() },
      { path: BIG_FILE, generated: { size: FILE_BYTES, seed: 16 }, lfs: true },
    ],
  })
  if (RUN_IMPORT) {
    // The stand-in hashes a generated file once, on first need: not inside a measurement.
    const hashStarted = performance.now()
    await (await fetch(`${hub.url}/api/models/${REPO}/tree/main`)).arrayBuffer()
    console.log(`hub stand-in: ${FILE_BYTES / MiB} MiB file hashed in ${Math.round(performance.now() - hashStarted)} ms`)
  }

  const realm = 'bench'
  const password = `pw-${randomUUID()}`
  const appEnv = (extra: Record<string, string>) => ({
    DATABASE_URL: database.url,
    DATABASE_POOL_MAX: '20',
    REDIS_URL: BENCH_REDIS_URL,
    VAULT_KEYS: BENCH_VAULT_KEYS,
    RATE_LIMIT_MAX: '0',
    SINGLE_REPLICA: 'true',
    BENCH_REALM: realm,
    BENCH_PASSWORD: password,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-models-')),
    MODEL_HUB_URL: hub.url,
    // The stand-ins listen on 127.0.0.1, which the outbound address rule refuses by default.
    OUTBOUND_DENIED_CIDRS: 'none',
    ...extra,
  })
  const transfers: Transfer[] = []
  const results: Measurement[] = []
  const db = new pg.Client({ connectionString: database.url })
  let app: Server | undefined
  let baseline: Server | undefined
  const listCheck = { all: 0, filtered: 0 }
  let appCount = 0
  try {
    // ---- imports: each one just after a plain copy into the same store ----------------------
    const imports: Array<{ store: 's3' | 'filesystem'; partMb: number }> = RUN_IMPORT
      ? [
          { store: 's3', partMb: DEFAULT_PART_MB },
          { store: 's3', partMb: LARGER_PART_MB },
          { store: 'filesystem', partMb: DEFAULT_PART_MB },
        ]
      : []
    for (const { store, partMb } of imports) {
      const label = `${store}, parts of ${partMb} MiB`
      const copy = await plainCopy(hub, store, s3, `plain copy into ${store}`)
      transfers.push(copy)
      console.log(`${copy.label}: ${(copy.ms / 1000).toFixed(1)} s, ${copy.mbPerSecond.toFixed(0)} MiB/s`)
      const email = `bench-admin-${++appCount}@example.test`
      app = await startServer('bench/servers/users-app.mjs', {
        ...appEnv({ BENCH_EMAIL: email, MODEL_IMPORT_PART_MB: String(partMb) }),
        ...(store === 's3' ? { S3_ENDPOINT: s3.endpoint, ...S3_KEYS } : {}),
      })
      if (appCount === 1) await db.connect()
      const auth = await loginHeaders(app.url, { realm, email, password })
      const t = await importOnce(app, auth, db, hub, store, partMb, `import into ${label}`)
      transfers.push(t)
      console.log(
        `${t.label}: ${(t.ms / 1000).toFixed(1)} s, ${t.mbPerSecond.toFixed(0)} MiB/s (${(t.mbPerSecond / copy.mbPerSecond).toFixed(2)}× the copy), ` +
          `RSS ${t.idleRssMb!.toFixed(0)} → peak ${t.peakRssMb!.toFixed(0)} MB, CPU ${t.cpuSeconds!.toFixed(1)} s, parts stored at ${((t.fetchedMs ?? NaN) / 1000).toFixed(1)} s`,
      )
      await app.stop()
      app = undefined
      if (store === 's3') await s3.empty()
    }

    // ---- GET /v1/models and /v1/models/facets ------------------------------------------------
    if (RUN_CATALOG) {
      const email = `bench-catalog@example.test`
      const catalogRealm = 'bench-catalog'
      app = await startServer('bench/servers/users-app.mjs', { ...appEnv({ BENCH_EMAIL: email }), BENCH_REALM: catalogRealm })
      const seedStarted = performance.now()
      const tenantId = await seedModels(database.url, catalogRealm, email)
      console.log(`${MODELS} models written in ${Math.round(performance.now() - seedStarted)} ms`)
      await database.settle()
      baseline = await startServer('bench/servers/models-baseline.ts', { DATABASE_URL: database.url, DATABASE_POOL_MAX: '20', BENCH_TENANT_ID: tenantId })
      // A new search term on every request: nothing kept serves it, so these rows measure counting
      // every time on both sides. 10,000 terms in turn, more than modelplane keeps (5,000 entries).
      let term = 0
      const search = (extra: string) => () => `?q=${String(term++ % 10_000).padStart(4, '0')}${extra}`
      const scenarios: Array<{ name: string; route: string; query: string; pathOf?: () => string }> = [
        { name: 'default page', route: 'models', query: 'page=1' },
        { name: 'filtered page', route: 'models', query: 'source=hub&task=text-generation&license=apache-2.0&page=2' },
        { name: 'facets', route: 'models/facets', query: '' },
        { name: 'facets, filtered', route: 'models/facets', query: 'source=hub&format=safetensors' },
        { name: 'search page, a new term each request', route: 'models', query: 'q=0123&page=1', pathOf: search('&page=1') },
        { name: 'facets, a new term each request', route: 'models/facets', query: 'q=0123', pathOf: search('') },
      ]
      for (const s of scenarios) {
        // A token per scenario: one would expire before the last scenario ran.
        const auth = await loginHeaders(app.url, { realm: catalogRealm, email, password })
        const mine = await fetch(`${app.url}/v1/${s.route}?${s.query}`, { headers: auth })
        if (mine.status !== 200) throw new Error(`${s.name}: ${mine.status} ${await mine.text()}`)
        const ours = await mine.text()
        // The baseline must answer what modelplane answers (key order aside), or it measures something else.
        const theirs = await (await fetch(`${baseline.url}/${s.route}?${s.query}`)).text()
        if (canonical(JSON.parse(theirs)) !== canonical(JSON.parse(ours))) {
          throw new Error(`${s.name}: the baseline answers otherwise than modelplane:\n${theirs.slice(0, 600)}\n${ours.slice(0, 600)}`)
        }
        if (s.name === 'default page') listCheck.all = (JSON.parse(ours) as { total: number }).total
        if (s.name === 'filtered page') listCheck.filtered = (JSON.parse(ours) as { total: number }).total
        results.push(
          ...(await compareAll(
            [
              { name: `baseline ${s.name}`, url: `${baseline.url}/${s.route}?${s.query}`, pathOf: s.pathOf },
              { name: `modelplane ${s.name}`, url: `${app.url}/v1/${s.route}?${s.query}`, headers: auth, pathOf: s.pathOf },
            ],
            { connections: CONNECTIONS, durationSeconds: BENCH_SECONDS },
          )),
        )
        const last = results.slice(-2)
        console.log(`${s.name}: baseline ${last[0]!.requestsPerSecond} req/s, modelplane ${last[1]!.requestsPerSecond} req/s`)
      }
    }
  } finally {
    await baseline?.stop()
    await app?.stop()
    await db.end().catch(() => {})
    // Node's global agent keeps connections alive (the gateway's to s3rver, minio's to the gateway), and
    // s3rver's close waits for every open connection: drop them, and give up on a close that still hangs.
    http.globalAgent.destroy()
    const closed = Promise.all([hub.close(), s3.close()])
    await Promise.race([closed, idle(15_000).then(() => console.warn('the stand-ins did not close in 15 s'))])
    if (!process.env.BENCH_KEEP_DB) await database.drop()
  }
  const loadAfter = os.loadavg()
  const { importText, catalogText } = await report({ loadBefore, loadAfter, transfers, results, listCheck })
  const sections: Array<[string, string]> = [
    ...(RUN_IMPORT ? [['models', importText] as [string, string]] : []),
    ...(RUN_CATALOG ? [['models-catalog', catalogText] as [string, string]] : []),
  ]
  for (const [id, text] of sections) {
    if (QUICK || process.env.BENCH_MODEL_MB || process.env.BENCH_MODELS) console.log(text)
    else writeSection(id, text)
  }
}

async function report(r: {
  loadBefore: number[]
  loadAfter: number[]
  transfers: Transfer[]
  results: Measurement[]
  listCheck: { all: number; filtered: number }
}): Promise<{ importText: string; catalogText: string }> {
  const f0 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(0))
  const f1 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(1))
  const rows = r.transfers.map((t, i) => {
    const copy = t.kind === 'import' ? r.transfers[i - 1] : undefined
    const ratio = copy ? `${(t.mbPerSecond / copy.mbPerSecond).toFixed(2)}×` : '—'
    const growth = t.peakRssMb !== undefined ? t.peakRssMb - t.idleRssMb! : undefined
    return `| ${t.label} | ${f1(t.ms / 1000)} | ${f0(t.mbPerSecond)} | ${ratio} | ${f1((t.fetchedMs ?? NaN) / 1000)} | ${f0(t.idleRssMb)} | ${f0(t.peakRssMb)} | ${f0(growth)} | ${f1(t.cpuSeconds)} | ${t.hubBytes === undefined ? '—' : (t.hubBytes / FILE_BYTES).toFixed(2)} |`
  })
  const verdicts = r.transfers
    .map((t, i) => [t, r.transfers[i - 1]] as const)
    .filter(([t]) => t.kind === 'import')
    .map(([t, copy]) => {
      const ratio = t.mbPerSecond / copy!.mbPerSecond
      const growth = t.peakRssMb! - t.idleRssMb!
      return `- ${t.label}: ${ratio.toFixed(2)}× the plain copy (target ≥ 0.8×: ${ratio >= 0.8 ? 'met' : '**not met**'}); peak RSS ${growth.toFixed(0)} MB above idle (target < 200 MB: ${growth < 200 ? 'met' : '**not met**'})`
    })
  const steps = r.transfers
    .filter((t) => t.kind === 'import')
    .map((t) => `- ${t.label}: ${(t.steps ?? []).map((s) => `${s.message} ${f1(s.ms / 1000)} s`).join('; ')}`)
  const against = Object.fromEntries(r.results.filter((m) => m.name.startsWith('modelplane ')).map((m) => [m.name, m.name.replace(/^modelplane /, 'baseline ')]))
  const ratios = r.results
    .filter((m) => m.name.startsWith('modelplane ') && !m.name.endsWith('each request'))
    .map((m) => {
      const base = r.results.find((b) => b.name === against[m.name])!
      const ratio = m.requestsPerSecond / base.requestsPerSecond
      return `${m.name.replace(/^modelplane /, '')} ${ratio.toFixed(2)}× (${ratio >= 1 ? 'met' : '**not met**'})`
    })
  const measured = `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${await machine({ redis: true })}.
Load average before the run ${r.loadBefore.map((l) => l.toFixed(2)).join(' / ')}, after ${r.loadAfter.map((l) => l.toFixed(2)).join(' / ')}
(1/5/15 min)${r.loadBefore[0]! > 0.5 ? ': **the machine was not idle** (other work was running), so absolute numbers are low and noisy; the ratios are what to read' : ''}.`
  const importText = `## Models (\`npm run bench:models\`)

${measured}

### Hub import

One repository on the hub stand-in (test/helpers/hub): config.json and \`${BIG_FILE}\`, ${FILE_BYTES / MiB} MiB of generated
bytes (AES-CTR keystream, incompressible, produced while sent, never held), LFS, so the import follows the 302 to the
stand-in's signed CDN URL. S3 is s3rver 3.7 behind the SigV4 gateway (test/helpers/s3-gateway.ts, which answers the
multipart calls itself, spooling parts to a temporary folder, and hands s3rver the assembled object); the hub and
both S3 servers run in the benchmark's process, on the same ${cores()} cores as everything else. The compiled app
(\`npm start\`'s code, LOG_LEVEL=warn) runs in a child process of its own, a new one per row, with S3_ENDPOINT at the
gateway (or the filesystem store under its DATA_DIR) and MODEL_HUB_URL at the stand-in. An import is timed from
POST /v1/models/import to GET /v1/workflows/{id} answering \`completed\` (polled every 100 ms): listing, pinning,
fetching, hashing (sha256; the git blob id of non-LFS files), storing, metadata, seal. Its RSS is read from /proc/<pid>/status every
100 ms; "idle" is 2 s after start and login; CPU is the app process's (all threads) from /proc/<pid>/stat.
"Parts stored" is when the file ledger first counted every byte stored (the rest is completing the upload, the
check, and sealing).

The plain copy, run just before each import into the same store: a child process (bench/servers/models-copy.ts) does
one \`fetch\` of the file's resolve URL (following the redirect) and streams the body through sha256 into minio's
\`putObject(bucket, key, stream, size)\` (the client the app's S3 store uses, so the same multipart upload of 64 MiB parts
through the gateway) or into \`fs.createWriteStream\`. MB/s is MiB of the big file per second of wall time.

| run | s | MiB/s | vs plain copy | parts stored at s | idle RSS MB | peak RSS MB | peak − idle MB | app CPU s | bytes from hub ÷ size |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

${verdicts.join('\n')}

Workflow steps as the run record times them:
${steps.join('\n')}

Where the time goes (read from the "parts stored" column and the code, not from a CPU profile): into S3 an import of a
file above one store part is one native multipart upload: each fetched range is streamed into an UploadPart of known
size (no buffering beyond a stream's), the part ETags go to the file ledger, the sha256 (and the git blob SHA-1 of a file
the hub checks by it, not an LFS file) is taken on the way, and CompleteMultipartUpload assembles the object; the file is read back only when a crash broke the hash.
Every byte is fetched once and written once, so the import runs at about the plain copy's speed and holds no more than
stream buffers. (Before this, large files were stored as part objects, read back and written again through minio's
putObject with 64 MiB blocks in memory: 0.42× the copy and +249 MB RSS on the 2 GiB file.) The filesystem store keeps
the same protocol; its CompleteMultipartUpload hard-links the stored part files into the object (up to 256 parts; the
object is read as its parts in order), so there too every byte is written once. (Before, it copied the parts into one
new file through the app, hashing them again for an ETag it then replaced: 0.22× the plain copy, 20 s of app CPU.) What
still separates it from the plain copy is in the "parts stored" phase: each part is flushed to disk (fsync) before the
ledger counts it, so that a crash never loses a part the ledger recorded, and MD5-hashed for its ETag as S3 does; the plain
copy neither flushes nor takes an MD5, so it mostly measures the page cache (by hand on this machine: 1 GiB written with
dd in 16 MiB blocks took 3.1 s, 4.2 s with each block flushed). Not profiled further.`
  const catalogText = `### GET /v1/models and /v1/models/facets (\`BENCH_ONLY=catalog npm run bench:models\` runs this part alone)

${measured}

${MODELS.toLocaleString('en-US')} models written through model_ops' crud (\`insertModel\`) into one tenant (${r.listCheck.all} not deleted), varied
source (hub/upload/url/cloud), provider, format, license (8 and none), 1–2 of 10 tasks, modalities from the task, 0–4 of
40 tags, 2% failed and 1% deleted; VACUUM ANALYZEd. autocannon, ${CONNECTIONS} connections, ${BENCH_SECONDS} s per run after a 2 s
warm-up; baseline and modelplane loaded in turn ${BENCH_ROUNDS} times each, each row the median run by requests/s. Load
generator and servers share the same ${cores()} cores; pools of 20. Both sides answer the same JSON, key order aside
(checked before loading them).
- **modelplane**: the compiled app, called with an embedded-issuer bearer token (signature, revocation, \`model:view\`),
  TypeBox validation of the query, the Model serializer, metrics and security headers. It keeps each filter's total and
  facets between requests until a model of the tenant changes (src/modules/model_ops/catalog-counts.ts: a trigger
  NOTIFYs the tenant on commit, and writes through the process forget at once), so a repeated list runs only its
  page statement and repeated facets run nothing; the page itself is always read. What it does count runs in fewer
  round trips: a search whose page is not full takes its total from the page (no count), and the seven facets are one
  statement (the models matching the non-facet filters read once, each facet filter a flag on the row).
- **baseline**: bare Fastify + pg (bench/servers/models-baseline.ts) running crud's statements as unnamed statements on
  every request: the page (every column, created_at desc, id) and a full \`count(*)\` side by side; for the facets the
  seven grouped counts (four scalar columns, three unnested arrays), each over the models matching every other filter.

Scenarios: default page = \`page=1\` (20 newest); filtered page = \`source=hub&task=text-generation&license=apache-2.0&page=2\`
(${r.listCheck.filtered} match); facets = \`GET /v1/models/facets\`; facets, filtered = \`?source=hub&format=safetensors\`;
the two "a new term each request" rows send \`q=<4 digits>\` (a substring of one to a few names), a different term on every
request (10,000 in turn, twice what modelplane keeps), so neither side has anything kept: they show the cost of counting
on every request, which is what the first request after a change pays.

${tableVs(r.results, { 'vs baseline': against })}

Target ≥ 1.0× the baseline (the four repeated scenarios): ${ratios.join('; ')}.`
  return { importText, catalogText }
}

await main()
// A stand-in that did not close would keep the process alive after the results are written.
process.exit(0)
