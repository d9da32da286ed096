import { Readable } from 'node:stream'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { IdempotencyHeaders } from '../workflow_ops/schema.js'
import { App, AppAccepted, AppActivity, AppCreate, AppIdParams, AppListQuery, AppLogQuery, AppPage, AppUpdate } from './app-schema.js'
import { type AppService, appView } from './app-service.js'

const TAGS = ['apps']

const OWNER_RULE = 'A user without admin rank sees and changes only the apps they created; admins see every app of the tenant.'

export function registerAppRoutes(app: FastifyInstance, service: AppService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.post(
    '/v1/apps',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'createApp',
        tags: TAGS,
        summary: "Deploy a user's FastAPI code onto a cluster, as a workflow",
        description:
          'The code is checked with CPython\'s own parser first: 400 CODE_INVALID lists every problem (file, line, column, rule). ' +
          'The app is then `deploying` until its rollout is complete and its health route answers, and `running` after; ' +
          '`failed` with the pod\'s reason otherwise (a crash at import shows the runner\'s last log lines).',
        headers: IdempotencyHeaders,
        body: AppCreate,
        response: { 202: AppAccepted },
      },
    },
    async (request, reply) => {
      const accepted = await service.create(principalOf(request), request.body, request.headers['idempotency-key'])
      request.auditResourceId = accepted.appId
      return reply.status(202).header('location', `/v1/apps/${accepted.appId}`).send(accepted)
    },
  )

  server.get(
    '/v1/apps',
    {
      config: requirePermission('endpoint:view'),
      schema: { operationId: 'listApps', tags: TAGS, summary: 'Filter, sort and page apps', description: OWNER_RULE, querystring: AppListQuery, response: { 200: AppPage } },
    },
    async (request) => {
      const page = await service.list(principalOf(request), request.query)
      return { ...page, items: page.items.map(appView) }
    },
  )

  server.get(
    '/v1/apps/:id',
    {
      config: requirePermission('endpoint:view'),
      schema: { operationId: 'getApp', tags: TAGS, summary: 'One app: phase, conditions, code version and URL', description: OWNER_RULE, params: AppIdParams, response: { 200: App } },
    },
    async (request, reply) => {
      const { endpoint, etag } = await service.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return appView(endpoint)
    },
  )

  server.patch(
    '/v1/apps/:id',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'updateApp',
        tags: TAGS,
        summary: 'Change the code, environment or idle minutes: a new revision rolled out by a workflow',
        description: 'New code is a new code hash, hence a new ConfigMap and a rollout. If-Match guards against lost updates; new code that does not come up is rolled back (the previous code keeps serving) and the app is `failed` with the reason (`APP_CRASHED` with the runner\'s last log lines, `APP_NOT_HEALTHY`); the next good update brings it back to `running`. Older code versions\' ConfigMaps are deleted once a rollout completes, the previous one kept.',
        params: AppIdParams,
        body: AppUpdate,
        response: { 202: AppAccepted },
      },
    },
    async (request, reply) => {
      const result = await service.update(principalOf(request), request.params.id, request.body, ifMatch(request))
      setEtag(reply, result.etag)
      return reply.status(202).header('location', `/v1/workflows/${result.workflowId}`).send({ appId: result.endpoint.id, workflowId: result.workflowId })
    },
  )

  server.delete(
    '/v1/apps/:id',
    {
      config: requirePermission('endpoint:manage'),
      schema: { operationId: 'deleteApp', tags: TAGS, summary: "Tear an app down, as a workflow: every object labelled with its id is deleted", params: AppIdParams, response: { 202: AppAccepted } },
    },
    async (request, reply) => {
      const result = await service.remove(principalOf(request), request.params.id)
      return reply.status(202).header('location', `/v1/workflows/${result.workflowId}`).send({ appId: result.endpointId, workflowId: result.workflowId })
    },
  )

  server.post(
    '/v1/apps/:id/wake',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'wakeApp',
        tags: TAGS,
        summary: 'Bring an app scaled to zero back to one replica',
        description: '202 with the rollout workflow; 200 with the app when it is not scaled to zero.',
        params: AppIdParams,
        response: { 200: App, 202: AppAccepted },
      },
    },
    async (request, reply) => {
      const result = await service.wake(principalOf(request), request.params.id)
      if (!result.workflowId) return appView(result.endpoint)
      return reply.status(202).header('location', `/v1/workflows/${result.workflowId}`).send({ appId: result.endpoint.id, workflowId: result.workflowId })
    },
  )

  server.post(
    '/v1/apps/:id/activity',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'touchApp',
        tags: TAGS,
        summary: 'Say the app is in use: its idle clock starts again (requests it serves count too)',
        params: AppIdParams,
        response: { 200: AppActivity },
      },
    },
    async (request) => {
      const { lastActivityAt } = await service.touch(principalOf(request), request.params.id)
      return { appId: request.params.id, lastActivityAt: lastActivityAt.toISOString() }
    },
  )

  server.get(
    '/v1/apps/:id/logs',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'getAppLogs',
        tags: TAGS,
        summary: "The runner's log of one of the app's pods (default: the newest), streamed as text",
        params: AppIdParams,
        querystring: AppLogQuery,
        produces: ['text/plain'],
      },
    },
    async (request, reply) => {
      const stop = new AbortController()
      request.raw.on('close', () => stop.abort())
      const chunks = await service.logs(principalOf(request), request.params.id, request.query, stop.signal)
      // Awaited first, so a refusal of the cluster is an error answer rather than a cut stream.
      const first = await chunks.next()
      async function* rest() {
        if (!first.done) yield first.value
        try {
          yield* chunks
        } catch {
          // The client left or the pod went away: the stream ends.
        }
      }
      return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(Readable.from(rest()))
    },
  )
}
