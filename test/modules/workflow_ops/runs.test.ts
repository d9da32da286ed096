import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { type WorkflowService, WorkflowStepError } from '../../../src/modules/workflow_ops/index.js'
import { testConfig } from '../../helpers/app.js'
import { TEST_REDIS_URL } from '../../helpers/env.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'
import { endsWithin, openEventStream, type ServerSentEvent } from './sse-client.js'

/**
 * Run records, progress and the /v1/workflows API, with real SDK workflows on the embedded hub,
 * on the run's PostgreSQL and Redis. The apps of this file share a hub of their own.
 */

/** What the demo activities did, per label: the effects a user would notice. */
const effects = new Map<string, string[]>()
const record = (label: string, what: string) => effects.set(label, [...(effects.get(label) ?? []), what])
/** Labels whose step 1 waits until the test opens the gate. */
const gates = new Map<string, { open: Promise<void>; release: () => void }>()
function holdAt(label: string): () => void {
  let release!: () => void
  const open = new Promise<void>((resolve) => (release = resolve))
  gates.set(label, { open, release })
  return release
}
/** Labels whose step `failAt` fails this many more times. */
const failuresLeft = new Map<string, number>()

interface DemoInput {
  label: string
  failAt?: number
}

/** Declares the demo workflows on an app before it is ready: what every replica does. */
function declareDemo(workflows: WorkflowService): void {
  workflows.register({
    name: 'demo.threeSteps',
    workflow: async function* (ctx: WorkflowContext, input: DemoInput) {
      const done: string[] = []
      for (const n of [1, 2, 3]) done.push(yield ctx.callActivity('demo.step', { ...input, n }))
      return { done, label: input.label }
    },
    activities: [
      {
        name: 'demo.step',
        activity: async (ctx: WorkflowActivityContext, input: DemoInput & { n: number }) => {
          if (input.n === 1) await gates.get(input.label)?.open
          await workflows.reportProgress(ctx, {
            step: input.n,
            totalSteps: 3,
            percent: Math.round(((input.n - 1) / 3) * 100),
            message: `step ${input.n} of 3`,
          })
          if (input.failAt === input.n && (failuresLeft.get(input.label) ?? 0) > 0) {
            failuresLeft.set(input.label, failuresLeft.get(input.label)! - 1)
            throw new WorkflowStepError('DEMO_BROKEN', `step ${input.n} broke`)
          }
          record(input.label, `step ${input.n}`)
          return `step ${input.n}`
        },
      },
    ],
    purged: async (_tx, run) => {
      record((run.input as DemoInput).label, run.sharedWithOtherRuns ? 'purged, input still shared' : 'purged, last of its runs')
    },
  })
  workflows.register({
    name: 'demo.longJob',
    workflow: async function* (ctx: WorkflowContext, input: DemoInput) {
      yield ctx.callActivity('demo.provision', input)
      yield ctx.createTimer(new Date(ctx.getCurrentUtcDateTime().getTime() + 10 * 60_000))
      yield ctx.callActivity('demo.provision', { ...input, late: true })
      return { label: input.label }
    },
    activities: [
      {
        name: 'demo.provision',
        activity: async (ctx: WorkflowActivityContext, input: DemoInput & { late?: boolean }) => {
          await workflows.reportProgress(ctx, { step: input.late ? 2 : 1, totalSteps: 2, message: 'provisioning' })
          record(input.label, input.late ? 'provisioned late' : 'provisioned')
        },
      },
    ],
    compensation: async (_ctx, run) => {
      record((run.input as DemoInput).label, `compensated ${run.resource.kind}/${run.resource.id}`)
    },
  })
}

const HUB = uniqueHub('runs')

