import { createHash, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import pino from 'pino'
import { models, modelVersionFiles, modelVersions } from '../src/modules/model_ops/tables.js'
import { openDatabase } from '../src/platform/db/client.js'
import { type KubeStandIn, nodeFixture, type StandInCluster, startKubeStandIn } from '../test/helpers/kube/index.js'
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
  type Server,
  startServer,
  table,
  writeSection,
} from './lib.js'

/**
 * `npm run bench:endpoints`, three measurements of endpoint_ops on the compiled app (a child
 * process of its own, on real PostgreSQL and Redis) and stand-in clusters (test/helpers/kube, in
 * this process, controllers on: Deployments roll out, pods get scheduled, pulled, started and turn
 * ready on their own, the runtime simulator answers the model probe):
 *
 * 1. POST /v1/endpoints/plan for an 8B model on a registered cluster of 50 nodes, autocannon with
 *    32 connections, beside a bare Fastify + pg baseline that reads the same rows (cluster, its
 *    nodes, model, version, files) and answers them as JSON.
 * 2. 200 POST /v1/endpoints at once (32 in flight from the client) spread over 4 registered
 *    stand-in clusters of 20 nodes; the time until GET /v1/endpoints?phase=running counts 200.
 * 3. The reconcile sweep: every endpoint's lease made due at once, over the 200, then (after 800
 *    more deploys through the API, in batches of 200, onto 6 more clusters) over 1,000.
 *
 * BENCH_ENDPOINTS_QUICK=1: 20 endpoints, then 100 (a quick check; RESULTS.md is left alone; with
 * BENCH_ROUNDS=1 BENCH_SECONDS=3 the plan loads are short too). BENCH_ENDPOINTS_PLAN_ONLY=1: the plan
 * measurement alone, printed (with BENCH_PROFILE_DIR, a CPU profile of the plan under load).
 */
const QUICK = process.env.BENCH_ENDPOINTS_QUICK === '1'
const PLAN_ONLY = process.env.BENCH_ENDPOINTS_PLAN_ONLY === '1'
const database = benchDatabase('modelplane_bench_endpoints')
const CONNECTIONS = 32
const FIRST_WAVE = QUICK ? 20 : 200
const TOTAL = QUICK ? 100 : 1_000
const DEPLOY_CONCURRENCY = 32
const DEPLOY_CLUSTERS = 4
const MORE_CLUSTERS = 6
const DEPLOY_TIMEOUT_MS = 600_000
const SWEEP_TIMEOUT_MS = 300_000
const RECONCILE_SWEEP = 'endpoint_ops.reconcile'
const PLAN_SECONDS = BENCH_SECONDS
const ROUNDS = BENCH_ROUNDS

/** The plan cluster: 50 nodes, GPUs of two kinds and CPU-only nodes. */
const PLAN_SHAPE: Array<[fixture: string, count: number]> = [
  ['a100-8x', 16],
  ['l4-nfd-vendor', 10],
  ['t4-time-sliced', 4],
  ['sapphire-rapids', 12],
  ['cpu-small', 6],
  ['cordoned', 1],
  ['not-ready', 1],
]
/**
 * The deploy clusters: 20 nodes, 17 of them 8× A100 (136 GPUs): room for the 1,000 one-GPU
 * replicas across 10 clusters with the stand-in's scheduler counting every GPU.
 */
const DEPLOY_SHAPE: Array<[fixture: string, count: number]> = [
  ['a100-8x', 17],
  ['l4-nfd-vendor', 2],
  ['cpu-small', 1],
]

function nodesOf(shape: Array<[string, number]>): object[] {
  const nodes: object[] = []
  for (const [fixture, count] of shape) {
    for (let i = 0; i < count; i++) {
      const node = nodeFixture(fixture)
      const name = `${fixture}-${i}`
      node.metadata.name = name
      node.metadata.labels = { ...((node.metadata.labels ?? {}) as Record<string, string>), 'kubernetes.io/hostname': name }
      nodes.push(node)
    }
  }
  return nodes
}

// ---- the app's process, seen from outside ---------------------------------------------------

function rssMbOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024
}

const TICKS = 100
function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS
}

