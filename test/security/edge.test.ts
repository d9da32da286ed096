import { randomUUID } from 'node:crypto'
import net, { type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { and, eq, inArray, sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import Type from 'typebox'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { auditLog, users } from '../../src/modules/auth/tables.js'
import { workflowRuns } from '../../src/modules/workflow_ops/tables.js'
import { loggerOptions } from '../../src/platform/logger.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { waitFor } from '../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../helpers/workflow.js'

/**
 * Limits at the edge: what an attacker sends before and around the handlers (forged proxy
 * headers, slow or huge requests, deep JSON, NUL bytes, reused idempotency keys, cross-origin
 * calls, Dapr deliveries, forged request ids) is refused in the error envelope and changes nothing.
 * One app with small time limits serves most tests over a real socket, so that what Node refuses
 * before Fastify sees the request can be observed too.
 */

const SMALL_LIMITS = {
  REQUEST_TIMEOUT_SECONDS: '1',
  HEADERS_TIMEOUT_SECONDS: '1',
  MAX_HEADER_BYTES: '4096',
  UPLOAD_MIN_BYTES_PER_SECOND: '1024',
  UPLOAD_RATE_WINDOW_SECONDS: '1',
}

let app: FastifyInstance
let port: number
let admin: SeededUser

beforeAll(async () => {
  app = await buildTestApp(SMALL_LIMITS, { workflows: { hub: uniqueHub('edge'), tuning: FAST_HUB } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  port = (app.server.address() as AddressInfo).port
  admin = await seedUser(app, { realm: uniqueRealm('edge'), role: 'admin' })
})

afterAll(async () => {
  await app?.close()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: Record<string, unknown> | undefined
}

function parseResponse(text: string): RawResponse {
  const [head = '', ...rest] = text.split('\r\n\r\n')
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  const headers = Object.fromEntries(
    headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  )
  const body = rest.join('\r\n\r\n')
  return { status: Number(statusLine.split(' ')[1]), headers, body: body ? (JSON.parse(body) as Record<string, unknown>) : undefined }
}

/**
 * A raw HTTP/1.1 client: sends `head`, then `chunk` every `everyMs` (at most `times` times) until
 * the server answers; resolves with the first answer. Nothing here measures time: the server's
 * limits are small, and the outcome (status, envelope) is what is asserted.
 */
function rawExchange(options: { head: string | Buffer; chunk?: string | Buffer; everyMs?: number; times?: number }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let received = ''
    let answered = false
    socket.on('data', (data) => {
      received += data.toString('utf8')
      const headEnd = received.indexOf('\r\n\r\n')
      if (headEnd < 0) return
      const length = Number(/content-length: *(\d+)/i.exec(received.slice(0, headEnd))?.[1] ?? 0)
      if (Buffer.byteLength(received.slice(headEnd + 4)) >= length) {
        answered = true
        resolve(parseResponse(received))
        socket.destroy()
      }
    })
    socket.on('error', (err) => {
      if (!answered) reject(err)
    })
    socket.on('close', () => {
      if (!answered) reject(new Error(`connection closed without an answer: ${JSON.stringify(received)}`))
    })
    socket.on('connect', async () => {
      socket.write(options.head)
      for (let i = 0; options.chunk !== undefined && i < (options.times ?? Infinity); i++) {
        await sleep(options.everyMs ?? 100)
        if (answered || socket.destroyed) return
        socket.write(options.chunk)
      }
    })
  })
}

const db = () => app.platform.database.db

async function countUsersByEmail(tenantId: string, email: string): Promise<number> {
  const rows = await db()
    .select({ n: sql<number>`count(*)::int` })
    .from(users)
    .where(and(eq(users.tenantId, tenantId), eq(users.email, email)))
  return rows[0]!.n
}

async function createUser(email: string): Promise<string> {
  const created = await app.inject({
    method: 'POST',
    url: '/ai/admin/users',
    headers: bearer(admin.accessToken),
    payload: { email, role: 'viewer' },
  })
  expect(created.statusCode, created.body).toBe(201)
  return created.json().id as string
}

const randomOctet = () => 1 + Math.floor(Math.random() * 250)
const randomAddress = (first: number) => `${first}.${randomOctet()}.${randomOctet()}.${randomOctet()}`

describe('TRUST_PROXY', () => {
  it('refuses `true`, garbage and bad CIDRs at start, naming TRUST_PROXY and what to set instead', () => {
    expect(() => loadConfig({ TRUST_PROXY: 'true' })).toThrow(/TRUST_PROXY: .*X-Forwarded-For.*rate limit.*TRUST_PROXY=1/s)
    for (const bad of ['yes', '10.0.0.0/33', '300.1.2.3', '10.0.0.1, not-an-ip', 'fe80::/129', '0']) {
      expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/TRUST_PROXY/)
    }
    expect(loadConfig({}).trustProxy).toBe(false)
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2)
    expect(loadConfig({ TRUST_PROXY: '127.0.0.1, 10.0.0.0/8, ::1' }).trustProxy).toEqual(['127.0.0.1', '10.0.0.0/8', '::1'])
  })

  it('honours X-Forwarded-For for rate limiting only when it comes from the trusted proxy address', async () => {
    const proxied = await buildTestApp({ TRUST_PROXY: '127.0.0.1', RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_SECONDS: '60' })
    try {
      const call = (remoteAddress: string, forwardedFor: string) =>
        proxied.inject({ url: '/v1/events/outbox', remoteAddress, headers: { 'x-forwarded-for': forwardedFor } })
      // Through the trusted proxy: each forwarded client has its own budget.
      const client = randomAddress(11)
      expect((await call('127.0.0.1', client)).statusCode).not.toBe(429)
      expect((await call('127.0.0.1', client)).statusCode).not.toBe(429)
      expect((await call('127.0.0.1', client)).statusCode).toBe(429)
      expect((await call('127.0.0.1', randomAddress(12))).statusCode).not.toBe(429)
      // Straight from an untrusted peer: a new forwarded address each time changes nothing.
      const peer = randomAddress(13)
      const statuses = []
      for (let i = 0; i < 3; i++) statuses.push((await call(peer, randomAddress(14))).statusCode)
      expect(statuses[2]).toBe(429)
    } finally {
      await proxied.close()
    }
  })

  it('with one trusted hop, counts a forged chain against its right-most address: rotating the left-most does not escape', async () => {
    const proxied = await buildTestApp({ TRUST_PROXY: '1', RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_SECONDS: '60' })
    try {
      const client = randomAddress(15)
      const forged = () => proxied.inject({ url: '/v1/events/outbox', headers: { 'x-forwarded-for': `${randomAddress(1)}, ${client}` } })
      const statuses = []
      for (let i = 0; i < 4; i++) statuses.push((await forged()).statusCode)
      expect(statuses.slice(0, 2)).not.toContain(429)
      expect(statuses.slice(2)).toEqual([429, 429])
      // Another right-most address is another client, with a budget of its own.
      const other = await proxied.inject({ url: '/v1/events/outbox', headers: { 'x-forwarded-for': `1.2.3.4, ${randomAddress(16)}` } })
      expect(other.statusCode).not.toBe(429)
    } finally {
      await proxied.close()
    }
  })
})

describe('time and size limits', () => {
  it('answers a body trickled slower than REQUEST_TIMEOUT_SECONDS with 408 in the envelope, and creates nothing', async () => {
    const email = `slow-${randomUUID().slice(0, 8)}@example.test`
    const body = JSON.stringify({ email, role: 'viewer' })
    const response = await rawExchange({
      head:
        'POST /ai/admin/users HTTP/1.1\r\nHost: localhost\r\n' +
        `Authorization: Bearer ${admin.accessToken}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
      chunk: ' ',
      everyMs: 150,
      times: 100,
    })
    expect(response.status).toBe(408)
    expect(response.body).toEqual({ errorCode: 'REQUEST_TIMEOUT', message: expect.any(String), details: { fields: [] }, requestId: expect.any(String) })
    expect(response.headers.connection).toBe('close')
    expect(await countUsersByEmail(admin.tenantId, email)).toBe(0)
    expect((await app.inject('/healthz')).statusCode).toBe(200)
  })

  it('answers a multipart upload trickled slower than REQUEST_TIMEOUT_SECONDS with 408 in the envelope, and registers nothing', async () => {
    const boundary = 'edge-boundary-7f3a'
    const start =
      `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nslow-upload\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="kubeconfig"; filename="config.yaml"\r\nContent-Type: application/yaml\r\n\r\n`
    const response = await rawExchange({
      head:
        'POST /v1/clusters HTTP/1.1\r\nHost: localhost\r\n' +
        `Authorization: Bearer ${admin.accessToken}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
        `Content-Length: ${start.length + 10_000}\r\n\r\n${start}`,
      chunk: '#',
      everyMs: 150,
      times: 100,
    })
    expect(response.status).toBe(408)
    expect(response.body).toEqual({ errorCode: 'REQUEST_TIMEOUT', message: expect.any(String), details: { fields: [] }, requestId: expect.any(String) })
    const clusters = await app.inject({ url: '/v1/clusters?q=slow-upload', headers: { authorization: `Bearer ${admin.accessToken}` } })
    expect(clusters.json().total).toBe(0)
    expect((await app.inject('/healthz')).statusCode).toBe(200)
  })

  it('answers headers trickled slower than HEADERS_TIMEOUT_SECONDS with 408 REQUEST_TIMEOUT in the envelope', async () => {
    const response = await rawExchange({
      head: 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n',
      chunk: 'X-Slow: a\r\n',
      everyMs: 150,
      times: 100,
    })
    expect(response.status).toBe(408)
    expect(response.body).toEqual({ errorCode: 'REQUEST_TIMEOUT', message: expect.any(String), details: { fields: [] }, requestId: expect.any(String) })
    expect(response.headers['x-request-id']).toBe(response.body!.requestId)
  })

  it('answers headers larger than MAX_HEADER_BYTES with 431 HEADERS_TOO_LARGE in the envelope', async () => {
    const response = await rawExchange({
      head: `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`,
    })
    expect(response.status).toBe(431)
    expect(response.body).toEqual({ errorCode: 'HEADERS_TOO_LARGE', message: expect.any(String), details: { fields: [] }, requestId: expect.any(String) })
  })

  it('answers a NUL byte in a header value with 400 in the envelope', async () => {
    const response = await rawExchange({
      head: Buffer.from('GET /healthz HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: a\u0000b\r\n\r\n', 'latin1'),
    })
    expect(response.status).toBe(400)
    expect(response.body).toMatchObject({ errorCode: 'BAD_REQUEST', requestId: expect.any(String) })
  })

  it('lets a signed upload run past the request timeout while it moves faster than the minimum rate', async () => {
    const key = `edge/${randomUUID()}/steady.bin`
    const url = new URL(await app.platform.blob.presignPut(key, 300))
    const chunk = Buffer.alloc(1024, 7)
    const chunks = 16
    // 16 KiB at 1 KiB every 150 ms: about 2.4 s, over the 1 s request timeout, well above 1 KiB/s.
    const response = await rawExchange({
      head: `PUT ${url.pathname}${url.search} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${chunk.length * chunks}\r\n\r\n`,
      chunk,
      everyMs: 150,
      times: chunks,
    })
    expect(response.status, JSON.stringify(response.body)).toBe(200)
    expect(response.body).toMatchObject({ key, size: chunk.length * chunks })
    expect((await app.platform.blob.stat(key))?.size).toBe(chunk.length * chunks)
  })

  it('cuts off a signed upload slower than the minimum rate with 408, and stores nothing', async () => {
    const key = `edge/${randomUUID()}/slow.bin`
    const url = new URL(await app.platform.blob.presignPut(key, 300))
    // 100 bytes every 200 ms: 500 bytes per second, under the 1024 the test app asks for.
    const response = await rawExchange({
      head: `PUT ${url.pathname}${url.search} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`,
      chunk: Buffer.alloc(100, 1),
      everyMs: 200,
      times: 200,
    })
    expect(response.status).toBe(408)
    expect(response.body).toMatchObject({ errorCode: 'REQUEST_TIMEOUT', message: expect.stringMatching(/minimum/) })
    expect(await app.platform.blob.stat(key)).toBeNull()
  })
  it('closes connections past MAX_CONNECTIONS at once, and serves again when one goes', async () => {
    const limited = await buildTestApp({ MAX_CONNECTIONS: '1' })
    const sockets: net.Socket[] = []
    try {
      await limited.listen({ port: 0, host: '127.0.0.1' })
      const limitedPort = (limited.server.address() as AddressInfo).port
      const connect = () =>
        new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect({ port: limitedPort, host: '127.0.0.1' }, () => resolve(socket))
          sockets.push(socket)
          socket.on('error', reject)
        })
      const first = await connect()
      const second = await connect()
      const answer = await new Promise<string>((resolve) => {
        // Whichever comes first: an answer (the limit did not hold) or the connection closing.
        second.on('data', (chunk) => resolve(chunk.toString()))
        second.on('close', () => resolve(''))
        second.on('error', () => undefined)
        second.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n')
      })
      expect(answer).toBe('')
      first.destroy()
      await waitFor(async () => (await fetch(`http://127.0.0.1:${limitedPort}/healthz`).then((r) => r.status, () => 0)) === 200, 5_000, 'never served again')
    } finally {
      for (const socket of sockets) socket.destroy()
      await limited.close()
    }
  })
})

