import { Readable } from 'node:stream'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { pageRequest, pageResult } from '../../platform/http/pagination.js'
import { IdempotencyHeaders } from '../workflow_ops/schema.js'
import {
  Endpoint,
  EndpointAccepted,
  EndpointApiKey,
  EndpointApiKeyRotated,
  EndpointCreate,
  EndpointHistoryPage,
  EndpointHistoryQuery,
  EndpointIdParams,
  EndpointListQuery,
  EndpointPage,
  EndpointPlan,
  EndpointScale,
  EndpointUpdate,
  ClusterReadQuery,
  KubeEventPage,
  ManifestPage,
  WorkerPage,
  WorkerLogQuery,
  WorkerParams,
} from './endpoint-schema.js'
import type { EndpointService } from './endpoint-service.js'
import { endpointView, historyView } from './endpoint-view.js'

const TAGS = ['endpoints']

/** What the cluster answers is read whole (an endpoint has a handful of pods and objects) and paged here. */
function paged<T>(items: T[], query: { page?: number; limit?: number }) {
  const page = pageRequest(query)
  return pageResult(items.slice(page.offset, page.offset + page.limit), items.length, page)
}

const DEPLOY_DESCRIPTION =
  'Placement is decided at once (409 INSUFFICIENT_CAPACITY, saying what is missing, when nothing fits); the endpoint ' +
  'exists as `deploying` and a workflow verifies the cluster, plans again, applies every object with server-side apply, ' +
  'waits for the rollout (judged as `kubectl rollout status` does, with the pods\' reasons on failure), asks the runtime ' +
  'for its model through the API server, and marks it `running` — or `failed` with the step and the reason.'

