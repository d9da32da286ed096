import { Writable } from 'node:stream'
import { type WorkflowActivityContext, type WorkflowContext, WorkflowRuntimeStatus } from '@dapr/dapr'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DatabaseHandle, openDatabase } from '../../../src/platform/db/client.js'
import { migrate } from '../../../src/platform/db/migrate.js'
import type { TaskHubThread } from '../../../src/modules/workflow_ops/hub/thread.js'
import { startWorkflowEngine, type WorkflowEngine } from '../../../src/modules/workflow_ops/runtime.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'

/**
 * The hub in a worker thread of its own (PostgreSQL only): the SDK in the main thread talks to it
 * over loopback gRPC exactly as to the in-process hub; its logs come out through the app's logger;
 * a thread that dies is started again and the work goes on.
 */
const lines: Record<string, unknown>[] = []
const log = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  }),
)

const workflows = [
  {
    name: 'twoSteps',
    workflow: async function* (ctx: WorkflowContext, label: string) {
      const first: string = yield ctx.callActivity('mark', `${label}-1`)
      const second: string = yield ctx.callActivity('mark', `${label}-2`)
      return [first, second]
    },
  },
]
const activities = [
  {
    name: 'mark',
    activity: async (_ctx: WorkflowActivityContext, label: string) => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      return `${label}-done`
    },
  },
]

let database: DatabaseHandle
let engine: WorkflowEngine

beforeAll(async () => {
  database = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 4, log })
  await migrate(database)
  engine = await startWorkflowEngine({
    database,
    log,
    workflows,
    activities,
    hub: { name: uniqueHub('thread'), tuning: FAST_HUB, thread: true, poolMax: 4 },
  })
}, 60_000)

afterAll(async () => {
  await engine?.stop()
  await database?.close()
})

async function runTwoSteps(label: string) {
  const id = await engine.client.scheduleNewWorkflow('twoSteps', label)
  return engine.client.waitForWorkflowCompletion(id, true, 30)
}

describe('the hub in a worker thread', () => {
  it('runs workflows, and its log lines come out through the app logger', async () => {
    const states = await Promise.all(['a', 'b', 'c'].map(runTwoSteps))
    for (const [i, label] of ['a', 'b', 'c'].entries()) {
      expect(states[i]?.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
      expect(JSON.parse(states[i]!.serializedOutput!)).toEqual([`${label}-1-done`, `${label}-2-done`])
    }
    expect(lines).toContainEqual(expect.objectContaining({ component: 'workflow-hub', msg: 'workflow hub started', level: 30 }))
  })

  it('starts again on the same port when the thread dies, and runs in flight still complete', async () => {
    const hub = engine.hub as TaskHubThread
    const port = hub.port
    const id = await engine.client.scheduleNewWorkflow('twoSteps', 'through-a-crash')
    await hub.crash()
    await waitFor(() => lines.some((l) => l.msg === 'workflow hub thread started again'), 20_000, 'the hub thread did not start again')
    // The client's gRPC channel to the old thread reconnects with backoff: a call made before it is
    // back fails with UNAVAILABLE (seen on a loaded machine). The run's outcome is what is asserted,
    // so ask again until the channel answers.
    let state: Awaited<ReturnType<typeof engine.client.waitForWorkflowCompletion>>
    await waitFor(async () => {
      try {
        state = await engine.client.waitForWorkflowCompletion(id, true, 60)
        return true
      } catch (err) {
        if (/UNAVAILABLE/.test(String(err))) return false
        throw err
      }
    }, 30_000, 'the client never reached the restarted hub')
    expect(state?.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    expect(JSON.parse(state!.serializedOutput!)).toEqual(['through-a-crash-1-done', 'through-a-crash-2-done'])
    expect(hub.port).toBe(port)
    // And new work after the restart.
    expect((await runTwoSteps('after'))?.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
  }, 90_000)
})