describe('deeply nested JSON', () => {
  it('refuses 100,000 nested arrays with 400 before parsing, and keeps serving', async () => {
    const depth = 100_000
    const response = await app.inject({
      method: 'POST',
      url: '/ai/admin/users',
      headers: { ...bearer(admin.accessToken), 'content-type': 'application/json' },
      payload: '['.repeat(depth) + ']'.repeat(depth),
    })
    expect(response.statusCode).toBe(400)
    expect(response.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR', message: expect.stringMatching(/deeper than 64/) })
    expect((await app.inject('/healthz')).statusCode).toBe(200)
  })

  it('still parses JSON up to the limit and still refuses prototype poisoning', async () => {
    const deepButAllowed = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      // 64 levels: past the parser, refused by the route's schema instead.
      payload: '['.repeat(64) + ']'.repeat(64),
    })
    expect(deepButAllowed.statusCode).toBe(400)
    expect(deepButAllowed.json().message).not.toMatch(/deeper/)
    const poisoned = await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"email":"a@b.c","password":"x","tenant":"t","__proto__":{"isAdmin":true}}',
    })
    expect(poisoned.statusCode).toBe(400)
    expect(poisoned.json()).toMatchObject({ errorCode: 'MALFORMED_JSON' })
  })
})

describe('NUL characters', () => {
  it('refuses a NUL in the login email, password or tenant with 400, and the account still signs in', async () => {
    const valid = { email: admin.email, password: admin.password, tenant: admin.realm }
    for (const field of ['email', 'password', 'tenant'] as const) {
      const response = await app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { ...valid, [field]: `${valid[field]}\u0000` },
      })
      expect(response.statusCode, field).toBe(400)
      expect(response.json(), field).toMatchObject({ errorCode: 'VALIDATION_ERROR', message: 'the body may not contain the NUL character' })
    }
    expect((await app.inject({ method: 'POST', url: '/v1/auth/login', payload: valid })).statusCode).toBe(200)
  })

  it('refuses %00 in a query value of a list route and in a path id with 400', async () => {
    for (const url of ['/ai/admin/users?q=a%00b', '/v1/workflows?type=demo%00', `/ai/admin/users/${randomUUID()}%00`]) {
      const response = await app.inject({ url, headers: bearer(admin.accessToken) })
      expect(response.statusCode, url).toBe(400)
      expect(response.json(), url).toMatchObject({ errorCode: 'VALIDATION_ERROR', message: 'the URL may not contain the NUL character' })
    }
  })

  it('refuses a NUL deep in a user admin body, escaped or raw, with 400 and leaves the user as it was', async () => {
    const id = await createUser(`nul-${randomUUID().slice(0, 8)}@example.test`)
    const before = (await app.inject({ url: `/ai/admin/users/${id}`, headers: bearer(admin.accessToken) })).json()
    const escaped = JSON.stringify({ attributes: { profile: { bio: ['ok', 'a\u0000b'] } } })
    const raw = Buffer.from('{"attributes":{"profile":{"bio":"a\u0000b"}}}', 'utf8')
    const refusedIds: string[] = []
    for (const payload of [escaped, raw]) {
      const response = await app.inject({
        method: 'PUT',
        url: `/ai/admin/users/${id}`,
        headers: { ...bearer(admin.accessToken), 'content-type': 'application/json' },
        payload,
      })
      expect(response.statusCode).toBe(400)
      // Refused by the body parser, before the handler (and its own attribute checks) ran.
      expect(response.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR', message: 'the body may not contain the NUL character' })
      refusedIds.push(response.headers['x-request-id'] as string)
    }
    const after = (await app.inject({ url: `/ai/admin/users/${id}`, headers: bearer(admin.accessToken) })).json()
    expect(after).toEqual(before)
    // The audit log may show the refused attempts, never as a change that happened.
    const audited = await db().select().from(auditLog).where(inArray(auditLog.requestId, refusedIds))
    expect(audited.filter((entry) => entry.outcome < 400)).toEqual([])
  })

  it('refuses a NUL byte in a CSV import with 400, and records nothing under its idempotency key', async () => {
    const run = randomUUID().slice(0, 8)
    const key = `edge-csv-${run}`
    const post = (csv: string) =>
      app.inject({
        method: 'POST',
        url: '/ai/admin/users/import',
        headers: { ...bearer(admin.accessToken), 'content-type': 'text/csv', 'idempotency-key': key },
        payload: Buffer.from(csv, 'utf8'),
      })
    const refused = await post(`email,role,name\ncsv-${run}@example.test,viewer,a\u0000b\n`)
    expect(refused.statusCode).toBe(400)
    expect(refused.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR', message: 'the body may not contain the NUL character' })
    const runs = await db().select().from(workflowRuns).where(and(eq(workflowRuns.tenantId, admin.tenantId), eq(workflowRuns.idempotencyKey, key)))
    expect(runs).toEqual([])
    // The key is still free: a clean import under it is a new one.
    expect((await post(`email,role\ncsv-${run}@example.test,viewer\n`)).statusCode).toBe(202)
  })
})

