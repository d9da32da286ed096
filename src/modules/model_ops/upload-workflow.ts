import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import { callActivityWithRetry, type RetryPolicy, type WorkflowService } from '../workflow_ops/index.js'
import { UPLOAD_WORKFLOW, type UploadService } from './uploads.js'

const ACTIVITY = {
  verify: 'model_ops.verifyUpload',
  seal: 'model_ops.sealUpload',
  fail: 'model_ops.failUpload',
} as const

/**
 * Reading the store back may meet a store that is restarting: worth a few tries. Bytes that hash
 * to something else than declared will hash the same way next time.
 */
const READS: Partial<RetryPolicy> = {
  maxAttempts: 4,
  firstDelayMs: 2_000,
  backoff: 3,
  maxDelayMs: 30_000,
  retryIf: (failure) => !/MODEL_UPLOAD_(HASH|SIZE)_MISMATCH/.test(failure.message),
}
/** Our own database steps: retried through a hiccup. */
const LOCAL: Partial<RetryPolicy> = { maxAttempts: 5, firstDelayMs: 1_000, backoff: 2, maxDelayMs: 15_000 }

const messageOf = (err: unknown) =>
  (err as { details?: { message?: string } })?.details?.message ?? (err instanceof Error ? err.message : String(err))

type UploadRef = { uploadId: string }

/**
 * After the store assembled an upload's files: read every byte back and hash it, read what the
 * files say about the model, seal the version. A mismatch, a run that gives up, or a cancel fails
 * the version and removes its objects. A run resumed after a crash reads the files again from the
 * start: a hash half computed does not survive the process.
 */
export function registerUploadWorkflow(workflows: Pick<WorkflowService, 'register' | 'reportProgress'>, uploads: UploadService): void {
  workflows.register({
    name: UPLOAD_WORKFLOW,
    workflow: async function* verifyUpload(ctx: WorkflowContext, ref: UploadRef) {
      try {
        yield* callActivityWithRetry(ctx, ACTIVITY.verify, ref, READS)
        return yield* callActivityWithRetry(ctx, ACTIVITY.seal, ref, LOCAL)
      } catch (err) {
        yield* callActivityWithRetry(ctx, ACTIVITY.fail, { ...ref, error: messageOf(err) }, LOCAL)
        throw err
      }
    },
    compensation: async (_ctx, run) => {
      const { uploadId } = run.input as UploadRef
      await uploads.fail(uploadId, 'CANCELLED: the verification of the upload was cancelled')
      return { uploadId, status: 'failed' }
    },
    activities: [
      {
        name: ACTIVITY.verify,
        activity: (ctx: WorkflowActivityContext, ref: UploadRef) =>
          uploads.verify(ref.uploadId, async (done, total, path) => {
            await workflows.reportProgress(ctx, {
              step: 1,
              totalSteps: 2,
              percent: total > 0 ? Math.floor((done / total) * 95) : 0,
              message: `verifying ${path} (${done} of ${total} bytes read)`,
              bytesDone: done,
              bytesTotal: total,
            })
          }),
      },
      {
        name: ACTIVITY.seal,
        activity: async (ctx: WorkflowActivityContext, ref: UploadRef) => {
          await workflows.reportProgress(ctx, { step: 2, totalSteps: 2, percent: 95, message: 'sealing the version' })
          return uploads.seal(ref.uploadId)
        },
      },
      {
        name: ACTIVITY.fail,
        activity: async (_ctx: WorkflowActivityContext, input: UploadRef & { error: string }) => {
          await uploads.fail(input.uploadId, input.error)
          return { uploadId: input.uploadId, status: 'failed' }
        },
      },
    ],
  })
}
