import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply } from 'fastify'
import Type from 'typebox'
import { principalOf, requireAuthenticated, requirePermission } from '../../platform/auth/principal.js'
import { NotFoundError } from '../../platform/errors.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { LoginLockedError } from './errors.js'
import {
  ApiKeyPage,
  AuditPage,
  AuditQuery,
  ChangePasswordBody,
  CreateApiKeyBody,
  CreatedApiKey,
  CreateTenantBody,
  CreatedTenant,
  Discovery,
  IdParams,
  Jwks,
  LoginBody,
  LogoutBody,
  Me,
  PageQuery,
  RealmParams,
  RefreshBody,
  Tenant,
  TenantPage,
  TokenResponse,
  UpdateTenantBody,
} from './schema.js'
import type { AuthService, InitialAdminProvisioner } from './service.js'

export interface AuthRouteOptions {
  embeddedIssuer: boolean
  /** LOGIN_RATE_LIMIT_*: per client address; max 0 leaves these routes to the API's limit. */
  loginRateLimit: { max: number; windowSeconds: number }
  /** User administration's way to create a new tenant's first admin (it is built after auth). */
  initialAdmin?: InitialAdminProvisioner
}

/** A locked account's answer says when to come back. */
async function withRetryAfter<T>(reply: FastifyReply, answer: () => Promise<T>): Promise<T> {
  try {
    return await answer()
  } catch (err) {
    if (err instanceof LoginLockedError) reply.header('retry-after', String(err.retryAfterSeconds))
    throw err
  }
}

