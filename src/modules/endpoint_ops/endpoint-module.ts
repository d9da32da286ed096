import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import type { ClusterService } from '../cluster_ops/index.js'
import type { ModelService } from '../model_ops/index.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import type { AppDesigner, EndpointDesigner } from './endpoint-design.js'
import { registerEndpointRoutes } from './endpoint-routes.js'
import { createEndpointService, ENDPOINT_RECONCILE_SWEEP } from './endpoint-service.js'
import { registerEndpointWorkflows } from './endpoint-workflows.js'

/**
 * The life of an endpoint: deploy, update and teardown workflows, the reconcile sweep, and the
 * /v1/endpoints routes. Declares itself to clusters and models as their user, so a cluster or a
 * model in use is not deleted under it, and a forced cluster deletion tears its endpoints down.
 */
export function createEndpointLifecycle(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault' | 'events' | 'sweeps' | 'blob' | 'changes'>,
  deps: { workflows: WorkflowService; clusters: ClusterService; models: ModelService; designer: EndpointDesigner; appDesigner?: AppDesigner },
) {
  const log = platform.log.child({ module: 'endpoint_ops' })
  const settings = platform.config.endpoints
  const service = createEndpointService({
    db: platform.database.db,
    vault: platform.vault,
    events: platform.events,
    sweeps: platform.sweeps,
    blobs: platform.blob,
    workflows: deps.workflows,
    clusters: deps.clusters,
    models: deps.models,
    designer: deps.designer,
    ...(deps.appDesigner ? { appDesigner: deps.appDesigner } : {}),
    log,
    settings,
    changes: platform.changes,
  })
  registerEndpointWorkflows(deps.workflows, service, settings)
  platform.sweeps.define({
    name: ENDPOINT_RECONCILE_SWEEP,
    intervalMs: settings.reconcileIntervalMs,
    concurrency: settings.reconcileConcurrency,
    leaseMs: Math.max(30_000, platform.config.clusters.requestTimeoutMs * 6),
    run: (endpointId, ctx) => service.reconcile(endpointId, ctx.signal),
  })
  deps.clusters.registerUser(service.clusterUser)
  deps.models.registerUser(service.modelUser)
  return { service, routes: (app: FastifyInstance) => registerEndpointRoutes(app, service) }
}
