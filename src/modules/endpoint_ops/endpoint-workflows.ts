import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import { callActivityWithRetry, type RetryPolicy, type WorkflowService } from '../workflow_ops/index.js'
import { ENDPOINT_WORKFLOW, type EndpointService, type RolloutObservation } from './endpoint-service.js'

const ACTIVITY = {
  verify: 'endpoint_ops.verifyCluster',
  apply: 'endpoint_ops.apply',
  observe: 'endpoint_ops.observe',
  probe: 'endpoint_ops.probe',
  running: 'endpoint_ops.markRunning',
  failed: 'endpoint_ops.markFailed',
  rollBack: 'endpoint_ops.rollBack',
  degraded: 'endpoint_ops.markDegraded',
  deleteObjects: 'endpoint_ops.deleteObjects',
  objectsLeft: 'endpoint_ops.objectsLeft',
  finishDelete: 'endpoint_ops.finishDelete',
} as const

/** A cluster that does not answer may be restarting; a refusal will not change by waiting. */
const CLUSTER_CALLS: Partial<RetryPolicy> = {
  maxAttempts: 4,
  firstDelayMs: 2_000,
  backoff: 3,
  maxDelayMs: 30_000,
  retryIf: (failure) => /CLUSTER_UNREACHABLE|CLUSTER_ERROR/.test(failure.message),
}
/** The runtime loads its model after the pod is ready: asked a few times before giving up. */
const PROBE: Partial<RetryPolicy> = { maxAttempts: 6, firstDelayMs: 2_000, backoff: 2, maxDelayMs: 30_000 }
const LOCAL: Partial<RetryPolicy> = { maxAttempts: 5, firstDelayMs: 1_000, backoff: 2, maxDelayMs: 15_000 }

const messageOf = (err: unknown) =>
  (err as { details?: { message?: string } })?.details?.message ?? (err instanceof Error ? err.message : String(err))

export interface EndpointTimings {
  /** between two looks at a rollout (a durable timer, not a sleeping step) */
  rolloutPollMs: number
  /** a rollout not complete after this long has failed */
  rolloutTimeoutMs: number
  /** a teardown waits this long for the objects to go before it says what remains */
  teardownTimeoutMs: number
}

/** `kind` names what the user deployed in progress messages; runs started before it was passed speak of an endpoint. */
type DeployInput = { endpointId: string; revision: number; mode: 'deploy' | 'update'; kind?: 'model' | 'app' }
type Ref = { endpointId: string; kind?: 'model' | 'app' }

/** What the progress messages call the thing being deployed or deleted. */
const thing = (input: { kind?: string }) => (input.kind === 'app' ? 'app' : 'endpoint')

class StepFailed extends Error {
  constructor(
    readonly step: string,
    message: string,
    readonly problems: RolloutObservation['problems'] = [],
  ) {
    super(message)
  }
}

