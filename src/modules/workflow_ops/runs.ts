import type { WorkflowActivityContext } from '@dapr/dapr'
import type { Executor } from '../../platform/db/client.js'
import { describeRunFailure } from './errors.js'
import { callActivityWithRetry, type RetryPolicy } from './retry.js'
import type { Activity, ActivityRegistration, Workflow, WorkflowRegistration } from './runtime.js'

/**
 * How run records follow the engine. Every registered workflow runs inside a wrapper that records,
 * through activities, that the run started, and then that it completed (with its result) or failed
 * (with its error). Activities are durable: their results are part of the history, they are retried
 * until they answer, and a replay does not run them again, so a record is updated even when the
 * process dies between steps, on whichever replica picks the run up, embedded or on Dapr. The
 * updates are conditional on the record's status, so a run cancelled meanwhile stays cancelled.
 * Cancellation itself is recorded by the service (a terminated workflow runs no more code).
 */

export const INTERNAL = {
  started: 'workflow_ops.runStarted',
  completed: 'workflow_ops.runCompleted',
  failed: 'workflow_ops.runFailed',
  terminate: 'workflow_ops.terminate',
  awaitTermination: 'workflow_ops.awaitTermination',
  compensated: 'workflow_ops.compensationFinished',
  cancelWorkflow: 'workflow_ops.cancel',
} as const

/** Workflow names under this prefix are the module's own. */
export const RESERVED_PREFIX = 'workflow_ops.'

export function compensationActivityName(workflowType: string): string {
  return `${workflowType}.compensate`
}

/** The cancellation's own instance, next to the cancelled run's. */
export function cancellationInstanceId(runId: string): string {
  return `${runId}:cancel`
}

/** What a compensation receives: the cancelled run and the input it was started with. */
export interface CancelledRun {
  runId: string
  tenantId: string
  resource: { kind: string; id: string }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the workflow's own input type
  input: any
}

export type Compensation = (ctx: WorkflowActivityContext, run: CancelledRun) => unknown

export interface WorkflowDefinition {
  /** The workflow type: the name it is scheduled and listed by. */
  name: string
  workflow: Workflow
  activities?: ActivityRegistration[]
  /**
   * Undoes (or closes) what a cancelled run did; runs as a durable activity after the run is
   * terminated. Must be idempotent. What it returns, when not undefined, becomes the cancelled
   * run's result and summary (an import says what it had done before it stopped).
   */
  compensation?: Compensation
  /**
   * Deletes what a run of this type left outside the run record (an import's error report, say),
   * in the transaction that deletes the record: on DELETE /v1/workflows/{id} and when the
   * retention sweep removes the run.
   */
  purged?: (tx: Executor, run: PurgedRun) => Promise<void>
}

/** What a `purged` hook is told of the run going away. */
export interface PurgedRun {
  id: string
  tenantId: string
  resource: { kind: string; id: string }
  /** The run's input (a retry starts from the same one). */
  input: unknown
  /**
   * Another run of this type on this resource remains (a retry, or the run this one retried): it
   * started from the same input, so what the runs share must stay.
   */
  sharedWithOtherRuns: boolean
}

/** What the wrapper's activities do to the records; the service implements it. */
export interface RunTracker {
  markStarted(runId: string): Promise<void>
  markCompleted(runId: string, result: unknown): Promise<void>
  markFailed(runId: string, error: { code: string; message: string }): Promise<void>
  /** Asks the engine to terminate the run's instance; an instance that does not exist is no error. */
  terminate(runId: string): Promise<void>
  /** Resolves once the run's instance has stopped; throws while it has not (the activity is retried). */
  awaitTermination(runId: string): Promise<void>
  cancelledRun(runId: string): Promise<CancelledRun | undefined>
  finishCompensation(runId: string, error: { code: string; message: string } | null, result?: unknown): Promise<void>
}

/** Recording must not fail a run over a database hiccup. */
const RECORD_RETRY: Partial<RetryPolicy> = { maxAttempts: 6, firstDelayMs: 500, backoff: 2, maxDelayMs: 10_000 }

