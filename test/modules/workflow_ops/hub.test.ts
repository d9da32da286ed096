import { randomUUID } from 'node:crypto'
import {
  DaprWorkflowClient,
  type Task,
  type WorkflowActivityContext,
  type WorkflowContext,
  WorkflowRuntimeStatus,
} from '@dapr/dapr'
import { and, count, eq } from 'drizzle-orm'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DatabaseHandle, openDatabase } from '../../../src/platform/db/client.js'
import { migrate } from '../../../src/platform/db/migrate.js'
import { startTaskHub } from '../../../src/modules/workflow_ops/hub/index.js'
import { callActivityWithRetry, retryDelay } from '../../../src/modules/workflow_ops/retry.js'
import {
  type ActivityRegistration,
  checkRegistrations,
  startWorkflowEngine,
  type WorkflowEngine,
  type WorkflowRegistration,
} from '../../../src/modules/workflow_ops/runtime.js'
import { workflowHistory, workflowInstances } from '../../../src/modules/workflow_ops/tables.js'
import { tempDir } from '../../helpers/app.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { waitFor } from '../../helpers/wait.js'
import { startTestEngine, uniqueHub } from '../../helpers/workflow.js'

/**
 * Real SDK workflows (WorkflowRuntime + DaprWorkflowClient) on the embedded hub, on the run's
 * PostgreSQL database. The engine has a hub name of its own, so other test files' engines on the
 * same database never take its work.
 */
const log = pino({ level: 'silent' })

/** What activities did, per workflow instance: the side effects a user would notice. */
const effects = new Map<string, string[]>()
function record(instanceId: string, what: string): void {
  effects.set(instanceId, [...(effects.get(instanceId) ?? []), what])
}
const flakyFailuresLeft = new Map<string, number>()
/** Labels of 'paced' activities in the order they started. */
const pacedStarts: string[] = []
/** How many 'square' activities of each run have started. */
const squaresStarted = new Map<string, number>()

const activities: ActivityRegistration[] = [
  {
    name: 'step',
    activity: (ctx: WorkflowActivityContext, input: { label: string }) => {
      record(ctx.getWorkflowInstanceId(), input.label)
      return `${input.label}-done`
    },
  },
  {
    name: 'square',
    activity: async (ctx: WorkflowActivityContext, input: { n: number; of: number }) => {
      // Each square waits until all of its run's squares have started (or gives up after 2 s, so
      // that one-at-a-time execution ends in a failed assertion rather than a hang): run in
      // parallel, they all see every sibling started; run in turn, each sees only those before it.
      const id = ctx.getWorkflowInstanceId()
      squaresStarted.set(id, (squaresStarted.get(id) ?? 0) + 1)
      const giveUpAt = Date.now() + 2_000
      while ((squaresStarted.get(id) ?? 0) < input.of && Date.now() < giveUpAt) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      record(id, `square ${input.n} saw ${squaresStarted.get(id)} started`)
      // Finish in an order other than the one they were called in.
      await new Promise((resolve) => setTimeout(resolve, 5 * (5 - (input.n % 5))))
      return input.n * input.n
    },
  },
  {
    name: 'flaky',
    activity: (ctx: WorkflowActivityContext) => {
      const id = ctx.getWorkflowInstanceId()
      record(id, 'attempt')
      const left = flakyFailuresLeft.get(id) ?? 0
      if (left > 0) {
        flakyFailuresLeft.set(id, left - 1)
        throw new Error('transient outage')
      }
      return 'recovered'
    },
  },
  {
    name: 'paced',
    activity: async (_ctx: WorkflowActivityContext, label: string) => {
      pacedStarts.push(label)
      await new Promise((resolve) => setTimeout(resolve, 30))
      return label
    },
  },
  {
    name: 'broken',
    activity: () => {
      throw new RangeError('the cluster refused the change')
    },
  },
]

