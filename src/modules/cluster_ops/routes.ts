import multipart from '@fastify/multipart'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { AppError, ValidationError } from '../../platform/errors.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { IdempotencyHeaders } from '../workflow_ops/schema.js'
import {
  Cluster,
  ClusterAccepted,
  ClusterCreate,
  ClusterDeleteQuery,
  ClusterHistoryPage,
  ClusterHistoryQuery,
  ClusterIdParams,
  ClusterListQuery,
  ClusterNodePage,
  ClusterNodeQuery,
  ClusterPage,
  ClusterUpdate,
  KUBECONFIG_MAX_BYTES,
} from './schema.js'
import type { ClusterService } from './service.js'

const TAGS = ['clusters']

const REGISTER_DESCRIPTION =
  'JSON, or multipart/form-data with the kubeconfig as a file field named `kubeconfig` and the other fields as text ' +
  '(`labels` as a JSON object). The kubeconfig is checked at once (shape, forbidden content, denied addresses, the ' +
  'context), and a cluster already registered in the tenant is refused before anything starts. The cluster exists at ' +
  'once as `registering`; the workflow verifies the connection and permissions, detects the platform, catches the same ' +
  'cluster registered through another URL, discovers the nodes, and marks it `available` (or `failed`, with the reason).'

/** Multipart text fields as the JSON body would carry them. */
function fromMultipart(fields: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) {
    if (Array.isArray(value)) throw new ValidationError(`field ${key} was sent twice`, [{ field: key, message: 'sent twice' }])
    if (key === 'allowInsecureTls' || key === 'allowHttp') {
      if (value !== 'true' && value !== 'false') throw new ValidationError(`${key} must be true or false`, [{ field: key, message: 'must be true or false' }])
      body[key] = value === 'true'
    } else if (key === 'labels') {
      try {
        body[key] = JSON.parse(String(value))
      } catch {
        throw new ValidationError('labels must be a JSON object', [{ field: 'labels', message: 'not JSON' }])
      }
    } else {
      body[key] = value
    }
  }
  return body
}

