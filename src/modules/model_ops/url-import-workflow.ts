import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import { callActivityWithRetry, type RetryPolicy, type WorkflowService } from '../workflow_ops/index.js'
import { URL_IMPORT_WORKFLOW, type UrlImportRef, type UrlImportService, type UrlPlan } from './url-import.js'

const ACTIVITY = {
  probe: 'model_ops.importUrlProbe',
  transfer: 'model_ops.importUrlTransfer',
  finish: 'model_ops.importUrlFinish',
  fail: 'model_ops.importUrlFail',
} as const

/**
 * A server that drops connections or stumbles (5xx) may recover; a refused address, a missing
 * file, an unsafe or oversized archive, a wrong sha256 will not.
 */
const FINAL = /URL_NOT_FOUND|URL_FORBIDDEN|URL_REFUSED_ADDRESS|URL_INVALID|URL_TOO_LARGE|ARCHIVE_|MODEL_IMPORT_|MODEL_VERSION_|MODEL_NOT_FOUND/
const SERVER_CALLS: Partial<RetryPolicy> = { maxAttempts: 5, firstDelayMs: 2_000, backoff: 3, maxDelayMs: 60_000, retryIf: (failure) => !FINAL.test(failure.message) }
const LOCAL: Partial<RetryPolicy> = { maxAttempts: 5, firstDelayMs: 1_000, backoff: 2, maxDelayMs: 15_000 }

const messageOf = (err: unknown) =>
  (err as { details?: { message?: string } })?.details?.message ?? (err instanceof Error ? err.message : String(err))

/** Declares the url import: probe, fetch (in parts, or in one pass through the unpacker), read metadata and seal. */
export function registerUrlImportWorkflows(workflows: Pick<WorkflowService, 'register'>, imports: UrlImportService): void {
  workflows.register({
    name: URL_IMPORT_WORKFLOW,
    // Replayed by the SDK: only the input and the activities' results decide what it does.
    workflow: async function* importUrl(ctx: WorkflowContext, ref: UrlImportRef) {
      try {
        const plan = (yield* callActivityWithRetry(ctx, ACTIVITY.probe, ref, SERVER_CALLS)) as UrlPlan
        yield* callActivityWithRetry(ctx, ACTIVITY.transfer, { ...ref, plan }, SERVER_CALLS)
        return yield* callActivityWithRetry(ctx, ACTIVITY.finish, ref, LOCAL)
      } catch (err) {
        yield* callActivityWithRetry(ctx, ACTIVITY.fail, { ...ref, error: messageOf(err) }, LOCAL)
        throw err
      }
    },
    // Cancelled: nothing of the version stays in the store; the version is failed as cancelled.
    compensation: (_ctx, run) => imports.cancel(run.input as UrlImportRef),
    activities: [
      { name: ACTIVITY.probe, activity: (ctx: WorkflowActivityContext, ref: UrlImportRef) => imports.probe(ctx.getWorkflowInstanceId(), ref) },
      { name: ACTIVITY.transfer, activity: (ctx: WorkflowActivityContext, input: UrlImportRef & { plan: UrlPlan }) => imports.transfer(ctx.getWorkflowInstanceId(), input) },
      { name: ACTIVITY.finish, activity: (ctx: WorkflowActivityContext, ref: UrlImportRef) => imports.finish(ctx.getWorkflowInstanceId(), ref) },
      { name: ACTIVITY.fail, activity: (_ctx: WorkflowActivityContext, input: UrlImportRef & { error: string }) => imports.fail(input, input.error) },
    ],
  })
}
