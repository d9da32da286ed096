import os from 'node:os'
import type { WorkflowContext } from '@dapr/dapr'
import pg from 'pg'
import pino from 'pino'
import { EventCase, pb } from '../src/modules/workflow_ops/hub/proto.js'
import { startWorkflowEngine } from '../src/modules/workflow_ops/runtime.js'
import { openDatabase } from '../src/platform/db/client.js'
import { migrate } from '../src/platform/db/migrate.js'
import { cores, machine, writeSection, benchDatabase, BENCH_PG_ADMIN_URL } from './lib.js'

/**
 * `npm run bench:workflows`: the embedded durable task hub on PostgreSQL with the real SDK worker
 * and client in one process, as the app runs them. A workflow of three no-op activities in
 * sequence, measured three ways:
 * - closed loop: 200 runs in flight at any time (a new one starts when one completes): the most
 *   the engine completes per second, and each run's latency under that queue;
 * - open loop: runs started at a fixed rate (100/s, the target throughput) whatever the engine
 *   does, latency from each run's planned start: what a caller sees at the target load;
 * - one run at a time: the latency floor.
 * Latency is from `scheduleNewWorkflow` to `waitForWorkflowCompletion` returning.
 *
 * Two placements of the hub, measured in turn BENCH_ROUNDS times (the order flips every round) on
 * a fresh database each, every row the median of its rounds: in the main thread beside the SDK,
 * and in a worker thread of its own.
 */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 200)
const RUNS = Number(process.env.BENCH_RUNS ?? 3_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const WARMUP_RUNS = 200
const SINGLE_RUNS = 100
const OPEN_RATE = Number(process.env.BENCH_RATE ?? 100)
const OPEN_SECONDS = Number(process.env.BENCH_OPEN_SECONDS ?? 15)
const DB_NAME = 'modelplane_bench_workflows'
const benchDb = benchDatabase(DB_NAME)

interface Placement {
  key: 'main' | 'thread'
  label: string
  thread: boolean
}

const PLACEMENTS: Placement[] = [
  { key: 'main', label: 'hub in the main thread', thread: false },
  { key: 'thread', label: 'hub in a worker thread', thread: true },
]

interface Latency {
  p50: number
  p99: number
  failed: number
}

/**
 * Throughput is runs that completed with the expected output, per second of the phase (from its
 * first start to its last completion); runs that failed or timed out are counted apart and are in
 * neither the throughput nor the latencies. The open loop's arrival rate is what it was asked for
 * (`startedPerSecond`), not what the engine did.
 */
interface Measurement {
  closed: Latency & { completedPerSecond: number; cpuMsPerRun: number; commitsPerRun: number }
  open: Latency & { completedPerSecond: number; startedPerSecond: number; runs: number }
  single: Latency & { completedPerSecond: number }
  /** Work items of one run, counted from its history: orchestrator passes and activities. */
  workItems: { orchestrator: number; activity: number }
  load: number
}

const PHASES = ['closed', 'open', 'single', 'workItems'] as const
/** Counts add up over the rounds; every other figure is their median. */
const SUMMED = new Set(['failed', 'runs'])

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0
}

function latency(run: { latencies: number[]; failed: number }): Latency {
  return { p50: percentile(run.latencies, 50), p99: percentile(run.latencies, 99), failed: run.failed }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0
}

/** Transactions PostgreSQL committed for the bench database: statements outside a transaction count one each. */
async function commits(): Promise<number> {
  const client = new pg.Client({ connectionString: BENCH_PG_ADMIN_URL })
  await client.connect()
  try {
    await new Promise((resolve) => setTimeout(resolve, 700))
    await client.query('select pg_stat_force_next_flush()').catch(() => undefined)
    const { rows } = await client.query<{ n: string }>('select xact_commit::text as n from pg_stat_database where datname = $1', [DB_NAME])
    return Number(rows[0]?.n ?? 0)
  } finally {
    await client.end()
  }
}

/** PostgreSQL's synchronous_commit, as the report states whether commits wait for the WAL flush. */
async function synchronousCommit(): Promise<string> {
  const client = new pg.Client({ connectionString: BENCH_PG_ADMIN_URL })
  await client.connect()
  try {
    const { rows } = await client.query<{ synchronous_commit: string }>('show synchronous_commit')
    const setting = rows[0]!.synchronous_commit
    return `synchronous_commit=${setting}${setting === 'off' ? '' : ': a commit waits for its WAL flush'}`
  } finally {
    await client.end()
  }
}