/** Samples the app's RSS every 50 ms until stopped: the peak over a phase. */
function rssSampler(pid: number) {
  const before = rssMbOf(pid)
  const cpuBefore = cpuSecondsOf(pid)
  let peak = before
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssMbOf(pid))
    } catch {
      // gone; the phase notices
    }
  }, 50)
  return {
    before,
    stop() {
      clearInterval(timer)
      return { before, peak, cpuSeconds: cpuSecondsOf(pid) - cpuBefore }
    },
  }
}

const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// ---- talking to the app ---------------------------------------------------------------------

interface Api {
  call(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> // eslint-disable-line @typescript-eslint/no-explicit-any
  relogin(): Promise<void>
  headers(): Record<string, string>
}

function apiOf(base: string, credentials: { realm: string; email: string; password: string }): Api {
  let auth: Record<string, string> = {}
  return {
    async relogin() {
      auth = await loginHeaders(base, credentials)
    },
    headers: () => auth,
    async call(method, url, body) {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      const text = await res.text()
      return { status: res.status, json: text ? JSON.parse(text) : null }
    },
  }
}

async function registerCluster(api: Api, name: string, standIn: StandInCluster): Promise<string> {
  const res = await api.call('POST', '/v1/clusters', { name, kubeconfig: standIn.kubeconfig() })
  if (res.status !== 202) throw new Error(`registration of ${name} refused: ${res.status} ${JSON.stringify(res.json)}`)
  const { clusterId, workflowId } = res.json as { clusterId: string; workflowId: string }
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await idle(200)) {
    const run = await api.call('GET', `/v1/workflows/${workflowId}`)
    if (run.json.status === 'completed') return clusterId
    if (run.json.status === 'failed' || run.json.status === 'cancelled') throw new Error(`registration of ${name}: ${JSON.stringify(run.json.error)}`)
  }
  throw new Error(`registration of ${name} did not finish in 60 s`)
}

/** A ready 8B model as an import leaves it (rows, not an import: model_ops is measured elsewhere). */
async function seedModel(dbUrl: string, tenantId: string, userId: string): Promise<string> {
  const handle = await openDatabase({ url: dbUrl, dataDir: os.tmpdir(), poolMax: 2, log: pino({ level: 'warn' }) })
  try {
    const modelId = randomUUID()
    const versionId = randomUUID()
    const config = Buffer.from(JSON.stringify({ architectures: ['LlamaForCausalLM'], num_attention_heads: 32, num_key_value_heads: 8 }))
    const shard = 4_976_698_672
    const files = [
      { path: 'config.json', size: config.length, sha256: createHash('sha256').update(config).digest('hex') },
      { path: 'tokenizer.json', size: 9_085_657, sha256: 'a'.repeat(64) },
      { path: 'model-00001-of-00004.safetensors', size: shard, sha256: 'b'.repeat(64) },
      { path: 'model-00002-of-00004.safetensors', size: 4_999_802_720, sha256: 'c'.repeat(64) },
      { path: 'model-00003-of-00004.safetensors', size: 4_915_916_176, sha256: 'd'.repeat(64) },
      { path: 'model-00004-of-00004.safetensors', size: 1_168_138_808, sha256: 'e'.repeat(64) },
    ]
    const db = handle.db
    await db.insert(models).values({
      id: modelId,
      tenantId,
      name: 'llama-3-1-8b-instruct',
      displayName: 'Llama 3.1 8B Instruct',
      source: 'upload',
      tasks: ['text-generation'],
      modalities: ['text'],
      architecture: 'LlamaForCausalLM',
      parameterCount: 8_030_261_248,
      contextLength: 131_072,
      dtype: 'bfloat16',
      quantization: null,
      format: 'safetensors',
      metadata: { numAttentionHeads: 32, numKeyValueHeads: 8, numHiddenLayers: 32, hiddenSize: 4096, headDim: 128 },
      status: 'ready',
      defaultVersionId: versionId,
      createdBy: userId,
    })
    await db.insert(modelVersions).values({
      id: versionId,
      modelId,
      tenantId,
      label: 'v1',
      status: 'ready',
      manifest: { files },
      fileCount: files.length,
      sizeBytes: files.reduce((n, f) => n + f.size, 0),
      createdBy: userId,
      sealedAt: new Date(),
    })
    await db.insert(modelVersionFiles).values(
      files.map((f) => ({ versionId, path: f.path, size: f.size, sha256: f.sha256, blobKey: `models/${modelId}/${versionId}/${f.path}`, status: 'verified', bytesDone: f.size })),
    )
    return modelId
  } finally {
    await handle.close()
  }
}

