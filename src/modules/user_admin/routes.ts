import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Type, { type Static } from 'typebox'
import { type Principal, principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { IdempotencyHeaders } from '../workflow_ops/schema.js'
import { errorReportPath, type UserImport } from './import.js'
import { parseImportCsv } from './import-rows.js'
import {
  AcceptInviteBody,
  AiUser,
  AiUserCreate,
  AiUserCreated,
  AiUserImportAccepted,
  AiUserImportBody,
  AiUserListQuery,
  AiUserPage,
  AiUserUpdate,
  CredentialReset,
  ImportErrorsPage,
  ImportErrorsParams,
  ImportErrorsQuery,
  IMPORT_MAX_ROWS,
  UserGrantParams,
  UserGrants,
  TenantQuery,
  UserIdParams,
  UserInvite,
} from './schema.js'
import type { UserAdminService } from './service.js'

/** Accepting an invite is public and guessable in principle: as tight a limit as login's. */
const INVITE_RATE_LIMIT = { max: 20, timeWindow: 60_000 }

const LIST_DESCRIPTION =
  'Users of the caller\'s tenant (a superuser may name another with `tenant`, its id). Deleted users appear only with status=deleted. `q` matches a substring of ' +
  'name or email, case-insensitively, with % and _ taken literally. `total` is counted only up to ' +
  'page×limit+1000 matches: past that it is a lower bound and `totalExact` is false (the page itself is always exact).'

export function registerUserAdminRoutes(app: FastifyInstance, service: UserAdminService, options: { embeddedIssuer: boolean }): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  /** The caller as they act on `?tenant=`; a change made in another tenant is audited in that tenant. */
  async function acting(request: FastifyRequest): Promise<Principal> {
    const principal = principalOf(request)
    const target = await service.actingIn(principal, (request.query as { tenant?: string } | undefined)?.tenant)
    if (target.tenantId !== principal.tenantId) request.auditTenantId = target.tenantId
    return target
  }

  server.get(
    '/ai/admin/users',
    {
      config: requirePermission('user:view'),
      schema: {
        operationId: 'listAiUsers',
        tags: ['users'],
        summary: 'Filter, sort and page the tenant\'s users',
        description: LIST_DESCRIPTION,
        querystring: AiUserListQuery,
        response: { 200: AiUserPage },
      },
    },
    async (request) => service.list(await acting(request), request.query),
  )

  server.post(
    '/ai/admin/users',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'createAiUser',
        tags: ['users'],
        summary: 'Create a user; in Keycloak mode in the tenant\'s realm too, in embedded mode with a one-time invite',
        querystring: TenantQuery,
        body: AiUserCreate,
        response: { 201: AiUserCreated },
      },
    },
    async (request, reply) => {
      const { user, etag } = await service.create(await acting(request), request.body)
      request.auditResourceId = user.id
      setEtag(reply, etag)
      return reply.status(201).header('location', `/ai/admin/users/${user.id}`).send(user)
    },
  )

  server.get(
    '/ai/admin/users/:UserID',
    {
      config: requirePermission('user:view'),
      schema: {
        operationId: 'getAiUser',
        tags: ['users'],
        summary: 'One user (secret names only)',
        params: UserIdParams,
        querystring: TenantQuery,
        response: { 200: AiUser },
      },
    },
    async (request, reply) => {
      const { user, etag } = await service.get(await acting(request), request.params.UserID)
      setEtag(reply, etag)
      return user
    },
  )

  async function updateUser(
    request: FastifyRequest<{ Params: Static<typeof UserIdParams>; Querystring: Static<typeof TenantQuery>; Body: Static<typeof AiUserUpdate> }>,
    reply: FastifyReply,
  ) {
    const { user, etag } = await service.update(await acting(request), request.params.UserID, request.body, ifMatch(request))
    setEtag(reply, etag)
    return user
  }

  server.put(
    '/ai/admin/users/:UserID',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'updateAiUser',
        tags: ['users'],
        summary: 'Update a user; attributes and secrets merge key by key (null removes); If-Match guards against lost updates',
        params: UserIdParams,
        querystring: TenantQuery,
        body: AiUserUpdate,
        response: { 200: AiUser },
      },
    },
    updateUser,
  )

  // PUT merges key by key, which is what PATCH means: both methods serve the one update (docs/api-style.md, Writes).
  server.patch(
    '/ai/admin/users/:UserID',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'patchAiUser',
        tags: ['users'],
        summary: 'Update a user, as PUT does: attributes and secrets merge key by key (null removes); If-Match guards against lost updates',
        params: UserIdParams,
        querystring: TenantQuery,
        body: AiUserUpdate,
        response: { 200: AiUser },
      },
    },
    updateUser,
  )

  server.delete(
    '/ai/admin/users/:UserID',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'deleteAiUser',
        tags: ['users'],
        summary: 'Soft-delete a user: frees their email and tag, revokes their tokens and API keys at once',
        params: UserIdParams,
        querystring: TenantQuery,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await service.remove(await acting(request), request.params.UserID, ifMatch(request))
      return reply.status(204).send(null)
    },
  )

  server.post(
    '/ai/admin/users/:UserID/invite',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'inviteAiUser',
        tags: ['users'],
        summary: 'Embedded mode: a new one-time invite for an invited user (imported users get none); earlier ones stop working',
        description:
          '409 USER_NOT_INVITED when the user already set a password (or is disabled); 409 INVITE_UNAVAILABLE when users live in Keycloak.',
        params: UserIdParams,
        querystring: TenantQuery,
        response: { 201: UserInvite },
      },
    },
    async (request, reply) => {
      request.auditResourceId = request.params.UserID
      return reply.status(201).send(await service.invite(await acting(request), request.params.UserID))
    },
  )

  server.post(
    '/ai/admin/users/:UserID/reset-credentials',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'resetAiUserCredentials',
        tags: ['users'],
        summary: "Reset an active user's credentials: ends every session and API key, clears the password, answers a one-time way back in",
        description:
          'Needs a rank strictly above the user\'s (403 RANK_TOO_LOW for a peer or someone higher). Embedded mode answers a reset ' +
          'token for POST /v1/auth/accept-invite (3 days, earlier tokens closed); Keycloak mode ends the Keycloak sessions and ' +
          'answers a temporary password Keycloak makes the user change. 409 USER_INVITED for a user who never set a password (invite them).',
        params: UserIdParams,
        querystring: TenantQuery,
        response: { 200: CredentialReset },
      },
    },
    async (request, reply) => {
      request.auditResourceId = request.params.UserID
      // A one-time credential: no cache anywhere may keep it.
      return reply.header('cache-control', 'no-store').send(await service.resetCredentials(await acting(request), request.params.UserID))
    },
  )

  server.put(
    '/ai/admin/users/:UserID/grants/:permission',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'grantAiUserPermission',
        tags: ['users'],
        summary: "Grant a user one permission beyond their role; only a permission the caller holds, to a user of no higher rank",
        params: UserGrantParams,
        querystring: TenantQuery,
        response: { 200: UserGrants },
      },
    },
    async (request) => service.grant(await acting(request), request.params.UserID, request.params.permission),
  )

  server.delete(
    '/ai/admin/users/:UserID/grants/:permission',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'revokeAiUserPermission',
        tags: ['users'],
        summary: 'Take back a permission granted beyond the role (204 whether or not the user had it); same rule as granting',
        params: UserGrantParams,
        querystring: TenantQuery,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await service.revokeGrant(await acting(request), request.params.UserID, request.params.permission)
      return reply.status(204).send(null)
    },
  )

  if (options.embeddedIssuer) {
    server.post(
      '/v1/auth/accept-invite',
      {
        config: { public: true, rateLimit: INVITE_RATE_LIMIT },
        schema: {
          operationId: 'acceptInvite',
          tags: ['auth'],
          summary: 'Set the password of an invited user, or of one whose credentials were reset, with their one-time token; the account becomes active',
          body: AcceptInviteBody,
          response: { 204: Type.Null() },
        },
      },
      async (request, reply) => {
        await service.acceptInvite(request.body)
        return reply.status(204).send(null)
      },
    )
  }
}

