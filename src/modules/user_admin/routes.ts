import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { AcceptInviteBody, AiUser, AiUserCreate, AiUserCreated, AiUserListQuery, AiUserPage, AiUserUpdate, UserIdParams } from './schema.js'
import type { UserAdminService } from './service.js'

/** Accepting an invite is public and guessable in principle: as tight a limit as login's. */
const INVITE_RATE_LIMIT = { max: 20, timeWindow: 60_000 }

const LIST_DESCRIPTION =
  'Users of the caller\'s tenant. Deleted users appear only with status=deleted. `q` matches a substring of ' +
  'name or email, case-insensitively, with % and _ taken literally. `total` is counted only up to ' +
  'page×limit+1000 matches: past that it is a lower bound and `totalExact` is false (the page itself is always exact).'

export function registerUserAdminRoutes(app: FastifyInstance, service: UserAdminService, options: { embeddedIssuer: boolean }): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

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
    async (request) => service.list(principalOf(request), request.query),
  )

  server.post(
    '/ai/admin/users',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'createAiUser',
        tags: ['users'],
        summary: 'Create a user; in Keycloak mode in the tenant\'s realm too, in embedded mode with a one-time invite',
        body: AiUserCreate,
        response: { 201: AiUserCreated },
      },
    },
    async (request, reply) => {
      const { user, etag } = await service.create(principalOf(request), request.body)
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
        response: { 200: AiUser },
      },
    },
    async (request, reply) => {
      const { user, etag } = await service.get(principalOf(request), request.params.UserID)
      setEtag(reply, etag)
      return user
    },
  )

  server.put(
    '/ai/admin/users/:UserID',
    {
      config: requirePermission('user:manage'),
      schema: {
        operationId: 'updateAiUser',
        tags: ['users'],
        summary: 'Update a user; attributes and secrets merge key by key (null removes); If-Match guards against lost updates',
        params: UserIdParams,
        body: AiUserUpdate,
        response: { 200: AiUser },
      },
    },
    async (request, reply) => {
      const { user, etag } = await service.update(principalOf(request), request.params.UserID, request.body, ifMatch(request))
      setEtag(reply, etag)
      return user
    },
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
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await service.remove(principalOf(request), request.params.UserID, ifMatch(request))
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
          summary: 'Set the password of an invited user with their one-time token; the account becomes active',
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
