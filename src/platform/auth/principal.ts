import type { FastifyReply, FastifyRequest } from 'fastify'
import { UnauthenticatedError } from '../errors.js'

/** Who is calling, for which tenant, with which permissions: what every guarded route can rely on. */
export interface Principal {
  kind: 'user' | 'api_key' | 'service'
  /** The user id, API key id, or `dapr:<app id>`. */
  id: string
  /** The user behind a user or API key principal. */
  userId?: string
  tenantId: string
  realm: string
  role: string
  permissions: ReadonlySet<string>
  /** May act across tenants. */
  isSuperuser: boolean
  /** The user's session cut-off: tokens issued before it are refused. */
  sessionsValidAfter?: Date
  /** `iat` of the access token: what a session cut-off is compared with (a stream ticket carries it on). */
  tokenIssuedAt?: Date
  /** `jti` of the access token, for logout. */
  tokenId?: string
  /** `sid` of the access token: the login session its refresh tokens share, ended as a whole at logout. */
  sessionId?: string
  expiresAt?: Date
}

/** What a short-lived credential derived from a user session (a stream ticket) remembers of that session. */
export interface SessionRef {
  userId: string
  tenantId: string
  /** `jti` and `sid` of the access token the credential was asked with: revoking either ends it. */
  tokenId?: string
  sessionId?: string
  tokenExpiresAt: Date
  /** `iat` of the access token it was asked with: a session cut-off after it ends the credential too. */
  issuedAt: Date
}

/** Turns credentials into a principal, or throws UnauthenticatedError. The auth module implements it. */
export interface Authenticator {
  fromBearerToken(token: string): Promise<Principal>
  fromApiKey(key: string): Promise<Principal>
  /**
   * The user behind a credential derived from their session, as of now: refused like the session's
   * own token would be (logged out, revoked, user disabled or deleted, sessions cut off since).
   */
  fromSession(ref: SessionRef): Promise<Principal>
  /** Only called after the dapr-api-token was checked; undefined when the app id is not trusted. */
  fromDaprApp(appId: string): Promise<Principal | undefined>
}

export interface AuditEntry {
  principal: Principal
  action: string
  resourceKind: string | null
  resourceId: string | null
  /** The tenant acted on when it is not the principal's own (a superuser administering another tenant). */
  actedOnTenantId?: string | null
  /** The server's request id. */
  requestId: string
  /** The client's own X-Request-Id, kept apart from ours. */
  clientRequestId: string | null
  outcome: number
  method: string
  path: string
}

/** Records an audit entry without making the caller wait; never throws. */
export interface AuditSink {
  record(entry: AuditEntry): void
}

/** Any authenticated caller may use the route (their own profile, logout, their API keys). */
export const AUTHENTICATED = 'authenticated'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null
    /** Set by a handler that creates a resource, so the audit entry names it (the path has no id yet). */
    auditResourceId: string | null
    /** Set by a handler that acted on another tenant than the caller's, so the audit entry lands in that tenant. */
    auditTenantId: string | null
  }
  interface FastifyContextConfig {
    /** The permission a caller needs, or AUTHENTICATED; set through requirePermission(). */
    permission?: string
    /**
     * A credential of the route's own in the query string, tried when the request has no
     * Authorization or X-Api-Key header (a stream ticket: EventSource sends no headers). Answers
     * undefined when the request carries none, null when it has answered the request itself.
     */
    queryCredential?: QueryCredential
    /**
     * A POST that changes nothing (a plan, a dry run): not written to the audit log, which records
     * who changed what. Every other POST, PUT, PATCH and DELETE by a principal is.
     */
    readOnly?: boolean
  }
}

export type QueryCredential = (request: FastifyRequest, reply: FastifyReply) => Promise<Principal | null | undefined>

/** The route config fragment that guards a route: `config: requirePermission('cluster:manage')`. */
export function requirePermission(permission: string): { permission: string } {
  return { permission }
}

export function requireAuthenticated(): { permission: string } {
  return { permission: AUTHENTICATED }
}

/** The caller of a guarded route; the guard has set it before any handler runs. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new UnauthenticatedError()
  return request.principal
}