export function registerClusterRoutes(app: FastifyInstance, service: ClusterService): void {
  void app.register(async (scope) => {
    // Multipart for this scope only: a kubeconfig file of at most KUBECONFIG_MAX_BYTES, a handful of text fields.
    await scope.register(multipart, {
      attachFieldsToBody: 'keyValues',
      limits: { fileSize: KUBECONFIG_MAX_BYTES, files: 1, fields: 10, fieldSize: 16 * 1024, parts: 12, headerPairs: 50 },
      throwFileSizeLimit: true,
      async onFile(part) {
        if (part.fieldname !== 'kubeconfig') {
          part.file.resume()
          throw new ValidationError(`unexpected file field ${part.fieldname}`, [{ field: part.fieldname, message: 'only kubeconfig may be a file' }])
        }
        let bytes: Buffer
        try {
          bytes = await part.toBuffer()
        } catch (error) {
          if ((error as { code?: string }).code !== 'FST_REQ_FILE_TOO_LARGE') throw error
          throw new AppError('PAYLOAD_TOO_LARGE', 413, `the kubeconfig file is larger than ${KUBECONFIG_MAX_BYTES} bytes`, {
            fields: [{ field: 'kubeconfig', message: `at most ${KUBECONFIG_MAX_BYTES} bytes` }],
          })
        }
        ;(part as unknown as { value: string }).value = bytes.toString('utf8')
      },
    })
    scope.addHook('preValidation', async (request: FastifyRequest) => {
      if (request.isMultipart()) request.body = fromMultipart((request.body ?? {}) as Record<string, unknown>)
    })
    const server = scope.withTypeProvider<TypeBoxTypeProvider>()
    server.post(
      '/v1/clusters',
      {
        config: requirePermission('cluster:manage'),
        schema: {
          operationId: 'registerCluster',
          tags: TAGS,
          summary: 'Register a Kubernetes cluster from its kubeconfig, as a workflow',
          description: REGISTER_DESCRIPTION,
          consumes: ['application/json', 'multipart/form-data'],
          headers: IdempotencyHeaders,
          body: ClusterCreate,
          response: { 202: ClusterAccepted },
        },
      },
      async (request, reply) => {
        const accepted = await service.register(principalOf(request), request.body, request.headers['idempotency-key'])
        request.auditResourceId = accepted.clusterId
        return reply.status(202).header('location', `/v1/clusters/${accepted.clusterId}`).send(accepted)
      },
    )
  })

  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.get(
    '/v1/clusters',
    {
      config: requirePermission('cluster:view'),
      schema: {
        operationId: 'listClusters',
        tags: TAGS,
        summary: "Filter, sort and page the tenant's clusters, each with its capacity summary",
        querystring: ClusterListQuery,
        response: { 200: ClusterPage },
      },
      // The page is written with JSON.stringify; the schema above still documents it. The schema's
      // serializer (fast-json-stringify) picks the branch of every nullable object (summary,
      // capabilities) by validating the value against the whole nested schema with ajv, for each of
      // up to 100 items, before writing it. Nothing unlisted can reach the answer: clusterView
      // builds each item field by field from the listed columns.
      serializerCompiler: () => (data) => JSON.stringify(data),
    },
    async (request) => service.list(principalOf(request), request.query),
  )

  server.get(
    '/v1/clusters/:id',
    {
      config: requirePermission('cluster:view'),
      schema: {
        operationId: 'getCluster',
        tags: TAGS,
        summary: 'One cluster: status, conditions, capabilities, capacity summary and last sync (never its kubeconfig)',
        params: ClusterIdParams,
        response: { 200: Cluster },
      },
    },
    async (request, reply) => {
      const { cluster, etag } = await service.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return cluster
    },
  )

  server.get(
    '/v1/clusters/:id/nodes',
    {
      config: requirePermission('cluster:view'),
      schema: {
        operationId: 'listClusterNodes',
        tags: TAGS,
        summary: "The cluster's nodes as of the last sync: devices, capacity, allocatable and what pods request",
        params: ClusterIdParams,
        querystring: ClusterNodeQuery,
        response: { 200: ClusterNodePage },
      },
    },
    async (request) => service.nodes(principalOf(request), request.params.id, request.query),
  )

  server.get(
    '/v1/clusters/:id/history',
    {
      config: requirePermission('cluster:view'),
      schema: {
        operationId: 'listClusterStatusHistory',
        tags: TAGS,
        summary: "The cluster's status changes, newest first",
        params: ClusterIdParams,
        querystring: ClusterHistoryQuery,
        response: { 200: ClusterHistoryPage },
      },
    },
    async (request) => service.history(principalOf(request), request.params.id, request.query),
  )

  server.patch(
    '/v1/clusters/:id',
    {
      config: requirePermission('cluster:manage'),
      schema: {
        operationId: 'updateCluster',
        tags: TAGS,
        summary: 'Rename or relabel a cluster (200), or give it a new kubeconfig, verified by a workflow before it replaces the old one (202)',
        description: 'If-Match guards against lost updates. With `kubeconfig`, the answer is 202 with the verification workflow; the new kubeconfig must reach the same cluster (its kube-system namespace) with the rights modelplane needs.',
        params: ClusterIdParams,
        body: ClusterUpdate,
        response: { 200: Cluster, 202: ClusterAccepted },
      },
    },
    async (request, reply) => {
      const result = await service.update(principalOf(request), request.params.id, request.body, ifMatch(request))
      setEtag(reply, result.etag)
      if (result.workflowId) {
        return reply.status(202).header('location', `/v1/workflows/${result.workflowId}`).send({ clusterId: result.cluster.id, workflowId: result.workflowId })
      }
      return result.cluster
    },
  )

  server.delete(
    '/v1/clusters/:id',
    {
      config: requirePermission('cluster:manage'),
      schema: {
        operationId: 'deleteCluster',
        tags: TAGS,
        summary: 'Delete a cluster, as a workflow: removes what modelplane created there, then keeps the record as `deleted` without its kubeconfig',
        description: '409 CLUSTER_IN_USE while endpoints or apps run there, unless force=true, which tears them down first.',
        params: ClusterIdParams,
        querystring: ClusterDeleteQuery,
        response: { 202: ClusterAccepted },
      },
    },
    async (request, reply) => {
      const accepted = await service.remove(principalOf(request), request.params.id, request.query.force === true)
      return reply.status(202).header('location', `/v1/workflows/${accepted.workflowId}`).send(accepted)
    },
  )

  server.post(
    '/v1/clusters/:id/refresh',
    {
      config: requirePermission('cluster:manage'),
      schema: {
        operationId: 'refreshCluster',
        tags: TAGS,
        summary: 'Sync the cluster now (nodes, capacity, reachability) and answer the result',
        params: ClusterIdParams,
        response: { 200: Cluster },
      },
    },
    async (request, reply) => {
      const { cluster, etag } = await service.refresh(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return cluster
    },
  )
}