export function registerEndpointRoutes(app: FastifyInstance, service: EndpointService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.post(
    '/v1/endpoints',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'deployEndpoint',
        tags: TAGS,
        summary: 'Deploy a model version onto a cluster as an OpenAI-compatible endpoint, as a workflow',
        description: DEPLOY_DESCRIPTION,
        headers: IdempotencyHeaders,
        body: EndpointCreate,
        response: { 202: EndpointAccepted },
      },
    },
    async (request, reply) => {
      const accepted = await service.create(principalOf(request), request.body, request.headers['idempotency-key'])
      request.auditResourceId = accepted.endpointId
      return reply.status(202).header('location', `/v1/endpoints/${accepted.endpointId}`).send(accepted)
    },
  )

  server.post(
    '/v1/endpoints/plan',
    {
      // It changes nothing, so it leaves no audit row (a dashboard plans on every change of a form).
      config: { ...requirePermission('endpoint:view'), readOnly: true },
      schema: {
        operationId: 'planEndpoint',
        tags: TAGS,
        summary: 'What a deploy of this body would do: runtime, placement, resources, engine arguments and every manifest; changes nothing',
        description: '409 INSUFFICIENT_CAPACITY when nothing fits, saying what is missing. Object names in the answer use a placeholder id; a deploy names them after the new endpoint.',
        body: EndpointCreate,
        response: { 200: EndpointPlan },
      },
    },
    async (request) => service.plan(principalOf(request), request.body),
  )

  server.get(
    '/v1/endpoints',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'listEndpoints',
        tags: TAGS,
        summary: "Filter, sort and page the tenant's endpoints",
        querystring: EndpointListQuery,
        response: { 200: EndpointPage },
      },
    },
    async (request) => {
      const page = await service.list(principalOf(request), request.query)
      return { ...page, items: page.items.map(endpointView) }
    },
  )

  server.get(
    '/v1/endpoints/:id',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'getEndpoint',
        tags: TAGS,
        summary: 'One endpoint: phase, conditions, revision, placement and base URL (never its API key)',
        params: EndpointIdParams,
        response: { 200: Endpoint },
      },
    },
    async (request, reply) => {
      const { endpoint, etag } = await service.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return endpointView(endpoint)
    },
  )

  server.get(
    '/v1/endpoints/:id/history',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'listEndpointStatusHistory',
        tags: TAGS,
        summary: "The endpoint's phase changes, newest first",
        params: EndpointIdParams,
        querystring: EndpointHistoryQuery,
        response: { 200: EndpointHistoryPage },
      },
    },
    async (request) => {
      const page = await service.history(principalOf(request), request.params.id, request.query)
      return { ...page, items: page.items.map(historyView) }
    },
  )

  server.patch(
    '/v1/endpoints/:id',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'updateEndpoint',
        tags: TAGS,
        summary: 'Change replicas, autoscaling, environment, arguments, runtime or version: a new revision rolled out by a workflow',
        description: 'If-Match guards against lost updates. A rollout that fails goes back to the previous revision, which keeps serving, and the endpoint is `degraded` with the reason.',
        params: EndpointIdParams,
        body: EndpointUpdate,
        response: { 202: EndpointAccepted },
      },
    },
    async (request, reply) => {
      const result = await service.update(principalOf(request), request.params.id, request.body, ifMatch(request))
      setEtag(reply, result.etag)
      return reply.status(202).header('location', `/v1/workflows/${result.workflowId}`).send({ endpointId: result.endpoint.id, workflowId: result.workflowId })
    },
  )

  server.post(
    '/v1/endpoints/:id/scale',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'scaleEndpoint',
        tags: TAGS,
        summary: 'Set the replicas (0 scales to zero)',
        headers: IdempotencyHeaders,
        params: EndpointIdParams,
        body: EndpointScale,
        response: { 202: EndpointAccepted },
      },
    },
    async (request, reply) => {
      const result = await service.scale(principalOf(request), request.params.id, request.body.replicas, request.headers['idempotency-key'])
      return reply.status(202).header('location', `/v1/workflows/${result.workflowId}`).send({ endpointId: result.endpoint.id, workflowId: result.workflowId })
    },
  )

  server.post(
    '/v1/endpoints/:id/wake',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'wakeEndpoint',
        tags: TAGS,
        summary: 'Bring an endpoint scaled to zero back to the replicas it had',
        description: '202 with the rollout workflow; 200 with the endpoint when it is not scaled to zero.',
        params: EndpointIdParams,
        response: { 200: Endpoint, 202: EndpointAccepted },
      },
    },
    async (request, reply) => {
      const result = await service.wake(principalOf(request), request.params.id)
      if (!result.workflowId) return endpointView(result.endpoint)
      return reply.status(202).header('location', `/v1/workflows/${result.workflowId}`).send({ endpointId: result.endpoint.id, workflowId: result.workflowId })
    },
  )

  server.delete(
    '/v1/endpoints/:id',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'deleteEndpoint',
        tags: TAGS,
        summary: 'Tear an endpoint down, as a workflow: its objects are deleted by their labels, then the record is kept as `deleted`',
        params: EndpointIdParams,
        response: { 202: EndpointAccepted },
      },
    },
    async (request, reply) => {
      const accepted = await service.remove(principalOf(request), request.params.id)
      return reply.status(202).header('location', `/v1/workflows/${accepted.workflowId}`).send(accepted)
    },
  )

  server.get(
    '/v1/endpoints/:id/api-key',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'getEndpointApiKey',
        tags: TAGS,
        summary: 'The API key the endpoint’s runtime requires',
        params: EndpointIdParams,
        response: { 200: EndpointApiKey },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      return service.apiKey(principalOf(request), request.params.id)
    },
  )

  server.post(
    '/v1/endpoints/:id/api-key/rotate',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'rotateEndpointApiKey',
        tags: TAGS,
        summary: 'A new API key; the runtime restarts with it in a rollout (the old key works until that rollout completes)',
        headers: IdempotencyHeaders,
        params: EndpointIdParams,
        response: { 202: EndpointApiKeyRotated },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      const rotated = await service.rotateApiKey(principalOf(request), request.params.id, request.headers['idempotency-key'])
      return reply.status(202).send(rotated)
    },
  )

  server.get(
    '/v1/endpoints/:id/workers',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'listEndpointWorkers',
        tags: TAGS,
        summary: "The endpoint's pods as the cluster reports them now: node, phase, readiness, restarts and reasons",
        params: EndpointIdParams,
        querystring: ClusterReadQuery,
        response: { 200: WorkerPage },
      },
    },
    async (request) => paged(await service.workers(principalOf(request), request.params.id), request.query),
  )

  server.get(
    '/v1/endpoints/:id/workers/:pod/logs',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'getEndpointWorkerLogs',
        tags: TAGS,
        summary: "A worker's log, streamed as text (follow=true keeps it open)",
        params: WorkerParams,
        querystring: WorkerLogQuery,
        produces: ['text/plain'],
      },
    },
    async (request, reply) => {
      const stop = new AbortController()
      request.raw.on('close', () => stop.abort())
      const chunks = await service.logs(principalOf(request), request.params.id, request.params.pod, request.query, stop.signal)
      // The first chunk is awaited so a refusal of the cluster is an error answer, not a cut stream.
      const first = await chunks.next()
      async function* rest() {
        if (!first.done) yield first.value
        try {
          yield* chunks
        } catch {
          // The client left or the pod went away: the stream just ends.
        }
      }
      return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(Readable.from(rest()))
    },
  )

  server.get(
    '/v1/endpoints/:id/events',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'listEndpointKubeEvents',
        tags: TAGS,
        summary: "Kubernetes events of the endpoint's objects and pods, oldest first",
        params: EndpointIdParams,
        querystring: ClusterReadQuery,
        response: { 200: KubeEventPage },
      },
    },
    async (request) => paged(await service.kubeEvents(principalOf(request), request.params.id), request.query),
  )

  server.get(
    '/v1/endpoints/:id/manifests',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'getEndpointManifests',
        tags: TAGS,
        summary: 'What is applied now, read back from the cluster (Secret values redacted)',
        params: EndpointIdParams,
        querystring: ClusterReadQuery,
        response: { 200: ManifestPage },
      },
    },
    async (request) => paged((await service.manifests(principalOf(request), request.params.id)) as Array<Record<string, unknown>>, request.query),
  )
}
