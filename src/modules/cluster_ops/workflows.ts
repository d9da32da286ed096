import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import { callActivityWithRetry, type RetryPolicy, type WorkflowService } from '../workflow_ops/index.js'
import { CLUSTER_WORKFLOW, type ClusterService } from './service.js'

const ACTIVITY = {
  verify: 'cluster_ops.verifyAccess',
  detect: 'cluster_ops.detect',
  discover: 'cluster_ops.discover',
  activate: 'cluster_ops.activate',
  fail: 'cluster_ops.failRegistration',
  verifyPending: 'cluster_ops.verifyPendingKubeconfig',
  detectPending: 'cluster_ops.detectPendingKubeconfig',
  swap: 'cluster_ops.swapKubeconfig',
  dropPending: 'cluster_ops.dropPendingKubeconfig',
  tearDownUsers: 'cluster_ops.tearDownUsers',
  cleanUp: 'cluster_ops.cleanUp',
  finishDelete: 'cluster_ops.finishDelete',
} as const

/**
 * A cluster that does not answer may be restarting: worth a few tries over a minute. A refusal
 * (bad token, missing rights, wrong CA, a duplicate) will not change by waiting.
 */
const CLUSTER_CALLS: Partial<RetryPolicy> = {
  maxAttempts: 4,
  firstDelayMs: 2_000,
  backoff: 3,
  maxDelayMs: 30_000,
  retryIf: (failure) => /CLUSTER_UNREACHABLE|CLUSTER_ERROR/.test(failure.message),
}
/** Our own database steps: retried through a hiccup. */
const LOCAL: Partial<RetryPolicy> = { maxAttempts: 5, firstDelayMs: 1_000, backoff: 2, maxDelayMs: 15_000 }

const messageOf = (err: unknown) =>
  (err as { details?: { message?: string } })?.details?.message ?? (err instanceof Error ? err.message : String(err))

type ClusterRef = { clusterId: string }

