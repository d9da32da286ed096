import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../app.js'
import type { AuthService, KeycloakClient } from '../auth/index.js'
import { registerUserAdminRoutes } from './routes.js'
import { createUserAdminService, type UserAdminService } from './service.js'

export type { UserAdminService } from './service.js'

/**
 * User administration (`/ai/admin/users`): the admin surface of the auth module's users —
 * filtering, create, update, soft delete, Keycloak mirroring, and embedded-mode invites.
 */
export function createUserAdmin(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault'>,
  auth: { service: AuthService; keycloak?: KeycloakClient },
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
  return {
    service,
    routes: (app: FastifyInstance) => registerUserAdminRoutes(app, service, { embeddedIssuer: mode === 'embedded' }),
  }
}
