import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { buildTestApp } from '../helpers/app.js'

describe('rate limiting', () => {
  it('answers 429 RATE_LIMITED in the envelope, with Retry-After, once a client spends its budget', async () => {
    const app = await buildTestApp({ RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_SECONDS: '60' })
    try {
      // A unique client address per run: the counters live in the shared Redis.
      const remoteAddress = `10.${[1, 2, 3].map(() => Math.floor(Math.random() * 250)).join('.')}`
      const call = () => app.inject({ url: `/v1/events/outbox?x=${randomUUID()}`, remoteAddress })
      const statuses = []
      for (let i = 0; i < 4; i++) statuses.push((await call()).statusCode)
      expect(statuses.slice(0, 3).every((s) => s !== 429)).toBe(true)
      const limited = await call()
      expect(limited.statusCode).toBe(429)
      expect(limited.json()).toMatchObject({ errorCode: 'RATE_LIMITED', requestId: expect.any(String) })
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
    } finally {
      await app.close()
    }
  })

  it('shares the budget across replicas through Redis', async () => {
    const env = { RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_SECONDS: '60' }
    const [a, b] = [await buildTestApp(env), await buildTestApp(env)]
    try {
      const remoteAddress = `10.9.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`
      expect((await a.inject({ url: '/v1/events/outbox', remoteAddress })).statusCode).not.toBe(429)
      expect((await b.inject({ url: '/v1/events/outbox', remoteAddress })).statusCode).not.toBe(429)
      expect((await a.inject({ url: '/v1/events/outbox', remoteAddress })).statusCode).toBe(429)
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  it('never limits health and metrics probes', async () => {
    const app = await buildTestApp({ RATE_LIMIT_MAX: '1' })
    try {
      const remoteAddress = `10.8.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`
      // The control: this address has spent its budget of one on an ordinary route.
      await app.inject({ url: '/v1/events/outbox', remoteAddress })
      expect((await app.inject({ url: '/v1/events/outbox', remoteAddress })).statusCode).toBe(429)
      for (let i = 0; i < 3; i++) {
        for (const url of ['/healthz', '/readyz', '/metrics']) {
          expect((await app.inject({ url, remoteAddress })).statusCode, url).toBe(200)
        }
      }
    } finally {
      await app.close()
    }
  })
})

describe('CORS', () => {
  it('lets the configured dashboard origin read answers, and no other origin', async () => {
    const app = await buildTestApp({ CORS_ORIGINS: 'https://dashboard.example.test' })
    try {
      const preflight = await app.inject({
        method: 'OPTIONS',
        url: '/v1/events/outbox',
        headers: { origin: 'https://dashboard.example.test', 'access-control-request-method': 'GET' },
      })
      expect(preflight.statusCode).toBe(204)
      expect(preflight.headers['access-control-allow-origin']).toBe('https://dashboard.example.test')
      const other = await app.inject({ url: '/healthz', headers: { origin: 'https://evil.example.test' } })
      expect(other.headers['access-control-allow-origin']).toBeUndefined()
    } finally {
      await app.close()
    }
  })
})