// ---- deploying --------------------------------------------------------------------------------

interface DeployResult {
  count: number
  /** From the first POST to the list counting every one running. */
  wallMs: number
  /** From the first POST to the last 202. */
  acceptedMs: number
  /** Per endpoint, deploying → running, from the status history (database clock). */
  perEndpointMs: { p50: number; p95: number; max: number }
  /** Per workflow step (the run record's steps), median and p95 seconds; 'queued' is from the 202 to the first step. */
  steps: Array<{ step: string; p50: number; p95: number }>
  failed: number
  /** Why deploys failed, most common first (empty when none did). */
  failures: Array<{ status_reason: string; status_message: string; n: number }>
  rssBeforeMb: number
  rssPeakMb: number
  cpuSeconds: number
}

async function countPhase(api: Api, phase: string): Promise<number> {
  const res = await api.call('GET', `/v1/endpoints?phase=${phase}&limit=1`)
  if (res.status !== 200) throw new Error(`list by phase ${phase}: ${res.status} ${JSON.stringify(res.json)}`)
  return (res.json as { total: number }).total
}

async function deployMany(
  api: Api,
  db: pg.Client,
  app: Server,
  specs: Array<Record<string, unknown>>,
): Promise<DeployResult> {
  await api.relogin()
  const runningBefore = await countPhase(api, 'running')
  const failedBefore = await countPhase(api, 'failed')
  const sampler = rssSampler(app.child.pid!)
  const started = performance.now()
  const { rows: t0rows } = await db.query<{ t0: Date }>('select now() as t0')
  const t0 = t0rows[0]!.t0
  let next = 0
  const refused: string[] = []
  await Promise.all(
    Array.from({ length: DEPLOY_CONCURRENCY }, async () => {
      while (next < specs.length) {
        const spec = specs[next++]!
        const res = await api.call('POST', '/v1/endpoints', spec)
        if (res.status !== 202) refused.push(`${spec.name}: ${res.status} ${JSON.stringify(res.json)}`)
      }
    }),
  )
  const acceptedMs = performance.now() - started
  if (refused.length) throw new Error(`${refused.length} deploys refused, e.g. ${refused.slice(0, 3).join('; ')}`)
  const want = runningBefore + specs.length
  let failed: number
  for (;;) {
    const running = await countPhase(api, 'running')
    failed = (await countPhase(api, 'failed')) - failedBefore
    if (running + failed >= want) break
    if (performance.now() - started > DEPLOY_TIMEOUT_MS) throw new Error(`${running - runningBefore} of ${specs.length} running after ${DEPLOY_TIMEOUT_MS} ms (${failed} failed)`)
    await idle(250)
  }
  const wallMs = performance.now() - started
  const usage = sampler.stop()
  // A failed deploy is a result, not a broken benchmark: it is counted and its reason reported.
  const { rows: failures } = failed
    ? await db.query<{ status_reason: string; status_message: string; n: number }>(
        `select status_reason, left(status_message, 300) as status_message, count(*)::int as n
           from endpoints where phase = 'failed' and created_at >= $1 group by 1, 2 order by 3 desc limit 3`,
        [t0],
      )
    : { rows: [] }
  if (failed) console.log(`${failed} deploys failed: ${JSON.stringify(failures)}`)
  const { rows } = await db.query<{ ms: number }>(
    `select extract(epoch from (r.at - e.created_at)) * 1000 as ms
       from endpoints e join endpoint_status_history r on r.endpoint_id = e.id and r.to_phase = 'running'
      where e.created_at >= $1 order by 1`,
    [t0],
  )
  const ms = rows.map((r) => Number(r.ms))
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? NaN
  const { rows: stepRows } = await db.query<{ step: string; p50: number; p95: number }>(
    `with runs as (select w.id, w.created_at from workflow_runs w where w.type = 'endpoint_ops.deploy' and w.created_at >= $1),
          spans as (
            select 0 as n, 'queued' as step, extract(epoch from (min(s.started_at) - r.created_at)) as secs from runs r join workflow_run_steps s on s.run_id = r.id group by r.id, r.created_at
            union all
            select s.step, s.message, extract(epoch from (s.finished_at - s.started_at)) from runs r join workflow_run_steps s on s.run_id = r.id where s.finished_at is not null)
     select min(step) as step, percentile_cont(0.5) within group (order by secs) as p50, percentile_cont(0.95) within group (order by secs) as p95
       from spans group by n order by n`,
    [t0],
  )
  return {
    steps: stepRows.map((r) => ({ step: r.step.replace(/:.*$/, ''), p50: Number(r.p50), p95: Number(r.p95) })),
    count: specs.length,
    wallMs,
    acceptedMs,
    perEndpointMs: { p50: at(0.5), p95: at(0.95), max: ms[ms.length - 1] ?? NaN },
    failed,
    failures,
    rssBeforeMb: usage.before,
    rssPeakMb: usage.peak,
    cpuSeconds: usage.cpuSeconds,
  }
}