describe('failed queries in the log', () => {
  it('logs a failed query without its bound values', async () => {
    const lines: string[] = []
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk))
        done()
      },
    })
    const logged = await buildApp(testConfig({ LOG_LEVEL: 'info' }), { logger: pino(loggerOptions('info'), stream) })
    // The value comes in the body: URLs are logged by design, bodies never.
    logged.post(
      '/test/lookup',
      {
        config: { public: true },
        schema: { operationId: 'lookup', tags: ['test'], summary: 'a query that fails on its parameter', body: Type.Object({ value: Type.String() }) },
      },
      async (request) => {
        const { value } = request.body as { value: string }
        await logged.platform.database.db.execute(sql`select ${value}::int as n`)
        return {}
      },
    )
    await logged.ready()
    try {
      const marker = `sk_live_${randomUUID().replaceAll('-', '')}`
      const response = await logged.inject({ method: 'POST', url: '/test/lookup', payload: { value: marker } })
      expect(response.statusCode).toBe(500)
      expect(response.body).not.toContain(marker)
    } finally {
      await logged.close()
    }
    const text = lines.join('')
    expect(text).toContain('request failed')
    // The SQLSTATE and the query stay, for whoever debugs it.
    expect(text).toContain('22P02')
    expect(text).toContain('select $1::int')
    expect(text).not.toMatch(/sk_live_/)
  })
})

