import type { FastifyInstance, FastifyRequest, onRequestHookHandler, RouteOptions } from 'fastify'
import { isValidDaprToken } from '../dapr.js'
import { ForbiddenError, UnauthenticatedError } from '../errors.js'
import { type AuditSink, AUTHENTICATED, type Authenticator, type Principal, type QueryCredential } from './principal.js'

export interface RouteAccess {
  method: string
  url: string
  access: 'public' | string
}

export interface AuthGuardOptions {
  authenticator: Authenticator
  audit: AuditSink
  /** APP_API_TOKEN: the token that makes `dapr-caller-app-id` mean something. */
  daprAppToken?: string
  /** Routes under these prefixes are public without saying so (Swagger UI registers its own routes). */
  publicPrefixes?: readonly string[]
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route and what it takes to call it, as the guard saw them registered. */
    routeAccess: RouteAccess[]
  }
}

const BEARER = /^Bearer[ \t]+(\S{1,16384})$/i
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

async function credentialsOf(request: FastifyRequest, options: AuthGuardOptions): Promise<Principal> {
  const { authenticator } = options
  const authorization = request.headers.authorization
  if (typeof authorization === 'string') {
    const match = BEARER.exec(authorization)
    if (!match) throw new UnauthenticatedError('the Authorization header must be "Bearer <token>"')
    const credential = match[1]!
    return credential.startsWith('mp_') ? authenticator.fromApiKey(credential) : authenticator.fromBearerToken(credential)
  }
  const apiKey = request.headers['x-api-key']
  if (typeof apiKey === 'string') return authenticator.fromApiKey(apiKey)
  // The caller app id is a claim only the sidecar can vouch for: without its token it means nothing.
  if (isValidDaprToken(request, options.daprAppToken)) {
    const appId = request.headers['dapr-caller-app-id']
    if (typeof appId === 'string') {
      const principal = await authenticator.fromDaprApp(appId)
      if (principal) return principal
    }
  }
  throw new UnauthenticatedError()
}

/** `/v1/tenants/:id` → tenants + the id; `/v1/auth/api-keys` → api-keys and no id. */
function resourceOf(url: string, params: unknown): { kind: string | null; id: string | null } {
  const segments = url.split('/').filter(Boolean)
  const at = segments.findIndex((s) => s.startsWith(':'))
  if (at === -1) return { kind: segments.at(-1) ?? null, id: null }
  const value = (params as Record<string, unknown> | undefined)?.[segments[at]!.slice(1)]
  return { kind: segments[at - 1] ?? null, id: typeof value === 'string' ? value.slice(0, 256) : null }
}

/**
 * Every route is either public or declares a permission; a route that does neither stops the
 * app at start-up. Guarded routes authenticate in their onRequest phase, after rate limiting,
 * and every mutating request by a principal (but a POST marked readOnly) is audited once it has
 * been answered.
 */
export function registerAuthGuard(app: FastifyInstance, options: AuthGuardOptions): void {
  const publicPrefixes = options.publicPrefixes ?? []
  const routeAccess: RouteAccess[] = []
  app.decorate('routeAccess', routeAccess)
  app.decorateRequest('principal', null)
  app.decorateRequest('auditResourceId', null)
  app.decorateRequest('auditTenantId', null)

  app.addHook('onRoute', (route: RouteOptions) => {
    const config = (route.config ?? {}) as { public?: boolean; permission?: string }
    const methods = ([] as string[]).concat(route.method)
    const isPublic = config.public === true || publicPrefixes.some((p) => route.url === p || route.url.startsWith(`${p}/`))
    if (isPublic) {
      for (const method of methods) routeAccess.push({ method, url: route.url, access: 'public' })
      return
    }
    const permission = config.permission
    if (!permission) {
      throw new Error(`route ${methods.join(',')} ${route.url} declares neither config.public nor a permission`)
    }
    for (const method of methods) routeAccess.push({ method, url: route.url, access: permission })
    const queryCredential = (route.config as { queryCredential?: QueryCredential } | undefined)?.queryCredential
    const guard: onRequestHookHandler = async (request, reply) => {
      let principal: Principal | null | undefined
      if (queryCredential && request.headers.authorization === undefined && request.headers['x-api-key'] === undefined) {
        principal = await queryCredential(request, reply)
        // The route answered by itself (an expired stream ticket gets 204).
        if (principal === null) return reply
      }
      principal ??= await credentialsOf(request, options)
      request.principal = principal
      if (permission !== AUTHENTICATED && !principal.permissions.has(permission)) {
        throw new ForbiddenError(`this action needs the ${permission} permission`)
      }
    }
    route.onRequest = [...([] as onRequestHookHandler[]).concat(route.onRequest ?? []), guard]
  })

  app.addHook('onResponse', (request, reply, done) => {
    const principal = request.principal
    if (principal && MUTATING.has(request.method) && request.routeOptions.config.readOnly !== true) {
      const url = request.routeOptions.url ?? ''
      const { kind, id: fromPath } = resourceOf(url, request.params)
      // A create names its new resource only after the fact: the handler leaves its id here.
      const id = request.auditResourceId ?? fromPath
      const schema = request.routeOptions.schema as { operationId?: string } | undefined
      options.audit.record({
        principal,
        action: schema?.operationId ?? `${request.method} ${url}`,
        resourceKind: kind,
        resourceId: id,
        actedOnTenantId: request.auditTenantId,
        requestId: request.id,
        clientRequestId: request.clientRequestId,
        outcome: reply.statusCode,
        method: request.method,
        path: url,
      })
    }
    done()
  })
}