const workflows: WorkflowRegistration[] = [
  {
    name: 'sequence',
    workflow: async function* (ctx: WorkflowContext, input: { labels: string[] }) {
      const results: string[] = []
      for (const label of input.labels) {
        ctx.setCustomStatus(`at ${label}`)
        results.push(yield ctx.callActivity('step', { label }))
      }
      return results
    },
  },
  {
    name: 'fanOut',
    workflow: async function* (ctx: WorkflowContext, n: number) {
      const tasks: Task<number>[] = []
      for (let i = 1; i <= n; i++) tasks.push(ctx.callActivity('square', { n: i, of: n }))
      const squares: number[] = yield ctx.whenAll(tasks)
      return squares
    },
  },
  {
    name: 'sleeper',
    workflow: async function* (ctx: WorkflowContext, ms: number) {
      const before = ctx.getCurrentUtcDateTime().getTime()
      yield ctx.createTimer(new Date(before + ms))
      return ctx.getCurrentUtcDateTime().getTime() - before
    },
  },
  {
    name: 'approval',
    workflow: async function* (ctx: WorkflowContext) {
      const decision: { approved: boolean; by: string } = yield ctx.waitForExternalEvent('decision')
      if (decision.approved) yield ctx.callActivity('step', { label: `approved by ${decision.by}` })
      return decision
    },
  },
  {
    name: 'approvalWithTimeout',
    workflow: async function* (ctx: WorkflowContext, timeoutMs: number) {
      const event = ctx.waitForExternalEvent('decision')
      const timeout = ctx.createTimer(new Date(ctx.getCurrentUtcDateTime().getTime() + timeoutMs))
      const winner: Task<unknown> = yield ctx.whenAny([event, timeout])
      return winner === event ? { outcome: 'event', value: event.getResult() } : { outcome: 'timeout' }
    },
  },
  {
    name: 'parent',
    workflow: async function* (ctx: WorkflowContext, labels: string[]) {
      const child: string[] = yield ctx.callChildWorkflow('sequence', { labels })
      const after: string = yield ctx.callActivity('step', { label: 'after-child' })
      return { child, after }
    },
  },
  {
    name: 'retrying',
    workflow: async function* (ctx: WorkflowContext, maxAttempts: number) {
      return yield* callActivityWithRetry<string>(ctx, 'flaky', undefined, {
        maxAttempts,
        firstDelayMs: 50,
        backoff: 2,
        maxDelayMs: 200,
      })
    },
  },
  {
    name: 'doomed',
    workflow: async function* (ctx: WorkflowContext) {
      yield ctx.callActivity('broken')
      return 'unreachable'
    },
  },
  {
    name: 'paced',
    workflow: async function* (ctx: WorkflowContext, label: string) {
      return yield ctx.callActivity('paced', label)
    },
  },
  {
    name: 'gated',
    workflow: async function* (ctx: WorkflowContext) {
      yield ctx.callActivity('step', { label: 'before-gate' })
      yield ctx.waitForExternalEvent('go')
      yield ctx.callActivity('step', { label: 'after-gate' })
      return 'through'
    },
  },
]

let database: DatabaseHandle
let engine: WorkflowEngine
let hub: string

beforeAll(async () => {
  database = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 8, log })
  hub = uniqueHub('hub')
  engine = await startTestEngine({ database, workflows, activities, hub })
})

afterAll(async () => {
  await engine?.stop()
  await database?.close()
})

async function run(name: string, input?: unknown): Promise<string> {
  return engine.client.scheduleNewWorkflow(name, input, `${name}-${randomUUID()}`)
}

async function finished(instanceId: string, timeoutSeconds = 15) {
  const state = await engine.client.waitForWorkflowCompletion(instanceId, true, timeoutSeconds)
  if (!state) throw new Error(`workflow ${instanceId} not found`)
  return state
}

async function statusOf(instanceId: string) {
  return (await engine.client.getWorkflowState(instanceId, false))?.runtimeStatus
}

