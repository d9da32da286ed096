import { randomUUID } from 'node:crypto'
import { DaprWorkflowClient } from '@dapr/dapr'
import { and, eq, inArray } from 'drizzle-orm'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTaskHub, type TaskHub } from '../../../src/modules/workflow_ops/hub/index.js'
import { EventCase, pb } from '../../../src/modules/workflow_ops/hub/proto.js'
import { routeSdkLogs } from '../../../src/modules/workflow_ops/sdk-logging.js'
import { workflowHistory, workflowInstances } from '../../../src/modules/workflow_ops/tables.js'
import { type DatabaseHandle, openDatabase } from '../../../src/platform/db/client.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { type Started, startCommand } from '../../helpers/process.js'
import { waitFor } from '../../helpers/wait.js'
import { uniqueHub } from '../../helpers/workflow.js'

/**
 * Worker processes (test/helpers/workflow-worker.ts) share the run's database. The test schedules
 * runs through a hub of the same name that has no worker of its own, so all work is done by the
 * children; it kills them with SIGKILL mid-run and checks what a user would: every run completes
 * once, and a step runs again only because the process running it was killed. Steps are at least
 * once by design (a process can die after a step's work and before its answer is recorded), so the
 * bound on repeats is the sharp one: each repeat of a step follows an execution by a killed
 * process, and no live process ever runs a step twice.
 */
const log = pino({ level: 'silent' })
let database: DatabaseHandle
const children: Started[] = []
// The scheduling client here is the SDK's own, outside an engine: its console chatter goes to pino too.
const detachSdkLogs = routeSdkLogs(log)

beforeAll(async () => {
  database = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 5, log })
  await database.pool!.query(
    'create table if not exists wf_step_runs (id bigserial primary key, run_id text not null, step int not null, pid int not null)',
  )
  // No key on (run_id, step): a second effect of a step must be visible, not folded into the first.
  await database.pool!.query(
    'create table if not exists wf_step_effects (id bigserial primary key, run_id text not null, step int not null, pid int not null)',
  )
})

afterAll(async () => {
  for (const child of children) if (child.child.exitCode === null) child.child.kill('SIGKILL')
  await database?.close()
  detachSdkLogs()
})

function startWorker(hub: string, env: Record<string, string> = {}): Started {
  const started = startCommand(process.execPath, ['--import', 'tsx', 'test/helpers/workflow-worker.ts'], {
    DATABASE_URL: TEST_DATABASE_URL,
    WORKFLOW_HUB: hub,
    ...env,
  })
  children.push(started)
  return started
}

async function ready(worker: Started): Promise<void> {
  await waitFor(() => worker.output().includes('worker ready'), 30_000, `worker did not start: ${worker.output()}`)
}

/** A client on a hub without workers: it only writes the runs into the shared database. */
async function scheduler(hubName: string): Promise<{ hub: TaskHub; client: DaprWorkflowClient; stop(): Promise<void> }> {
  const hub = await startTaskHub({ database, log, name: hubName })
  const client = new DaprWorkflowClient({ daprHost: hub.host, daprPort: String(hub.port), daprApiToken: hub.token })
  return {
    hub,
    client,
    stop: async () => {
      await client.stop()
      await hub.stop()
    },
  }
}

async function count(sql: string, runIds: string[]): Promise<number> {
  const { rows } = await database.pool!.query<{ n: string }>(sql, [runIds])
  return Number(rows[0]!.n)
}

interface StepRecord {
  run_id: string
  step: number
  pid: number
}

/** Rows of wf_step_runs or wf_step_effects for the runs, grouped by run and step, in insertion order. */
async function byStep(table: 'wf_step_runs' | 'wf_step_effects', runIds: string[]): Promise<Map<string, number[]>> {
  const { rows } = await database.pool!.query<StepRecord>(
    `select run_id, step, pid from ${table} where run_id = any($1) order by id`,
    [runIds],
  )
  const grouped = new Map<string, number[]>()
  for (const row of rows) {
    const key = `${row.run_id}#${row.step}`
    grouped.set(key, [...(grouped.get(key) ?? []), row.pid])
  }
  return grouped
}

/**
 * The steps that ran more than the once at-least-once allows: a repeat is fine only when every
 * earlier execution was in a process that was later killed (its answer died with it). Returns
 * `run#step: pids` for each offender, so a failure names them.
 */
function unexplainedRepeats(grouped: Map<string, number[]>, killed: Set<number>): string[] {
  const offenders: string[] = []
  for (const [key, pids] of grouped) {
    if (pids.slice(0, -1).some((pid) => !killed.has(pid))) offenders.push(`${key}: ${pids.join(',')}`)
  }
  return offenders
}

/** How many history events of each kind every run's history holds, by run. */
async function historyCounts(hub: string, runIds: string[]): Promise<Map<string, { completed: number; tasks: number }>> {
  const rows = await database.db
    .select({ instanceId: workflowHistory.instanceId, event: workflowHistory.event })
    .from(workflowHistory)
    .where(and(eq(workflowHistory.hub, hub), inArray(workflowHistory.instanceId, runIds)))
  const counts = new Map(runIds.map((id) => [id, { completed: 0, tasks: 0 }]))
  for (const row of rows) {
    const kind = pb.HistoryEvent.deserializeBinary(row.event).getEventtypeCase()
    const entry = counts.get(row.instanceId)!
    if (kind === EventCase.EXECUTIONCOMPLETED) entry.completed++
    if (kind === EventCase.TASKCOMPLETED) entry.tasks++
  }
  return counts
}