/** 100,000 rows of a few hundred bytes at most each, with room to spare; on the import route only. */
export const IMPORT_BODY_LIMIT = 32 * 1024 * 1024

const IMPORT_DESCRIPTION =
  `Starts a workflow that creates the users in batches of 1,000 and answers 202 with its id; follow it on ` +
  `GET /v1/workflows/{workflowId} or its /events stream. Invalid and duplicate rows are reported per row (row number, ` +
  `email, code) in the run's result — counts plus the first 100 — and all of them on ${errorReportPath('{workflowId}')}. ` +
  `Embedded mode only: imported users are \`invited\` unless the row says otherwise, and get no invite token. ` +
  `At most ${IMPORT_MAX_ROWS} rows and 32 MiB.`

/**
 * The bulk import, in a plugin of its own: its CSV parser and its large body limit apply to this
 * route only, and it accepts nothing but JSON and CSV (text/plain would otherwise reach it).
 */
export function registerUserImportRoutes(app: FastifyInstance, imports: UserImport): void {
  void app.register(async (scope) => {
    scope.removeContentTypeParser(['text/plain'])
    scope.addContentTypeParser('text/csv', { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseImportCsv(body as string))
      } catch (err) {
        done(err as Error, undefined)
      }
    })
    const server = scope.withTypeProvider<TypeBoxTypeProvider>()

    server.post(
      '/ai/admin/users/import',
      {
        bodyLimit: IMPORT_BODY_LIMIT,
        config: requirePermission('user:manage'),
        schema: {
          operationId: 'importAiUsers',
          tags: ['users'],
          summary: 'Bulk-create up to 100,000 users from a JSON array or a CSV file, as a workflow',
          description: IMPORT_DESCRIPTION,
          consumes: ['application/json', 'text/csv'],
          headers: IdempotencyHeaders,
          body: AiUserImportBody,
          response: { 202: AiUserImportAccepted },
        },
      },
      async (request, reply) => {
        const accepted = await imports.accept(principalOf(request), request.body, request.headers['idempotency-key'])
        request.auditResourceId = accepted.workflowId
        return reply.status(202).header('location', `/v1/workflows/${accepted.workflowId}`).send(accepted)
      },
    )

    server.get(
      '/ai/admin/users/import/:id/errors',
      {
        config: requirePermission('user:view'),
        schema: {
          operationId: 'listAiUserImportErrors',
          tags: ['users'],
          summary: "Every refused row of a user import, in row order (the run's result lists only the first 100)",
          params: ImportErrorsParams,
          querystring: ImportErrorsQuery,
          response: { 200: ImportErrorsPage },
        },
      },
      async (request) => imports.errors(principalOf(request), request.params.id, request.query),
    )
  })
}