async function measure(placement: Placement): Promise<Measurement> {
  await benchDb.recreate()
  const log = pino({ level: 'warn' })
  const database = await openDatabase({ url: benchDb.url, dataDir: os.tmpdir(), poolMax: 20, log })
  await migrate(database)
  await benchDb.settle()
  const engine = await startWorkflowEngine({
    database,
    log,
    hub: { thread: placement.thread },
    workflows: [
      {
        name: 'threeSteps',
        workflow: async function* (ctx: WorkflowContext, input: number) {
          const a = yield ctx.callActivity('noop', input)
          const b = yield ctx.callActivity('noop', a)
          return yield ctx.callActivity('noop', b)
        },
      },
    ],
    activities: [{ name: 'noop', activity: (_ctx, n: number) => n }],
  })

  async function runOne(n: number): Promise<boolean> {
    // Inputs start at 1: the SDK drops falsy activity inputs (0 would arrive as undefined).
    const id = await engine.client.scheduleNewWorkflow('threeSteps', n + 1)
    const state = await engine.client.waitForWorkflowCompletion(id, true, 120)
    return state?.serializedOutput === String(n + 1)
  }

  /** Runs one workflow and counts, from its stored history, the work items it took. */
  async function workItemsOfOneRun(): Promise<{ orchestrator: number; activity: number }> {
    const id = await engine.client.scheduleNewWorkflow('threeSteps', 1)
    await engine.client.waitForWorkflowCompletion(id, true, 120)
    const { rows } = await database.pool!.query<{ event: Uint8Array }>('select event from workflow_history where instance_id = $1', [id])
    const kinds = rows.map((r) => pb.HistoryEvent.deserializeBinary(r.event).getEventtypeCase())
    return {
      // Every orchestrator work item opens with an OrchestratorStarted event; every activity is scheduled once.
      orchestrator: kinds.filter((k) => k === EventCase.ORCHESTRATORSTARTED).length,
      activity: kinds.filter((k) => k === EventCase.TASKSCHEDULED).length,
    }
  }

  async function runMany(total: number, concurrency: number) {
    const latencies: number[] = []
    let next = 0
    let failed = 0
    const started = performance.now()
    const lane = async () => {
      while (next < total) {
        const n = next++
        const at = performance.now()
        if (await runOne(n).catch(() => false)) latencies.push(performance.now() - at)
        else failed++
      }
    }
    await Promise.all(Array.from({ length: concurrency }, lane))
    const seconds = (performance.now() - started) / 1000
    return { seconds, completedPerSecond: latencies.length / seconds, latencies: latencies.sort((a, b) => a - b), failed }
  }

  /** Starts `rate` runs per second for `seconds`, on schedule whatever the engine does. */
  async function runOpen(rate: number, seconds: number) {
    const total = Math.round(rate * seconds)
    const latencies: number[] = []
    let failed = 0
    const started = performance.now()
    const runs: Promise<void>[] = []
    for (let n = 0; n < total; n++) {
      const plannedAt = started + (n * 1000) / rate
      const wait = plannedAt - performance.now()
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
      runs.push(
        runOne(n).then(
          (ok) => {
            // From the planned start: a start that the loaded event loop delayed counts against the engine.
            if (ok) latencies.push(performance.now() - plannedAt)
            else failed++
          },
          () => {
            failed++
          },
        ),
      )
    }
    await Promise.all(runs)
    // Until the last run ended: completions per second of the whole phase, not the arrival rate.
    const elapsed = (performance.now() - started) / 1000
    return { seconds: elapsed, total, completedPerSecond: latencies.length / elapsed, latencies: latencies.sort((a, b) => a - b), failed }
  }

  try {
    await runMany(WARMUP_RUNS, CONCURRENCY)
    const load = os.loadavg()[0]!
    const commitsBefore = await commits()
    const cpuBefore = process.cpuUsage()
    const closed = await runMany(RUNS, CONCURRENCY)
    // The whole process: SDK worker, client and hub, whichever thread it runs on.
    const cpu = process.cpuUsage(cpuBefore)
    const commitsPerRun = ((await commits()) - commitsBefore) / RUNS
    const open = await runOpen(OPEN_RATE, OPEN_SECONDS)
    const single = await runMany(SINGLE_RUNS, 1)
    return {
      load,
      closed: {
        ...latency(closed),
        completedPerSecond: closed.completedPerSecond,
        cpuMsPerRun: (cpu.user + cpu.system) / 1e3 / RUNS,
        commitsPerRun,
      },
      open: { ...latency(open), completedPerSecond: open.completedPerSecond, startedPerSecond: open.total / OPEN_SECONDS, runs: open.total },
      single: { ...latency(single), completedPerSecond: single.completedPerSecond },
      workItems: await workItemsOfOneRun(),
    }
  } finally {
    await engine.stop()
    await database.close()
  }
}

