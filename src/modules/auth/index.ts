import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import { createTokenVerifier } from '../../platform/auth/verifier.js'
import { createIssuer } from './issuer.js'
import { createKeycloakClient } from './keycloak.js'
import { type AuthRouteOptions, registerAuthRoutes } from './routes.js'
import { type AuthService, createAuthService } from './service.js'

export type { AuthService, InitialAdminGrant, InitialAdminInput, InitialAdminProvisioner } from './service.js'
export { LOCAL_REALM } from './service.js'
export type { KeycloakClient } from './keycloak.js'

/**
 * The auth module: tenants, users, roles and permissions, API keys, the embedded issuer and the
 * audit log. Built before any route so the guard can use its authenticator; its own routes are
 * registered with the rest.
 */
export function createAuth(platform: Pick<Platform, 'config' | 'log' | 'database' | 'cache' | 'vault'>) {
  const { config, database, cache, vault } = platform
  const log = platform.log.child({ module: 'auth' })
  const mode = config.parts.identity
  const keycloakUrl = config.auth.keycloakUrl
  const issuer = createIssuer({
    db: database.db,
    vault,
    issuerBase: config.publicUrl,
    accessTtlSeconds: config.auth.accessTokenTtlSeconds,
    refreshTtlSeconds: config.auth.refreshTokenTtlSeconds,
  })
  // The verifier asks the service which realms are allowed; the service verifies with the verifier.
  // (The closure runs only when a token is verified, long after `service` is initialized.)
  const verifier = createTokenVerifier({
    issuerBase: config.auth.keycloakIssuerUrl ?? config.publicUrl,
    keysBase: keycloakUrl,
    isRealmAllowed: (realm) => service.isRealmAllowed(realm),
    audience: config.auth.audience,
    localKeys: mode === 'embedded' ? (realm) => issuer.publicKeys(realm) : undefined,
  })
  const keycloak = keycloakUrl ? createKeycloakClient({ ...config.auth, keycloakUrl }, log) : undefined
  const service: AuthService = createAuthService({
    db: database.db,
    cache,
    log,
    auth: config.auth,
    mode,
    verifier,
    issuer,
    keycloak,
    dataDir: config.dataDir,
  })
  return {
    service,
    /** Keycloak mode: the admin client, for user administration's mirroring. */
    keycloak,
    routes: (app: FastifyInstance, extras: Omit<AuthRouteOptions, 'embeddedIssuer' | 'loginRateLimit'> = {}) =>
      registerAuthRoutes(app, service, { ...extras, embeddedIssuer: mode === 'embedded', loginRateLimit: config.loginRateLimit }),
  }
}
