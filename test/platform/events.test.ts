import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import pino from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Config, loadConfig } from '../../src/config.js'
import { registerDaprAppSide } from '../../src/platform/dapr.js'
import { type DatabaseHandle, openDatabase } from '../../src/platform/db/client.js'
import { migrate } from '../../src/platform/db/migrate.js'
import {
  createEventBus,
  type DeliveredEvent,
  type DispatcherTuning,
  type EventBus,
  retryDelayMs,
} from '../../src/platform/events/index.js'
import { registerErrorHandling } from '../../src/platform/http/error-handler.js'
import { tempDir } from '../helpers/app.js'
import { TEST_DATABASE_URL } from '../helpers/env.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The outbox against the run's PostgreSQL database. Every test publishes under its own source and
 * topics, so buses of other tests (and other test files) never see its events.
 */
const log = pino({ level: 'silent' })
const NO_DAPR: Config['dapr'] = { host: '127.0.0.1', pubsubName: 'pubsub' }
/** Short poll and backoff so retries happen within a test's patience. */
const FAST: Partial<DispatcherTuning> = { pollIntervalMs: 50, retryBaseMs: 20, retryMaxMs: 200 }

/** A superuser's view of the outbox: every tenant's events and the platform's. */
const OPERATOR = { tenantId: randomUUID(), isSuperuser: true }

const handles: DatabaseHandle[] = []
const buses: EventBus[] = []

async function openHandle(): Promise<DatabaseHandle> {
  const handle = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 5, log })
  handles.push(handle)
  return handle
}

function makeBus(
  database: DatabaseHandle,
  source: string,
  options: { enabled?: boolean; dapr?: Config['dapr']; tuning?: Partial<DispatcherTuning> } = {},
): EventBus {
  const bus = createEventBus({
    database,
    dapr: options.dapr ?? NO_DAPR,
    enabled: options.enabled ?? false,
    log,
    source,
    tuning: options.tuning ?? FAST,
  })
  buses.push(bus)
  return bus
}

function unique(prefix: string): string {
  return `${prefix}-${randomUUID()}`
}

/** A subscriber that remembers what it was given. */
function recorder() {
  const received: DeliveredEvent[] = []
  return { received, handler: async (event: DeliveredEvent) => void received.push(event) }
}

class Rollback extends Error {}

let db: DatabaseHandle

beforeAll(async () => {
  db = await openHandle()
})

afterEach(async () => {
  await Promise.all(buses.splice(0).map((bus) => bus.stop()))
})

afterAll(async () => {
  await Promise.all(handles.splice(0).map((handle) => handle.close().catch(() => undefined)))
})

describe('publishing through the outbox', () => {
  it('never delivers an event whose transaction rolled back', async () => {
    const source = unique('test')
    const topic = unique('rolled')
    const bus = makeBus(db, source)
    const sink = recorder()
    bus.subscribe({ name: 'sink', topic, handler: sink.handler })
    await bus.start()

    await expect(
      db.db.transaction(async (tx) => {
        await bus.publish(tx, topic, { doomed: true })
        throw new Rollback()
      }),
    ).rejects.toBeInstanceOf(Rollback)
    // A committed event after it proves the dispatcher ran past the point where the first would show.
    const kept = await db.db.transaction((tx) => bus.publish(tx, topic, { doomed: false }))
    await waitFor(() => sink.received.length > 0)
    await bus.drain()

    expect(sink.received.map((e) => e.id)).toEqual([kept])
    expect(sink.received[0]!.data).toEqual({ doomed: false })
    expect((await bus.list(OPERATOR, { topic })).total).toBe(1)
  })

  it('delivers a committed event once, on the commit notification rather than the next poll', async () => {
    const source = unique('test')
    const topic = unique('committed')
    // The next poll is a minute away and the wait below gives up long before: only the commit
    // notification can bring the event. (How fast it comes is a benchmark's question, not a test's.)
    const bus = makeBus(db, source, { tuning: { ...FAST, pollIntervalMs: 60_000 } })
    const sink = recorder()
    bus.subscribe({ name: 'sink', topic, handler: sink.handler })
    await bus.start()
    // The start-up pass (for rows committed while no dispatcher ran) is over before the commit.
    await bus.drain()

    const id = await db.db.transaction((tx) => bus.publish(tx, topic, { cluster: 'c-1', ready: true }))
    await waitFor(() => sink.received.length === 1, 20_000, 'event not delivered after commit')
    await bus.drain()

    expect(sink.received).toHaveLength(1)
    expect(sink.received[0]).toMatchObject({ id, topic, source, data: { cluster: 'c-1', ready: true } })
    expect(Number.isNaN(Date.parse(sink.received[0]!.time))).toBe(false)
    const { items } = await bus.list(OPERATOR, { topic })
    expect(items).toEqual([
      expect.objectContaining({ id, status: 'delivered', attempts: 1, lastError: null, nextAttemptAt: null }),
    ])
  })

  it('rejects topics that could not travel in a URL and events too large to be events', async () => {
    const bus = makeBus(db, unique('test'))
    await expect(bus.publish(db.db, 'has/slash', {})).rejects.toThrow(/invalid topic/)
    await expect(bus.publish(db.db, '', {})).rejects.toThrow(/invalid topic/)
    await expect(bus.publish(db.db, unique('big'), { blob: 'x'.repeat(300 * 1024) })).rejects.toThrow(
      /larger/,
    )
    expect(() => bus.subscribe({ name: 'a/b', topic: 'ok', handler: async () => {} })).toThrow(
      /subscription name/,
    )
    bus.subscribe({ name: 'twice', topic: 'ok', handler: async () => {} })
    expect(() => bus.subscribe({ name: 'twice', topic: 'ok', handler: async () => {} })).toThrow(/twice/)
  })
})