export function registerAuthRoutes(app: FastifyInstance, service: AuthService, options: AuthRouteOptions): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()
  // Password checks are the cheapest target for guessing: a tighter limit than the API's, and one
  // that holds when the API's is off (RATE_LIMIT_MAX=0).
  const passwordRateLimit =
    options.loginRateLimit.max > 0
      ? { rateLimit: { max: options.loginRateLimit.max, timeWindow: options.loginRateLimit.windowSeconds * 1000 } }
      : {}

  if (options.embeddedIssuer) {
    server.get(
      '/realms/:realm/protocol/openid-connect/certs',
      {
        config: { public: true },
        schema: {
          operationId: 'getRealmJwks',
          tags: ['auth'],
          summary: "The embedded issuer's public signing keys for a realm (JWKS)",
          params: RealmParams,
          response: { 200: Jwks },
        },
      },
      async (request) => {
        if (!(await service.isRealmAllowed(request.params.realm))) throw new NotFoundError('realm not found', 'REALM_NOT_FOUND')
        return service.jwks(request.params.realm)
      },
    )

    server.get(
      '/realms/:realm/.well-known/openid-configuration',
      {
        config: { public: true },
        schema: {
          operationId: 'getRealmDiscovery',
          tags: ['auth'],
          summary: "OpenID discovery document of the embedded issuer's realm",
          params: RealmParams,
          response: { 200: Discovery },
        },
      },
      async (request) => {
        if (!(await service.isRealmAllowed(request.params.realm))) throw new NotFoundError('realm not found', 'REALM_NOT_FOUND')
        return service.discovery(request.params.realm)
      },
    )
  }

  server.post(
    '/v1/auth/login',
    {
      config: { public: true, ...passwordRateLimit },
      schema: {
        operationId: 'login',
        tags: ['auth'],
        summary:
          'Exchange email, password and tenant for an access and a refresh token; ' +
          'after repeated wrong passwords the account is locked for a while (429 LOGIN_LOCKED with Retry-After)',
        body: LoginBody,
        response: { 200: TokenResponse },
      },
    },
    async (request, reply) =>
      withRetryAfter(reply, () => service.login(request.body, { requestId: request.id, clientRequestId: request.clientRequestId })),
  )

  server.post(
    '/v1/auth/refresh',
    {
      config: { public: true, ...passwordRateLimit },
      schema: {
        operationId: 'refreshToken',
        tags: ['auth'],
        summary:
          'Exchange a refresh token for a new token pair; the old refresh token stops working, ' +
          'and presenting it again ends the whole session',
        body: RefreshBody,
        response: { 200: TokenResponse },
      },
    },
    async (request) => service.refresh(request.body.refreshToken),
  )

  server.post(
    '/v1/auth/logout',
    {
      config: requireAuthenticated(),
      // The body is optional: a bare POST logs out the access token alone.
      preValidation: async (request) => {
        request.body ??= {}
      },
      schema: {
        operationId: 'logout',
        tags: ['auth'],
        summary: "End the access token's session at once: the access token and its session's refresh token stop working",
        body: LogoutBody,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await service.logout(principalOf(request), request.body.refreshToken)
      return reply.status(204).send(null)
    },
  )

  server.post(
    '/v1/auth/password',
    {
      config: { ...requireAuthenticated(), ...passwordRateLimit },
      schema: {
        operationId: 'changePassword',
        tags: ['auth'],
        summary:
          "Change the signed-in user's password (embedded mode; a user session, not an API key). Every session of the " +
          "user ends, the caller's too, and the answer carries a new token pair for the caller; API keys keep working. " +
          'Keycloak mode: 409 PASSWORD_CHANGE_UNAVAILABLE (use the account console)',
        body: ChangePasswordBody,
        response: { 200: TokenResponse },
      },
    },
    async (request, reply) => withRetryAfter(reply, () => service.changePassword(principalOf(request), request.body)),
  )

  server.get(
    '/v1/auth/me',
    {
      config: requireAuthenticated(),
      schema: {
        operationId: 'getMe',
        tags: ['auth'],
        summary: 'The caller: user, tenant, role and effective permissions',
        response: { 200: Me },
      },
    },
    async (request) => service.me(principalOf(request)),
  )

  server.post(
    '/v1/auth/api-keys',
    {
      config: requireAuthenticated(),
      schema: {
        operationId: 'createApiKey',
        tags: ['auth'],
        summary: "Create an API key with some of the caller's permissions; the key is shown only in this answer",
        body: CreateApiKeyBody,
        response: { 201: CreatedApiKey },
      },
    },
    async (request, reply) => reply.status(201).send(await service.createApiKey(principalOf(request), request.body)),
  )

  server.get(
    '/v1/auth/api-keys',
    {
      config: requireAuthenticated(),
      schema: {
        operationId: 'listApiKeys',
        tags: ['auth'],
        summary: "The caller's live API keys, newest first (never the keys themselves)",
        querystring: PageQuery,
        response: { 200: ApiKeyPage },
      },
    },
    async (request) => service.listApiKeys(principalOf(request), request.query),
  )

  server.delete(
    '/v1/auth/api-keys/:id',
    {
      config: requireAuthenticated(),
      schema: {
        operationId: 'deleteApiKey',
        tags: ['auth'],
        summary: 'Revoke one of the caller\'s API keys; it is refused from this moment',
        params: IdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await service.deleteApiKey(principalOf(request), request.params.id)
      return reply.status(204).send(null)
    },
  )

  server.get(
    '/v1/tenants',
    {
      config: requirePermission('tenant:manage'),
      schema: {
        operationId: 'listTenants',
        tags: ['tenants'],
        summary: 'Tenants (realms), by realm name: all of them for a superuser, else the caller\'s own',
        querystring: PageQuery,
        response: { 200: TenantPage },
      },
    },
    async (request) => service.listTenants(principalOf(request), request.query),
  )

  server.post(
    '/v1/tenants',
    {
      config: requirePermission('tenant:manage'),
      schema: {
        operationId: 'createTenant',
        tags: ['tenants'],
        summary: 'Superusers: create a tenant, optionally with its first admin; in Keycloak mode its realm and roles are created first',
        description:
          '403 SUPERUSER_REQUIRED for anyone but a superuser (a super_admin role is not enough); 400 REALM_RESERVED for ' +
          '`master`. With `initialAdmin` the answer carries, once, how that admin signs in: an invite token for ' +
          'POST /v1/auth/accept-invite (embedded mode) or a temporary password Keycloak makes them change (Keycloak mode).',
        body: CreateTenantBody,
        response: { 201: CreatedTenant },
      },
    },
    async (request, reply) => {
      const { tenant, etag, initialAdmin } = await service.createTenant(principalOf(request), request.body, options.initialAdmin)
      request.auditResourceId = tenant.id
      setEtag(reply, etag)
      return reply
        .status(201)
        .header('location', `/v1/tenants/${tenant.id}`)
        .send(initialAdmin ? { ...tenant, initialAdmin } : tenant)
    },
  )

  server.get(
    '/v1/tenants/:id',
    {
      // Any member may read their own tenant (GET /v1/auth/me shows it too); another tenant is 404 unless a superuser asks.
      config: requireAuthenticated(),
      schema: {
        operationId: 'getTenant',
        tags: ['tenants'],
        summary: "One tenant: the caller's own, or any for a superuser",
        params: IdParams,
        response: { 200: Tenant },
      },
    },
    async (request, reply) => {
      const { tenant, etag } = await service.getTenant(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return tenant
    },
  )

  server.patch(
    '/v1/tenants/:id',
    {
      config: requirePermission('tenant:manage'),
      schema: {
        operationId: 'updateTenant',
        tags: ['tenants'],
        summary: 'Superusers: rename, disable or enable a tenant; If-Match guards against lost updates',
        params: IdParams,
        body: UpdateTenantBody,
        response: { 200: Tenant },
      },
    },
    async (request, reply) => {
      const { tenant, etag } = await service.updateTenant(
        principalOf(request),
        request.params.id,
        request.body,
        ifMatch(request),
      )
      setEtag(reply, etag)
      return tenant
    },
  )

  server.get(
    '/v1/audit',
    {
      config: requirePermission('audit:view'),
      schema: {
        operationId: 'listAuditEntries',
        tags: ['audit'],
        summary: "Audit trail of mutating requests, newest first; the caller's tenant unless a superuser names another",
        querystring: AuditQuery,
        response: { 200: AuditPage },
      },
    },
    async (request) => service.listAudit(principalOf(request), request.query),
  )
}
