import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import { callActivityWithRetry, type RetryPolicy, type WorkflowService } from '../workflow_ops/index.js'
import { IMPORT_BATCH_SIZE, type ImportRef, type ImportResult, USER_IMPORT_WORKFLOW, type UserImport } from './import.js'

const ACTIVITY = {
  prepare: 'user_admin.importPrepare',
  batch: 'user_admin.importBatch',
  report: 'user_admin.importReport',
} as const

/** A database or blob-store hiccup must not fail a 100,000-row import. */
const RETRY: Partial<RetryPolicy> = { maxAttempts: 5, firstDelayMs: 1_000, backoff: 2, maxDelayMs: 15_000 }

/**
 * Declares the bulk import on the workflow engine. Steps: 1 checks the rows, 2…batches+1 insert one
 * batch each, the last totals the report. Progress is reported as each step starts.
 */
export function registerImportWorkflow(workflows: Pick<WorkflowService, 'register' | 'reportProgress'>, imports: UserImport): void {
  const totalSteps = (ref: ImportRef) => ref.batches + 2
  workflows.register({
    name: USER_IMPORT_WORKFLOW,
    // Replayed by the SDK: only the input and the activities' results decide what it does.
    workflow: async function* importUsers(ctx: WorkflowContext, ref: ImportRef) {
      yield* callActivityWithRetry(ctx, ACTIVITY.prepare, ref, RETRY)
      for (let batch = 0; batch < ref.batches; batch++) {
        yield* callActivityWithRetry(ctx, ACTIVITY.batch, { ref, batch }, RETRY)
      }
      const result: ImportResult = yield* callActivityWithRetry(ctx, ACTIVITY.report, ref, RETRY)
      return result
    },
    // The ledger holds the error report, the staged files a retry would start from: they go with
    // the import's last run (purged, or past its retention).
    // A cancel keeps the users created so far and reports them as the run's result.
    compensation: (_ctx, run) => imports.reportCancelled(run.input as ImportRef, run.runId),
    purged: (tx, run) => (run.sharedWithOtherRuns ? Promise.resolve() : imports.forget(tx, run.input as ImportRef)),
    activities: [
      {
        name: ACTIVITY.prepare,
        activity: async (ctx: WorkflowActivityContext, ref: ImportRef) => {
          await workflows.reportProgress(ctx, { step: 1, totalSteps: totalSteps(ref), percent: 0, message: `checking ${ref.rows} rows` })
          return imports.prepare(ref)
        },
      },
      {
        name: ACTIVITY.batch,
        activity: async (ctx: WorkflowActivityContext, { ref, batch }: { ref: ImportRef; batch: number }) => {
          const first = batch * IMPORT_BATCH_SIZE + 1
          const last = Math.min(ref.rows, (batch + 1) * IMPORT_BATCH_SIZE)
          await workflows.reportProgress(ctx, {
            step: batch + 2,
            totalSteps: totalSteps(ref),
            percent: Math.floor((batch / ref.batches) * 100),
            message: `batch ${batch + 1} of ${ref.batches}: rows ${first}-${last}`,
          })
          return imports.insertBatch(ref, batch)
        },
      },
      {
        name: ACTIVITY.report,
        activity: async (ctx: WorkflowActivityContext, ref: ImportRef) => {
          const runId = ctx.getWorkflowInstanceId()
          await workflows.reportProgress(ctx, { step: totalSteps(ref), totalSteps: totalSteps(ref), percent: 99, message: 'writing the report' })
          return imports.report(ref, runId)
        },
      },
    ],
  })
}