/** Each figure over the rounds: counts summed, everything else the median. */
function summarise(rounds: Measurement[]): Omit<Measurement, 'load'> & { loads: string } {
  const phase = (name: (typeof PHASES)[number]) =>
    Object.fromEntries(
      Object.keys(rounds[0]![name]).map((key) => {
        const values = rounds.map((r) => (r[name] as unknown as Record<string, number>)[key]!)
        return [key, SUMMED.has(key) ? values.reduce((a, b) => a + b, 0) : median(values)]
      }),
    )
  return {
    ...(Object.fromEntries(PHASES.map((name) => [name, phase(name)])) as unknown as Omit<Measurement, 'load'>),
    loads: rounds.map((r) => r.load.toFixed(2)).join(', '),
  }
}

async function main() {
  const only = process.env.BENCH_HUB ? PLACEMENTS.filter((p) => p.key === process.env.BENCH_HUB) : PLACEMENTS
  const rounds = new Map<Placement['key'], Measurement[]>(only.map((p) => [p.key, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const placement of round % 2 === 0 ? only : [...only].reverse()) {
      const result = await measure(placement)
      rounds.get(placement.key)!.push(result)
      console.log(JSON.stringify({ round: round + 1, placement: placement.key, ...result }))
    }
  }
  await benchDb.drop()
  const summary = new Map(only.map((p) => [p.key, summarise(rounds.get(p.key)!)]))
  for (const [key, s] of summary) console.log(key, JSON.stringify(s))
  // BENCH_WRITE=0 (or a single placement): a trial run that leaves bench/RESULTS.md alone.
  if (process.env.BENCH_WRITE === '0' || only.length < 2) return

  const main = summary.get('main')!
  const thread = summary.get('thread')!
  const r = (n: number) => Math.round(n)
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`
  const rows = PLACEMENTS.flatMap((p) => {
    const s = summary.get(p.key)!
    return [
      `| ${p.label} | closed loop, ${CONCURRENCY} in flight | ${RUNS} × ${ROUNDS} | ${r(s.closed.completedPerSecond)} | ${r(s.closed.p50)} | ${r(s.closed.p99)} | ${s.closed.failed} |`,
      `| ${p.label} | open loop, started at ${r(s.open.startedPerSecond)}/s | ${s.open.runs} | ${r(s.open.completedPerSecond)} | ${r(s.open.p50)} | ${r(s.open.p99)} | ${s.open.failed} |`,
      `| ${p.label} | one at a time | ${SINGLE_RUNS} × ${ROUNDS} | ${r(s.single.completedPerSecond)} | ${r(s.single.p50)} | ${r(s.single.p99)} | ${s.single.failed} |`,
    ]
  })
  writeSection(
    'workflows',
    `## Workflows on the embedded hub (\`npm run bench:workflows\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${await machine()}.
A workflow of three no-op activities in sequence (${main.workItems.orchestrator} orchestrator and ${main.workItems.activity} activity work items per run, counted
from a run's stored history). SDK worker, client and hub in one process, on the same ${cores()} cores as
PostgreSQL (over TCP; ${await synchronousCommit()}). Latency: \`scheduleNewWorkflow\` →
\`waitForWorkflowCompletion\` returns. Each placement of the hub was measured ${ROUNDS} times, in turn (the
order flipping every round), each time on a new database after a checkpoint; every figure is the
median of its rounds. 1-minute load averages when the closed loops started: main thread ${main.loads};
worker thread ${thread.loads}.

Completed runs/s counts runs that ended with the expected output, over the phase from its first start
to its last completion; failed runs (errors, timeouts, wrong output) are counted apart and are in
neither that rate nor the latencies. The open loop's "started at" is the arrival rate it was asked for.

| hub | load | runs | completed runs/s | p50 ms | p99 ms | failed |
|---|---|---:|---:|---:|---:|---:|
${rows.join('\n')}

Worker thread against main thread, same run: closed-loop throughput ${ratio(thread.closed.completedPerSecond, main.closed.completedPerSecond)},
open-loop p50 ${ratio(thread.open.p50, main.open.p50)}, single-run p50 ${ratio(thread.single.p50, main.single.p50)}.
CPU per run (whole process): main thread ${main.closed.cpuMsPerRun.toFixed(1)} ms, worker thread
${thread.closed.cpuMsPerRun.toFixed(1)} ms; the database committed ${main.closed.commitsPerRun.toFixed(1)} and
${thread.closed.commitsPerRun.toFixed(1)} transactions per run.

Targets: ≥ 100 runs/s and p50 < 100 ms with 200 concurrent. A closed loop that keeps ${CONCURRENCY}
runs in flight cannot meet both: its latency is in-flight runs ÷ throughput (Little's law), so p50
< 100 ms there would take ${(CONCURRENCY / 0.1).toLocaleString('en-US')} runs/s. The closed-loop rows are the throughput measurement; the
latency target is read on the open-loop rows: runs arriving at the target rate of ${OPEN_RATE}/s (about
${OPEN_RATE} × p50 of them in flight at a time) and how long each takes.`,
  )
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
