import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../app.js'
import type { AuthService, KeycloakClient } from '../auth/index.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import { createUserImport } from './import.js'
import { registerImportWorkflow } from './import-workflow.js'
import { registerUserAdminRoutes, registerUserImportRoutes } from './routes.js'
import { createUserAdminService, type UserAdminService } from './service.js'

export type { UserAdminService } from './service.js'
export type { UserImport, ImportResult } from './import.js'

/**
 * User administration (`/ai/admin/users`): the admin surface of the auth module's users —
 * filtering, create, update, soft delete, Keycloak mirroring, and embedded-mode invites — and the
 * bulk import (`/ai/admin/users/import`), a workflow declared here on workflow_ops.
 */
export function createUserAdmin(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault' | 'blob'>,
  auth: { service: AuthService; keycloak?: KeycloakClient },
  workflows: WorkflowService,
) {
  const mode = platform.config.parts.identity
  const service: UserAdminService = createUserAdminService({
    db: platform.database.db,
    vault: platform.vault,
    log: platform.log.child({ module: 'user_admin' }),
    mode,
    auth: auth.service,
    keycloak: mode === 'keycloak' ? auth.keycloak : undefined,
  })
  const imports = createUserImport({
    db: platform.database.db,
    blob: platform.blob,
    log: platform.log.child({ module: 'user_admin' }),
    mode,
    workflows,
  })
  registerImportWorkflow(workflows, imports)
  return {
    service,
    imports,
    routes: (app: FastifyInstance) => {
      registerUserAdminRoutes(app, service, { embeddedIssuer: mode === 'embedded' })
      registerUserImportRoutes(app, imports)
    },
  }
}
