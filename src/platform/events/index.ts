import { randomUUID } from 'node:crypto'
import { type Listener, listen } from '../db/listen.js'
import type { Logger } from 'pino'
import type { Config } from '../../config.js'
import type { DatabaseHandle, Executor } from '../db/client.js'
import { type PageResult, pageRequest, pageResult } from '../http/pagination.js'
import type { OutboxStatus } from './crud.js'
import * as crud from './crud.js'
import type { OutboxEventRow } from './tables.js'

export type { OutboxStatus } from './crud.js'

/** Topic names travel in URLs (Dapr's publish API) and as route segments: letters, digits, `.`, `_`, `-`. */
export const TOPIC_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'
/** Subscription names become `/dapr/events/<name>`. */
export const SUBSCRIPTION_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
/** Events carry identifiers and small states, never blobs; the bound keeps the outbox and the list bounded. */
export const MAX_EVENT_BYTES = 256 * 1024

const TOPIC = new RegExp(TOPIC_PATTERN)
const SUBSCRIPTION_NAME = new RegExp(SUBSCRIPTION_NAME_PATTERN)

/**
 * What a subscriber receives: the CloudEvent attributes that matter plus the data.
 *
 * Delivery is at-least-once: a crash between delivering and recording the delivery, an expired
 * lease, or a retry after another subscriber of the same topic failed all deliver the same event
 * again. `id` is stable across every delivery (and is the CloudEvent id on Dapr pub/sub), so a
 * subscriber whose effect is not idempotent must deduplicate on it.
 */
export interface DeliveredEvent {
  id: string
  topic: string
  /** The publishing application (CloudEvent `source`). */
  source: string
  /** When the event was published, RFC 3339. */
  time: string
  /** The published data after a JSON round trip. */
  data: unknown
}

export interface Subscription {
  /** Unique within the process; names the Dapr delivery route `/dapr/events/<name>`. */
  name: string
  topic: string
  /** Throwing asks for the event again later (with backoff); it must be safe to run twice. */
  handler: (event: DeliveredEvent) => Promise<void>
}

/** One outbox row as an operator sees it. */
export interface OutboxEventView {
  id: string
  topic: string
  source: string
  /** pending: not yet delivered; failed: not yet delivered and the last attempt failed (it will be retried). */
  status: OutboxStatus
  attempts: number
  createdAt: string
  nextAttemptAt: string | null
  deliveredAt: string | null
  lastError: string | null
  data: unknown
}

export interface OutboxQuery {
  /** Only this tenant's events; absent lists every event, platform events included (superusers alone). */
  tenantId?: string
  page?: number
  limit?: number
  status?: OutboxStatus
  topic?: string
}

export interface PublishOptions {
  /**
   * The tenant whose data the event describes: the outbox shows it to that tenant's admins (and
   * superusers). Null or absent makes it a platform event, which only superusers see.
   */
  tenantId?: string | null
}

/** Who reads the outbox: a superuser may look at any tenant or all; anyone else sees their own tenant's events. */
export interface OutboxViewer {
  tenantId: string
  isSuperuser: boolean
}

export interface EventBus {
  /**
   * Records an event in the caller's transaction and returns its id. It is delivered after that
   * transaction commits (within milliseconds when the dispatcher runs) and never if it rolls back.
   */
  publish(executor: Executor, topic: string, data: unknown, options?: PublishOptions): Promise<string>
  /** Declares an in-process subscriber; on Dapr pub/sub it is also what `/dapr/subscribe` announces. */
  subscribe(subscription: Subscription): void
  subscriptions(): readonly Subscription[]
  /**
   * The outbox for operators, newest first. A superuser's `tenantId` narrows to that tenant (absent:
   * everything); anyone else sees their own tenant's events whatever they ask, and never a platform event.
   */
  list(viewer: OutboxViewer, query: OutboxQuery): Promise<PageResult<OutboxEventView>>
  /** Starts the dispatcher: a LISTEN wake-up for fresh events plus a poll for retries and missed wake-ups. */
  start(): Promise<void>
  /** Finishes the delivery in flight, hands back rows claimed but not attempted, and releases connections. */
  stop(): Promise<void>
  /** Delivers everything due now, after whatever delivery is in flight. For tests and tools. */
  drain(): Promise<void>
}

