import { createHash, timingSafeEqual } from 'node:crypto'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import Type from 'typebox'
import type { Config } from '../config.js'
import { principalOf, requirePermission } from './auth/principal.js'
import { NotFoundError, UnauthenticatedError } from './errors.js'
import { type EventBus, SUBSCRIPTION_NAME_PATTERN, TOPIC_PATTERN } from './events/index.js'
import { guardedJsonParser } from './http/input-guards.js'
import { Page, PageQueryProperties, StrictObject, StringEnum } from './http/schemas.js'

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

/**
 * True when the request carries `dapr-api-token` equal to `expected` (the APP_API_TOKEN the
 * sidecar sends to the app). Both sides are hashed first so the comparison is constant-time and
 * says nothing about the token's length. No expected token means nothing can be valid: this never
 * turns an unconfigured token into "trust everyone".
 */
export function isValidDaprToken(request: FastifyRequest, expected?: string): boolean {
  if (!expected) return false
  const presented = request.headers['dapr-api-token']
  if (typeof presented !== 'string') return false
  return timingSafeEqual(sha256(presented), sha256(expected))
}

const SubscriptionName = Type.String({ pattern: SUBSCRIPTION_NAME_PATTERN, maxLength: 64 })
const Topic = Type.String({ pattern: TOPIC_PATTERN, maxLength: 128 })

const DaprSubscription = Type.Object({
  pubsubname: Type.String(),
  topic: Type.String(),
  route: Type.String(),
})

/**
 * The CloudEvent envelope Dapr delivers. Dapr adds attributes of its own (trace ids, pubsubname),
 * so unknown attributes are allowed; the ones read here are bounded.
 */
const CloudEvent = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 256 }),
    specversion: Type.Optional(Type.String({ maxLength: 16 })),
    source: Type.Optional(Type.String({ maxLength: 1024 })),
    type: Type.Optional(Type.String({ maxLength: 256 })),
    topic: Type.Optional(Type.String({ maxLength: 256 })),
    pubsubname: Type.Optional(Type.String({ maxLength: 256 })),
    time: Type.Optional(Type.String({ maxLength: 64 })),
    datacontenttype: Type.Optional(Type.String({ maxLength: 256 })),
    data: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: true },
)

/** Dapr's subscriber contract: 200 with one of these; 404 drops the message; any other status is retried. */
const DaprDeliveryStatus = Type.Object({
  status: StringEnum(['SUCCESS', 'RETRY', 'DROP']),
})

const OutboxStatus = StringEnum(['pending', 'failed', 'delivered'])

const OutboxEvent = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    topic: Type.String(),
    source: Type.String(),
    status: OutboxStatus,
    attempts: Type.Integer({ minimum: 0 }),
    createdAt: Type.String({ format: 'date-time' }),
    nextAttemptAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    deliveredAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    lastError: Type.Union([Type.String(), Type.Null()]),
    data: Type.Unknown(),
  },
  {
    title: 'OutboxEvent',
    examples: [
      {
        id: '7b3e9d1a-4c6f-4a2e-8d5b-0f9c2e7a1b46',
        topic: 'workflow.events',
        source: 'modelplane',
        status: 'delivered',
        attempts: 1,
        createdAt: '2026-03-02T09:15:02.000Z',
        nextAttemptAt: null,
        deliveredAt: '2026-03-02T09:15:02.120Z',
        lastError: null,
        data: { workflowId: '9d2b6f14-7c3e-4a8b-b5d1-6e0f2a9c8b37', status: 'running', percent: 40 },
      },
    ],
  },
)

/**
 * The app side of Dapr pub/sub: the subscription list the sidecar reads at start-up, the route it
 * delivers each event to, and an operator view of the outbox that feeds it.
 */