describe('Idempotency-Key', () => {
  async function importRows(rows: unknown[], key: string) {
    return app.inject({
      method: 'POST',
      url: '/ai/admin/users/import',
      headers: { ...bearer(admin.accessToken), 'idempotency-key': key },
      payload: rows,
    })
  }

  it('answers the first import for the same body and 422 IDEMPOTENCY_KEY_REUSED for another, which imports nothing', async () => {
    const run = randomUUID().slice(0, 8)
    const key = `edge-import-${run}`
    const first = await importRows([{ email: `first-${run}@example.test`, role: 'viewer' }], key)
    expect(first.statusCode).toBe(202)
    // The same rows with their fields in another order are the same request.
    const same = await importRows([{ role: 'viewer', email: `first-${run}@example.test` }], key)
    expect(same.statusCode).toBe(202)
    expect(same.json().workflowId).toBe(first.json().workflowId)

    const other = await importRows([{ email: `other-${run}@example.test`, role: 'viewer' }], key)
    expect(other.statusCode).toBe(422)
    expect(other.json()).toMatchObject({ errorCode: 'IDEMPOTENCY_KEY_REUSED', requestId: expect.any(String) })
    expect(other.json().workflowId).toBeUndefined()

    await waitFor(
      async () => (await countUsersByEmail(admin.tenantId, `first-${run}@example.test`)) === 1,
      20_000,
      'the first import never created its user',
    )
    expect(await countUsersByEmail(admin.tenantId, `other-${run}@example.test`)).toBe(0)
    const runs = await db().select().from(workflowRuns).where(and(eq(workflowRuns.tenantId, admin.tenantId), eq(workflowRuns.idempotencyKey, key)))
    expect(runs).toHaveLength(1)
    expect(runs[0]!.idempotencyFingerprint).toMatch(/^[0-9a-f]{64}$/)
  })
})