async function buildRunsApp(
  options: { hub?: string; heartbeatMs?: number; retentionSweepMs?: number; env?: Record<string, string> } = {},
): Promise<FastifyInstance> {
  const app = await buildApp(testConfig(options.env ?? {}), {
    workflows: {
      hub: options.hub ?? HUB,
      tuning: FAST_HUB,
      heartbeatMs: options.heartbeatMs ?? 15_000,
      ...(options.retentionSweepMs ? { retentionSweepMs: options.retentionSweepMs } : {}),
    },
  })
  declareDemo(app.services.workflows)
  await app.ready()
  return app
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

let app: FastifyInstance
let base: string
let admin: SeededUser
let otherTenantAdmin: SeededUser
let tester: SeededUser
let outsider: SeededUser

beforeAll(async () => {
  app = await buildRunsApp()
  base = await listen(app)
  const realm = uniqueRealm('wf')
  admin = await seedUser(app, { realm, role: 'admin' })
  tester = await seedUser(app, { realm, role: 'tester' })
  outsider = await seedUser(app, { realm, role: 'no_grants' })
  otherTenantAdmin = await seedUser(app, { realm: uniqueRealm('wf-other'), role: 'admin' })
})

afterAll(async () => {
  for (const { release } of gates.values()) release()
  await app?.close()
})

function startDemo(
  user: SeededUser,
  input: DemoInput,
  options: { type?: string; resource?: { kind: string; id: string }; idempotencyKey?: string } = {},
) {
  return app.services.workflows.start({
    type: options.type ?? 'demo.threeSteps',
    tenantId: user.tenantId,
    resource: options.resource ?? { kind: 'cluster', id: `c-${input.label}` },
    startedBy: user.id,
    input: { ...input },
    ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
  })
}

async function getRun(id: string, user: SeededUser = admin) {
  return app.inject({ method: 'GET', url: `/v1/workflows/${id}`, headers: bearer(user.accessToken) })
}

async function untilStatus(id: string, statuses: string[], timeoutMs = 10_000) {
  let last: Record<string, unknown> = {}
  await waitFor(
    async () => {
      last = (await getRun(id)).json()
      return statuses.includes(last.status as string)
    },
    timeoutMs,
    `run ${id} never reached ${statuses.join('|')}`,
  )
  return last as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
}

const parsed = (events: ServerSentEvent[]) =>
  events.map((e) => ({ event: e.event, ...(JSON.parse(e.data) as { status: string; currentStep: number; version: number }) }))

describe('run records', () => {
  it('records a run from start to completion with its steps, percent, result and events', async () => {
    const label = `seq-${Date.now()}`
    const { workflowId, deduplicated } = await startDemo(admin, { label })
    expect(deduplicated).toBe(false)
    const run = await untilStatus(workflowId, ['completed'])
    expect(run).toMatchObject({
      id: workflowId,
      type: 'demo.threeSteps',
      tenantId: admin.tenantId,
      resource: { kind: 'cluster', id: `c-${label}` },
      startedBy: admin.id,
      status: 'completed',
      currentStep: 3,
      totalSteps: 3,
      percent: 100,
      message: 'step 3 of 3',
      error: null,
      inputSummary: `label=${label}`,
      result: { done: ['step 1', 'step 2', 'step 3'], label },
    })
    expect(run.startedAt).toEqual(expect.any(String))
    expect(run.finishedAt).toEqual(expect.any(String))
    expect(run.steps.map((s: { step: number; status: string }) => [s.step, s.status])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
      [3, 'completed'],
    ])
    expect(effects.get(label)).toEqual(['step 1', 'step 2', 'step 3'])

    // Every change went through the outbox on workflow.events.
    await app.platform.events.drain()
    const outbox = await app.platform.events.list({ tenantId: admin.tenantId, isSuperuser: false }, { topic: 'workflow.events', limit: 100 })
    const types = outbox.items
      .map((e) => e.data as { workflowId: string; type: string; version: number })
      .filter((e) => e.workflowId === workflowId)
      .sort((a, b) => a.version - b.version)
      .map((e) => e.type)
    expect(types).toEqual([
      'workflow.created',
      'workflow.started',
      'workflow.progress',
      'workflow.progress',
      'workflow.progress',
      'workflow.completed',
    ])
  })

  it('answers the first run again for a repeated idempotency key and the same request, in the same tenant only', async () => {
    const key = `key-${Date.now()}`
    const first = await startDemo(admin, { label: `idem-${key}` }, { idempotencyKey: key })
    const again = await startDemo(admin, { label: `idem-${key}` }, { idempotencyKey: key })
    expect(again).toEqual({ workflowId: first.workflowId, deduplicated: true })
    const elsewhere = await startDemo(otherTenantAdmin, { label: `idem-${key}-3` }, { idempotencyKey: key })
    expect(elsewhere.workflowId).not.toBe(first.workflowId)
    await untilStatus(first.workflowId, ['completed'])
    expect(effects.get(`idem-${key}`)).toEqual(['step 1', 'step 2', 'step 3'])
  })

  it('refuses a repeated idempotency key with another input as IDEMPOTENCY_KEY_REUSED, and starts nothing', async () => {
    const key = `key-reused-${Date.now()}`
    const first = await startDemo(admin, { label: `reuse-${key}` }, { idempotencyKey: key })
    await expect(startDemo(admin, { label: `reuse-${key}-2` }, { idempotencyKey: key })).rejects.toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED',
      status: 422,
    })
    await untilStatus(first.workflowId, ['completed'])
    expect(effects.get(`reuse-${key}-2`)).toBeUndefined()
  })

  it('lists runs newest first with filters, within the tenant only', async () => {
    const tag = `list-${Date.now()}`
    const a = await startDemo(admin, { label: `${tag}-a` }, { resource: { kind: 'model', id: `${tag}-m1` } })
    const b = await startDemo(admin, { label: `${tag}-b` }, { resource: { kind: 'model', id: `${tag}-m2` } })
    failuresLeft.set(`${tag}-c`, 1)
    const c = await startDemo(tester, { label: `${tag}-c`, failAt: 1 }, { resource: { kind: 'model', id: `${tag}-m2` } })
    await untilStatus(a.workflowId, ['completed'])
    await untilStatus(b.workflowId, ['completed'])
    await untilStatus(c.workflowId, ['failed'])

    const list = async (query: string, user = admin) =>
      app.inject({ method: 'GET', url: `/v1/workflows?${query}`, headers: bearer(user.accessToken) })
    const ids = async (query: string) => ((await list(query)).json().items as { id: string }[]).map((r) => r.id)

    expect(await ids(`resourceKind=model&resourceId=${tag}-m2`)).toEqual([c.workflowId, b.workflowId])
    expect(await ids(`resourceKind=model&resourceId=${tag}-m2&sort=createdAt:asc`)).toEqual([b.workflowId, c.workflowId])
    expect(await ids(`resourceKind=model&resourceId=${tag}-m2&status=failed`)).toEqual([c.workflowId])
    expect(await ids(`actor=${tester.id}`)).toEqual([c.workflowId])
    const typed = (await list('type=demo.threeSteps&limit=2&page=1')).json()
    expect(typed).toMatchObject({ page: 1, limit: 2 })
    expect(typed.items).toHaveLength(2)
    expect(typed.total).toBeGreaterThanOrEqual(3)
    expect((await list('type=demo.nothing')).json()).toMatchObject({ items: [], total: 0 })

    // Another tenant sees none of it.
    const theirs = await list(`resourceKind=model&resourceId=${tag}-m2`, otherTenantAdmin)
    expect(theirs.json()).toMatchObject({ items: [], total: 0 })
  })

  it('hides another tenant’s run as not found, and refuses roles without the permission', async () => {
    const { workflowId } = await startDemo(admin, { label: `iso-${Date.now()}` })
    await untilStatus(workflowId, ['completed'])
    for (const [method, url] of [
      ['GET', `/v1/workflows/${workflowId}`],
      ['GET', `/v1/workflows/${workflowId}/events`],
      ['POST', `/v1/workflows/${workflowId}/cancel`],
      ['POST', `/v1/workflows/${workflowId}/retry`],
      ['DELETE', `/v1/workflows/${workflowId}`],
    ] as const) {
      const res = await app.inject({ method, url, headers: bearer(otherTenantAdmin.accessToken) })
      expect(res.statusCode, `${method} ${url}`).toBe(404)
      expect(res.json().errorCode).toBe('WORKFLOW_NOT_FOUND')
    }
    // workflow:view only: may look, may not change.
    expect((await getRun(workflowId, tester)).statusCode).toBe(200)
    const cancel = await app.inject({
      method: 'DELETE',
      url: `/v1/workflows/${workflowId}`,
      headers: bearer(tester.accessToken),
    })
    expect(cancel.statusCode).toBe(403)
    // No workflow permission at all.
    expect((await getRun(workflowId, outsider)).statusCode).toBe(403)
    const list = await app.inject({ method: 'GET', url: '/v1/workflows', headers: bearer(outsider.accessToken) })
    expect(list.statusCode).toBe(403)
    expect((await app.inject({ method: 'GET', url: '/v1/workflows' })).statusCode).toBe(401)
  })

  it('answers hostile ids and queries with 4xx in the error envelope, never 500', async () => {
    const cases: Array<[string, number, string]> = [
      ['/v1/workflows/not-a-uuid', 400, 'VALIDATION_ERROR'],
      // Past the router's maxParamLength: refused before routing, in the same envelope.
      [`/v1/workflows/${'9'.repeat(300)}`, 414, 'URI_TOO_LONG'],
      ['/v1/workflows/%00', 400, 'VALIDATION_ERROR'],
      ["/v1/workflows/1'%20or%201=1--", 400, 'VALIDATION_ERROR'],
      ['/v1/workflows/..%2F..%2Fetc%2Fpasswd', 400, 'VALIDATION_ERROR'],
      ['/v1/workflows/00000000-0000-0000-0000-000000000000', 404, 'WORKFLOW_NOT_FOUND'],
      ['/v1/workflows/00000000-0000-0000-0000-000000000000/events', 404, 'WORKFLOW_NOT_FOUND'],
      ['/v1/workflows?status=exploded', 400, 'VALIDATION_ERROR'],
      ['/v1/workflows?sort=input:asc', 400, 'VALIDATION_ERROR'],
      ['/v1/workflows?limit=1000', 400, 'VALIDATION_ERROR'],
      [`/v1/workflows?resourceId=${'x'.repeat(5000)}`, 400, 'VALIDATION_ERROR'],
    ]
    const check = (url: string, res: Awaited<ReturnType<typeof app.inject>>, status: number, errorCode: string) => {
      expect(res.statusCode, url).toBe(status)
      expect(res.json(), url).toMatchObject({ errorCode, message: expect.any(String), requestId: expect.any(String) })
    }
    for (const [url, status, errorCode] of cases) {
      check(url, await app.inject({ method: 'GET', url, headers: bearer(admin.accessToken) }), status, errorCode)
    }
    const cancel = '/v1/workflows/%E0%A4%A/cancel'
    check(cancel, await app.inject({ method: 'POST', url: cancel, headers: bearer(admin.accessToken) }), 400, 'BAD_URL')
    const remove = '/v1/workflows/not-a-uuid'
    check(remove, await app.inject({ method: 'DELETE', url: remove, headers: bearer(admin.accessToken) }), 400, 'VALIDATION_ERROR')
  })
})

