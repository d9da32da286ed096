import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { validatorBusy } from '../../../src/modules/endpoint_ops/apps/errors.js'
import type { AppValidator } from '../../../src/modules/endpoint_ops/apps/validate.js'
import { buildTestApp } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'

/**
 * A checker with too many files waiting: the API says "come back" (503 APP_VALIDATOR_BUSY with
 * Retry-After, in the error envelope) for apps and templates alike, and creates nothing.
 */

let app: FastifyInstance
let developer: SeededUser
let asked = 0

const HELLO = 'from fastapi import FastAPI\n\napp = FastAPI()\n'

// The process's validator as it answers when its queue is full (apps-validate.test.ts fills a real one).
const overloaded: AppValidator = {
  async validate() {
    asked++
    throw validatorBusy()
  },
  async warm() {},
  async close() {},
}

beforeAll(async () => {
  app = await buildTestApp({}, { appValidator: overloaded })
  developer = await seedUser(app, { realm: uniqueRealm('busy'), role: 'developer' })
}, 60_000)

afterAll(async () => {
  await app?.close()
})

describe('a busy code validator', () => {
  it('answers 503 APP_VALIDATOR_BUSY with Retry-After to a new app, and creates nothing', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: bearer(developer.accessToken),
      payload: { name: 'queued', clusterId: '00000000-0000-4000-8000-000000000001', code: HELLO },
    })
    expect(res.statusCode, res.body).toBe(503)
    expect(res.headers['retry-after']).toBe('5')
    expect(res.json()).toMatchObject({
      errorCode: 'APP_VALIDATOR_BUSY',
      message: expect.stringMatching(/try again/),
      details: { fields: [], retryAfterSeconds: 5 },
      requestId: expect.any(String),
    })
    expect(asked).toBeGreaterThan(0)
    const list = await app.inject({ method: 'GET', url: '/v1/apps?q=queued', headers: bearer(developer.accessToken) })
    expect(list.json().total).toBe(0)
  })

  it('answers the same to a new template', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/app-templates', headers: bearer(developer.accessToken), payload: { name: 'later', code: HELLO } })
    expect(res.statusCode, res.body).toBe(503)
    expect(res.headers['retry-after']).toBe('5')
    expect(res.json().errorCode).toBe('APP_VALIDATOR_BUSY')
  })
})