describe('restarts and retries', () => {
  it('delivers, after a restart, an event committed while no dispatcher ran', async () => {
    const source = unique('test')
    const topic = unique('restart')
    const before = recorder()
    const firstHandle = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 5, log })
    const first = createEventBus({ database: firstHandle, dapr: NO_DAPR, enabled: false, log, source })
    first.subscribe({ name: 'sink', topic, handler: before.handler })
    await first.start()
    await first.stop()
    const id = await firstHandle.db.transaction((tx) => first.publish(tx, topic, { step: 'queued' }))
    expect((await first.list(OPERATOR, { topic })).items[0]?.status).toBe('pending')
    await firstHandle.close()

    // A new process: new connections, new bus, same subscriptions.
    const after = recorder()
    const second = makeBus(await openHandle(), source)
    second.subscribe({ name: 'sink', topic, handler: after.handler })
    await second.start()
    await waitFor(() => after.received.length > 0)
    await second.drain()

    expect(before.received).toEqual([])
    expect(after.received.map((e) => e.id)).toEqual([id])
  })

  it('retries a failing subscriber with backoff and records the attempts until it succeeds', async () => {
    const source = unique('test')
    const topic = unique('flaky')
    const bus = makeBus(db, source)
    const calls: number[] = []
    let healthy = false
    bus.subscribe({
      name: 'flaky',
      topic,
      handler: async () => {
        calls.push(performance.now())
        if (!healthy) throw new Error('downstream unavailable')
      },
    })
    await bus.start()
    const id = await db.db.transaction((tx) => bus.publish(tx, topic, { n: 1 }))

    await waitFor(async () => {
      const [row] = (await bus.list(OPERATOR, { topic, status: 'failed' })).items
      return row !== undefined && row.attempts >= 3
    })
    const [failing] = (await bus.list(OPERATOR, { topic })).items
    expect(failing).toMatchObject({ id, status: 'failed' })
    expect(failing!.lastError).toBe('subscriber flaky failed: downstream unavailable')
    // Never sooner than half the backoff step: 20 ms after the first failure, 40 ms after the second.
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(9)
    expect(calls[2]! - calls[1]!).toBeGreaterThanOrEqual(19)

    healthy = true
    await waitFor(async () => (await bus.list(OPERATOR, { topic, status: 'delivered' })).total === 1)
    const [delivered] = (await bus.list(OPERATOR, { topic })).items
    expect(delivered!.attempts).toBe(calls.length)
    expect(delivered!.attempts).toBeGreaterThanOrEqual(4)
  })

  it('forgets delivered events after the retention period but keeps undelivered ones', async () => {
    const source = unique('test')
    const done = unique('done')
    const stuck = unique('stuck')
    const bus = makeBus(db, source, { tuning: { ...FAST, retentionMs: 0, purgeIntervalMs: 50 } })
    bus.subscribe({ name: 'done', topic: done, handler: async () => {} })
    bus.subscribe({
      name: 'stuck',
      topic: stuck,
      handler: async () => {
        throw new Error('never')
      },
    })
    await bus.start()
    await bus.publish(db.db, done, {})
    const kept = await bus.publish(db.db, stuck, {})

    await waitFor(
      async () =>
        (await bus.list(OPERATOR, { topic: done })).total === 0 &&
        (await bus.list(OPERATOR, { topic: stuck })).items[0]?.status === 'failed',
    )
    expect((await bus.list(OPERATOR, { topic: stuck })).items.map((i) => i.id)).toEqual([kept])
  })

  it('backs off exponentially with jitter, up to the cap', () => {
    for (let attempts = 1; attempts <= 40; attempts++) {
      const step = Math.min(300_000, 1_000 * 2 ** (attempts - 1))
      const delay = retryDelayMs(attempts, 1_000, 300_000)
      expect(delay).toBeGreaterThanOrEqual(step / 2)
      expect(delay).toBeLessThanOrEqual(step)
    }
  })

  it('lets two dispatchers share the table and still deliver each event once in total', async () => {
    const source = unique('test')
    const topic = unique('shared')
    const seen: Array<{ bus: string; id: string }> = []
    const tuning = { ...FAST, batchSize: 3 }
    const left = makeBus(await openHandle(), source, { tuning })
    const right = makeBus(await openHandle(), source, { tuning })
    // Whichever dispatcher delivers first holds its first event until the other has delivered one
    // too: only a table the two really share lets the second claim work while the first holds some.
    // (The hold gives up after a while so that a failing run ends with a failed assertion, not a hang.)
    let bothDelivering: () => void = () => {}
    const both = new Promise<void>((resolve) => {
      bothDelivering = resolve
    })
    for (const [name, bus] of [
      ['left', left],
      ['right', right],
    ] as const) {
      bus.subscribe({
        name: 'sink',
        topic,
        handler: async (event) => {
          seen.push({ bus: name, id: event.id })
          if (new Set(seen.map((s) => s.bus)).size === 2) bothDelivering()
          await Promise.race([both, new Promise((resolve) => setTimeout(resolve, 5_000))])
        },
      })
    }
    await Promise.all([left.start(), right.start()])

    const ids: string[] = []
    for (let batch = 0; batch < 6; batch++) {
      const published = await db.db.transaction(async (tx) => {
        const out: string[] = []
        for (let n = 0; n < 5; n++) out.push(await left.publish(tx, topic, { batch, n }))
        return out
      })
      ids.push(...published)
    }
    await waitFor(() => new Set(seen.map((s) => s.id)).size === ids.length, 20_000, 'not every event delivered')
    await Promise.all([left.drain(), right.drain()])

    expect(seen.map((s) => s.id).sort()).toEqual([...ids].sort())
    expect(new Set(seen.map((s) => s.bus))).toEqual(new Set(['left', 'right']))
    expect((await left.list(OPERATOR, { topic, status: 'delivered', limit: 100 })).total).toBe(ids.length)
  })

  it('finishes the delivery in flight when stopped, and the event is not delivered again', async () => {
    const source = unique('test')
    const topic = unique('stop')
    const bus = makeBus(db, source)
    let release: () => void = () => {}
    const started: string[] = []
    const finished: string[] = []
    bus.subscribe({
      name: 'slow',
      topic,
      handler: async (event) => {
        started.push(event.id)
        await new Promise<void>((resolve) => {
          release = resolve
        })
        finished.push(event.id)
      },
    })
    await bus.start()
    const id = await bus.publish(db.db, topic, {})
    await waitFor(() => started.length === 1)

    const stopping = bus.stop()
    release()
    await stopping

    expect(finished).toEqual([id])
    expect((await bus.list(OPERATOR, { topic })).items[0]?.status).toBe('delivered')

    // A dispatcher started afterwards on the same source and subscription delivers what comes next
    // (the control) and never the event the stopped one finished.
    const next = recorder()
    const successor = makeBus(await openHandle(), source)
    successor.subscribe({ name: 'slow', topic, handler: next.handler })
    await successor.start()
    const later = await bus.publish(db.db, topic, {})
    await waitFor(() => next.received.length > 0, 20_000, 'the successor delivered nothing')
    await successor.drain()
    expect(next.received.map((e) => e.id)).toEqual([later])
  })
})

