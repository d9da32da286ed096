import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import type { ClusterService } from '../cluster_ops/index.js'
import type { ModelService } from '../model_ops/index.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import { createAppCatalog } from './apps/app-module.js'
import { countLiveUsingRuntime } from './endpoint-crud.js'
import { createEndpointDesigner } from './endpoint-designer.js'
import { createEndpointLifecycle } from './endpoint-module.js'
import { createRuntimeModule } from './runtime-module.js'

export type { EndpointService } from './endpoint-service.js'
export { ENDPOINT_RECONCILE_SWEEP, ENDPOINT_TOPIC, ENDPOINT_WORKFLOW } from './endpoint-service.js'

/**
 * Endpoints: models served on clusters. The runtime catalog and each cluster's serving settings
 * feed the planner; the planner and the manifest generator make one design that a plan shows, a
 * deploy applies and the reconcile loop keeps in place.
 */
export function createEndpointOps(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault' | 'events' | 'sweeps' | 'blob' | 'cache'>,
  deps: { workflows: WorkflowService; clusters: ClusterService; models: ModelService },
) {
  const catalog = createRuntimeModule(platform, { clusters: deps.clusters })
  // Apps: templates (global ones seeded once) and the tenants' import allow-lists.
  const apps = createAppCatalog(platform)
  const designer = createEndpointDesigner({
    runtimesFor: (tenantId) => catalog.runtimes.forPlanning(tenantId),
    settingsFor: (tenantId, clusterId) => catalog.servingSettings.forCluster(tenantId, clusterId),
  })
  const lifecycle = createEndpointLifecycle(platform, { ...deps, designer })
  // A runtime that live endpoints name is neither deleted nor renamed under them.
  catalog.runtimes.registerUser({ kind: 'endpoints', countUsing: countLiveUsingRuntime })
  return {
    service: lifecycle.service,
    runtimes: catalog.runtimes,
    servingSettings: catalog.servingSettings,
    appTemplates: apps.templates,
    appAllowList: apps.allowList,
    /** Seeds the runtime catalog and the app templates (never over an operator's edits). */
    async start() {
      await catalog.start()
      await apps.start()
    },
    async stop() {
      await apps.stop()
      await catalog.stop()
    },
    routes(app: FastifyInstance) {
      catalog.routes(app)
      lifecycle.routes(app)
      apps.routes(app)
    },
  }
}
