import { compileErrors, validate } from '@readme/openapi-parser'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cache } from '../../src/platform/cache/types.js'
import { createMemoryCache } from '../../src/platform/cache/memory.js'
import { buildTestApp } from '../helpers/app.js'

let app: FastifyInstance
beforeAll(async () => {
  app = await buildTestApp()
})
afterAll(() => app.close())

describe('operations endpoints', () => {
  it('answers liveness', async () => {
    const res = await app.inject('/healthz')
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ status: 'ok' })
  })

  it('is ready when PostgreSQL, Redis and the object store answer', async () => {
    const res = await app.inject('/readyz')
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body.status).toBe('ready')
    expect(Object.keys(body.checks).sort()).toEqual(['blob', 'cache', 'database', 'workflows'])
    for (const check of Object.values(body.checks)) expect(check).toMatchObject({ status: 'up' })
  })

  it('reports 503 naming the dependency that is down', async () => {
    const broken: Cache = {
      ...createMemoryCache(),
      ping: async () => {
        throw new Error('connect ECONNREFUSED redis://:hunter2@10.0.0.9:6379')
      },
    }
    const degraded = await buildTestApp({}, { cache: broken })
    try {
      const res = await degraded.inject('/readyz')
      expect(res.statusCode).toBe(503)
      const body = res.json()
      expect(body.status).toBe('not_ready')
      expect(body.checks.cache.status).toBe('down')
      expect(body.checks.database.status).toBe('up')
      expect(res.body).not.toContain('hunter2')
      const metrics = await degraded.inject('/metrics')
      expect(metrics.body).toMatch(/modelplane_dependency_up\{dependency="cache"\} 0/)
      expect(metrics.body).toMatch(/modelplane_dependency_up\{dependency="database"\} 1/)
    } finally {
      await degraded.close()
    }
  })

  it('exposes Prometheus metrics with request durations by route template', async () => {
    await app.inject('/healthz')
    await app.inject('/no/such/path/123')
    const res = await app.inject('/metrics')
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toContain('text/plain')
    expect(res.body).toContain('modelplane_process_cpu_user_seconds_total')
    expect(res.body).toMatch(/modelplane_http_request_duration_seconds_count\{method="GET",route="\/healthz",status_code="200"\} \d+/)
    expect(res.body).not.toContain('/no/such/path/123')
  })

  it('serves Swagger UI at /docs', async () => {
    const res = await app.inject('/docs/')
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toContain('text/html')
    expect(res.body).toContain('swagger-ui')
  })

  it('publishes a valid OpenAPI 3.1 document where every operation is described', async () => {
    const res = await app.inject('/openapi.json')
    expect(res.statusCode).toBe(200)
    const doc = res.json()
    expect(doc.openapi).toBe('3.1.0')
    const result = await validate(structuredClone(doc))
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true)
    const operations = Object.values(doc.paths as Record<string, Record<string, Record<string, unknown>>>).flatMap(
      (item) => Object.values(item),
    )
    expect(operations.length).toBeGreaterThan(3)
    for (const op of operations) {
      expect(op.operationId).toEqual(expect.any(String))
      expect(op.summary).toEqual(expect.any(String))
      expect(op.tags).toEqual(expect.any(Array))
      expect(Object.keys(op.responses as object)).toEqual(expect.arrayContaining(['4XX', '5XX']))
    }
  })
})
