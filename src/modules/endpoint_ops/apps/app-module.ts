import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../../platform/platform.js'
import { registerAllowlistRoutes } from '../app-allowlist-routes.js'
import { createAllowlistService } from '../app-allowlist-service.js'
import { registerTemplateRoutes } from '../app-template-routes.js'
import { createTemplateService } from '../app-template-service.js'
import { type AppValidator, createAppValidator } from './validate.js'

/**
 * What apps are made from, around their lifecycle: the templates (global ones seeded at start,
 * users' own) and each tenant's import allow-list. The validator is the process's one Python
 * checker; hand in the lifecycle's when it has one, so that one worker thread serves both.
 */
export function createAppCatalog(platform: Pick<Platform, 'database' | 'log'>, options: { validator?: AppValidator } = {}) {
  const log = platform.log.child({ module: 'endpoint_ops', part: 'app-catalog' })
  const ownValidator = options.validator === undefined
  const validator = options.validator ?? createAppValidator({ log })
  const db = platform.database.db
  const allowList = createAllowlistService({ db })
  const templates = createTemplateService({ db, validator, allowList, log })
  return {
    templates,
    allowList,
    validator,
    /** Seeds the global templates that were never there (replicas starting together insert each once). */
    async start() {
      await templates.seed()
    },
    async stop() {
      if (ownValidator) await validator.close()
    },
    routes(app: FastifyInstance) {
      registerTemplateRoutes(app, templates)
      registerAllowlistRoutes(app, allowList)
    },
  }
}

export type AppCatalog = ReturnType<typeof createAppCatalog>
