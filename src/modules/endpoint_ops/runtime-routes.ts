import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { Runtime, RuntimeCreate, RuntimeIdParams, RuntimeListQuery, RuntimePage, RuntimeUpdate } from './runtime-schema.js'
import type { RuntimeCatalog } from './runtime-service.js'

const RUNTIMES = ['runtimes']

const SCOPE_RULE =
  'Shared (`global`) runtimes serve every tenant and change only by a superuser (403 RUNTIME_GLOBAL_NEEDS_SUPERUSER otherwise); ' +
  "a tenant's own runtimes change by holders of runtime:manage in the tenant."

/** The runtime catalog under /v1/runtimes: schema, permission, one call into the catalog. */
export function registerRuntimeRoutes(app: FastifyInstance, runtimes: RuntimeCatalog): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.get(
    '/v1/runtimes',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'listRuntimes',
        tags: RUNTIMES,
        summary: "Filter and page the runtimes the tenant sees: the shared ones and the tenant's own",
        querystring: RuntimeListQuery,
        response: { 200: RuntimePage },
      },
    },
    async (request) => runtimes.list(principalOf(request), request.query),
  )

  server.get(
    '/v1/runtimes/:id',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'getRuntime',
        tags: RUNTIMES,
        summary: 'One runtime: image and pinned tag, arguments template, probes, formats, tasks and OpenAI routes',
        params: RuntimeIdParams,
        response: { 200: Runtime },
      },
    },
    async (request, reply) => {
      const { runtime, etag } = await runtimes.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return runtime
    },
  )

  server.post(
    '/v1/runtimes',
    {
      config: requirePermission('runtime:manage'),
      schema: {
        operationId: 'createRuntime',
        tags: RUNTIMES,
        summary: 'Add a runtime to the catalog: a serving engine image for one device type, with a pinned tag',
        description:
          `${SCOPE_RULE} The image is a reference without tag; the tag is pinned (never \`latest\`); the arguments template ` +
          'may use only the documented placeholders. 409 RUNTIME_NAME_TAKEN when the name is used by a shared runtime or one of the tenant\'s.',
        body: RuntimeCreate,
        response: { 201: Runtime },
      },
    },
    async (request, reply) => {
      const { runtime, etag } = await runtimes.create(principalOf(request), request.body)
      request.auditResourceId = runtime.id
      setEtag(reply, etag)
      return reply.status(201).header('location', `/v1/runtimes/${runtime.id}`).send(runtime)
    },
  )

  server.patch(
    '/v1/runtimes/:id',
    {
      config: requirePermission('runtime:manage'),
      schema: {
        operationId: 'updateRuntime',
        tags: RUNTIMES,
        summary: 'Change a runtime (a new tag, other arguments, disable it); If-Match guards against lost updates',
        description: `${SCOPE_RULE} A runtime that endpoints use cannot be renamed (409 RUNTIME_IN_USE): they refer to it by name.`,
        params: RuntimeIdParams,
        body: RuntimeUpdate,
        response: { 200: Runtime },
      },
    },
    async (request, reply) => {
      const { runtime, etag } = await runtimes.update(principalOf(request), request.params.id, request.body, ifMatch(request))
      setEtag(reply, etag)
      return runtime
    },
  )

  server.delete(
    '/v1/runtimes/:id',
    {
      config: requirePermission('runtime:manage'),
      schema: {
        operationId: 'deleteRuntime',
        tags: RUNTIMES,
        summary: 'Remove a runtime from the catalog',
        description: `${SCOPE_RULE} 409 RUNTIME_IN_USE while endpoints use it. A deleted shared runtime that came with the installation is not seeded again.`,
        params: RuntimeIdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await runtimes.remove(principalOf(request), request.params.id, ifMatch(request))
      return reply.status(204).send(null)
    },
  )
}
