import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import type { ClusterService } from '../cluster_ops/index.js'
import type { ModelService } from '../model_ops/index.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import { createEndpointDesigner, type DesignSources } from './endpoint-designer.js'
import { createEndpointLifecycle } from './endpoint-module.js'

export type { EndpointService } from './endpoint-service.js'
export { ENDPOINT_RECONCILE_SWEEP, ENDPOINT_TOPIC, ENDPOINT_WORKFLOW } from './endpoint-service.js'

/**
 * Endpoints: models served on clusters. The runtime catalog and each cluster's serving settings
 * feed the planner; the planner and the manifest generator make one design that a plan shows, a
 * deploy applies and the reconcile loop keeps in place.
 */
export function createEndpointOps(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault' | 'events' | 'sweeps' | 'blob'>,
  deps: { workflows: WorkflowService; clusters: ClusterService; models: ModelService; sources: DesignSources },
) {
  const designer = createEndpointDesigner(deps.sources)
  const lifecycle = createEndpointLifecycle(platform, { ...deps, designer })
  return {
    service: lifecycle.service,
    routes(app: FastifyInstance) {
      lifecycle.routes(app)
    },
  }
}
