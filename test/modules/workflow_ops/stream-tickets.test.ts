import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import type { WorkflowService } from '../../../src/modules/workflow_ops/index.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'
import { endsWithin, type EventStreamReader, openEventStream } from './sse-client.js'

/**
 * Stream tickets (EventSource sends no headers), reconnects with Last-Event-ID, and the tenant-wide
 * stream, over real HTTP on the run's PostgreSQL and Redis. Two apps share one hub: the second
 * has one-second tickets, quick heartbeats and a log the test reads.
 */

/** Each step of a label waits for its gate after reporting progress, so a test holds a run where it wants it. */
const gates = new Map<string, () => void>()
const opened = new Map<string, Promise<void>>()
let closing = false
function gate(label: string, step: number): Promise<void> {
  if (closing) return Promise.resolve()
  const key = `${label}:${step}`
  if (!opened.has(key)) opened.set(key, new Promise<void>((resolve) => gates.set(key, resolve)))
  return opened.get(key)!
}
function release(label: string, step: number): void {
  void gate(label, step)
  gates.get(`${label}:${step}`)!()
}

function declare(workflows: WorkflowService): void {
  workflows.register({
    name: 'tickets.steps',
    workflow: async function* (ctx: WorkflowContext, input: { label: string }) {
      for (const n of [1, 2, 3]) yield ctx.callActivity('tickets.step', { ...input, n })
      return { label: input.label }
    },
    activities: [
      {
        name: 'tickets.step',
        activity: async (ctx: WorkflowActivityContext, input: { label: string; n: number }) => {
          await workflows.reportProgress(ctx, { step: input.n, totalSteps: 3, message: `step ${input.n}` })
          await gate(input.label, input.n)
        },
      },
    ],
  })
}

const HUB = uniqueHub('tickets')
const logLines: string[] = []
let app: FastifyInstance
let short: FastifyInstance
let base: string
let shortBase: string
let admin: SeededUser
let viewer: SeededUser
let outsider: SeededUser
let otherAdmin: SeededUser

