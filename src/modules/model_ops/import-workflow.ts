import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import { callActivityWithRetry, type RetryPolicy, type WorkflowService, WorkflowStepError } from '../workflow_ops/index.js'
import { HubErrorCode } from './hub.js'
import { IMPORT_WORKFLOW, type ImportRef, type ImportService, type MaybeWait } from './import.js'

const ACTIVITY = {
  list: 'model_ops.importList',
  transfer: 'model_ops.importTransferNext',
  finish: 'model_ops.importFinish',
  fail: 'model_ops.importFail',
} as const

/** A hub that drops connections or stumbles (5xx) may recover; a refusal or a bad file will not. */
const HUB_CALLS: Partial<RetryPolicy> = {
  maxAttempts: 5,
  firstDelayMs: 2_000,
  backoff: 3,
  maxDelayMs: 60_000,
  retryIf: (failure) => !new RegExp(`${HubErrorCode.UNAUTHORIZED}|${HubErrorCode.NOT_FOUND}|MODEL_IMPORT_|MODEL_VERSION_|MODEL_NOT_FOUND`).test(failure.message),
}
/** Our own database and blob steps: retried through a hiccup. */
const LOCAL: Partial<RetryPolicy> = { maxAttempts: 5, firstDelayMs: 1_000, backoff: 2, maxDelayMs: 15_000 }
/** 429s in a row the import sits out before it gives up. */
const MAX_RATE_LIMIT_WAITS = 30
/** More transfers than files means files keep failing verification and coming back: stop. */
const MAX_TRANSFERS_PER_FILE = 3

const messageOf = (err: unknown) =>
  (err as { details?: { message?: string } })?.details?.message ?? (err instanceof Error ? err.message : String(err))

/**
 * Calls a hub activity; when it answers `waitMs` (the hub said 429 with Retry-After) the workflow
 * sleeps on a durable timer (nothing held, survives restarts) and asks again.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the SDK's task type
async function* hubCall<T>(ctx: WorkflowContext, activity: string, input: unknown): AsyncGenerator<any, T, any> {
  for (let waits = 0; ; waits++) {
    const result = (yield* callActivityWithRetry(ctx, activity, input, HUB_CALLS)) as MaybeWait<T>
    if (!(result && typeof result === 'object' && 'waitMs' in result)) return result
    if (waits >= MAX_RATE_LIMIT_WAITS) throw new WorkflowStepError(HubErrorCode.RATE_LIMITED, `the hub kept answering 429 (${waits} waits)`)
    yield ctx.createTimer(new Date(ctx.getCurrentUtcDateTime().getTime() + result.waitMs))
  }
}

/** Declares the hub import: list and pin, fetch file by file, read metadata and seal. */
export function registerImportWorkflows(workflows: Pick<WorkflowService, 'register'>, imports: ImportService): void {
  workflows.register({
    name: IMPORT_WORKFLOW,
    // Replayed by the SDK: only the input and the activities' results decide what it does.
    workflow: async function* importModel(ctx: WorkflowContext, ref: ImportRef) {
      try {
        const listed = yield* hubCall<{ files: number }>(ctx, ACTIVITY.list, ref)
        for (let transfers = 0; ; transfers++) {
          if (transfers > listed.files * MAX_TRANSFERS_PER_FILE) throw new WorkflowStepError('MODEL_IMPORT_STUCK', 'files keep coming back unverified')
          const step = yield* hubCall<{ done: boolean }>(ctx, ACTIVITY.transfer, ref)
          if (step.done) break
        }
        return yield* callActivityWithRetry(ctx, ACTIVITY.finish, ref, LOCAL)
      } catch (err) {
        yield* callActivityWithRetry(ctx, ACTIVITY.fail, { ...ref, error: messageOf(err) }, LOCAL)
        throw err
      }
    },
    // Cancelled: nothing of the version stays in the store; the version is failed as cancelled.
    compensation: (_ctx, run) => imports.cancel(run.input as ImportRef),
    activities: [
      { name: ACTIVITY.list, activity: (ctx: WorkflowActivityContext, ref: ImportRef) => imports.list(ctx.getWorkflowInstanceId(), ref) },
      { name: ACTIVITY.transfer, activity: (ctx: WorkflowActivityContext, ref: ImportRef) => imports.transferNext(ctx.getWorkflowInstanceId(), ref) },
      { name: ACTIVITY.finish, activity: (ctx: WorkflowActivityContext, ref: ImportRef) => imports.finish(ctx.getWorkflowInstanceId(), ref) },
      { name: ACTIVITY.fail, activity: (_ctx: WorkflowActivityContext, input: ImportRef & { error: string }) => imports.fail(input, input.error) },
    ],
  })
}
