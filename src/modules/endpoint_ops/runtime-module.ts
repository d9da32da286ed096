import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import type { ClusterService } from '../cluster_ops/index.js'
import { registerRuntimeRoutes } from './runtime-routes.js'
import { createRuntimeCatalog } from './runtime-service.js'
import { registerServingSettingsRoutes } from './serving-settings-routes.js'
import { createServingSettings } from './serving-settings-service.js'

export type { RuntimeCatalog, RuntimeUser, RuntimeView } from './runtime-service.js'
export { RUNTIME_CACHE_TTL_MS, RUNTIME_TOPIC, createRuntimeCatalog } from './runtime-service.js'
export type { ServingSettingsService } from './serving-settings-service.js'
export { createServingSettings } from './serving-settings-service.js'
export { registerRuntimeRoutes } from './runtime-routes.js'
export { registerServingSettingsRoutes } from './serving-settings-routes.js'

/**
 * The two stores the planner reads: the runtime catalog (`runtimes.forPlanning`) and each
 * tenant's serving settings per cluster (`servingSettings.forCluster`), with their routes.
 * `start()` subscribes to the catalog's invalidations and writes the missing seeds; call it
 * before the first request, like the model catalog's providers.
 */
export function createRuntimeModule(platform: Pick<Platform, 'log' | 'database' | 'cache' | 'events' | 'changes'>, deps: { clusters: Pick<ClusterService, 'get'> }) {
  const log = platform.log.child({ module: 'endpoint_ops', part: 'runtimes' })
  const runtimes = createRuntimeCatalog({ db: platform.database.db, cache: platform.cache, events: platform.events, log, changes: platform.changes })
  const servingSettings = createServingSettings({ db: platform.database.db, clusters: deps.clusters, log, changes: platform.changes })
  return {
    runtimes,
    servingSettings,
    start: () => runtimes.start(),
    stop: () => runtimes.stop(),
    routes(app: FastifyInstance): void {
      registerRuntimeRoutes(app, runtimes)
      registerServingSettingsRoutes(app, servingSettings)
    },
  }
}

export type RuntimeModule = ReturnType<typeof createRuntimeModule>
