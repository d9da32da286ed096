import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import type { AuthService, KeycloakClient } from '../auth/index.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import { createUserImport } from './import.js'
import { registerImportWorkflow } from './import-workflow.js'
import { registerUserAdminRoutes, registerUserImportRoutes } from './routes.js'
import { createUserAdminService, type UserAdminService } from './service.js'
import { createListTotals } from './totals.js'
import { rawExecutor } from '../../platform/db/raw.js'

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
  const log = platform.log.child({ module: 'user_admin' })
  const totals = createListTotals({ database: platform.database, log })
  const service: UserAdminService = createUserAdminService({
    db: platform.database.db,
    raw: rawExecutor(platform.database),
    vault: platform.vault,
    log,
    mode,
    auth: auth.service,
    keycloak: mode === 'keycloak' ? auth.keycloak : undefined,
    totals,
  })
  const imports = createUserImport({
    db: platform.database.db,
    blob: platform.blob,
    log,
    mode,
    workflows,
  })
  registerImportWorkflow(workflows, imports)
  return {
    service,
    imports,
    /** Listens for changes to users, so listing totals can be kept (see totals.ts). */
    start: () => totals.start(),
    stop: () => totals.stop(),
    routes: (app: FastifyInstance) => {
      registerUserAdminRoutes(app, service, { embeddedIssuer: mode === 'embedded' })
      registerUserImportRoutes(app, imports)
    },
  }
}