async function statuses(hub: string, runIds: string[]): Promise<string[]> {
  const rows = await database.db
    .select({ status: workflowInstances.status })
    .from(workflowInstances)
    .where(and(eq(workflowInstances.hub, hub), inArray(workflowInstances.instanceId, runIds)))
  return rows.map((r) => r.status)
}

describe('crash recovery', () => {
  it('completes every run exactly once after workers are killed mid-run', async () => {
    const hub = uniqueHub('crash')
    const runIds = Array.from({ length: 12 }, () => `run-${randomUUID()}`)
    const { client, stop } = await scheduler(hub)
    try {
      for (const id of runIds) await client.scheduleNewWorkflow('crashy', id, id)
      // Progress is steps finished at least once (a repeat must not count twice).
      const finishedSteps = () =>
        count('select count(*) as n from (select distinct run_id, step from wf_step_effects where run_id = any($1)) s', runIds)

      // Kill at three points: early, in the middle, late.
      const killed = new Set<number>()
      for (const atLeast of [3, 14, 26]) {
        const worker = startWorker(hub)
        await ready(worker)
        await waitFor(async () => (await finishedSteps()) >= atLeast, 30_000, `no progress to ${atLeast} steps`)
        worker.child.kill('SIGKILL')
        killed.add(worker.child.pid!)
        await worker.exited
      }
      const survivor = startWorker(hub)
      await ready(survivor)
      await waitFor(
        async () => (await statuses(hub, runIds)).every((s) => s === 'completed'),
        45_000,
        'not every run completed after the crashes',
      )
      survivor.child.kill('SIGTERM')
      await survivor.exited

      // Every run completed once, with its three steps' results, and says so.
      for (const [id, counts] of await historyCounts(hub, runIds)) expect(counts, id).toEqual({ completed: 1, tasks: 3 })
      for (const id of runIds) {
        const state = await client.getWorkflowState(id, true)
        expect(state?.serializedOutput).toBe('"done"')
      }
      // Every step started and finished, and each repeat of either followed a killed process.
      const executions = await byStep('wf_step_runs', runIds)
      const effects = await byStep('wf_step_effects', runIds)
      expect(executions.size).toBe(runIds.length * 3)
      expect(effects.size).toBe(runIds.length * 3)
      expect(unexplainedRepeats(executions, killed)).toEqual([])
      expect(unexplainedRepeats(effects, killed)).toEqual([])
      // The kills hit processes with work in hand, and the survivor, never killed, ran each step at most once.
      for (const pid of killed) expect([...executions.values()].some((pids) => pids.includes(pid)), `pid ${pid}`).toBe(true)
      const survivorRuns = [...executions.values()].flat().filter((pid) => pid === survivor.child.pid).length
      const survivorSteps = [...executions.values()].filter((pids) => pids.includes(survivor.child.pid!)).length
      expect(survivorRuns).toBe(survivorSteps)
    } finally {
      await stop()
    }
  }, 150_000)
})

describe('two processes', () => {
  it('splits the work between them and runs no step twice while its lease is alive', async () => {
    const hub = uniqueHub('pair')
    const runIds = Array.from({ length: 30 }, () => `run-${randomUUID()}`)
    // Each process takes at most 4 work items at a time, as a busy one would have room for only a
    // few: otherwise the first to hear of the 30 new runs may lease them all in one claim, and
    // each run's later steps stay with the process that holds it.
    const env = { LEASE_MS: '30000', STEP_MS: '20', MAX_IN_FLIGHT: '4' }
    const first = startWorker(hub, env)
    const second = startWorker(hub, env)
    await Promise.all([ready(first), ready(second)])
    const { client, stop } = await scheduler(hub)
    try {
      await Promise.all(runIds.map((id) => client.scheduleNewWorkflow('crashy', id, id)))
      await waitFor(
        async () => (await statuses(hub, runIds)).every((s) => s === 'completed'),
        60_000,
        'not every run completed',
      )
      const { rows } = await database.pool!.query<{ pid: number; n: string }>(
        'select pid, count(*) as n from wf_step_runs where run_id = any($1) group by pid',
        [runIds],
      )
      expect(rows).toHaveLength(2)
      expect(rows.every((r) => Number(r.n) > 0)).toBe(true)
      // Nobody was killed: every step of every run started once and finished once, in one process.
      const executions = await byStep('wf_step_runs', runIds)
      const effects = await byStep('wf_step_effects', runIds)
      expect(executions.size).toBe(runIds.length * 3)
      expect([...executions.values()].filter((pids) => pids.length !== 1)).toEqual([])
      expect(effects).toEqual(executions)
      for (const [id, counts] of await historyCounts(hub, runIds)) expect(counts, id).toEqual({ completed: 1, tasks: 3 })
    } finally {
      await stop()
      first.child.kill('SIGTERM')
      second.child.kill('SIGTERM')
      await Promise.all([first.exited, second.exited])
    }
  }, 120_000)
})