describe('delivery to Dapr pub/sub', () => {
  interface Publish {
    path: string
    token: string | undefined
    contentType: string | undefined
    body: Record<string, unknown>
  }
  const received: Publish[] = []
  let failuresLeft = 0
  let sidecar: http.Server
  let dapr: Config['dapr']
  const SIDECAR_TOKEN = 'sidecar-token-0123456789'

  beforeAll(async () => {
    sidecar = http.createServer((req, res) => {
      let raw = ''
      req.on('data', (chunk) => {
        raw += chunk
      })
      req.on('end', () => {
        if (req.headers['dapr-api-token'] !== SIDECAR_TOKEN) {
          res.writeHead(401).end()
          return
        }
        received.push({
          path: req.url ?? '',
          token: req.headers['dapr-api-token'] as string | undefined,
          contentType: req.headers['content-type'],
          body: JSON.parse(raw),
        })
        if (failuresLeft > 0) {
          failuresLeft--
          res.writeHead(500, { 'content-type': 'application/json' }).end('{"errorCode":"ERR_PUBSUB_PUBLISH"}')
          return
        }
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => sidecar.listen(0, '127.0.0.1', resolve))
    const { port } = sidecar.address() as AddressInfo
    dapr = { host: '127.0.0.1', httpPort: port, pubsubName: 'test-pubsub', apiToken: SIDECAR_TOKEN }
  })

  afterAll(async () => {
    await new Promise((resolve) => sidecar.close(resolve))
  })

  it('publishes each committed event once as a CloudEvent that keeps the event id', async () => {
    const source = unique('test')
    const topic = unique('dapr')
    const bus = makeBus(db, source, { enabled: true, dapr })
    await bus.start()

    const ids = await db.db.transaction(async (tx) => [
      await bus.publish(tx, topic, { n: 1 }),
      await bus.publish(tx, topic, { n: 2 }),
      await bus.publish(tx, topic, { n: 3 }),
    ])
    await waitFor(() => received.filter((r) => r.path.endsWith(`/${topic}`)).length === 3)
    await bus.drain()

    const mine = received.filter((r) => r.path.endsWith(`/${topic}`))
    expect(mine.map((r) => r.body.id).sort()).toEqual([...ids].sort())
    for (const publish of mine) {
      expect(publish.path).toBe(`/v1.0/publish/test-pubsub/${topic}`)
      expect(publish.token).toBe(SIDECAR_TOKEN)
      expect(publish.contentType).toBe('application/cloudevents+json')
      expect(publish.body).toMatchObject({ specversion: '1.0', source, datacontenttype: 'application/json' })
    }
    expect(mine.map((r) => r.body.data)).toEqual(expect.arrayContaining([{ n: 1 }, { n: 2 }, { n: 3 }]))
  })

  it('retries when the sidecar answers 500, until it accepts', async () => {
    const source = unique('test')
    const topic = unique('dapr-retry')
    const bus = makeBus(db, source, { enabled: true, dapr })
    failuresLeft = 2
    await bus.start()

    const id = await bus.publish(db.db, topic, { retry: true })
    await waitFor(async () => (await bus.list(OPERATOR, { topic, status: 'delivered' })).total === 1)

    const attempts = received.filter((r) => r.body.id === id)
    expect(attempts).toHaveLength(3)
    const [row] = (await bus.list(OPERATOR, { topic })).items
    expect(row).toMatchObject({ status: 'delivered', attempts: 3 })
    expect(row!.lastError).toMatch(/Dapr sidecar answered 500/)
    expect(row!.lastError).not.toContain(SIDECAR_TOKEN)
  })
})

describe('Dapr app side', () => {
  const APP_TOKEN = 'app-token-0123456789abcdef'
  let app: FastifyInstance
  let bus: EventBus
  const topic = unique('inbound')
  const calls: DeliveredEvent[] = []
  let failNext = false
  let viewer = OPERATOR

  async function buildDaprApp(env: Record<string, string>, events: EventBus): Promise<FastifyInstance> {
    const server = Fastify()
    registerErrorHandling(server)
    // No auth guard in this app: every request acts as the principal a test sets (a superuser by default).
    server.decorateRequest('principal', null)
    server.addHook('onRequest', async (request) => {
      request.principal = { kind: 'user', id: 'operator', tenantId: viewer.tenantId, realm: 'ops', role: 'super_admin', permissions: new Set(), isSuperuser: viewer.isSuperuser }
    })
    await registerDaprAppSide(server, { events, config: loadConfig({ LOG_LEVEL: 'silent', ...env }) })
    await server.ready()
    return server
  }

  beforeAll(async () => {
    bus = createEventBus({ database: db, dapr: NO_DAPR, enabled: false, log, source: unique('test') })
    bus.subscribe({
      name: 'inbound-sink',
      topic,
      handler: async (event) => {
        if (failNext) {
          failNext = false
          throw new Error('not now')
        }
        calls.push(event)
      },
    })
    app = await buildDaprApp({ APP_API_TOKEN: APP_TOKEN, DAPR_PUBSUB_NAME: 'events' }, bus)
  })

  afterAll(async () => {
    await app.close()
  })

  function deliver(body: unknown, headers: Record<string, string> = { 'dapr-api-token': APP_TOKEN }) {
    return app.inject({
      method: 'POST',
      url: '/dapr/events/inbound-sink',
      headers: { 'content-type': 'application/cloudevents+json', ...headers },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    })
  }

  describe('happy', () => {
    it('announces the declared subscriptions to the sidecar', async () => {
      const response = await app.inject({
        method: 'GET',
        url: '/dapr/subscribe',
        headers: { 'dapr-api-token': APP_TOKEN },
      })
      expect(response.statusCode).toBe(200)
      expect(response.json()).toEqual([{ pubsubname: 'events', topic, route: '/dapr/events/inbound-sink' }])
    })

    it('runs the subscriber with the unwrapped data of a delivered CloudEvent', async () => {
      const id = randomUUID()
      const response = await deliver({
        specversion: '1.0',
        id,
        source: 'elsewhere',
        type: topic,
        topic,
        pubsubname: 'events',
        time: '2025-01-01T00:00:00Z',
        datacontenttype: 'application/json',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        data: { endpoint: 'e-1', phase: 'ready' },
      })
      expect(response.statusCode).toBe(200)
      expect(response.json()).toEqual({ status: 'SUCCESS' })
      expect(calls.at(-1)).toEqual({
        id,
        topic,
        source: 'elsewhere',
        time: '2025-01-01T00:00:00Z',
        data: { endpoint: 'e-1', phase: 'ready' },
      })
    })

    it('lists outbox events for operators, newest first, filtered by topic and status', async () => {
      const listed = unique('listed')
      const first = await bus.publish(db.db, listed, { n: 1 })
      const second = await bus.publish(db.db, listed, { n: 2 })
      const response = await app.inject({ method: 'GET', url: `/v1/events/outbox?topic=${listed}&limit=10` })
      expect(response.statusCode).toBe(200)
      const page = response.json()
      expect(page).toMatchObject({ total: 2, page: 1, limit: 10 })
      expect(page.items.map((i: { id: string }) => i.id)).toEqual([second, first])
      expect(page.items[0]).toMatchObject({ status: 'pending', attempts: 0, data: { n: 2 } })
      const delivered = await app.inject({
        method: 'GET',
        url: `/v1/events/outbox?topic=${listed}&status=delivered`,
      })
      expect(delivered.json()).toMatchObject({ total: 0, items: [] })
    })
  })

  describe('tenant scoping', () => {
    const tenantA = randomUUID()
    const tenantB = randomUUID()
    const scoped = unique('scoped')
    const ids: Record<'a' | 'b' | 'platform', string> = { a: '', b: '', platform: '' }
    const listed = async (tenantFilter = '') => {
      const response = await app.inject({ method: 'GET', url: `/v1/events/outbox?topic=${scoped}&limit=100${tenantFilter}` })
      expect(response.statusCode, response.body).toBe(200)
      return (response.json().items as Array<{ id: string }>).map((i) => i.id).sort()
    }

    beforeAll(async () => {
      ids.a = await bus.publish(db.db, scoped, { of: 'a' }, { tenantId: tenantA })
      ids.b = await bus.publish(db.db, scoped, { of: 'b' }, { tenantId: tenantB })
      ids.platform = await bus.publish(db.db, scoped, { of: 'platform' })
    })

    afterEach(() => {
      viewer = OPERATOR
    })

    it("shows a tenant's admin their own tenant's events only, whatever tenant they ask for", async () => {
      viewer = { tenantId: tenantB, isSuperuser: false }
      expect(await listed()).toEqual([ids.b])
      // Asking for another tenant does not widen the view; a platform event is never shown.
      expect(await listed(`&tenantId=${tenantA}`)).toEqual([ids.b])
    })

    it('shows a superuser every event, or one tenant\'s when asked', async () => {
      expect(await listed()).toEqual([ids.a, ids.b, ids.platform].sort())
      expect(await listed(`&tenantId=${tenantA}`)).toEqual([ids.a])
    })
  })

  describe('error', () => {
    it('asks Dapr to retry when the subscriber fails', async () => {
      failNext = true
      const response = await deliver({ specversion: '1.0', id: randomUUID(), data: {} })
      expect(response.statusCode).toBe(200)
      expect(response.json()).toEqual({ status: 'RETRY' })
    })

    it('answers 404 for an unknown subscription, which Dapr drops', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/dapr/events/nobody',
        headers: { 'content-type': 'application/cloudevents+json', 'dapr-api-token': APP_TOKEN },
        payload: JSON.stringify({ id: randomUUID(), data: {} }),
      })
      expect(response.statusCode).toBe(404)
    })

    it('drops an event without an id instead of having it retried forever', async () => {
      const before = calls.length
      const response = await deliver({ specversion: '1.0', data: {} })
      expect(response.json()).toEqual({ status: 'DROP' })
      expect(calls).toHaveLength(before)
    })

    it('rejects a body that is not JSON with the usual 400', async () => {
      const response = await deliver('{"id": ')
      expect(response.statusCode).toBe(400)
      expect(response.json().errorCode).toBe('MALFORMED_JSON')
    })

    it('rejects operator filters outside the allowed values', async () => {
      const response = await app.inject({ method: 'GET', url: '/v1/events/outbox?status=lost' })
      expect(response.statusCode).toBe(400)
    })
  })

  describe('security', () => {
    it.each([
      ['a wrong token', { 'dapr-api-token': 'not-the-token-at-all' }],
      ['no token', {}],
      ['a token that is a prefix of the right one', { 'dapr-api-token': APP_TOKEN.slice(0, -1) }],
    ])('refuses a delivery with %s and never runs the subscriber', async (_label, headers) => {
      const before = calls.length
      const response = await deliver({ id: randomUUID(), data: { injected: true } }, headers)
      expect(response.statusCode).toBe(401)
      expect(response.json().errorCode).toBe('UNAUTHENTICATED')
      expect(calls).toHaveLength(before)
    })

    it('refuses the subscription list without the token', async () => {
      const response = await app.inject({ method: 'GET', url: '/dapr/subscribe' })
      expect(response.statusCode).toBe(401)
    })

    it('accepts no deliveries at all when neither Dapr pub/sub nor APP_API_TOKEN is configured', async () => {
      const open = await buildDaprApp({}, bus)
      try {
        const before = calls.length
        const response = await open.inject({
          method: 'POST',
          url: '/dapr/events/inbound-sink',
          headers: { 'content-type': 'application/cloudevents+json' },
          payload: JSON.stringify({ id: randomUUID(), data: { injected: true } }),
        })
        expect(response.statusCode).toBe(401)
        expect(calls).toHaveLength(before)
      } finally {
        await open.close()
      }
    })
  })
})

describe('on the embedded database (PGlite)', () => {
  it('migrates, wakes on commit and lets subscribers write to the database without deadlock', async () => {
    const embedded = await openDatabase({ dataDir: tempDir(), poolMax: 1, log })
    handles.push(embedded)
    await migrate(embedded)
    const topic = unique('embedded')
    const bus = makeBus(embedded, unique('test'), { tuning: { ...FAST, pollIntervalMs: 60_000 } })
    const follow = unique('follow-up')
    const followUps = recorder()
    // A subscriber that publishes in its own transaction: it must not wait on the dispatcher's connection.
    bus.subscribe({
      name: 'chain',
      topic,
      handler: (event) =>
        embedded.db.transaction(async (tx) => void (await bus.publish(tx, follow, event.data))),
    })
    bus.subscribe({ name: 'follow', topic: follow, handler: followUps.handler })
    await bus.start()

    await embedded.db.transaction((tx) => bus.publish(tx, topic, { hop: 1 }))
    await waitFor(() => followUps.received.length === 1, 5_000, 'chained event not delivered')
    expect(followUps.received[0]!.data).toEqual({ hop: 1 })
  }, 60_000)
})