export interface DispatcherTuning {
  /** Fallback poll: retries that come due and notifications missed while the listener reconnected. */
  pollIntervalMs: number
  batchSize: number
  /** How long a claim is exclusive; past it, a crashed dispatcher's rows are picked up elsewhere. */
  leaseMs: number
  retryBaseMs: number
  retryMaxMs: number
  /** Delivered rows are kept this long for operators, then deleted. */
  retentionMs: number
  purgeIntervalMs: number
  /** Per Dapr publish call; must stay well under leaseMs. */
  deliveryTimeoutMs: number
}

const DEFAULT_TUNING: DispatcherTuning = {
  pollIntervalMs: 1_000,
  batchSize: 20,
  leaseMs: 60_000,
  retryBaseMs: 1_000,
  retryMaxMs: 5 * 60_000,
  retentionMs: 24 * 60 * 60_000,
  purgeIntervalMs: 10 * 60_000,
  deliveryTimeoutMs: 10_000,
}

const PURGE_BATCH = 1_000

export interface EventBusOptions {
  database: DatabaseHandle
  dapr: Config['dapr']
  /** Deliver to Dapr pub/sub instead of calling in-process subscribers. */
  enabled: boolean
  log: Logger
  /** CloudEvent `source`; a dispatcher delivers only rows its own source published. */
  source?: string
  tuning?: Partial<DispatcherTuning>
}

/** Exponential backoff with "equal jitter": never sooner than half the step, so retries spread but still wait. */
export function retryDelayMs(attempts: number, baseMs: number, maxMs: number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempts - 1, 30)))
  return Math.round(step / 2 + Math.random() * (step / 2))
}

/** A failure as stored in last_error and logs: the reason, never credentials from a URL, bounded. */
function describeFailure(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err)
  // fetch hides the reason behind "fetch failed", in its cause: ECONNREFUSED, a timeout, …
  const cause =
    err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined
  const reason = typeof cause?.code === 'string' ? cause.code : cause?.message
  if (typeof reason === 'string' && !message.includes(reason)) message += ` (${reason})`
  return message.replace(/\/\/[^@/\s]*@/g, '//***@').slice(0, 500)
}

function toView(row: OutboxEventRow): OutboxEventView {
  const status: OutboxStatus = row.deliveredAt ? 'delivered' : row.lastError ? 'failed' : 'pending'
  return {
    id: row.id,
    topic: row.topic,
    source: row.source,
    status,
    attempts: row.attempts,
    createdAt: row.createdAt.toISOString(),
    nextAttemptAt: row.deliveredAt ? null : row.nextAttemptAt.toISOString(),
    deliveredAt: row.deliveredAt?.toISOString() ?? null,
    lastError: row.lastError,
    data: row.payload,
  }
}