describe('CORS', () => {
  const list = (header: unknown) => String(header).split(',').map((item) => item.trim())
  const ORIGIN = 'https://dashboard.example.test'
  const CLIENT_HEADERS = ['authorization', 'content-type', 'idempotency-key', 'if-match', 'x-request-id', 'x-api-key']

  it('answers preflights for PUT, PATCH and DELETE with the headers clients send, with credentials for listed origins', async () => {
    const cors = await buildTestApp({ CORS_ORIGINS: ORIGIN })
    try {
      for (const method of ['PUT', 'PATCH', 'DELETE']) {
        const preflight = await cors.inject({
          method: 'OPTIONS',
          url: `/ai/admin/users/${randomUUID()}`,
          headers: { origin: ORIGIN, 'access-control-request-method': method, 'access-control-request-headers': CLIENT_HEADERS.join(',') },
        })
        expect(preflight.statusCode, method).toBe(204)
        expect(preflight.headers['access-control-allow-origin']).toBe(ORIGIN)
        expect(preflight.headers['access-control-allow-credentials']).toBe('true')
        expect(list(preflight.headers['access-control-allow-methods'])).toContain(method)
        const allowed = list(preflight.headers['access-control-allow-headers']).map((h) => h.toLowerCase())
        for (const header of CLIENT_HEADERS) expect(allowed, header).toContain(header)
      }
      const answer = await cors.inject({ url: '/healthz', headers: { origin: ORIGIN } })
      const exposed = list(answer.headers['access-control-expose-headers']).map((h) => h.toLowerCase())
      for (const header of ['etag', 'location', 'x-request-id']) expect(exposed).toContain(header)
    } finally {
      await cors.close()
    }
  })

  it('with CORS_ORIGINS=* answers a literal * and never allows credentials', async () => {
    const cors = await buildTestApp({ CORS_ORIGINS: '*' })
    try {
      const preflight = await cors.inject({
        method: 'OPTIONS',
        url: '/ai/admin/users',
        headers: { origin: 'https://anyone.example.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
      })
      expect(preflight.statusCode).toBe(204)
      expect(preflight.headers['access-control-allow-origin']).toBe('*')
      expect(preflight.headers['access-control-allow-credentials']).toBeUndefined()
    } finally {
      await cors.close()
    }
  })
})

describe('Dapr app side', () => {
  it('refuses to start with a Dapr sidecar port and no APP_API_TOKEN', () => {
    expect(() => loadConfig({ DAPR_HTTP_PORT: '3500' })).toThrow(/APP_API_TOKEN: required when Dapr is on/)
    expect(() => loadConfig({ DAPR_GRPC_PORT: '50001' })).toThrow(/APP_API_TOKEN/)
    expect(() => loadConfig({ DAPR_HTTP_PORT: '3500', APP_API_TOKEN: 'a-long-enough-app-token' })).not.toThrow()
  })

  it('refuses /dapr deliveries without the right dapr-api-token', async () => {
    const token = `app-token-${randomUUID()}`
    const dapr = await buildTestApp({ APP_API_TOKEN: token })
    try {
      const subscribe = (headers: Record<string, string>) => dapr.inject({ url: '/dapr/subscribe', headers })
      expect((await subscribe({})).statusCode).toBe(401)
      expect((await subscribe({ 'dapr-api-token': `${token}x` })).statusCode).toBe(401)
      expect((await subscribe({ 'dapr-api-token': token })).statusCode).toBe(200)
      const deliver = await dapr.inject({
        method: 'POST',
        url: '/dapr/events/anything',
        headers: { 'content-type': 'application/cloudevents+json' },
        payload: { id: 'e1', data: {} },
      })
      expect(deliver.statusCode).toBe(401)
      expect(deliver.json()).toMatchObject({ errorCode: 'UNAUTHENTICATED' })
    } finally {
      await dapr.close()
    }
  })
})

describe('request ids', () => {
  it("keeps the server's own request id in the audit log and the client's apart from it", async () => {
    const id = await createUser(`rid-${randomUUID().slice(0, 8)}@example.test`)
    const forged = `forged-${randomUUID().slice(0, 8)}`
    const response = await app.inject({
      method: 'PUT',
      url: `/ai/admin/users/${id}`,
      headers: { ...bearer(admin.accessToken), 'x-request-id': forged },
      payload: { name: 'Renamed' },
    })
    expect(response.statusCode).toBe(200)
    const serverId = response.headers['x-request-id'] as string
    expect(serverId).not.toBe(forged)
    expect(response.headers['x-client-request-id']).toBe(forged)

    let rows: Array<typeof auditLog.$inferSelect> = []
    await waitFor(async () => {
      rows = await db().select().from(auditLog).where(eq(auditLog.requestId, serverId))
      return rows.length > 0
    }, 5_000, 'no audit entry')
    expect(rows).toEqual([expect.objectContaining({ requestId: serverId, clientRequestId: forged, outcome: 200 })])
    expect(await db().select().from(auditLog).where(eq(auditLog.requestId, forged))).toEqual([])
  })
})