/** Declares registration, kubeconfig rotation and deletion on the workflow engine. */
export function registerClusterWorkflows(workflows: Pick<WorkflowService, 'register' | 'reportProgress'>, service: ClusterService): void {
  const progress = (ctx: WorkflowActivityContext, step: number, totalSteps: number, message: string) =>
    workflows.reportProgress(ctx, { step, totalSteps, percent: Math.floor(((step - 1) / totalSteps) * 100), message })

  workflows.register({
    name: CLUSTER_WORKFLOW.register,
    // Replayed by the SDK: only the input and the activities' results decide what it does.
    workflow: async function* registerCluster(ctx: WorkflowContext, ref: ClusterRef) {
      try {
        yield* callActivityWithRetry(ctx, ACTIVITY.verify, ref, CLUSTER_CALLS)
        yield* callActivityWithRetry(ctx, ACTIVITY.detect, ref, CLUSTER_CALLS)
        yield* callActivityWithRetry(ctx, ACTIVITY.discover, ref, CLUSTER_CALLS)
        return yield* callActivityWithRetry(ctx, ACTIVITY.activate, ref, LOCAL)
      } catch (err) {
        yield* callActivityWithRetry(ctx, ACTIVITY.fail, { ...ref, error: messageOf(err) }, LOCAL)
        throw err
      }
    },
    // A cancelled registration leaves a failed record, never a half-registered cluster; the result
    // says what the cluster is now (one whose last step finished before the cancel stays available).
    compensation: (_ctx, run) => service.failRegistration((run.input as ClusterRef).clusterId, 'CANCELLED: the registration was cancelled'),
    activities: [
      {
        name: ACTIVITY.verify,
        activity: async (ctx: WorkflowActivityContext, ref: ClusterRef) => {
          await progress(ctx, 1, 4, 'verifying the connection and permissions')
          return service.verifyAccess(ref.clusterId)
        },
      },
      {
        name: ACTIVITY.detect,
        activity: async (ctx: WorkflowActivityContext, ref: ClusterRef) => {
          await progress(ctx, 2, 4, 'detecting the platform and what the cluster offers')
          return service.detect(ref.clusterId)
        },
      },
      {
        name: ACTIVITY.discover,
        activity: async (ctx: WorkflowActivityContext, ref: ClusterRef) => {
          await progress(ctx, 3, 4, 'discovering nodes and accelerators')
          return service.discover(ref.clusterId)
        },
      },
      {
        name: ACTIVITY.activate,
        activity: async (ctx: WorkflowActivityContext, ref: ClusterRef) => {
          await progress(ctx, 4, 4, 'marking the cluster available')
          return service.activate(ref.clusterId)
        },
      },
      {
        name: ACTIVITY.fail,
        activity: (_ctx: WorkflowActivityContext, input: ClusterRef & { error: string }) => service.failRegistration(input.clusterId, input.error),
      },
    ],
  })

  type RotateInput = ClusterRef & { allowInsecureTls: boolean; allowHttp: boolean }
  workflows.register({
    name: CLUSTER_WORKFLOW.rotate,
    workflow: async function* rotateKubeconfig(ctx: WorkflowContext, input: RotateInput) {
      try {
        yield* callActivityWithRetry(ctx, ACTIVITY.verifyPending, input, CLUSTER_CALLS)
        yield* callActivityWithRetry(ctx, ACTIVITY.detectPending, input, CLUSTER_CALLS)
        yield* callActivityWithRetry(ctx, ACTIVITY.swap, input, LOCAL)
        return { clusterId: input.clusterId, replaced: true }
      } catch (err) {
        // The old kubeconfig stays; the new one is forgotten.
        yield* callActivityWithRetry(ctx, ACTIVITY.dropPending, input, LOCAL)
        throw err
      }
    },
    compensation: (_ctx, run) => service.dropPendingKubeconfig((run.input as RotateInput).clusterId),
    activities: [
      {
        name: ACTIVITY.verifyPending,
        activity: async (ctx: WorkflowActivityContext, input: RotateInput) => {
          await progress(ctx, 1, 3, 'verifying the new kubeconfig')
          return service.verifyAccess(input.clusterId, 'pending')
        },
      },
      {
        name: ACTIVITY.detectPending,
        activity: async (ctx: WorkflowActivityContext, input: RotateInput) => {
          await progress(ctx, 2, 3, 'checking that it reaches the same cluster')
          return service.detect(input.clusterId, 'pending')
        },
      },
      {
        name: ACTIVITY.swap,
        activity: async (ctx: WorkflowActivityContext, input: RotateInput) => {
          await progress(ctx, 3, 3, 'replacing the kubeconfig')
          return service.swapKubeconfig(input.clusterId, input)
        },
      },
      { name: ACTIVITY.dropPending, activity: (_ctx: WorkflowActivityContext, input: RotateInput) => service.dropPendingKubeconfig(input.clusterId) },
    ],
  })

  type DeleteInput = ClusterRef & { force: boolean }
  workflows.register({
    name: CLUSTER_WORKFLOW.remove,
    workflow: async function* deleteCluster(ctx: WorkflowContext, input: DeleteInput) {
      if (input.force) yield* callActivityWithRetry(ctx, ACTIVITY.tearDownUsers, input, LOCAL)
      let note: string | null = null
      try {
        yield* callActivityWithRetry(ctx, ACTIVITY.cleanUp, input, CLUSTER_CALLS)
      } catch (err) {
        // A cluster that is gone must still be deletable; what could not be removed is said, not hidden.
        note = `objects modelplane created may remain in the cluster: ${messageOf(err).slice(0, 500)}`
      }
      yield* callActivityWithRetry(ctx, ACTIVITY.finishDelete, { ...input, note }, LOCAL)
      return { clusterId: input.clusterId, status: 'deleted', note }
    },
    activities: [
      {
        name: ACTIVITY.tearDownUsers,
        activity: async (ctx: WorkflowActivityContext, input: DeleteInput) => {
          await progress(ctx, 1, 3, 'tearing down the endpoints and apps on the cluster')
          return service.tearDownUsers(input.clusterId)
        },
      },
      {
        name: ACTIVITY.cleanUp,
        activity: async (ctx: WorkflowActivityContext, input: DeleteInput) => {
          await progress(ctx, 2, 3, 'deleting what modelplane created in the cluster')
          return service.cleanUp(input.clusterId)
        },
      },
      {
        name: ACTIVITY.finishDelete,
        activity: async (ctx: WorkflowActivityContext, input: DeleteInput & { note: string | null }) => {
          await progress(ctx, 3, 3, 'removing the cluster')
          return service.finishDelete(input.clusterId, input.note)
        },
      },
    ],
  })
}