describe('happy', () => {
  it('runs a sequence of activities in order and returns their results', async () => {
    const id = await run('sequence', { labels: ['fetch', 'validate', 'apply'] })
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    expect(JSON.parse(state.serializedOutput!)).toEqual(['fetch-done', 'validate-done', 'apply-done'])
    expect(effects.get(id)).toEqual(['fetch', 'validate', 'apply'])
    expect(state.customStatus).toBe('at apply')
    expect(JSON.parse(state.serializedInput!)).toEqual({ labels: ['fetch', 'validate', 'apply'] })
  })

  it('fans out to activities in parallel and fans their results back in with whenAll', async () => {
    const id = await run('fanOut', 10)
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    // Fanned in in the order called, though they finished in another.
    expect(JSON.parse(state.serializedOutput!)).toEqual([1, 4, 9, 16, 25, 36, 49, 64, 81, 100])
    // Every square was running while all ten had started: none waited for another to finish.
    expect([...(effects.get(id) ?? [])].sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `square ${i + 1} saw 10 started`).sort(),
    )
  })

  it('waits on a durable timer and resumes when it is due', async () => {
    const started = Date.now()
    const id = await run('sleeper', 600)
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    expect(Date.now() - started).toBeGreaterThanOrEqual(600)
    // The workflow's own clock (the orchestrator-started time of the step after the timer) moved on too.
    expect(JSON.parse(state.serializedOutput!)).toBeGreaterThanOrEqual(600)
  })

  it('resumes a workflow waiting for an external event when the client raises it', async () => {
    const id = await run('approval')
    await engine.client.waitForWorkflowStart(id, false, 10)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(await statusOf(id)).toBe(WorkflowRuntimeStatus.RUNNING)
    await engine.client.raiseEvent(id, 'decision', { approved: true, by: 'alice' })
    const state = await finished(id)
    expect(JSON.parse(state.serializedOutput!)).toEqual({ approved: true, by: 'alice' })
    expect(effects.get(id)).toEqual(['approved by alice'])
  })

  it('lets an event win a race against a timer with whenAny', async () => {
    const id = await run('approvalWithTimeout', 30_000)
    await engine.client.waitForWorkflowStart(id, false, 10)
    await engine.client.raiseEvent(id, 'decision', 'yes')
    const state = await finished(id)
    expect(JSON.parse(state.serializedOutput!)).toEqual({ outcome: 'event', value: 'yes' })
  })

  it('lets a timer win the race when no event comes, and ignores the late event', async () => {
    const id = await run('approvalWithTimeout', 300)
    const state = await finished(id)
    expect(JSON.parse(state.serializedOutput!)).toEqual({ outcome: 'timeout' })
    await engine.client.raiseEvent(id, 'decision', 'too late')
    expect(await statusOf(id)).toBe(WorkflowRuntimeStatus.COMPLETED)
  })

  it('runs a child workflow and continues with its result', async () => {
    const id = await run('parent', ['a', 'b'])
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    expect(JSON.parse(state.serializedOutput!)).toEqual({ child: ['a-done', 'b-done'], after: 'after-child-done' })
    // The child ran under its own deterministic instance id, with the parent recorded.
    const [child] = await database.db
      .select()
      .from(workflowInstances)
      .where(and(eq(workflowInstances.hub, hub), eq(workflowInstances.parentInstanceId, id)))
    expect(child).toMatchObject({ name: 'sequence', status: 'completed' })
    expect(effects.get(child!.instanceId)).toEqual(['a', 'b'])
  })

  it('retries a failing activity with backoff until it succeeds', async () => {
    const id = `retrying-${randomUUID()}`
    flakyFailuresLeft.set(id, 2)
    await engine.client.scheduleNewWorkflow('retrying', 5, id)
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    expect(JSON.parse(state.serializedOutput!)).toBe('recovered')
    expect(effects.get(id)).toEqual(['attempt', 'attempt', 'attempt'])
  })

  it('computes exponential delays capped at the maximum', () => {
    const policy = { firstDelayMs: 100, backoff: 3, maxDelayMs: 1_000 }
    expect([1, 2, 3, 4].map((attempt) => retryDelay(policy, attempt))).toEqual([100, 300, 900, 1_000])
  })

  it('purges a finished workflow: its state and history are gone', async () => {
    const id = await run('sequence', { labels: ['only'] })
    await finished(id)
    const history = () =>
      database.db
        .select({ n: count() })
        .from(workflowHistory)
        .where(and(eq(workflowHistory.hub, hub), eq(workflowHistory.instanceId, id)))
    expect((await history())[0]!.n).toBeGreaterThan(0)
    expect(await engine.client.purgeWorkflow(id)).toBe(true)
    expect(await engine.client.getWorkflowState(id, false)).toBeUndefined()
    expect((await history())[0]!.n).toBe(0)
  })
})