export function trackedWorkflow(inner: Workflow): Workflow {
  return async function* tracked(ctx, input) {
    const runId = ctx.getWorkflowInstanceId()
    yield* callActivityWithRetry(ctx, INTERNAL.started, { runId }, RECORD_RETRY)
    let result: unknown
    try {
      result = yield* inner(ctx, input)
    } catch (err) {
      yield* callActivityWithRetry(ctx, INTERNAL.failed, { runId, error: describeRunFailure(err) }, RECORD_RETRY)
      throw err
    }
    yield* callActivityWithRetry(ctx, INTERNAL.completed, { runId, result: result ?? null }, RECORD_RETRY)
    return result
  }
}

const UNTIL_THE_ENGINE_ANSWERS: Partial<RetryPolicy> = {
  maxAttempts: 10,
  firstDelayMs: 1_000,
  backoff: 2,
  maxDelayMs: 30_000,
}

/**
 * Runs after a cancellation is recorded: makes sure the run's instance is terminated (the service
 * asked once already; this survives that request failing or the process dying), then runs the
 * type's compensation and records how it went.
 */
const cancelWorkflow: Workflow = async function* cancel(
  ctx,
  input: { runId: string; type: string; compensate: boolean },
) {
  yield* callActivityWithRetry(ctx, INTERNAL.terminate, { runId: input.runId }, UNTIL_THE_ENGINE_ANSWERS)
  yield* callActivityWithRetry(ctx, INTERNAL.awaitTermination, { runId: input.runId }, UNTIL_THE_ENGINE_ANSWERS)
  if (!input.compensate) return
  let error: { code: string; message: string } | null = null
  let result: unknown = null
  try {
    result = yield* callActivityWithRetry(ctx, compensationActivityName(input.type), { runId: input.runId }, {
      maxAttempts: 3,
      firstDelayMs: 1_000,
    })
  } catch (err) {
    error = describeRunFailure(err)
  }
  yield* callActivityWithRetry(ctx, INTERNAL.compensated, { runId: input.runId, error, result: result ?? null }, RECORD_RETRY)
}

/** The engine's registrations for the declared workflows: each wrapped, plus the module's own. */
export function engineRegistrations(
  definitions: readonly WorkflowDefinition[],
  tracker: RunTracker,
): { workflows: WorkflowRegistration[]; activities: ActivityRegistration[] } {
  const workflows: WorkflowRegistration[] = [{ name: INTERNAL.cancelWorkflow, workflow: cancelWorkflow }]
  const activities: ActivityRegistration[] = [
    { name: INTERNAL.started, activity: (_ctx, { runId }: { runId: string }) => tracker.markStarted(runId) },
    {
      name: INTERNAL.completed,
      activity: (_ctx, { runId, result }: { runId: string; result: unknown }) => tracker.markCompleted(runId, result),
    },
    {
      name: INTERNAL.failed,
      activity: (_ctx, { runId, error }: { runId: string; error: { code: string; message: string } }) =>
        tracker.markFailed(runId, error),
    },
    { name: INTERNAL.terminate, activity: (_ctx, { runId }: { runId: string }) => tracker.terminate(runId) },
    {
      name: INTERNAL.awaitTermination,
      activity: (_ctx, { runId }: { runId: string }) => tracker.awaitTermination(runId),
    },
    {
      name: INTERNAL.compensated,
      activity: (
        _ctx,
        { runId, error, result }: { runId: string; error: { code: string; message: string } | null; result?: unknown },
      ) => tracker.finishCompensation(runId, error, result ?? null),
    },
  ]
  for (const definition of definitions) {
    workflows.push({ name: definition.name, workflow: trackedWorkflow(definition.workflow) })
    activities.push(...(definition.activities ?? []))
    const compensation = definition.compensation
    if (compensation) {
      const activity: Activity = async (ctx, { runId }: { runId: string }) => {
        const run = await tracker.cancelledRun(runId)
        return run ? ((await compensation(ctx, run)) ?? null) : null
      }
      activities.push({ name: compensationActivityName(definition.name), activity })
    }
  }
  return { workflows, activities }
}