export function createEventBus(options: EventBusOptions): EventBus {
  const { database, dapr, enabled } = options
  const source = options.source ?? 'modelplane'
  const tuning: DispatcherTuning = { ...DEFAULT_TUNING, ...options.tuning }
  const log = options.log.child({ component: 'events' })
  if (enabled && !dapr.httpPort) throw new Error('Dapr pub/sub delivery needs DAPR_HTTP_PORT')
  if (source.length === 0 || source.length > 256) throw new Error('event source must be 1-256 characters')

  const subscribers: Subscription[] = []
  let state: 'stopped' | 'running' | 'stopping' = 'stopped'
  let listener: Listener | undefined
  let pollTimer: NodeJS.Timeout | undefined
  let purgeTimer: NodeJS.Timeout | undefined
  let retryTimer: NodeJS.Timeout | undefined
  let retryAt = Number.POSITIVE_INFINITY
  let loop: Promise<void> | undefined
  let wakeAgain = false
  let purging: Promise<void> | undefined
  let stopped: Promise<void> | undefined
  // Dispatch passes (the loop's and drain's) run one at a time, so drain sees in-flight work finish.
  let tail: Promise<unknown> = Promise.resolve()

  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = tail.then(fn)
    tail = run.catch(() => undefined)
    return run
  }

  async function publishToDapr(event: DeliveredEvent): Promise<void> {
    const url =
      `http://${dapr.host}:${dapr.httpPort}/v1.0/publish/` +
      `${encodeURIComponent(dapr.pubsubName)}/${encodeURIComponent(event.topic)}`
    const headers: Record<string, string> = { 'content-type': 'application/cloudevents+json' }
    if (dapr.apiToken) headers['dapr-api-token'] = dapr.apiToken
    // A full CloudEvent: Dapr passes it through as is, so the id reaches consumers for deduplication.
    const body = JSON.stringify({
      specversion: '1.0',
      id: event.id,
      source: event.source,
      type: event.topic,
      time: event.time,
      datacontenttype: 'application/json',
      data: event.data,
    })
    const response = await fetch(url, {
      method: 'POST',
      headers,
      body,
      signal: AbortSignal.timeout(tuning.deliveryTimeoutMs),
    })
    const text = await response.text().catch(() => '')
    if (!response.ok) throw new Error(`Dapr sidecar answered ${response.status}: ${text.slice(0, 200)}`)
  }

  async function callSubscribers(event: DeliveredEvent): Promise<void> {
    // In order, so a failing subscriber re-runs the event for all of them (at-least-once, see DeliveredEvent).
    for (const subscription of subscribers) {
      if (subscription.topic !== event.topic) continue
      try {
        await subscription.handler(event)
      } catch (err) {
        throw new Error(`subscriber ${subscription.name} failed: ${describeFailure(err)}`, { cause: err })
      }
    }
  }

  function scheduleRetryWake(inMs: number): void {
    // The poll catches every retry; a timer only makes short backoffs punctual.
    if (inMs >= tuning.pollIntervalMs || state !== 'running') return
    const at = Date.now() + inMs
    if (at >= retryAt) return
    clearTimeout(retryTimer)
    retryAt = at
    retryTimer = setTimeout(() => {
      retryAt = Number.POSITIVE_INFINITY
      wake()
    }, inMs + 5)
    retryTimer.unref()
  }

  async function deliver(row: OutboxEventRow, leaseToken: string): Promise<void> {
    const event: DeliveredEvent = {
      id: row.id,
      topic: row.topic,
      source: row.source,
      time: row.createdAt.toISOString(),
      data: row.payload,
    }
    const context = { eventId: row.id, topic: row.topic, attempts: row.attempts }
    try {
      await (enabled ? publishToDapr(event) : callSubscribers(event))
    } catch (err) {
      const error = describeFailure(err)
      const retryInMs = retryDelayMs(row.attempts, tuning.retryBaseMs, tuning.retryMaxMs)
      log.warn({ ...context, error, retryInMs }, 'event delivery failed; will retry')
      await crud.markOutboxEventFailed(database.db, { id: row.id, leaseToken, retryInMs, error })
      scheduleRetryWake(retryInMs)
      return
    }
    await crud.markOutboxEventDelivered(database.db, row.id)
    log.debug(context, 'event delivered')
  }

  /** One claim-and-deliver pass; returns how many rows it claimed. */
  async function dispatchOnce(): Promise<number> {
    const leaseToken = randomUUID()
    const rows = await crud.claimDueOutboxEvents(database.db, {
      source,
      limit: tuning.batchSize,
      leaseMs: tuning.leaseMs,
      leaseToken,
    })
    for (const [index, row] of rows.entries()) {
      if (state === 'stopping') {
        await crud.releaseOutboxEvents(
          database.db,
          rows.slice(index).map((r) => r.id),
          leaseToken,
        )
        break
      }
      await deliver(row, leaseToken)
    }
    return rows.length
  }

  async function runLoop(): Promise<void> {
    while (wakeAgain && state === 'running') {
      wakeAgain = false
      try {
        // A full batch means more may be waiting.
        let claimed: number
        do {
          claimed = await serial(dispatchOnce)
        } while (state === 'running' && claimed === tuning.batchSize)
      } catch (err) {
        log.warn({ error: describeFailure(err) }, 'outbox dispatch failed; retrying on the next poll')
      }
    }
  }

  function wake(): void {
    if (state !== 'running') return
    wakeAgain = true
    if (loop) return
    loop = runLoop().finally(() => {
      loop = undefined
      if (wakeAgain) wake()
    })
  }

  async function purge(): Promise<void> {
    try {
      let deleted = 0
      let batch: number
      do {
        batch = await crud.deleteDeliveredOutboxEvents(database.db, {
          source,
          olderThanMs: tuning.retentionMs,
          limit: PURGE_BATCH,
        })
        deleted += batch
      } while (batch === PURGE_BATCH && state === 'running')
      if (deleted > 0) log.info({ deleted }, 'old delivered events deleted')
    } catch (err) {
      log.warn({ error: describeFailure(err) }, 'outbox retention sweep failed')
    }
  }

  async function shutDown(): Promise<void> {
    clearInterval(pollTimer)
    clearInterval(purgeTimer)
    clearTimeout(retryTimer)
    retryAt = Number.POSITIVE_INFINITY
    try {
      await listener?.close()
    } catch (err) {
      log.warn({ error: describeFailure(err) }, 'closing the outbox listener failed')
    }
    listener = undefined
    // The loop finishes the delivery in flight and hands back the rest of its claim.
    await loop
    await tail
    await purging
    log.info({ source }, 'event dispatcher stopped')
  }

  return {
    async publish(executor, topic, data, options = {}) {
      if (!TOPIC.test(topic)) {
        throw new Error(`invalid topic "${topic.slice(0, 140)}": expected ${TOPIC_PATTERN}`)
      }
      const json = JSON.stringify(data ?? null)
      if (Buffer.byteLength(json) > MAX_EVENT_BYTES) {
        throw new Error(`event for topic ${topic} is larger than ${MAX_EVENT_BYTES} bytes`)
      }
      return crud.insertOutboxEvent(executor, { topic, payloadJson: json, source, tenantId: options.tenantId ?? null })
    },

    subscribe(subscription) {
      if (!SUBSCRIPTION_NAME.test(subscription.name)) {
        throw new Error(`invalid subscription name "${subscription.name.slice(0, 80)}"`)
      }
      if (!TOPIC.test(subscription.topic)) {
        throw new Error(`invalid topic "${subscription.topic.slice(0, 140)}": expected ${TOPIC_PATTERN}`)
      }
      if (subscribers.some((s) => s.name === subscription.name)) {
        throw new Error(`subscription ${subscription.name} is declared twice`)
      }
      subscribers.push({ ...subscription })
    },

    subscriptions: () => [...subscribers],

    async list(viewer, query) {
      const page = pageRequest(query)
      const { rows, total } = await crud.listOutboxEvents(database.db, {
        tenantId: viewer.isSuperuser ? query.tenantId : viewer.tenantId,
        status: query.status,
        topic: query.topic,
        limit: page.limit,
        offset: page.offset,
      })
      return pageResult(rows.map(toView), total, page)
    },

    async start() {
      if (state !== 'stopped') return
      state = 'running'
      try {
        const opened = await listen(database, {
          channel: crud.OUTBOX_CHANNEL,
          name: 'outbox-listener',
          onNotify: wake,
          onConnect: wake,
          log,
        })
        // stop() may have run while the listener connected.
        if (state !== 'running') return await opened.close()
        listener = opened
      } catch (err) {
        log.warn({ error: describeFailure(err) }, 'outbox listener unavailable; delivering on the poll only')
      }
      pollTimer = setInterval(wake, tuning.pollIntervalMs)
      pollTimer.unref()
      purgeTimer = setInterval(() => {
        purging ??= purge().finally(() => {
          purging = undefined
        })
      }, tuning.purgeIntervalMs)
      purgeTimer.unref()
      log.info({ delivery: enabled ? 'dapr' : 'in-process', source }, 'event dispatcher started')
      // Rows committed while no dispatcher ran.
      wake()
    },

    stop() {
      if (state === 'stopping') return stopped ?? Promise.resolve()
      if (state !== 'running') return Promise.resolve()
      state = 'stopping'
      stopped = shutDown().finally(() => {
        state = 'stopped'
        stopped = undefined
      })
      return stopped
    },

    async drain() {
      let claimed: number
      do {
        claimed = await serial(dispatchOnce)
      } while (claimed > 0)
    },
  }
}