// ---- one reconcile sweep -----------------------------------------------------------------------

interface SweepResult {
  label: string
  endpoints: number
  wallMs: number
  failed: number
  stillRunning: number
  rssBeforeMb: number
  rssPeakMb: number
  rssAfterMb: number
  cpuSeconds: number
  standInCpuSeconds: number
}

async function sweepOnce(api: Api, db: pg.Client, app: Server, label: string): Promise<SweepResult> {
  const pid = app.child.pid!
  await api.relogin()
  const sampler = rssSampler(pid)
  const ownBefore = process.cpuUsage()
  try {
    const { rows } = await db.query<{ t0: Date; n: number }>(
      'with due as (update sweep_leases set due_at = now() where sweep = $1 returning 1) select now() as t0, (select count(*)::int from due) as n',
      [RECONCILE_SWEEP],
    )
    const { t0, n } = rows[0]!
    const deadline = Date.now() + SWEEP_TIMEOUT_MS
    for (;;) {
      const { rows: state } = await db.query<{ done: number; failed: number; last: Date | null }>(
        `select count(*) filter (where last_finished_at >= $2)::int as done,
                count(*) filter (where last_finished_at >= $2 and last_error is not null)::int as failed,
                max(last_finished_at) as last
           from sweep_leases where sweep = $1`,
        [RECONCILE_SWEEP, t0],
      )
      const { done, failed, last } = state[0]!
      if (done >= n) {
        const usage = sampler.stop()
        const own = process.cpuUsage(ownBefore)
        await idle(3_000)
        return {
          label,
          endpoints: n,
          wallMs: last!.getTime() - t0.getTime(),
          failed,
          stillRunning: await countPhase(api, 'running'),
          rssBeforeMb: usage.before,
          rssPeakMb: usage.peak,
          rssAfterMb: rssMbOf(pid),
          cpuSeconds: usage.cpuSeconds,
          standInCpuSeconds: (own.user + own.system) / 1e6,
        }
      }
      if (Date.now() > deadline) {
        const { rows: errors } = await db.query('select last_error, count(*)::int as n from sweep_leases where sweep = $1 and last_error is not null group by 1 order by 2 desc limit 3', [
          RECONCILE_SWEEP,
        ])
        throw new Error(`sweep ${label}: ${done} of ${n} reconciled in ${SWEEP_TIMEOUT_MS} ms; errors: ${JSON.stringify(errors)}`)
      }
      await idle(100)
    }
  } finally {
    sampler.stop()
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  const loadBefore = os.loadavg()
  const started = Date.now()
  await database.recreate()
  await buildDist()
  const credentials = { realm: 'bench', email: 'bench-admin@example.test', password: `pw-${randomUUID()}` }
  const env = {
    DATABASE_URL: database.url,
    DATABASE_POOL_MAX: '20',
    REDIS_URL: BENCH_REDIS_URL,
    VAULT_KEYS: BENCH_VAULT_KEYS,
    RATE_LIMIT_MAX: '0',
    SINGLE_REPLICA: 'true',
    BENCH_REALM: credentials.realm,
    BENCH_EMAIL: credentials.email,
    BENCH_PASSWORD: credentials.password,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'mp-bench-endpoints-')),
    // The stand-ins listen on 127.0.0.1; the metadata range stays denied as in production.
    CLUSTER_DENIED_CIDRS: '169.254.0.0/16',
    // Only the syncs registration runs, and only the reconcile sweeps the benchmark starts.
    CLUSTER_SYNC_INTERVAL_SECONDS: '3600',
    ENDPOINT_RECONCILE_INTERVAL_SECONDS: '3600',
    ENDPOINT_ROLLOUT_POLL_SECONDS: '1',
    SWEEP_POLL_MS: '250',
  }

  const standIns: KubeStandIn[] = await Promise.all([startKubeStandIn(), startKubeStandIn()])
  const planStandIn = standIns[0]!.addCluster({ id: 'bench-plan', nodes: nodesOf(PLAN_SHAPE) })
  const deployNodes = nodesOf(DEPLOY_SHAPE)
  const deployStandIns = Array.from({ length: DEPLOY_CLUSTERS + MORE_CLUSTERS }, (_, i) =>
    standIns[i % standIns.length]!.addCluster({ id: `bench-deploy-${i}`, nodes: deployNodes.map((n) => structuredClone(n)) }),
  )

  let app: Server | undefined
  let baseline: Server | undefined
  const db = new pg.Client({ connectionString: database.url })
  const results: Measurement[] = []
  const deploys: DeployResult[] = []
  const sweeps: SweepResult[] = []
  let planBytes: number
  let baselineBytes: number
  let planSummary: string
  let idleRssMb: number
  try {
    app = await startServer('bench/servers/users-app.mjs', env)
    await db.connect()
    const api = apiOf(app.url, credentials)
    await api.relogin()
    const { rows } = await db.query<{ tenant_id: string; user_id: string }>(
      'select t.id as tenant_id, u.id as user_id from tenants t join users u on u.tenant_id = t.id where t.realm = $1 and u.email = $2',
      [credentials.realm, credentials.email],
    )
    const { tenant_id: tenantId, user_id: userId } = rows[0]!
    const modelId = await seedModel(database.url, tenantId, userId)
    const planClusterId = await registerCluster(api, 'bench-plan', planStandIn)
    const deployClusterIds: string[] = []
    for (const [i, s] of deployStandIns.entries()) deployClusterIds.push(await registerCluster(api, `bench-deploy-${i}`, s))
    await database.settle()
    await idle(2_000)
    idleRssMb = rssMbOf(app.child.pid!)

    // ---- 1. the plan ----------------------------------------------------------------------------
    const planBody = { name: 'llama-8b-chat', modelId, clusterId: planClusterId, runtime: 'auto', deviceType: 'cuda', replicas: 2, maxModelLen: 8192, maxConcurrency: 32 }
    let planNames = 0
    const first = await api.call('POST', '/v1/endpoints/plan', planBody)
    if (first.status !== 200) throw new Error(`plan: ${first.status} ${JSON.stringify(first.json)}`)
    planBytes = Buffer.byteLength(JSON.stringify(first.json))
    const plan = first.json as { runtime?: { name?: string }; deviceType?: string; manifests?: unknown[]; placement?: { nodes?: unknown[]; fits?: unknown[] } }
    planSummary = `runtime ${plan.runtime?.name ?? '?'}, device type ${plan.deviceType ?? '?'}, ${plan.manifests?.length ?? 0} manifests`
    baseline = await startServer('bench/servers/endpoints-baseline.ts', { DATABASE_URL: database.url, DATABASE_POOL_MAX: '20', BENCH_TENANT_ID: tenantId })
    const theirs = await fetch(`${baseline.url}/plan`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(planBody) })
    if (theirs.status !== 200) throw new Error(`baseline plan: ${theirs.status}`)
    baselineBytes = Buffer.byteLength(await theirs.text())
    await api.relogin()
    results.push(
      ...(await compareAll(
        [
          { name: 'baseline plan', url: `${baseline.url}/plan`, body: planBody },
          { name: 'modelplane plan', url: `${app.url}/v1/endpoints/plan`, body: planBody, headers: api.headers() },
          // A new question every time (the endpoint's name): nothing kept answers it, so every plan reads and computes.
          { name: 'modelplane plan, new name each time', url: `${app.url}/v1/endpoints/plan`, body: planBody, bodyOf: () => ({ ...planBody, name: `llama-8b-${++planNames}` }), headers: api.headers() },
        ],
        { connections: CONNECTIONS, durationSeconds: PLAN_SECONDS },
      )),
    )
    await baseline.stop()
    baseline = undefined
    console.log(table(results, { 'modelplane plan': 'baseline plan', 'modelplane plan, new name each time': 'baseline plan' }))
    if (PLAN_ONLY) return

    // ---- 2. deploy the first wave at once ---------------------------------------------------------
    const specOf = (i: number, clusterId: string) => ({ name: `bench-${String(i).padStart(4, '0')}`, modelId, clusterId, replicas: 1, maxModelLen: 8192 })
    const firstWave = Array.from({ length: FIRST_WAVE }, (_, i) => specOf(i, deployClusterIds[i % DEPLOY_CLUSTERS]!))
    const wave = await deployMany(api, db, app, firstWave)
    deploys.push(wave)
    console.log(`deployed ${wave.count} in ${(wave.wallMs / 1000).toFixed(1)} s (accepted in ${(wave.acceptedMs / 1000).toFixed(1)} s), RSS ${wave.rssBeforeMb.toFixed(0)} → peak ${wave.rssPeakMb.toFixed(0)} MB`)

    // ---- 3. reconcile sweeps: the first wave, then everything -------------------------------------
    await idle(2_000)
    sweeps.push(await sweepOnce(api, db, app, `${FIRST_WAVE}`))
    console.log(JSON.stringify(sweeps.at(-1)))
    for (let from = FIRST_WAVE; from < TOTAL; from += FIRST_WAVE) {
      const batch = Array.from({ length: Math.min(FIRST_WAVE, TOTAL - from) }, (_, k) => specOf(from + k, deployClusterIds[(from + k) % deployClusterIds.length]!))
      const r = await deployMany(api, db, app, batch)
      deploys.push(r)
      console.log(`deployed ${from + r.count} so far: this batch of ${r.count} in ${(r.wallMs / 1000).toFixed(1)} s`)
    }
    await idle(2_000)
    for (const label of [`${TOTAL}`, `${TOTAL}, again`]) {
      sweeps.push(await sweepOnce(api, db, app, label))
      console.log(JSON.stringify(sweeps.at(-1)))
    }
  } finally {
    await baseline?.stop()
    await app?.stop()
    await db.end().catch(() => {})
    await Promise.all(standIns.map((s) => s.close()))
    if (!process.env.BENCH_KEEP_DB) await database.drop()
  }
  const loadAfter = os.loadavg()
  await report({ loadBefore, loadAfter, results, deploys, sweeps, planBytes, baselineBytes, planSummary, idleRssMb, minutes: (Date.now() - started) / 60_000 })
}