async function listen(instance: FastifyInstance): Promise<string> {
  await instance.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(instance.server.address() as AddressInfo).port}`
}

beforeAll(async () => {
  app = await buildApp(testConfig(), { workflows: { hub: HUB, tuning: FAST_HUB } })
  declare(app.services.workflows)
  await app.ready()
  base = await listen(app)
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString())
      done()
    },
  })
  const { loggerOptions } = await import('../../../src/platform/logger.js')
  short = await buildApp(testConfig(), {
    logger: pino(loggerOptions('info'), sink),
    workflows: { hub: HUB, tuning: FAST_HUB, heartbeatMs: 200, streamTicketTtlSeconds: 1 },
  })
  declare(short.services.workflows)
  await short.ready()
  shortBase = await listen(short)
  const realm = uniqueRealm('tix')
  admin = await seedUser(app, { realm, role: 'admin' })
  viewer = await seedUser(app, { realm, role: 'viewer' })
  outsider = await seedUser(app, { realm, role: 'no_grants' })
  otherAdmin = await seedUser(app, { realm: uniqueRealm('tix-other'), role: 'admin' })
})

afterAll(async () => {
  closing = true
  for (const open of gates.values()) open()
  await short?.close()
  // A socket the client side opened after the streams were let go (no request on it) would hold the
  // close until its keep-alive runs out; nothing of the app's is on it.
  app?.server.closeAllConnections()
  await app?.close()
})

async function startRun(user: SeededUser, label: string): Promise<string> {
  const { workflowId } = await app.services.workflows.start({
    type: 'tickets.steps',
    tenantId: user.tenantId,
    resource: { kind: 'demo', id: label },
    startedBy: user.id,
    input: { label },
  })
  return workflowId
}

async function runAt(id: string, step: number): Promise<{ version: number }> {
  let run: { currentStep: number; version?: number } = { currentStep: 0 }
  await waitFor(
    async () => {
      run = (await app.inject({ method: 'GET', url: `/v1/workflows/${id}`, headers: bearer(admin.accessToken) })).json()
      return run.currentStep === step
    },
    10_000,
    `run ${id} never reached step ${step}`,
  )
  // The stream's event id is the record's version: read it from a stream opened with the header.
  const probe = await openEventStream(`${base}/v1/workflows/${id}/events`, bearer(admin.accessToken))
  await waitFor(() => probe.events.length >= 1, 5_000, 'no state event')
  probe.abort()
  return { version: Number(probe.events[0]!.id) }
}

async function ticketFor(user: SeededUser, path: string, at = app) {
  return at.inject({ method: 'POST', url: path, headers: bearer(user.accessToken) })
}

const parsed = (reader: EventStreamReader) =>
  reader.events.map((e) => ({ event: e.event, id: e.id, ...(JSON.parse(e.data) as { workflowId?: string; currentStep?: number; version?: number; status?: string }) }))

describe('run stream tickets', () => {
  it('opens the run stream without headers and sees it to the end', async () => {
    const id = await startRun(admin, 'happy')
    await runAt(id, 1)
    const answer = await ticketFor(viewer, `/v1/workflows/${id}/stream-ticket`)
    expect(answer.statusCode).toBe(200)
    const { url, ticket } = answer.json() as { url: string; ticket: string }
    expect(url).toBe(`/v1/workflows/${id}/events?ticket=${encodeURIComponent(ticket)}`)
    const stream = await openEventStream(`${base}${url}`, {})
    expect(stream.status).toBe(200)
    await waitFor(() => stream.events.length >= 1, 5_000, 'no state event')
    for (const step of [1, 2, 3]) release('happy', step)
    await endsWithin(stream, 10_000)
    const events = parsed(stream)
    expect(events[0]).toMatchObject({ event: 'state', workflowId: id, currentStep: 1 })
    expect(events.at(-1)).toMatchObject({ event: 'end', status: 'completed' })
    expect(events.filter((e) => e.event === 'progress').map((e) => e.currentStep)).toEqual([2, 3])
  })

  it('refuses the ticket for another run, for the tenant stream and as a bearer token', async () => {
    const id = await startRun(admin, 'bound')
    const other = await startRun(admin, 'bound-other')
    const { ticket } = (await ticketFor(admin, `/v1/workflows/${id}/stream-ticket`)).json() as { ticket: string }
    for (const url of [`/v1/workflows/${other}/events?ticket=${ticket}`, `/v1/workflows/events?ticket=${ticket}`]) {
      const response = await app.inject({ method: 'GET', url })
      expect(response.statusCode, url).toBe(401)
      expect(response.headers['www-authenticate']).toBe('Bearer realm="modelplane", error="invalid_token"')
    }
    const asBearer = await app.inject({ method: 'GET', url: '/v1/workflows', headers: bearer(ticket) })
    expect(asBearer.statusCode).toBe(401)
    const altered = ticket.slice(0, -2) + (ticket.endsWith('AA') ? 'BB' : 'AA')
    expect((await app.inject({ method: 'GET', url: `/v1/workflows/${id}/events?ticket=${altered}` })).statusCode).toBe(401)
    for (const label of ['bound', 'bound-other']) for (const step of [1, 2, 3]) release(label, step)
  })

  it("gives another tenant's admin 404 and a user without workflow:view 403, with no ticket", async () => {
    const id = await startRun(admin, 'foreign')
    const foreign = await ticketFor(otherAdmin, `/v1/workflows/${id}/stream-ticket`)
    expect(foreign.statusCode).toBe(404)
    expect(foreign.json()).toMatchObject({ errorCode: 'WORKFLOW_NOT_FOUND' })
    expect(foreign.body).not.toContain('ticket')
    const lower = await ticketFor(outsider, `/v1/workflows/${id}/stream-ticket`)
    expect(lower.statusCode).toBe(403)
    expect((await ticketFor(outsider, '/v1/workflows/stream-ticket')).statusCode).toBe(403)
    for (const step of [1, 2, 3]) release('foreign', step)
  })

  it('resumes after Last-Event-ID with only later events, and answers 204 when the run is over and seen', async () => {
    const id = await startRun(admin, 'resume')
    const { version } = await runAt(id, 1)
    const { url } = (await ticketFor(admin, `/v1/workflows/${id}/stream-ticket`)).json() as { url: string }
    // Reconnecting with the current version: nothing is sent until the run moves.
    const resumed = await openEventStream(`${base}${url}`, { 'last-event-id': String(version) })
    expect(resumed.status).toBe(200)
    release('resume', 1)
    await waitFor(() => resumed.events.length >= 1, 5_000, 'no event after the resume point')
    const first = parsed(resumed)[0]!
    expect(first).toMatchObject({ event: 'progress', currentStep: 2 })
    expect(first.version).toBeGreaterThan(version)
    resumed.abort()
    // One version back: the current state is after it, so it comes.
    const { version: now } = await runAt(id, 2)
    const back = await openEventStream(`${base}${url}`, { 'last-event-id': String(now - 1) })
    await waitFor(() => back.events.length >= 1, 5_000, 'no state after an older id')
    expect(parsed(back)[0]).toMatchObject({ event: 'state', version: now })
    back.abort()
    release('resume', 2)
    release('resume', 3)
    const whole = await openEventStream(`${base}/v1/workflows/${id}/events`, bearer(admin.accessToken))
    await endsWithin(whole, 10_000)
    const last = whole.events.at(-1)!
    expect(last.event).toBe('end')
    const seen = await fetch(`${base}${url}`, { headers: { 'last-event-id': last.id! } })
    expect(seen.status).toBe(204)
    // The same, for a new EventSource that passes the id in the query.
    const seenByQuery = await fetch(`${base}${url}&lastEventId=${last.id}`)
    expect(seenByQuery.status).toBe(204)
  })

  it('ends an open stream with ticket-expired when its ticket runs out, and answers its reconnect 204', async () => {
    const id = await startRun(admin, 'expiry')
    await runAt(id, 1)
    const { url } = (await ticketFor(admin, `/v1/workflows/${id}/stream-ticket`, short)).json() as { url: string }
    const stream = await openEventStream(`${shortBase}${url}`, {})
    expect(stream.status).toBe(200)
    await endsWithin(stream, 5_000)
    expect(stream.events.map((e) => e.event)).toEqual(['state', 'ticket-expired'])
    const reconnect = await fetch(`${shortBase}${url}`, { headers: { 'last-event-id': stream.events[0]!.id! } })
    expect(reconnect.status).toBe(204)
    expect(await reconnect.text()).toBe('')
    for (const step of [1, 2, 3]) release('expiry', step)
  })

  it('stops a ticket whose user logged out, on connect and on an open stream', async () => {
    const user = await seedUser(app, { realm: admin.realm, role: 'viewer' })
    const id = await startRun(admin, 'logout')
    await runAt(id, 1)
    const { url } = (await ticketFor(user, `/v1/workflows/${id}/stream-ticket`, short)).json() as { url: string }
    const { url: later } = (await ticketFor(user, `/v1/workflows/${id}/stream-ticket`)).json() as { url: string }
    const stream = await openEventStream(`${shortBase}${url}`, {})
    await waitFor(() => stream.events.length >= 1, 5_000, 'no state event')
    const logout = await app.inject({ method: 'POST', url: '/v1/auth/logout', headers: bearer(user.accessToken) })
    expect(logout.statusCode).toBe(204)
    await endsWithin(stream, 5_000)
    expect(stream.events.map((e) => e.event)).toEqual(['state', 'ticket-expired'])
    const refused = await fetch(`${base}${later}`)
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="modelplane", error="invalid_token"')
    for (const step of [1, 2, 3]) release('logout', step)
  })

  it('stops a ticket whose user was disabled', async () => {
    const user = await seedUser(app, { realm: admin.realm, role: 'viewer' })
    const id = await startRun(admin, 'disabled')
    const { url } = (await ticketFor(user, `/v1/workflows/${id}/stream-ticket`)).json() as { url: string }
    const disable = await app.inject({
      method: 'PUT',
      url: `/ai/admin/users/${user.id}`,
      headers: bearer(admin.accessToken),
      payload: { status: 'disabled' },
    })
    expect(disable.statusCode, disable.body).toBe(200)
    expect((await fetch(`${base}${url}`)).status).toBe(401)
    for (const step of [1, 2, 3]) release('disabled', step)
  })

  it("opens with the new token's ticket right after a password change, and refuses the old token's", async () => {
    const user = await seedUser(app, { realm: admin.realm, role: 'viewer' })
    const id = await startRun(admin, 'password')
    const before = (await ticketFor(user, `/v1/workflows/${id}/stream-ticket`)).json() as { url: string }
    const changed = await app.inject({
      method: 'POST',
      url: '/v1/auth/password',
      headers: bearer(user.accessToken),
      payload: { currentPassword: user.password, newPassword: `new-${user.password}` },
    })
    expect(changed.statusCode, changed.body).toBe(200)
    const fresh = { ...user, accessToken: (changed.json() as { accessToken: string }).accessToken }
    // At once, within the cut-off's second: the ticket carries the new token's iat, not its own time.
    const answer = await ticketFor(fresh, `/v1/workflows/${id}/stream-ticket`)
    expect(answer.statusCode, answer.body).toBe(200)
    const stream = await openEventStream(`${base}${(answer.json() as { url: string }).url}`, {})
    expect(stream.status).toBe(200)
    await waitFor(() => stream.events.length >= 1, 5_000, 'no state event')
    stream.abort()
    expect((await fetch(`${base}${before.url}`)).status).toBe(401)
    for (const step of [1, 2, 3]) release('password', step)
  })

  it('keeps the ticket out of the log', async () => {
    const id = await startRun(admin, 'logged')
    const { ticket, url } = (await ticketFor(admin, `/v1/workflows/${id}/stream-ticket`, short)).json() as { ticket: string; url: string }
    const stream = await openEventStream(`${shortBase}${url}`, {})
    await endsWithin(stream, 5_000)
    const signature = ticket.split('.')[2]!
    const lines = logLines.filter((line) => line.includes(`/v1/workflows/${id}/events`))
    expect(lines.length).toBeGreaterThan(0)
    expect(lines.some((line) => line.includes('ticket=%5Bredacted%5D'))).toBe(true)
    expect(logLines.join('\n')).not.toContain(signature)
    for (const step of [1, 2, 3]) release('logged', step)
  })
})

describe('tenant stream', () => {
  it("streams every run of the caller's tenant and never another tenant's", async () => {
    const answer = await ticketFor(viewer, '/v1/workflows/stream-ticket')
    expect(answer.statusCode).toBe(200)
    const { url } = answer.json() as { url: string }
    expect(url.startsWith('/v1/workflows/events?ticket=')).toBe(true)
    const stream = await openEventStream(`${base}${url}`, {})
    expect(stream.status).toBe(200)
    const ours = await startRun(admin, 'tenant-ours')
    const theirs = await startRun(otherAdmin, 'tenant-theirs')
    for (const step of [1, 2, 3]) {
      release('tenant-theirs', step)
      release('tenant-ours', step)
    }
    await waitFor(() => parsed(stream).some((e) => e.workflowId === ours && e.event === 'end'), 10_000, 'our run never ended on the stream')
    // The other tenant's run ended too, by now or soon: wait for it before looking.
    await waitFor(
      async () => (await app.inject({ method: 'GET', url: `/v1/workflows/${theirs}`, headers: bearer(otherAdmin.accessToken) })).json().status === 'completed',
      10_000,
    )
    stream.abort()
    const events = parsed(stream)
    expect(events.every((e) => e.workflowId !== theirs)).toBe(true)
    const steps = events.filter((e) => e.workflowId === ours && e.event === 'progress').map((e) => e.currentStep)
    expect(steps).toEqual([...steps].sort())
    expect(steps).toContain(3)
    // Ids are change times: never going back within one run.
    const ids = events.filter((e) => e.workflowId === ours).map((e) => Number(e.id))
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
  })

  it('resumes after Last-Event-ID with the runs changed since, and answers an expired ticket 204', async () => {
    const id = await startRun(admin, 'tenant-resume')
    await runAt(id, 1)
    const { url } = (await ticketFor(admin, '/v1/workflows/stream-ticket')).json() as { url: string }
    const since = Date.now()
    release('tenant-resume', 1)
    await runAt(id, 2)
    const resumed = await openEventStream(`${base}${url}`, { 'last-event-id': String(since) })
    await waitFor(() => parsed(resumed).some((e) => e.workflowId === id), 5_000, 'the changed run did not come on resume')
    resumed.abort()
    expect(parsed(resumed).find((e) => e.workflowId === id)).toMatchObject({ event: 'progress', currentStep: 2 })
    release('tenant-resume', 2)
    release('tenant-resume', 3)
    const { url: shortUrl } = (await ticketFor(admin, '/v1/workflows/stream-ticket', short)).json() as { url: string }
    const open = await openEventStream(`${shortBase}${shortUrl}`, {})
    await endsWithin(open, 5_000)
    expect(open.events.at(-1)!.event).toBe('ticket-expired')
    expect((await fetch(`${shortBase}${shortUrl}`)).status).toBe(204)
  })
})
