import type { Task, WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'

/**
 * Activity retries with backoff for any workflow (the JS SDK has no retry policies):
 *
 *     const result = yield* callActivityWithRetry(ctx, 'provisionNode', input, { maxAttempts: 5 })
 *
 * Between attempts the workflow waits on a durable timer, so a retry survives restarts and costs
 * nothing while it waits. Delays are deterministic (no random jitter): the workflow is replayed and
 * must schedule the same timers every time.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number
  firstDelayMs: number
  /** Each delay is the previous one times this. */
  backoff: number
  maxDelayMs: number
  /** Decides from the failure whether another attempt can help; all failures are retried by default. */
  retryIf?: (failure: ActivityFailure) => boolean
}

export interface ActivityFailure {
  /** The error class name thrown inside the activity (e.g. "TypeError"), as the SDK reports it. */
  errorType: string
  message: string
  attempt: number
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, firstDelayMs: 1_000, backoff: 2, maxDelayMs: 60_000 }

/** The delay before attempt `attempt + 1`, after `attempt` failed. */
export function retryDelay(policy: Pick<RetryPolicy, 'firstDelayMs' | 'backoff' | 'maxDelayMs'>, attempt: number): number {
  const delay = policy.firstDelayMs * policy.backoff ** Math.max(0, attempt - 1)
  return Math.max(0, Math.min(policy.maxDelayMs, delay))
}

function describe(err: unknown, attempt: number): ActivityFailure {
  const details = (err as { details?: { errorType?: string; message?: string } } | null)?.details
  return {
    errorType: details?.errorType ?? (err instanceof Error ? err.name : 'Error'),
    message: details?.message ?? (err instanceof Error ? err.message : String(err)),
    attempt,
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the SDK types activity results as any
export async function* callActivityWithRetry<TResult = any>(
  ctx: WorkflowContext,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  activity: string | ((context: WorkflowActivityContext, input: any) => unknown),
  input?: unknown,
  policy: Partial<RetryPolicy> = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): AsyncGenerator<Task<any>, TResult, any> {
  const settings: RetryPolicy = { ...DEFAULT_RETRY, ...policy }
  if (!(settings.maxAttempts >= 1)) throw new Error('maxAttempts must be at least 1')
  for (let attempt = 1; ; attempt++) {
    try {
      return (yield ctx.callActivity(activity, input)) as TResult
    } catch (err) {
      if (attempt >= settings.maxAttempts || settings.retryIf?.(describe(err, attempt)) === false) throw err
      const delayMs = retryDelay(settings, attempt)
      if (delayMs > 0) yield ctx.createTimer(new Date(ctx.getCurrentUtcDateTime().getTime() + delayMs))
    }
  }
}