describe('error', () => {
  it('fails the workflow with the failure details when an activity keeps failing', async () => {
    const id = await run('doomed')
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.FAILED)
    const failure = state.workflowFailureDetails!
    expect(failure.getErrorType()).toBe('TaskFailedError')
    expect(failure.getErrorMessage()).toContain('the cluster refused the change')
  })

  it('gives up after the retry helper runs out of attempts', async () => {
    const id = `retrying-${randomUUID()}`
    flakyFailuresLeft.set(id, 10)
    await engine.client.scheduleNewWorkflow('retrying', 2, id)
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.FAILED)
    expect(state.workflowFailureDetails!.getErrorMessage()).toContain('transient outage')
    expect(effects.get(id)).toEqual(['attempt', 'attempt'])
  })

  it('terminates a waiting workflow: it ends as terminated and never continues', async () => {
    const id = await run('gated')
    await waitFor(() => (effects.get(id) ?? []).includes('before-gate'), 10_000)
    await engine.client.terminateWorkflow(id, { reason: 'cancelled by operator' })
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.TERMINATED)
    await engine.client.raiseEvent(id, 'go', null)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(effects.get(id)).toEqual(['before-gate'])
  })

  it('makes no progress while suspended and continues once resumed', async () => {
    const id = await run('gated')
    await waitFor(() => (effects.get(id) ?? []).includes('before-gate'), 10_000)
    await engine.client.suspendWorkflow(id)
    expect(await statusOf(id)).toBe(WorkflowRuntimeStatus.SUSPENDED)
    await engine.client.raiseEvent(id, 'go', null)
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(effects.get(id)).toEqual(['before-gate'])
    expect(await statusOf(id)).toBe(WorkflowRuntimeStatus.SUSPENDED)

    await engine.client.resumeWorkflow(id)
    const state = await finished(id)
    expect(state.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    expect(effects.get(id)).toEqual(['before-gate', 'after-gate'])
  })

  it('refuses to start a second run under the id of a running one', async () => {
    const id = await run('gated')
    await expect(engine.client.scheduleNewWorkflow('gated', undefined, id)).rejects.toThrow(/already running/)
    await engine.client.terminateWorkflow(id, null)
    await finished(id)
  })

  it('answers not found for events to an unknown instance', async () => {
    await expect(engine.client.raiseEvent(`nobody-${randomUUID()}`, 'go', null)).rejects.toThrow(/NOT_FOUND|no workflow/)
    expect(await engine.client.getWorkflowState(`nobody-${randomUUID()}`, false)).toBeUndefined()
  })

  it('refuses a plain generator as a workflow instead of letting it complete without running', async () => {
    // eslint-disable-next-line require-yield -- the point: the SDK would complete this at once with `{}`
    const plain = function* () {
      return 'never runs'
    }
    const registration = { name: 'plain', workflow: plain as unknown as WorkflowRegistration['workflow'] }
    expect(() => checkRegistrations([registration], [])).toThrow(/async generator function/)
    await expect(
      startWorkflowEngine({ database, log, workflows: [registration], activities: [], hub: { name: uniqueHub() } }),
    ).rejects.toThrow(/async function\*/)
  })
})