describe('progress stream', () => {
  it('streams the current state, then each step in order, then the end, and closes', async () => {
    const label = `sse-${Date.now()}`
    const release = holdAt(label)
    const { workflowId } = await startDemo(admin, { label })
    const stream = await openEventStream(`${base}/v1/workflows/${workflowId}/events`, bearer(admin.accessToken))
    expect(stream.status).toBe(200)
    expect(stream.contentType).toMatch(/^text\/event-stream/)
    await waitFor(() => stream.events.length >= 1, 5_000, 'no first event')
    expect(stream.events[0]!.event).toBe('state')
    release()
    await endsWithin(stream, 15_000)

    const events = parsed(stream.events)
    expect(events.at(-1)).toMatchObject({ event: 'end', status: 'completed', workflowId, percent: 100 })
    const steps = events.filter((e) => e.event === 'progress' && e.currentStep > 0).map((e) => e.currentStep)
    expect(steps).toEqual([1, 2, 3])
    // Strictly increasing versions: nothing twice, nothing out of order.
    const versions = events.map((e) => e.version)
    expect(versions).toEqual([...versions].sort((x, y) => x - y))
    expect(new Set(versions).size).toBe(versions.length)
  })

  it('sends the state and the end at once for a finished run', async () => {
    const { workflowId } = await startDemo(admin, { label: `done-${Date.now()}` })
    await untilStatus(workflowId, ['completed'])
    const stream = await openEventStream(`${base}/v1/workflows/${workflowId}/events`, bearer(admin.accessToken))
    await endsWithin(stream, 5_000)
    expect(stream.events.map((e) => e.event)).toEqual(['state', 'end'])
  })

  it('answers 404 with the error envelope for an unknown or foreign run', async () => {
    const { workflowId } = await startDemo(admin, { label: `sse404-${Date.now()}` })
    const stream = await openEventStream(`${base}/v1/workflows/${workflowId}/events`, bearer(otherTenantAdmin.accessToken))
    expect(stream.status).toBe(404)
    expect(stream.contentType).toMatch(/json/)
  })

  it('sends heartbeats on an idle stream and stops listening when the client hangs up', async () => {
    const quiet = await buildRunsApp({ heartbeatMs: 100 })
    const redis = new Redis(TEST_REDIS_URL)
    try {
      const quietBase = await listen(quiet)
      const label = `idle-${Date.now()}`
      const release = holdAt(label)
      const { workflowId } = await startDemo(admin, { label })
      const listeners = async () => {
        const [, count] = (await redis.pubsub('NUMSUB', `mp:workflow-run:${workflowId}`)) as [string, number]
        return Number(count)
      }
      // A plain HTTP client that hangs up without a goodbye, as a closed browser tab does.
      let heartbeats = 0
      const request = http.get(`${quietBase}/v1/workflows/${workflowId}/events`, {
        agent: false,
        headers: bearer(admin.accessToken),
      })
      request.on('response', (response) =>
        response.on('data', (chunk: Buffer) => (heartbeats += chunk.toString().split(': heartbeat').length - 1)),
      )
      request.on('error', () => undefined)
      await waitFor(() => heartbeats >= 2, 5_000, 'no heartbeats')
      expect(await listeners()).toBe(1)
      request.destroy()
      await waitFor(async () => (await listeners()) === 0, 5_000, 'the stream still listens after the client left')
      release()
      await untilStatus(workflowId, ['completed'])
    } finally {
      redis.disconnect()
      await quiet.close()
    }
  })

  it('delivers progress to a stream on another replica through the cache', async () => {
    // Replica B runs a hub of another name, so every step of this run executes on replica A;
    // B's heartbeats are slow, so what B's stream sees arrived through Redis.
    const replicaB = await buildRunsApp({ hub: uniqueHub('runs-b'), heartbeatMs: 60_000 })
    try {
      const baseB = await listen(replicaB)
      const label = `replica-${Date.now()}`
      const release = holdAt(label)
      const { workflowId } = await startDemo(admin, { label })
      const stream = await openEventStream(`${baseB}/v1/workflows/${workflowId}/events`, bearer(admin.accessToken))
      await waitFor(() => stream.events.length >= 1, 5_000, 'no first event on replica B')
      release()
      await endsWithin(stream, 15_000)
      const events = parsed(stream.events)
      expect(events[0]!.event).toBe('state')
      expect(events.filter((e) => e.event === 'progress' && e.currentStep > 0).map((e) => e.currentStep)).toEqual([
        1, 2, 3,
      ])
      expect(events.at(-1)).toMatchObject({ event: 'end', status: 'completed' })
    } finally {
      await replicaB.close()
    }
  })
})

