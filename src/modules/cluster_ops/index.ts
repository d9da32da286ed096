import type { FastifyInstance } from 'fastify'
import { createKeptCounts } from '../../platform/db/kept-counts.js'
import { rawExecutor } from '../../platform/db/raw.js'
import type { Platform } from '../../platform/platform.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import { registerClusterRoutes } from './routes.js'
import { CLUSTER_SYNC_SWEEP, createClusterService } from './service.js'
import { registerClusterWorkflows } from './workflows.js'

export type { ClusterService, ClusterUser, ClusterView } from './service.js'
export { CLUSTER_SYNC_SWEEP, CLUSTER_TOPIC, CLUSTER_WORKFLOW } from './service.js'
export type { Device, DeviceType, NodeFacts, ClusterSummary, Resources } from './hardware.js'
export type { ClusterCapabilities } from './inspect.js'

/**
 * Clusters: registration from an uploaded kubeconfig (a workflow), hardware discovery, health kept
 * current by a sweep every replica shares, and teardown. Endpoints and apps declare themselves as
 * cluster users (`service.registerUser`) so a cluster in use is not deleted under them.
 */
export function createClusterOps(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault' | 'events' | 'sweeps' | 'changes'>,
  workflows: WorkflowService,
) {
  const log = platform.log.child({ module: 'cluster_ops' })
  const settings = platform.config.clusters
  const service = createClusterService({
    db: platform.database.db,
    vault: platform.vault,
    events: platform.events,
    sweeps: platform.sweeps,
    workflows,
    log,
    settings,
    changes: platform.changes,
    raw: rawExecutor(platform.database),
    counts: createKeptCounts(platform.changes),
  })
  registerClusterWorkflows(workflows, service)
  platform.sweeps.define({
    name: CLUSTER_SYNC_SWEEP,
    intervalMs: settings.syncIntervalMs,
    concurrency: settings.syncConcurrency,
    // A sync makes a few paged calls, each bounded by the request timeout; the lease outlasts a slow one.
    leaseMs: Math.max(30_000, settings.requestTimeoutMs * 3),
    run: (clusterId, ctx) => service.sync(clusterId, ctx.signal),
  })
  return {
    service,
    routes: (app: FastifyInstance) => registerClusterRoutes(app, service),
  }
}