async function report(r: {
  loadBefore: number[]
  loadAfter: number[]
  results: Measurement[]
  deploys: DeployResult[]
  sweeps: SweepResult[]
  planBytes: number
  baselineBytes: number
  planSummary: string
  idleRssMb: number
  minutes: number
}): Promise<void> {
  const s = (ms: number) => (ms / 1000).toFixed(1)
  const mb = (n: number) => n.toFixed(0)
  const mine = r.results.find((m) => m.name === 'modelplane plan')!
  const base = r.results.find((m) => m.name === 'baseline plan')!
  const wave = r.deploys[0]!
  const text = `## Endpoints (\`npm run bench:endpoints\`)

Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${await machine({ redis: true })}.
Load average before the run ${r.loadBefore.map((l) => l.toFixed(2)).join(' / ')}, after ${r.loadAfter.map((l) => l.toFixed(2)).join(' / ')}
(1/5/15 min)${r.loadBefore[0]! > 0.5 ? ': **the machine was not idle** (other work was running), so absolute numbers are low and noisy; the ratios are what to read' : ''}.
The whole run took ${r.minutes.toFixed(1)} min.

The compiled app (\`npm start\`'s code, LOG_LEVEL=warn) runs in a child process of its own on the same ${cores()} cores as
the load generator, the stand-in API servers (two HTTPS servers in the benchmark's process, test/helpers/kube, with
their deployment controller, scheduler and kubelets on at their default fast timings) and PostgreSQL. Every cluster is
registered through POST /v1/clusters (the registration workflow and its first sync); the model is written as rows
(an 8B Llama, bf16 safetensors in 4 shards, 32 heads, 8 KV heads: model_ops' import is measured in its own section).
App settings: ENDPOINT_ROLLOUT_POLL_SECONDS=1, SWEEP_POLL_MS=250, ENDPOINT_RECONCILE_CONCURRENCY=8 (the default),
DATABASE_POOL_MAX=20; cluster syncs and reconciles run only when the benchmark makes them due (intervals of an hour).
RSS is the app process's VmRSS (/proc), sampled every 50 ms; CPU is the app process's, all threads.

### POST /v1/endpoints/plan

A registered stand-in cluster of 50 nodes (${PLAN_SHAPE.map(([f, n]) => `${n}× ${f}`).join(', ')}), the plan request
\`{replicas: 2, deviceType: cuda, maxModelLen: 8192, maxConcurrency: 32, runtime: auto}\` for the 8B model: ${r.planSummary};
${r.planBytes} bytes of JSON. autocannon, ${CONNECTIONS} connections, ${PLAN_SECONDS} s per run after a 2 s warm-up, baseline and
modelplane loaded in turn ${ROUNDS} time(s) each, each row the median run by requests/s.
- **modelplane plan**: embedded-issuer bearer token, TypeBox validation, then the service. The first request computes
  the plan (the cluster and its 50 node rows, the model, its version and files, the runtime catalog, placement and
  sizing, every manifest generated, Secrets redacted); the rest are answered from what the process kept, since no row
  it was computed from changed (src/platform/db/changes.ts: a database trigger NOTIFYs every replica when one does).
  A dashboard planning a form asks this way: the same question until the user edits a field.
- **modelplane plan, new name each time**: the same request with a new endpoint name on every request, so nothing kept
  answers it and every plan reads its rows and computes (not the target; the cost of a question never asked before).
- **baseline**: bare Fastify + pg (bench/servers/endpoints-baseline.ts) reading the same rows (cluster, nodes, model,
  version, files) on every request and answering them as JSON (${r.baselineBytes} bytes); no auth, no validation, no
  planning, nothing kept.

${table(r.results, { 'modelplane plan': 'baseline plan', 'modelplane plan, new name each time': 'baseline plan' })}

modelplane at ${(mine.requestsPerSecond / base.requestsPerSecond).toFixed(2)}× the baseline's requests/s. Target p50 < 20 ms with ${CONNECTIONS}
connections: p50 ${mine.p50Ms} ms (${mine.p50Ms < 20 ? 'met' : '**not met**'}; the baseline's p50 on the same machine in the same run: ${base.p50Ms} ms).
With 32 requests always in flight, p50 is about 32 ÷ throughput: under 20 ms needs some 1,600 plans/s.

Before plans were kept, the profile of this load (2026-11-30, load average about 14) gave the planner and the
manifest generator 8% of the app's busy main thread and the reads the most: pg 18% (the JSON facts of the 50 node rows
among them), drizzle 13%, socket writes 15%, garbage collection 13%; the plan measured 141 req/s, p50 215 ms. Kept,
a plan costs a token check, validation and the answer's serialization; the profile is then led by socket writes and
the response serializer. A plan nobody asked before still reads and computes everything (the third row); prepared
statements for its five reads would be the next step there. Two more changes came with this one: the plan is not
audited (it changes nothing, and the audit insert per request was the next bottleneck, its pool waits timing out
under this load), and the runtime catalog's in-memory copy is dropped as soon as a runtime row changes, so a kept plan
never outlives the runtime it names.

### ${wave.count} endpoints deployed at once

${wave.count} POST /v1/endpoints (1 replica, 1 GPU each, \`maxModelLen: 8192\`) sent with ${DEPLOY_CONCURRENCY} in flight, spread evenly
over ${DEPLOY_CLUSTERS} registered stand-in clusters of 20 nodes (${DEPLOY_SHAPE.map(([f, n]) => `${n}× ${f}`).join(', ')}). Each deploy
is the whole workflow: verify the cluster, plan, server-side apply of every manifest, the rollout polled until
judged complete, the model probe through the API server's service proxy, \`running\`. "All running" is when
GET /v1/endpoints?phase=running (polled every 250 ms) counts them all; per endpoint, deploying → running is from its
status history.

| endpoints | all 202 at s | all running at s | per endpoint p50 s | p95 s | max s | failed | RSS before MB | RSS peak MB | app CPU s |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${r.deploys
  .map(
    (d, i) =>
      `| ${i === 0 ? d.count : `+${d.count} (batch ${i})`} | ${s(d.acceptedMs)} | ${s(d.wallMs)} | ${s(d.perEndpointMs.p50)} | ${s(d.perEndpointMs.p95)} | ${s(d.perEndpointMs.max)} | ${d.failed} | ${mb(d.rssBeforeMb)} | ${mb(d.rssPeakMb)} | ${d.cpuSeconds.toFixed(1)} |`,
  )
  .join('\n')}${r.deploys
  .flatMap((d, i) => d.failures.map((f) => `\n- ${i === 0 ? 'first wave' : `batch ${i}`}: ${f.n} failed with ${f.status_reason}: ${f.status_message}`))
  .join('')}

Where a deploy's time goes (the first ${wave.count}; each step of the run record, from its start to its finish, as the
workflow reports it; "queued" is from the run's creation to its first step, the engine's backlog while ${wave.count} runs start
at once): ${wave.steps.map((x) => `${x.step} p50 ${x.p50.toFixed(1)} s, p95 ${x.p95.toFixed(1)} s`).join('; ')}.

The first row is the measurement; the later batches (deployed the same way, round-robin over all
${DEPLOY_CLUSTERS + MORE_CLUSTERS} clusters) seed the ${TOTAL} endpoints the reconcile sweep runs over.

### Reconcile sweep

Every endpoint's lease in sweep_leases made due at once (\`UPDATE … SET due_at = now()\`); the sweep is over when
every lease's last_finished_at has moved; wall time is from the update to the last last_finished_at, on the
database's clock. One reconcile of an endpoint: read its row, design its applied spec again (cluster, nodes, model,
files, presigned weight URLs, manifests), server-side apply every manifest with force, read the Deployment, its
ReplicaSets and pods and judge the rollout, then a locked transaction on the row. Idle RSS after registration: ${mb(r.idleRssMb)} MB.

| endpoints | wall s | endpoints/s | failed | running after | RSS before MB | RSS peak MB | RSS after MB | app CPU s | stand-ins CPU s |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${r.sweeps
  .map(
    (w) =>
      `| ${w.label} | ${s(w.wallMs)} | ${Math.round((w.endpoints * 1000) / Math.max(1, w.wallMs))} | ${w.failed} | ${w.stillRunning} | ${mb(w.rssBeforeMb)} | ${mb(w.rssPeakMb)} | ${mb(w.rssAfterMb)} | ${w.cpuSeconds.toFixed(1)} | ${w.standInCpuSeconds.toFixed(1)} |`,
  )
  .join('\n')}
${sweepVerdict(r.sweeps)}
`
  if (!QUICK) writeSection('endpoints', text)
  process.stdout.write(`${text}\n`)
}

function sweepVerdict(sweeps: SweepResult[]): string {
  const big = sweeps.filter((w) => w.endpoints === TOTAL)
  const small = sweeps.filter((w) => w.endpoints === FIRST_WAVE)
  if (!big.length || !small.length) return ''
  const slowest = Math.max(...big.map((w) => w.wallMs))
  const growthBig = Math.max(...big.map((w) => w.rssPeakMb - w.rssBeforeMb))
  const growthSmall = Math.max(...small.map((w) => w.rssPeakMb - w.rssBeforeMb))
  return (
    `\nSweep of ${TOTAL}: slowest ${(slowest / 1000).toFixed(1)} s (target < 60 s: ${slowest < 60_000 ? 'met' : '**not met**'}). ` +
    `Memory: the peak rose at most ${growthBig.toFixed(0)} MB over the RSS before a sweep of ${TOTAL}, ${growthSmall.toFixed(0)} MB for a sweep of ${FIRST_WAVE}; ` +
    `RSS 3 s after each sweep, in order: ${sweeps.map((w) => w.rssAfterMb.toFixed(0)).join(' → ')} MB.`
  )
}

await main()
