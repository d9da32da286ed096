import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import type { ClusterService } from '../cluster_ops/index.js'
import type { ModelService } from '../model_ops/index.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import { createAppDesigner } from './app-designer.js'
import { registerAppRoutes } from './app-routes.js'
import { createAppService } from './app-service.js'
import { createAppCatalog } from './apps/app-module.js'
import { type AppValidator, createAppValidator } from './apps/validate.js'
import { countLiveUsingRuntime } from './endpoint-crud.js'
import { createEndpointDesigner } from './endpoint-designer.js'
import { createEndpointLifecycle } from './endpoint-module.js'
import { createRuntimeModule } from './runtime-module.js'

export type { EndpointService } from './endpoint-service.js'
export type { AppService } from './app-service.js'
export type { AppValidator } from './apps/validate.js'
export { ENDPOINT_RECONCILE_SWEEP, ENDPOINT_TOPIC, ENDPOINT_WORKFLOW } from './endpoint-service.js'

/**
 * Endpoints: models served on clusters. The runtime catalog and each cluster's serving settings
 * feed the planner; the planner and the manifest generator make one design that a plan shows, a
 * deploy applies and the reconcile loop keeps in place.
 */
export function createEndpointOps(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault' | 'events' | 'sweeps' | 'blob' | 'cache' | 'changes'>,
  deps: { workflows: WorkflowService; clusters: ClusterService; models: ModelService },
  options: { validator?: AppValidator } = {},
) {
  const catalog = createRuntimeModule(platform, { clusters: deps.clusters })
  const designer = createEndpointDesigner({
    runtimesFor: (tenantId) => catalog.runtimes.forPlanning(tenantId),
    settingsFor: (tenantId, clusterId) => catalog.servingSettings.forCluster(tenantId, clusterId),
  })
  const appDesigner = createAppDesigner({
    settingsFor: (tenantId, clusterId) => catalog.servingSettings.forCluster(tenantId, clusterId),
    apps: platform.config.apps,
  })
  const lifecycle = createEndpointLifecycle(platform, { workflows: deps.workflows, clusters: deps.clusters, models: deps.models, designer, appDesigner })
  // One Python checker per process, started on the first validation and closed on stop; apps and
  // templates share it. Templates (global ones seeded once) and the tenants' import allow-lists:
  const ownValidator = options.validator === undefined
  const validator = options.validator ?? createAppValidator({ log: platform.log.child({ module: 'endpoint_ops.apps' }) })
  const appCatalog = createAppCatalog(platform, { validator })
  const apps = createAppService({
    endpoints: lifecycle.service,
    validator,
    allowListFor: (tenantId) => appCatalog.allowList.allowListFor(tenantId),
    apps: platform.config.apps,
  })
  // A runtime that live endpoints name is neither deleted nor renamed under them.
  catalog.runtimes.registerUser({ kind: 'endpoints', countUsing: countLiveUsingRuntime })
  return {
    service: lifecycle.service,
    runtimes: catalog.runtimes,
    servingSettings: catalog.servingSettings,
    apps,
    appTemplates: appCatalog.templates,
    appAllowList: appCatalog.allowList,
    /** Seeds the runtime catalog and the app templates (never over an operator's edits). */
    async start() {
      await catalog.start()
      await appCatalog.start()
    },
    async stop() {
      await appCatalog.stop()
      await Promise.all([catalog.stop(), ownValidator ? validator.close() : undefined])
    },
    routes(app: FastifyInstance) {
      catalog.routes(app)
      lifecycle.routes(app)
      appCatalog.routes(app)
      registerAppRoutes(app, apps)
    },
  }
}
