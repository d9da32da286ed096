import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { ConflictError, UnavailableError } from '../../src/platform/errors.js'
import { StrictObject, StringEnum } from '../../src/platform/http/schemas.js'
import { testConfig } from '../helpers/app.js'

let app: FastifyInstance
const received: unknown[] = []

beforeAll(async () => {
  app = await buildApp(testConfig({ BODY_LIMIT_BYTES: '2048' }))
  const Body = StrictObject({
    name: Type.String({ minLength: 1, maxLength: 64 }),
    replicas: Type.Integer({ minimum: 1, maximum: 10 }),
    labels: Type.Optional(Type.Record(Type.String({ maxLength: 32 }), Type.String({ maxLength: 64 }))),
    size: Type.Optional(StringEnum(['small', 'medium', 'large'])),
    // A union of literals, as schemas written before StringEnum have it: it must read the same.
    tier: Type.Optional(Type.Union([Type.Literal('free'), Type.Literal('pro'), Type.Literal('team')])),
    note: Type.Optional(Type.Union([Type.String({ maxLength: 4 }), Type.Null()])),
  })
  const doc = { tags: ['test'], summary: 'test route' }
  // The envelope is under test here, not auth: the routes are public.
  const open = { public: true }
  app.post('/test/things', { config: open, schema: { ...doc, operationId: 'createThing', body: Body } }, async (req, reply) => {
    received.push(req.body)
    return reply.status(201).send({ ok: true })
  })
  app.get(
    '/test/things',
    { config: open, schema: { ...doc, operationId: 'listThings', querystring: StrictObject({ limit: Type.Integer({ maximum: 100 }) }) } },
    async (req) => ({ limit: (req.query as { limit: number }).limit }),
  )
  app.get('/test/boom', { config: open, schema: { ...doc, operationId: 'boom' } }, async () => {
    throw new Error('connection to db-internal-7.corp:5432 refused; password=hunter2')
  })
  app.get('/test/conflict', { config: open, schema: { ...doc, operationId: 'conflict' } }, async () => {
    throw new ConflictError('DUPLICATE_NAME', 'a thing with that name exists', { name: 'a' })
  })
  app.get('/test/busy', { config: open, schema: { ...doc, operationId: 'busy' } }, async () => {
    throw new UnavailableError('THING_BUSY', 'the thing is busy', 12)
  })
  app.get('/test/down', { config: open, schema: { ...doc, operationId: 'down' } }, async () => {
    throw new UnavailableError('THING_DOWN', 'the thing is down')
  })
  await app.ready()
})

afterAll(() => app.close())