describe('cancel, retry and purge', () => {
  it('cancels a running run, runs its compensation, and refuses to cancel it twice', async () => {
    const label = `cancel-${Date.now()}`
    const { workflowId } = await startDemo(admin, { label }, { type: 'demo.longJob', resource: { kind: 'endpoint', id: label } })
    await waitFor(async () => (await getRun(workflowId)).json().currentStep === 1, 10_000, 'never reached step 1')

    const purgeEarly = await app.inject({ method: 'DELETE', url: `/v1/workflows/${workflowId}`, headers: bearer(admin.accessToken) })
    expect(purgeEarly.statusCode).toBe(409)
    expect(purgeEarly.json().errorCode).toBe('WORKFLOW_NOT_FINISHED')

    const cancel = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/cancel`, headers: bearer(admin.accessToken) })
    expect(cancel.statusCode).toBe(202)
    expect(cancel.json()).toEqual({ workflowId, status: 'cancelled', compensation: 'running' })

    await waitFor(async () => (await getRun(workflowId)).json().compensation === 'completed', 15_000, 'no compensation')
    const run = (await getRun(workflowId)).json()
    expect(run).toMatchObject({ status: 'cancelled', message: 'cancelled; compensated' })
    expect(run.steps).toEqual([expect.objectContaining({ step: 1, status: 'cancelled' })])
    expect(effects.get(label)).toEqual(['provisioned', `compensated endpoint/${label}`])

    const again = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/cancel`, headers: bearer(admin.accessToken) })
    expect(again.statusCode).toBe(409)
    expect(again.json().errorCode).toBe('WORKFLOW_ALREADY_FINISHED')
  })

  it('retries a failed run as a new linked run that completes, once', async () => {
    const label = `retry-${Date.now()}`
    failuresLeft.set(label, 1)
    const { workflowId } = await startDemo(admin, { label, failAt: 2 })
    const failed = await untilStatus(workflowId, ['failed', 'completed'])
    expect(failed).toMatchObject({ status: 'failed', currentStep: 2, error: { code: 'DEMO_BROKEN', message: 'step 2 broke' } })
    expect(failed.steps.map((s: { status: string }) => s.status)).toEqual(['completed', 'failed'])

    const retry = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/retry`, headers: bearer(admin.accessToken) })
    expect(retry.statusCode).toBe(202)
    const retryId = retry.json().workflowId as string
    expect(retryId).not.toBe(workflowId)
    expect(retry.json().retryOf).toBe(workflowId)
    const retried = await untilStatus(retryId, ['completed', 'failed'])
    expect(retried).toMatchObject({ status: 'completed', retryOf: workflowId, inputSummary: failed.inputSummary, error: null })
    expect(effects.get(label)).toEqual(['step 1', 'step 1', 'step 2', 'step 3'])

    const twice = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/retry`, headers: bearer(admin.accessToken) })
    expect(twice.statusCode).toBe(409)
    expect(twice.json()).toMatchObject({ errorCode: 'WORKFLOW_ALREADY_RETRIED', details: { workflowId: retryId } })
    const notFailed = await app.inject({ method: 'POST', url: `/v1/workflows/${retryId}/retry`, headers: bearer(admin.accessToken) })
    expect(notFailed.statusCode).toBe(409)
    expect(notFailed.json().errorCode).toBe('WORKFLOW_NOT_FAILED')
  })

  it('answers a retry repeated with its Idempotency-Key with the same retry, and refuses the key for another run with 422', async () => {
    const label = `retry-key-${Date.now()}`
    failuresLeft.set(`${label}-a`, 1)
    failuresLeft.set(`${label}-b`, 1)
    const a = await startDemo(admin, { label: `${label}-a`, failAt: 1 })
    const b = await startDemo(admin, { label: `${label}-b`, failAt: 1 })
    await untilStatus(a.workflowId, ['failed'])
    await untilStatus(b.workflowId, ['failed'])
    const retry = (id: string) =>
      app.inject({ method: 'POST', url: `/v1/workflows/${id}/retry`, headers: { ...bearer(admin.accessToken), 'idempotency-key': label } })

    const first = await retry(a.workflowId)
    expect(first.statusCode).toBe(202)
    const again = await retry(a.workflowId)
    expect(again.statusCode).toBe(202)
    expect(again.json().workflowId).toBe(first.json().workflowId)

    const other = await retry(b.workflowId)
    expect(other.statusCode).toBe(422)
    expect(other.json()).toMatchObject({ errorCode: 'IDEMPOTENCY_KEY_REUSED' })
    // b was not retried: a retry without the key still starts one.
    const plain = await app.inject({ method: 'POST', url: `/v1/workflows/${b.workflowId}/retry`, headers: bearer(admin.accessToken) })
    expect(plain.statusCode).toBe(202)
    expect(plain.json().retryOf).toBe(b.workflowId)
  })

  it('tells the run type on purge whether a retry still shares the run\'s input, and only the last run is the last', async () => {
    const label = `purge-retry-${Date.now()}`
    failuresLeft.set(label, 1)
    const { workflowId } = await startDemo(admin, { label, failAt: 1 })
    await untilStatus(workflowId, ['failed'])
    const retry = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/retry`, headers: bearer(admin.accessToken) })
    const retryId = retry.json().workflowId as string
    await untilStatus(retryId, ['completed'])
    const purge = (id: string) => app.inject({ method: 'DELETE', url: `/v1/workflows/${id}`, headers: bearer(admin.accessToken) })
    expect((await purge(workflowId)).statusCode).toBe(204)
    expect(effects.get(label)?.at(-1)).toBe('purged, input still shared')
    expect((await getRun(retryId)).json()).toMatchObject({ status: 'completed', retryOf: null })
    expect((await purge(retryId)).statusCode).toBe(204)
    expect(effects.get(label)?.at(-1)).toBe('purged, last of its runs')
  })

  it('purges a finished run: record and history are gone', async () => {
    const { workflowId } = await startDemo(admin, { label: `purge-${Date.now()}` })
    await untilStatus(workflowId, ['completed'])
    const purge = await app.inject({ method: 'DELETE', url: `/v1/workflows/${workflowId}`, headers: bearer(admin.accessToken) })
    expect(purge.statusCode).toBe(204)
    expect((await getRun(workflowId)).statusCode).toBe(404)
    const { rows } = await app.platform.database.pool!.query(
      'select count(*)::int as n from workflow_instances where instance_id = $1',
      [workflowId],
    )
    expect(rows[0].n).toBe(0)
    const again = await app.inject({ method: 'DELETE', url: `/v1/workflows/${workflowId}`, headers: bearer(admin.accessToken) })
    expect(again.statusCode).toBe(404)
  })
})

describe('retention', () => {
  /** Moves a run's timestamps back, as if it had run that many days ago. */
  async function age(id: string, days: number): Promise<void> {
    await app.platform.database.pool!.query(
      `update workflow_runs
          set created_at = created_at - $2 * interval '1 day',
              started_at = started_at - $2 * interval '1 day',
              finished_at = finished_at - $2 * interval '1 day'
        where id = $1`,
      [id, days],
    )
  }
  const engineInstances = async (id: string) =>
    (
      await app.platform.database.pool!.query<{ n: number }>(
        'select count(*)::int as n from workflow_instances where instance_id = $1',
        [id],
      )
    ).rows[0]!.n

  it('deletes runs that ended longer ago than WORKFLOW_RETENTION_DAYS, with their history, and nothing else', async () => {
    const label = `keep-${Date.now()}`
    const expired = (await startDemo(admin, { label: `${label}-expired` })).workflowId
    const recent = (await startDemo(admin, { label: `${label}-recent` })).workflowId
    const longRunning = (await startDemo(admin, { label: `${label}-long` }, { type: 'demo.longJob' })).workflowId
    // Aged only after the first purge: its purge shows a later sweep has passed.
    const marker = (await startDemo(admin, { label: `${label}-marker` })).workflowId
    await untilStatus(expired, ['completed'])
    await untilStatus(recent, ['completed'])
    await untilStatus(marker, ['completed'])
    await waitFor(async () => (await getRun(longRunning)).json().currentStep === 1, 10_000, 'the long job never started')
    await age(expired, 8)
    await age(recent, 6)
    // Started 40 days ago and still running: its age alone does not make it expire.
    await age(longRunning, 40)

    // A replica that keeps runs 7 days and sweeps every 200 ms.
    const sweeper = await buildRunsApp({ retentionSweepMs: 200, env: { WORKFLOW_RETENTION_DAYS: '7' } })
    try {
      await waitFor(async () => (await getRun(expired)).statusCode === 404, 15_000, 'the expired run was never purged')
      expect(await engineInstances(expired)).toBe(0)
      // Another sweep has passed (it purged the marker, aged since), and what is within retention
      // or still running is untouched.
      await age(marker, 8)
      await waitFor(async () => (await getRun(marker)).statusCode === 404, 15_000, 'no sweep after the first purge')
      expect((await getRun(recent)).json()).toMatchObject({ status: 'completed' })
      expect(await engineInstances(recent)).toBe(1)
      expect((await getRun(longRunning)).json()).toMatchObject({ status: 'running' })
      const events = await app.platform.database.pool!.query<{ n: number }>(
        `select count(*)::int as n from outbox_events where topic = 'workflow.events' and payload->>'workflowId' = $1 and payload->>'type' = 'workflow.purged'`,
        [expired],
      )
      expect(events.rows[0]!.n).toBe(1)
    } finally {
      await sweeper.close()
    }
  })

  it('passes over an expired run whose engine instance still runs, and purges the rest', async () => {
    const label = `stuck-${Date.now()}`
    const stuck = (await startDemo(admin, { label: `${label}-engine-busy` }, { type: 'demo.longJob' })).workflowId
    const done = (await startDemo(admin, { label: `${label}-done` })).workflowId
    await waitFor(async () => (await getRun(stuck)).json().currentStep === 1, 10_000, 'the long job never started')
    await untilStatus(done, ['completed'])
    // A record that says finished long ago while the engine still runs the instance: a state the
    // sweep must not wait on, nor lose the record of.
    await app.platform.database.pool!.query(
      `update workflow_runs set status = 'failed', finished_at = now() - interval '9 days' where id = $1`,
      [stuck],
    )
    await age(done, 9)
    const sweeper = await buildRunsApp({ retentionSweepMs: 200, env: { WORKFLOW_RETENTION_DAYS: '7' } })
    try {
      await waitFor(async () => (await getRun(done)).statusCode === 404, 15_000, 'the expired run was never purged')
      expect((await getRun(stuck)).json()).toMatchObject({ status: 'failed' })
      expect(await engineInstances(stuck)).toBe(1)
    } finally {
      await sweeper.close()
    }
  })

  it('keeps every run when WORKFLOW_RETENTION_DAYS is 0 (every other app of the tests runs so)', async () => {
    const old = (await startDemo(admin, { label: `ancient-${Date.now()}` })).workflowId
    await untilStatus(old, ['completed'])
    await age(old, 3_000)
    const keeper = await buildRunsApp({ retentionSweepMs: 100, env: { WORKFLOW_RETENTION_DAYS: '0' } })
    try {
      await new Promise((resolve) => setTimeout(resolve, 600))
      expect((await getRun(old)).json()).toMatchObject({ status: 'completed' })
      expect(await engineInstances(old)).toBe(1)
    } finally {
      await keeper.close()
    }
  })
})
