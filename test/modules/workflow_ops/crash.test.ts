import { randomUUID } from 'node:crypto'
import { DaprWorkflowClient } from '@dapr/dapr'
import { and, eq, inArray } from 'drizzle-orm'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTaskHub, type TaskHub } from '../../../src/modules/workflow_ops/hub/index.js'
import { routeSdkLogs } from '../../../src/modules/workflow_ops/sdk-logging.js'
import { workflowInstances } from '../../../src/modules/workflow_ops/tables.js'
import { type DatabaseHandle, openDatabase } from '../../../src/platform/db/client.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { type Started, startCommand } from '../../helpers/process.js'
import { waitFor } from '../../helpers/wait.js'
import { uniqueHub } from '../../helpers/workflow.js'

/**
 * Worker processes (test/helpers/workflow-worker.ts) share the run's database. The test schedules
 * runs through a hub of the same name that has no worker of its own, so all work is done by the
 * children; it kills them with SIGKILL mid-run and checks what a user would: every run completes
 * once, every step's effect exists once.
 */
const log = pino({ level: 'silent' })
let database: DatabaseHandle
const children: Started[] = []
// The scheduling client here is the SDK's own, outside an engine: its console chatter goes to pino too.
const detachSdkLogs = routeSdkLogs(log)

beforeAll(async () => {
  database = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 5, log })
  await database.pool!.query(
    'create table if not exists wf_step_runs (run_id text not null, step int not null, pid int not null)',
  )
  await database.pool!.query(
    'create table if not exists wf_step_effects (run_id text not null, step int not null, primary key (run_id, step))',
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
      const effects = () => count('select count(*) as n from wf_step_effects where run_id = any($1)', runIds)

      // Kill at three points: early, in the middle, late.
      for (const atLeast of [3, 14, 26]) {
        const worker = startWorker(hub)
        await ready(worker)
        await waitFor(async () => (await effects()) >= atLeast, 30_000, `no progress to ${atLeast} effects`)
        worker.child.kill('SIGKILL')
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

      expect(await effects()).toBe(runIds.length * 3)
      for (const id of runIds) {
        const state = await client.getWorkflowState(id, true)
        expect(state?.serializedOutput).toBe('"done"')
      }
      // Some steps ran more than once (killed mid-step, or their answer was lost with the process),
      // which is why steps are idempotent; none ran fewer than once.
      const executions = await count('select count(*) as n from wf_step_runs where run_id = any($1)', runIds)
      expect(executions).toBeGreaterThanOrEqual(runIds.length * 3)
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
      const executions = await count('select count(*) as n from wf_step_runs where run_id = any($1)', runIds)
      expect(executions).toBe(runIds.length * 3)
    } finally {
      await stop()
      first.child.kill('SIGTERM')
      second.child.kill('SIGTERM')
      await Promise.all([first.exited, second.exited])
    }
  }, 120_000)
})
