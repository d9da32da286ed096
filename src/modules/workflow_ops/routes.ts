import { PassThrough } from 'node:stream'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { etagOf, setEtag } from '../../platform/http/etag.js'
import {
  CancelAccepted,
  EVENT_STREAM_DESCRIPTION,
  IdempotencyHeaders,
  IdParams,
  ListQuery,
  RetryAccepted,
  WorkflowRunDetail,
  WorkflowRunPage,
} from './schema.js'
import type { WorkflowService } from './service.js'

export interface WorkflowRouteOptions {
  /** Comment lines on an idle progress stream, so proxies keep it open; each also re-reads the run. */
  heartbeatMs: number
}

const TAGS = ['workflows']

export function registerWorkflowRoutes(app: FastifyInstance, service: WorkflowService, options: WorkflowRouteOptions): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()
  /** Open progress streams, ended before the server closes (it would otherwise wait for them). */
  const openStreams = new Set<PassThrough>()
  app.addHook('preClose', async () => {
    for (const body of openStreams) body.end()
  })

  server.get(
    '/v1/workflows',
    {
      config: requirePermission('workflow:view'),
      schema: {
        operationId: 'listWorkflows',
        tags: TAGS,
        summary: "The tenant's workflow runs, newest first, filtered by type, status, resource or who started them",
        querystring: ListQuery,
        response: { 200: WorkflowRunPage },
      },
    },
    async (request) => service.list(principalOf(request), request.query),
  )

  server.get(
    '/v1/workflows/:id',
    {
      config: requirePermission('workflow:view'),
      schema: {
        operationId: 'getWorkflow',
        tags: TAGS,
        summary: 'A workflow run with its steps and, once it completed, its result',
        params: IdParams,
        response: { 200: WorkflowRunDetail },
      },
    },
    async (request, reply) => {
      const { run, version, updatedAt } = await service.get(principalOf(request), request.params.id)
      setEtag(reply, etagOf(updatedAt, version))
      return run
    },
  )

  server.get(
    '/v1/workflows/:id/events',
    {
      config: requirePermission('workflow:view'),
      schema: {
        operationId: 'streamWorkflowEvents',
        tags: TAGS,
        summary: "A workflow run's progress as server-sent events, until the run is over",
        description: EVENT_STREAM_DESCRIPTION,
        params: IdParams,
        produces: ['text/event-stream'],
        response: {
          200: {
            description: EVENT_STREAM_DESCRIPTION,
            content: { 'text/event-stream': { schema: Type.String() } },
          },
        },
      },
    },
    async (request, reply) => {
      const body = new PassThrough()
      let heartbeat: NodeJS.Timeout | undefined
      const write = (chunk: string) => {
        if (!body.writableEnded && !body.destroyed) body.write(chunk)
      }
      const stream = await service.watch(principalOf(request), request.params.id, {
        send(name, event) {
          write(`event: ${name}\nid: ${event.version}\ndata: ${JSON.stringify(event)}\n\n`)
        },
        end() {
          clearInterval(heartbeat)
          body.end()
        },
      })
      if (!body.writableEnded) {
        heartbeat = setInterval(() => {
          write(': heartbeat\n\n')
          stream.refresh().catch((err: unknown) => request.log.warn({ err }, 'refreshing a progress stream failed'))
        }, options.heartbeatMs)
        heartbeat.unref()
      }
      // The client went away, the run ended, or the server is closing: stop listening either way.
      let cleaned = false
      const cleanUp = () => {
        if (cleaned) return
        cleaned = true
        clearInterval(heartbeat)
        openStreams.delete(body)
        void stream.close()
      }
      body.on('close', cleanUp)
      reply.raw.on('close', () => {
        cleanUp()
        body.destroy()
      })
      openStreams.add(body)
      return reply
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache, no-transform')
        .header('x-accel-buffering', 'no')
        // The schema documents the stream; a stream payload is written as is, never serialized.
        .send(body as unknown as string)
    },
  )

  server.post(
    '/v1/workflows/:id/cancel',
    {
      config: requirePermission('workflow:manage'),
      schema: {
        operationId: 'cancelWorkflow',
        tags: TAGS,
        summary: "Terminates a pending or running workflow run and runs its type's compensation, if any",
        params: IdParams,
        response: { 202: CancelAccepted },
      },
    },
    async (request, reply) => {
      const run = await service.cancel(principalOf(request), request.params.id)
      reply.code(202)
      return { workflowId: run.id, status: 'cancelled' as const, compensation: run.compensation === 'running' ? 'running' as const : null }
    },
  )

  server.post(
    '/v1/workflows/:id/retry',
    {
      config: requirePermission('workflow:manage'),
      schema: {
        operationId: 'retryWorkflow',
        tags: TAGS,
        summary: 'Starts a failed workflow run again with the same input, as a new run linked to it',
        params: IdParams,
        headers: IdempotencyHeaders,
        response: { 202: RetryAccepted },
      },
    },
    async (request, reply) => {
      const { workflowId } = await service.retry(
        principalOf(request),
        request.params.id,
        request.headers['idempotency-key'],
      )
      request.auditResourceId = workflowId
      reply.code(202)
      return { workflowId, retryOf: request.params.id }
    },
  )

  server.delete(
    '/v1/workflows/:id',
    {
      config: requirePermission('workflow:manage'),
      schema: {
        operationId: 'purgeWorkflow',
        tags: TAGS,
        summary: 'Deletes a finished workflow run: its history and its record',
        params: IdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await service.purge(principalOf(request), request.params.id)
      return reply.code(204).send(null)
    },
  )
}