export async function registerDaprAppSide(
  app: FastifyInstance,
  deps: { events: EventBus; config: Readonly<Config> },
): Promise<void> {
  const { events, config } = deps
  const server = app.withTypeProvider<TypeBoxTypeProvider>()
  const expectedToken = config.dapr.appApiToken

  // Dapr delivers CloudEvents under their own media type; they are JSON, with JSON's 400 on bad input.
  app.addContentTypeParser('application/cloudevents+json', { parseAs: 'string' }, guardedJsonParser(app))

  // The configuration refuses Dapr without APP_API_TOKEN; without one nothing is accepted here,
  // and an open /dapr/events would let anyone inject events.
  const requireDaprCaller = async (request: FastifyRequest): Promise<void> => {
    if (!isValidDaprToken(request, expectedToken)) {
      throw new UnauthenticatedError(
        expectedToken ? 'a valid dapr-api-token header is required' : 'Dapr pub/sub is not configured on this server',
      )
    }
  }

  server.get(
    '/dapr/subscribe',
    {
      // The sidecar is one client on loopback delivering bursts; a 429 would only make it retry.
      config: { public: true, rateLimit: false },
      onRequest: requireDaprCaller,
      schema: {
        operationId: 'listDaprSubscriptions',
        tags: ['events'],
        summary: 'Dapr programmatic subscriptions: the topics this app consumes and where to deliver them',
        response: { 200: Type.Array(DaprSubscription) },
      },
    },
    // Read per request: modules declare subscriptions while the app is built.
    async () =>
      events.subscriptions().map((s) => ({
        pubsubname: config.dapr.pubsubName,
        topic: s.topic,
        route: `/dapr/events/${s.name}`,
      })),
  )

  server.post(
    '/dapr/events/:subscription',
    {
      config: { public: true, rateLimit: false },
      onRequest: requireDaprCaller,
      // A malformed event will not become valid on retry: it is answered DROP, not 400.
      attachValidation: true,
      schema: {
        operationId: 'receiveDaprEvent',
        tags: ['events'],
        summary: 'Delivery of one pub/sub event by the Dapr sidecar to a declared subscription',
        params: Type.Object({ subscription: SubscriptionName }),
        body: CloudEvent,
        response: { 200: DaprDeliveryStatus },
      },
    },
    async (request) => {
      const subscription = events.subscriptions().find((s) => s.name === request.params.subscription)
      if (!subscription) throw new NotFoundError('no such subscription', 'SUBSCRIPTION_NOT_FOUND')
      if (request.validationError) {
        request.log.warn(
          { subscription: subscription.name, problem: request.validationError.message.slice(0, 300) },
          'malformed event dropped',
        )
        return { status: 'DROP' as const }
      }
      const event = request.body
      try {
        await subscription.handler({
          id: event.id,
          topic: subscription.topic,
          source: event.source ?? 'unknown',
          time: event.time ?? new Date().toISOString(),
          data: event.data ?? null,
        })
      } catch (err) {
        request.log.warn(
          {
            subscription: subscription.name,
            eventId: event.id,
            error: err instanceof Error ? err.message.slice(0, 300) : 'failed',
          },
          'subscriber failed; Dapr will redeliver',
        )
        return { status: 'RETRY' as const }
      }
      return { status: 'SUCCESS' as const }
    },
  )

  server.get(
    '/v1/events/outbox',
    {
      config: requirePermission('events:view'),
      schema: {
        operationId: 'listOutboxEvents',
        tags: ['events'],
        summary: 'Outbox events, newest first: what was published and whether it has been delivered',
        description:
          "The caller's tenant's events. A superuser sees every tenant's and the platform's events, or one tenant's with " +
          '`tenantId`; anyone else gets their own tenant whatever `tenantId` says.',
        querystring: StrictObject({
          tenantId: Type.Optional(
            Type.String({
              format: 'uuid',
              maxLength: 36,
              description: "superusers: only this tenant's events (ignored for anyone else)",
            }),
          ),
          page: PageQueryProperties.page,
          limit: PageQueryProperties.limit,
          status: Type.Optional(OutboxStatus),
          topic: Type.Optional(Topic),
        }),
        response: { 200: Page(OutboxEvent, 'OutboxEventPage') },
      },
    },
    async (request) => events.list(principalOf(request), request.query),
  )
}
