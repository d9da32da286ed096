import { AppError, ConflictError, NotFoundError } from '../../platform/errors.js'

/** The module's stable error codes. */
export const WorkflowErrorCode = {
  NOT_FOUND: 'WORKFLOW_NOT_FOUND',
  ALREADY_FINISHED: 'WORKFLOW_ALREADY_FINISHED',
  NOT_FAILED: 'WORKFLOW_NOT_FAILED',
  ALREADY_RETRIED: 'WORKFLOW_ALREADY_RETRIED',
  NOT_FINISHED: 'WORKFLOW_NOT_FINISHED',
  ENGINE_UNAVAILABLE: 'WORKFLOW_ENGINE_UNAVAILABLE',
  SCHEDULE_FAILED: 'WORKFLOW_SCHEDULE_FAILED',
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
  /** A run's failure when the step that failed named no code of its own. */
  STEP_FAILED: 'WORKFLOW_STEP_FAILED',
} as const

export const workflowNotFound = () => new NotFoundError('workflow run not found', WorkflowErrorCode.NOT_FOUND)

export const workflowAlreadyFinished = (status: string) =>
  new ConflictError(WorkflowErrorCode.ALREADY_FINISHED, `the workflow run has already finished (${status})`, { status })

export const workflowNotFailed = (status: string) =>
  new ConflictError(WorkflowErrorCode.NOT_FAILED, `only a failed workflow run can be retried (this one is ${status})`, {
    status,
  })

export const workflowAlreadyRetried = (retryId: string) =>
  new ConflictError(WorkflowErrorCode.ALREADY_RETRIED, 'the workflow run has already been retried', {
    workflowId: retryId,
  })

export const workflowNotFinished = (status: string) =>
  new ConflictError(
    WorkflowErrorCode.NOT_FINISHED,
    `only a finished workflow run can be purged (this one is ${status})`,
    { status },
  )

/** 422, not the first run's answer: answering it would tell the caller their different request was done. */
export const idempotencyKeyReused = () =>
  new AppError(
    WorkflowErrorCode.IDEMPOTENCY_KEY_REUSED,
    422,
    'this Idempotency-Key was already used for a different request; send a new key with a new request',
  )

export const engineUnavailable = () =>
  new AppError(WorkflowErrorCode.ENGINE_UNAVAILABLE, 503, 'the workflow engine is not running')

/**
 * Thrown by an activity to fail its run with a stable code the API reports as `error.code`:
 * `throw new WorkflowStepError('CLUSTER_UNREACHABLE', 'the API server did not answer')`.
 * The code travels inside the message because the SDK carries only an error's type and message.
 */
export class WorkflowStepError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`)
    this.name = 'WorkflowStepError'
  }
}

const CODED_MESSAGE = /^([A-Z][A-Z0-9_]{2,63}): ([\s\S]*)$/
const MAX_ERROR_MESSAGE = 1_000

/** What the run record shows of a failure the SDK handed to the workflow (a TaskFailedError) or the workflow threw. */
export function describeRunFailure(err: unknown): { code: string; message: string } {
  const details = (err as { details?: { message?: unknown } } | null)?.details
  const raw =
    typeof details?.message === 'string' ? details.message : err instanceof Error ? err.message : String(err)
  const coded = CODED_MESSAGE.exec(raw)
  const [code, message] = coded ? [coded[1]!, coded[2]!] : [WorkflowErrorCode.STEP_FAILED, raw]
  return { code, message: message.slice(0, MAX_ERROR_MESSAGE) }
}