const post = (payload: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/test/things', payload, headers: { 'content-type': 'application/json', ...headers } })

describe('error envelope', () => {
  it('accepts a valid body', async () => {
    const res = await post(JSON.stringify({ name: 'a', replicas: 2 }))
    expect(res.statusCode).toBe(201)
  })

  it('answers malformed JSON with 400 MALFORMED_JSON', async () => {
    const before = received.length
    const res = await post('{"name": "a", ')
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ errorCode: 'MALFORMED_JSON', requestId: expect.any(String) })
    expect(received.length).toBe(before)
  })

  it('names each failing field when types are wrong', async () => {
    const res = await post(JSON.stringify({ name: 42, replicas: '3' }))
    expect(res.statusCode).toBe(400)
    const body = res.json()
    expect(body.errorCode).toBe('VALIDATION_ERROR')
    const fields = body.details.fields.map((d: { field: string }) => d.field)
    expect(fields).toEqual(expect.arrayContaining(['body.name', 'body.replicas']))
  })

  it('reports a missing required field by name', async () => {
    const res = await post(JSON.stringify({ name: 'a' }))
    expect(res.statusCode).toBe(400)
    expect(res.json().details.fields).toContainEqual({ field: 'body.replicas', message: expect.any(String) })
  })

  it('names the allowed values of an enumerated field once, in one entry per field', async () => {
    const before = received.length
    const res = await post(JSON.stringify({ name: 'a', replicas: 1, size: 'huge', tier: 'gold' }))
    expect(res.statusCode).toBe(400)
    const body = res.json()
    expect(body.details.fields).toEqual([
      { field: 'body.size', message: 'must be one of small, medium, large' },
      { field: 'body.tier', message: 'must be one of free, pro, team' },
    ])
    expect(body.message).toBe('invalid request: body.size must be one of small, medium, large; body.tier must be one of free, pro, team')
    expect(res.body).not.toContain('constant')
    expect(received.length).toBe(before)
  })

  it('says what a nullable field failed on, not that it is not null', async () => {
    const tooLong = await post(JSON.stringify({ name: 'a', replicas: 1, note: 'too long' }))
    expect(tooLong.json().details.fields).toEqual([{ field: 'body.note', message: 'must NOT have more than 4 characters' }])
    const wrongType = await post(JSON.stringify({ name: 'a', replicas: 1, note: 7 }))
    expect(wrongType.json().details.fields).toEqual([{ field: 'body.note', message: 'must be string or null' }])
  })

  it('rejects unknown fields instead of dropping them silently', async () => {
    const res = await post(JSON.stringify({ name: 'a', replicas: 1, replica: 5 }))
    expect(res.statusCode).toBe(400)
    expect(res.json().details.fields).toContainEqual({ field: 'body.replica', message: 'unknown field' })
  })

  it('answers an oversized body with 413 PAYLOAD_TOO_LARGE', async () => {
    const res = await post(JSON.stringify({ name: 'a', replicas: 1, labels: { big: 'x'.repeat(4000) } }))
    expect(res.statusCode).toBe(413)
    expect(res.json().errorCode).toBe('PAYLOAD_TOO_LARGE')
  })

  it('answers an unsupported content type with 415', async () => {
    const res = await post('name=a', { 'content-type': 'application/x-www-form-urlencoded' })
    expect(res.statusCode).toBe(415)
    expect(res.json().errorCode).toBe('UNSUPPORTED_MEDIA_TYPE')
  })

  it('converts query strings to their declared types, and rejects what does not fit', async () => {
    expect((await app.inject('/test/things?limit=10')).json()).toEqual({ limit: 10 })
    const res = await app.inject('/test/things?limit=ten')
    expect(res.statusCode).toBe(400)
    expect(res.json().details.fields[0].field).toBe('querystring.limit')
  })

  it('answers an unknown route with 404 NOT_FOUND in the envelope', async () => {
    const res = await app.inject('/no/such/route')
    expect(res.statusCode).toBe(404)
    expect(res.json()).toMatchObject({ errorCode: 'NOT_FOUND', requestId: expect.any(String) })
  })

  it('answers malformed URLs and over-long path parameters in the envelope', async () => {
    const bad = await app.inject('/v1/tenants/%E0%A4%A')
    expect(bad.statusCode).toBe(400)
    expect(bad.json()).toMatchObject({ errorCode: 'BAD_URL', requestId: expect.any(String) })
    const long = await app.inject(`/v1/tenants/${'a'.repeat(300)}`)
    expect(long.statusCode).toBe(414)
    expect(long.json()).toMatchObject({ errorCode: 'URI_TOO_LONG', requestId: expect.any(String) })
  })

  it('hides the internals of a thrown error behind 500 INTERNAL_ERROR', async () => {
    const res = await app.inject('/test/boom')
    expect(res.statusCode).toBe(500)
    const body = res.json()
    expect(body).toEqual({
      errorCode: 'INTERNAL_ERROR',
      message: 'an internal error occurred',
      details: { fields: [] },
      requestId: expect.any(String),
    })
    expect(res.body).not.toMatch(/hunter2|corp|stack|at /)
  })

  it('passes application errors through with their code, status and details', async () => {
    const res = await app.inject('/test/conflict')
    expect(res.statusCode).toBe(409)
    expect(res.json()).toMatchObject({ errorCode: 'DUPLICATE_NAME', details: { fields: [], name: 'a' } })
    expect(res.headers['retry-after']).toBeUndefined()
  })

  it('tells when to come back on every 503: the wait the error names, else a default', async () => {
    const busy = await app.inject('/test/busy')
    expect([busy.statusCode, busy.headers['retry-after']]).toEqual([503, '12'])
    expect(busy.json()).toMatchObject({ errorCode: 'THING_BUSY', details: { fields: [], retryAfterSeconds: 12 } })
    const down = await app.inject('/test/down')
    expect([down.statusCode, down.headers['retry-after']]).toEqual([503, '5'])
    expect(down.json()).toMatchObject({ errorCode: 'THING_DOWN', details: { fields: [] } })
  })
})

describe('request ids', () => {
  it('keeps its own request id and echoes a sane client x-request-id apart from it', async () => {
    const res = await app.inject({ url: '/no/such', headers: { 'x-request-id': 'trace-abc.123' } })
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    expect(res.json().requestId).toBe(res.headers['x-request-id'])
    expect(res.headers['x-client-request-id']).toBe('trace-abc.123')
  })

  it('drops a hostile x-request-id instead of echoing it', async () => {
    const res = await app.inject({ url: '/no/such', headers: { 'x-request-id': 'a b\u0000<script>' } })
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    expect(res.headers['x-client-request-id']).toBeUndefined()
  })
})

describe('security headers', () => {
  it('sets restrictive headers on API answers, errors included, and keeps them out of caches', async () => {
    for (const url of ['/healthz', '/no/such']) {
      const res = await app.inject(url)
      expect(res.headers['x-content-type-options']).toBe('nosniff')
      expect(res.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'")
      expect(res.headers['x-frame-options']).toBe('DENY')
      expect(res.headers['strict-transport-security']).toMatch(/^max-age=\d+/)
      expect(res.headers['cache-control']).toBe('no-store')
    }
  })

  it('adds the document policies to the Swagger UI pages', async () => {
    const res = await app.inject('/docs/')
    expect(res.statusCode).toBe(200)
    expect(res.headers['referrer-policy']).toBe('no-referrer')
    expect(res.headers['cross-origin-opener-policy']).toBe('same-origin')
    expect(res.headers['x-frame-options']).toBe('DENY')
    expect((await app.inject('/healthz')).headers['referrer-policy']).toBeUndefined()
  })
})
