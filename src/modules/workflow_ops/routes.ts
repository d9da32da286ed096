import { PassThrough } from 'node:stream'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Type from 'typebox'
import { principalOf, type QueryCredential, requirePermission, type SessionRef } from '../../platform/auth/principal.js'
import { etagOf, setEtag } from '../../platform/http/etag.js'
import {
  CancelAccepted,
  EVENT_STREAM_DESCRIPTION,
  IdempotencyHeaders,
  IdParams,
  LastEventIdHeaders,
  ListQuery,
  RetryAccepted,
  StreamQuery,
  StreamTicket,
  TENANT_STREAM_DESCRIPTION,
  WorkflowRunDetail,
  WorkflowRunPage,
} from './schema.js'
import type { RunEvent } from './events.js'
import type { RunStream, RunStreamSink, WorkflowService } from './service.js'
import { STREAM_TICKET_TTL_SECONDS, type TicketScope } from './tickets.js'

export interface WorkflowRouteOptions {
  /** Comment lines on an idle progress stream, so proxies keep it open; each also re-reads the run. */
  heartbeatMs: number
}

const TAGS = ['workflows']
/** How long EventSource waits before it reconnects after a network blip. */
const RECONNECT_DELAY_MS = 2_000

/**
 * Where a stream resumes: the Last-Event-ID a reconnecting EventSource sends, or `lastEventId` for
 * a new one opened after a ticket expired. Anything but a plain number is ignored (start afresh).
 */
function lastEventIdOf(header: string | undefined, query: string | undefined): number | undefined {
  const value = header ?? query
  if (value === undefined || !/^[0-9]{1,16}$/.test(value)) return undefined
  return Number(value)
}