describe('security', () => {
  it('refuses calls without the hub token', async () => {
    const hubInfo = engine.hub!
    const stranger = new DaprWorkflowClient({
      daprHost: hubInfo.host,
      daprPort: String(hubInfo.port),
      daprApiToken: 'not-the-token',
    })
    try {
      await expect(stranger.scheduleNewWorkflow('sequence', { labels: [] })).rejects.toThrow(/UNAUTHENTICATED/)
    } finally {
      await stranger.stop()
    }
  })
})

describe('when busy', () => {
  it('starts waiting workflows in the order they were scheduled, ahead of ones scheduled later', async () => {
    // Room for one work item at a time: every workflow after the first waits its turn.
    const busy = await startTestEngine({ database, workflows, activities, tuning: { maxInFlightPerStream: 1 } })
    try {
      pacedStarts.length = 0
      const ids: string[] = []
      for (let i = 0; i < 6; i++) ids.push(await busy.client.scheduleNewWorkflow('paced', `early-${i}`))
      // Later arrivals come while the early ones run and room frees up now and then.
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        ids.push(await busy.client.scheduleNewWorkflow('paced', `late-${i}`))
      }
      for (const id of ids) {
        expect((await busy.client.waitForWorkflowCompletion(id, true, 20))?.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
      }
      expect(pacedStarts).toEqual([...[0, 1, 2, 3, 4, 5].map((i) => `early-${i}`), 'late-0', 'late-1', 'late-2'])
    } finally {
      await busy.stop()
    }
  }, 60_000)
})

describe('across processes', () => {
  it('wakes the other process at once for new work and tells its waiters when a run ends, without waiting for a poll', async () => {
    // Process A runs the workflows; process B (its own pool and hub, no SDK worker) only takes
    // calls. Both poll every 10 minutes, longer than all the waits below together: whatever
    // arrives within them came through notifications.
    const name = uniqueHub('pair')
    const slowPoll = { pollIntervalMs: 600_000 }
    const runner = await startTestEngine({ database, workflows, activities, hub: name, tuning: slowPoll })
    const otherDatabase = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 4, log })
    const front = await startTaskHub({ database: otherDatabase, log, name, tuning: slowPoll })
    const client = new DaprWorkflowClient({ daprHost: front.host, daprPort: String(front.port), daprApiToken: front.token })
    try {
      const id = await client.scheduleNewWorkflow('gated', 'through B')
      await client.waitForWorkflowStart(id, false, 10)
      await client.raiseEvent(id, 'go')
      const state = await client.waitForWorkflowCompletion(id, true, 20)
      expect(state?.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
    } finally {
      await client.stop()
      await front.stop()
      await runner.stop()
      await otherDatabase.close()
    }
  }, 60_000)
})

describe('on the embedded database (PGlite)', () => {
  it('runs a workflow with activities and a timer', async () => {
    const embedded = await openDatabase({ dataDir: tempDir(), poolMax: 1, log })
    try {
      await migrate(embedded)
      const local = await startTestEngine({ database: embedded, workflows, activities })
      try {
        const id = await local.client.scheduleNewWorkflow('sequence', { labels: ['x', 'y'] })
        const sleeper = await local.client.scheduleNewWorkflow('sleeper', 200)
        const state = await local.client.waitForWorkflowCompletion(id, true, 20)
        expect(JSON.parse(state!.serializedOutput!)).toEqual(['x-done', 'y-done'])
        const slept = await local.client.waitForWorkflowCompletion(sleeper, true, 20)
        expect(slept!.runtimeStatus).toBe(WorkflowRuntimeStatus.COMPLETED)
      } finally {
        await local.stop()
      }
    } finally {
      await embedded.close()
    }
  }, 60_000)
})