/** Declares deploy/update and teardown on the workflow engine. */
export function registerEndpointWorkflows(
  workflows: Pick<WorkflowService, 'register' | 'reportProgress'>,
  service: EndpointService,
  timings: EndpointTimings,
): void {
  const progress = (ctx: WorkflowActivityContext, step: number, totalSteps: number, message: string) =>
    workflows.reportProgress(ctx, { step, totalSteps, percent: Math.floor(((step - 1) / totalSteps) * 100), message })

  workflows.register({
    name: ENDPOINT_WORKFLOW.deploy,
    // Replayed by the SDK: only the input, the clock of the context and the activities' results decide.
    workflow: async function* deployEndpoint(ctx: WorkflowContext, input: DeployInput) {
      let step = 'verify'
      try {
        yield* callActivityWithRetry(ctx, ACTIVITY.verify, input, CLUSTER_CALLS)
        step = 'apply'
        const applied = (yield* callActivityWithRetry(ctx, ACTIVITY.apply, input, CLUSTER_CALLS)) as { superseded: boolean }
        if (applied.superseded) return { endpointId: input.endpointId, superseded: true }
        step = 'rollout'
        const deadline = ctx.getCurrentUtcDateTime().getTime() + timings.rolloutTimeoutMs
        for (;;) {
          const seen = (yield* callActivityWithRetry(ctx, ACTIVITY.observe, input, CLUSTER_CALLS)) as RolloutObservation | { superseded: true }
          if ('superseded' in seen) return { endpointId: input.endpointId, superseded: true }
          if (seen.state === 'complete') break
          if (seen.state === 'failed') throw new StepFailed(step, `${seen.reason}: ${seen.message}`, seen.problems)
          const now = ctx.getCurrentUtcDateTime().getTime()
          if (now >= deadline) {
            throw new StepFailed(step, `ROLLOUT_TIMEOUT: not complete after ${Math.round(timings.rolloutTimeoutMs / 1000)} s: ${seen.message}`, seen.problems)
          }
          yield ctx.createTimer(new Date(now + timings.rolloutPollMs))
        }
        step = 'probe'
        yield* callActivityWithRetry(ctx, ACTIVITY.probe, input, PROBE)
        return yield* callActivityWithRetry(ctx, ACTIVITY.running, input, LOCAL)
      } catch (err) {
        const failed = err instanceof StepFailed ? err : new StepFailed(step, messageOf(err))
        const report = { ...input, step: failed.step, error: failed.message, problems: failed.problems }
        if (input.mode === 'update') {
          // The previous revision comes back; a rollback that cannot be applied is said, not hidden.
          try {
            yield* callActivityWithRetry(ctx, ACTIVITY.rollBack, input, CLUSTER_CALLS)
          } catch (rollbackErr) {
            report.error = `${report.error}; rolling back failed too: ${messageOf(rollbackErr)}`
          }
          yield* callActivityWithRetry(ctx, ACTIVITY.degraded, report, LOCAL)
        } else {
          yield* callActivityWithRetry(ctx, ACTIVITY.failed, report, LOCAL)
        }
        throw err
      }
    },
    compensation: async (_ctx, run) => {
      const input = run.input as DeployInput
      await service.markFailed(input.endpointId, input.revision, 'cancelled', 'CANCELLED: the deploy was cancelled')
      return { endpointId: input.endpointId, status: 'failed' }
    },
    activities: [
      {
        name: ACTIVITY.verify,
        activity: async (ctx: WorkflowActivityContext, input: DeployInput) => {
          await progress(ctx, 1, 4, 'verifying the cluster')
          return service.verifyCluster(input.endpointId)
        },
      },
      {
        name: ACTIVITY.apply,
        activity: async (ctx: WorkflowActivityContext, input: DeployInput) => {
          await progress(ctx, 2, 4, input.kind === 'app' ? `applying the app's code and objects, revision ${input.revision}` : `planning and applying revision ${input.revision}`)
          return service.apply(input.endpointId, input.revision)
        },
      },
      {
        name: ACTIVITY.observe,
        activity: async (ctx: WorkflowActivityContext, input: DeployInput) => {
          if (!(await service.current(input.endpointId, input.revision))) return { superseded: true }
          const seen = await service.observe(input.endpointId)
          await progress(ctx, 3, 4, `${input.kind === 'app' ? "waiting for the app's pods" : 'waiting for the rollout'}: ${seen.message}`)
          return seen
        },
      },
      {
        name: ACTIVITY.probe,
        activity: async (ctx: WorkflowActivityContext, input: DeployInput) => {
          await progress(ctx, 4, 4, input.kind === 'app' ? "asking the app's runner for /health" : 'asking the runtime for its model')
          return service.probe(input.endpointId)
        },
      },
      {
        name: ACTIVITY.running,
        activity: async (_ctx: WorkflowActivityContext, input: DeployInput) => {
          // Before the record moves on: the code that served until now is still the applied one.
          if (input.kind === 'app') await service.pruneAppCode(input.endpointId, input.revision)
          return service.markRunning(input.endpointId, input.revision)
        },
      },
      {
        name: ACTIVITY.failed,
        activity: (_ctx: WorkflowActivityContext, r: DeployInput & { step: string; error: string; problems: RolloutObservation['problems'] }) =>
          service.markFailed(r.endpointId, r.revision, r.step, r.error, r.problems),
      },
      {
        name: ACTIVITY.rollBack,
        activity: (_ctx: WorkflowActivityContext, input: DeployInput) => service.apply(input.endpointId, input.revision, 'applied'),
      },
      {
        name: ACTIVITY.degraded,
        activity: (_ctx: WorkflowActivityContext, r: DeployInput & { step: string; error: string; problems: RolloutObservation['problems'] }) =>
          service.markDegraded(r.endpointId, r.revision, r.step, r.error, r.problems),
      },
    ],
  })

  workflows.register({
    name: ENDPOINT_WORKFLOW.teardown,
    workflow: async function* tearDownEndpoint(ctx: WorkflowContext, input: Ref) {
      let note: string | null = null
      try {
        const deadline = ctx.getCurrentUtcDateTime().getTime() + timings.teardownTimeoutMs
        for (;;) {
          // Deleted again on every pass: an apply that was under way when the teardown began cannot outlive it.
          yield* callActivityWithRetry(ctx, ACTIVITY.deleteObjects, input, CLUSTER_CALLS)
          const { left } = (yield* callActivityWithRetry(ctx, ACTIVITY.objectsLeft, input, CLUSTER_CALLS)) as { left: number }
          if (left === 0) break
          const now = ctx.getCurrentUtcDateTime().getTime()
          if (now >= deadline) {
            note = `${left} object(s) of the ${thing(input)} were still in the cluster after ${Math.round(timings.teardownTimeoutMs / 1000)} s`
            break
          }
          yield ctx.createTimer(new Date(now + timings.rolloutPollMs))
        }
      } catch (err) {
        // A cluster that is gone must not keep an endpoint alive: what may remain is said.
        note = `objects of the ${thing(input)} may remain in the cluster: ${messageOf(err).slice(0, 500)}`
      }
      yield* callActivityWithRetry(ctx, ACTIVITY.finishDelete, { ...input, note }, LOCAL)
      return { endpointId: input.endpointId, status: 'deleted', note }
    },
    activities: [
      {
        name: ACTIVITY.deleteObjects,
        activity: async (ctx: WorkflowActivityContext, input: Ref) => {
          await progress(ctx, 1, 2, `deleting the ${thing(input)}’s objects`)
          return service.deleteObjects(input.endpointId)
        },
      },
      { name: ACTIVITY.objectsLeft, activity: (_ctx: WorkflowActivityContext, input: Ref) => service.objectsLeft(input.endpointId) },
      {
        name: ACTIVITY.finishDelete,
        activity: async (ctx: WorkflowActivityContext, input: Ref & { note: string | null }) => {
          await progress(ctx, 2, 2, 'closing the record')
          return service.finishDelete(input.endpointId, input.note)
        },
      },
    ],
  })
}