export function registerWorkflowRoutes(app: FastifyInstance, service: WorkflowService, options: WorkflowRouteOptions): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()
  /** Open progress streams, ended before the server closes (it would otherwise wait for them). */
  const openStreams = new Set<PassThrough>()
  /** Streams opened with a ticket: what to check again while they are open, and when they end. */
  const ticketed = new WeakMap<FastifyRequest, { ref: SessionRef; expiresAt: Date }>()
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

  /**
   * Writes a stream as server-sent events until `open`'s sink ends it, the client leaves or the
   * server closes. A ticketed stream also ends when its ticket does (`event: ticket-expired`, so the
   * page can tell it from a network blip) or when its holder's session ends (checked on every
   * heartbeat).
   */
  async function serveStream(
    request: FastifyRequest,
    reply: FastifyReply,
    idOf: (event: RunEvent) => number,
    open: (sink: RunStreamSink) => Promise<RunStream>,
  ): Promise<FastifyReply> {
    const body = new PassThrough()
    const ticket = ticketed.get(request)
    let heartbeat: NodeJS.Timeout | undefined
    let expiry: NodeJS.Timeout | undefined
    let sent = 0
    const write = (chunk: string) => {
      if (!body.writableEnded && !body.destroyed) body.write(chunk)
    }
    const endWithExpiredTicket = () => {
      write('event: ticket-expired\ndata: {}\n\n')
      body.end()
    }
    // First bytes at once, so the client has its answer before any event (and EventSource its retry delay).
    write(`retry: ${RECONNECT_DELAY_MS}\n\n`)
    const stream = await open({
      send(name, event) {
        sent++
        write(`event: ${name}\nid: ${idOf(event)}\ndata: ${JSON.stringify(event)}\n\n`)
      },
      end() {
        clearInterval(heartbeat)
        body.end()
      },
    })
    // A reconnect to a run that is over, with everything already seen: EventSource stops on 204.
    if (body.writableEnded && sent === 0) {
      void stream.close()
      return reply.code(204).send()
    }
    if (!body.writableEnded) {
      heartbeat = setInterval(() => {
        write(': heartbeat\n\n')
        stream.refresh().catch((err: unknown) => request.log.warn({ err }, 'refreshing a progress stream failed'))
        if (ticket) {
          service
            .holderStillValid(ticket.ref, 'workflow:view')
            .then((valid) => valid || endWithExpiredTicket())
            .catch((err: unknown) => request.log.warn({ err }, 'checking a stream ticket again failed'))
        }
      }, options.heartbeatMs)
      heartbeat.unref()
      if (ticket) {
        expiry = setTimeout(endWithExpiredTicket, Math.max(0, ticket.expiresAt.getTime() - Date.now()))
        expiry.unref()
      }
    }
    // The client went away, the run ended, or the server is closing: stop listening either way.
    let cleaned = false
    const cleanUp = () => {
      if (cleaned) return
      cleaned = true
      clearInterval(heartbeat)
      clearTimeout(expiry)
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
  }

  /**
   * `?ticket=` as the stream's credential when no header came: its holder, resolved again now;
   * an expired ticket of ours is answered 204 here, which stops EventSource from reconnecting.
   */
  const ticketCredential =
    (scopeOf: (request: FastifyRequest) => TicketScope): QueryCredential =>
    async (request, reply) => {
      const ticket = (request.query as { ticket?: unknown } | undefined)?.ticket
      if (typeof ticket !== 'string') return undefined
      const holder = await service.ticketHolder(ticket, scopeOf(request))
      if (holder === 'expired') {
        await reply.code(204).send()
        return null
      }
      ticketed.set(request, { ref: holder.ref, expiresAt: holder.expiresAt })
      return holder.principal
    }

  server.post(
    '/v1/workflows/:id/stream-ticket',
    {
      config: requirePermission('workflow:view'),
      schema: {
        operationId: 'createWorkflowStreamTicket',
        tags: TAGS,
        summary: `A ticket that opens this run's progress stream from a browser's EventSource (as ?ticket=), for ${STREAM_TICKET_TTL_SECONDS} s`,
        params: IdParams,
        response: { 200: StreamTicket },
      },
    },
    async (request) => {
      const { id } = request.params
      const { ticket, expiresAt } = await service.streamTicket(principalOf(request), { kind: 'run', runId: id })
      return { ticket, expiresAt: expiresAt.toISOString(), url: `/v1/workflows/${id}/events?ticket=${encodeURIComponent(ticket)}` }
    },
  )

  server.post(
    '/v1/workflows/stream-ticket',
    {
      config: requirePermission('workflow:view'),
      schema: {
        operationId: 'createTenantWorkflowStreamTicket',
        tags: TAGS,
        summary: `A ticket that opens the tenant-wide run stream from a browser's EventSource (as ?ticket=), for ${STREAM_TICKET_TTL_SECONDS} s`,
        response: { 200: StreamTicket },
      },
    },
    async (request) => {
      const { ticket, expiresAt } = await service.streamTicket(principalOf(request), { kind: 'tenant' })
      return { ticket, expiresAt: expiresAt.toISOString(), url: `/v1/workflows/events?ticket=${encodeURIComponent(ticket)}` }
    },
  )

  server.get(
    '/v1/workflows/events',
    {
      config: {
        ...requirePermission('workflow:view'),
        queryCredential: ticketCredential(() => ({ kind: 'tenant' })),
      },
      schema: {
        operationId: 'streamTenantWorkflowEvents',
        tags: TAGS,
        summary: "Every run of the caller's tenant as server-sent events, one stream for a whole dashboard",
        description: TENANT_STREAM_DESCRIPTION,
        querystring: StreamQuery,
        headers: LastEventIdHeaders,
        produces: ['text/event-stream'],
        response: {
          200: {
            description: TENANT_STREAM_DESCRIPTION,
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          204: { description: 'The ticket has expired: ask for a new one', type: 'null' },
        },
      },
    },
    async (request, reply) => {
      const after = lastEventIdOf(request.headers['last-event-id'], request.query.lastEventId)
      const principal = principalOf(request)
      return serveStream(request, reply, (event) => Date.parse(event.at), (sink) =>
        service.watchTenant(principal, sink, after === undefined ? {} : { since: new Date(after) }),
      )
    },
  )

  server.get(
    '/v1/workflows/:id/events',
    {
      config: {
        ...requirePermission('workflow:view'),
        queryCredential: ticketCredential((request) => ({ kind: 'run', runId: String((request.params as { id?: unknown }).id) })),
      },
      schema: {
        operationId: 'streamWorkflowEvents',
        tags: TAGS,
        summary: "A workflow run's progress as server-sent events, until the run is over",
        description: EVENT_STREAM_DESCRIPTION,
        params: IdParams,
        querystring: StreamQuery,
        headers: LastEventIdHeaders,
        produces: ['text/event-stream'],
        response: {
          200: {
            description: EVENT_STREAM_DESCRIPTION,
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          204: { description: 'Nothing more will come (the run is over and was seen to its end), or the ticket has expired', type: 'null' },
        },
      },
    },
    async (request, reply) => {
      const after = lastEventIdOf(request.headers['last-event-id'], request.query.lastEventId)
      const principal = principalOf(request)
      return serveStream(request, reply, (event) => event.version, (sink) =>
        service.watch(principal, request.params.id, sink, after === undefined ? {} : { afterVersion: after }),
      )
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
