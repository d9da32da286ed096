import type { AddressInfo } from 'node:net'
import fs from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { tempDir, testConfig } from '../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { FAST_HUB, uniqueHub } from '../helpers/workflow.js'

/**
 * A real browser's EventSource on the progress streams: headless Chromium (Debian's) through
 * playwright-core, on a page served by the app itself so the stream is same-origin. EventSource
 * sends no headers: the stream ticket in the URL is its only credential.
 */

const PAGE = '/__test/event-source'
let app: FastifyInstance
let base: string
let browser: BrowserContext
let page: Page
let admin: SeededUser

/** The page's EventSource, as far as the test uses it (the project's types have no DOM). */
interface PageEventSource {
  readyState: number
  onopen: (() => void) | null
  onerror: (() => void) | null
  addEventListener(type: string, listener: (event: unknown) => void): void
  close(): void
}

interface Seen {
  type: string
  lastEventId: string
  data: { workflowId: string; status: string; percent: number; type: string }
}

beforeAll(async () => {
  app = await buildApp(testConfig(), { workflows: { hub: uniqueHub('browser'), tuning: FAST_HUB } })
  // A throwaway page of the test app, so the page and the API share an origin; its policy lets it
  // run the script the test evaluates and connect back to the API (the API's own forbids both).
  app.get(
    PAGE,
    { config: { public: true }, schema: { operationId: 'testEventSourcePage', tags: ['test'], summary: 'A page for the browser test', hide: true } },
    async (_request, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'self'; script-src 'self' 'unsafe-inline'")
      .send('<!doctype html><title>streams</title><p>event-source test page</p>'),
  )
  await app.ready()
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  admin = await seedUser(app, { realm: uniqueRealm('es'), role: 'admin' })
  if (!fs.existsSync('/usr/bin/chromium')) throw new Error('Debian chromium is not installed at /usr/bin/chromium')
  // A fresh profile each run; never a downloaded browser.
  browser = await chromium.launchPersistentContext(tempDir('chromium-'), {
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  page = await browser.newPage()
  await page.goto(`${base}${PAGE}`)
})

afterAll(async () => {
  await browser?.close()
  app?.server.closeAllConnections()
  await app?.close()
})

async function ticket(path: string): Promise<string> {
  const response = await app.inject({ method: 'POST', url: path, headers: bearer(admin.accessToken) })
  expect(response.statusCode, response.body).toBe(200)
  return (response.json() as { url: string }).url
}

/** Opens an EventSource in the page under a name; events land in window.__seen[name]. */
async function openInPage(name: string, url: string): Promise<void> {
  await page.evaluate(
    ({ name, url }) => {
      const w = globalThis as unknown as {
        __seen: Record<string, unknown[]>
        __state: Record<string, string>
        __sources: Record<string, PageEventSource>
        EventSource: new (url: string) => PageEventSource
      }
      w.__seen ??= {}
      w.__state ??= {}
      w.__sources ??= {}
      const CLOSED = 2
      const seen: unknown[] = (w.__seen[name] = [])
      const source = new w.EventSource(url)
      w.__sources[name] = source
      for (const type of ['state', 'progress', 'end', 'ticket-expired']) {
        source.addEventListener(type, (event) => {
          const message = event as { data: string; lastEventId: string }
          seen.push({ type, lastEventId: message.lastEventId, data: JSON.parse(message.data) })
          // The documented way to stop: the run is over, so do not let EventSource reconnect.
          if (type === 'end' && name.startsWith('run')) source.close()
        })
      }
      source.onopen = () => (w.__state[name] = 'open')
      source.onerror = () => (w.__state[name] = source.readyState === CLOSED ? 'closed' : 'reconnecting')
    },
    { name, url },
  )
}

const seenIn = (name: string) => page.evaluate((n) => (globalThis as unknown as { __seen: Record<string, Seen[]> }).__seen[n] ?? [], name)
const stateOf = (name: string) => page.evaluate((n) => (globalThis as unknown as { __state: Record<string, string> }).__state[n], name)

describe('EventSource in Chromium', () => {
  it('follows a user import on the tenant stream and on the run stream to its completion', async () => {
    await openInPage('tenant', await ticket('/v1/workflows/stream-ticket'))
    await page.waitForFunction(() => (globalThis as unknown as { __state: Record<string, string> }).__state.tenant === 'open')
    const rows = Array.from({ length: 3_000 }, (_, i) => ({ email: `es-${i}@example.test`, name: `E ${i}`, role: 'viewer' }))
    const started = await app.inject({
      method: 'POST',
      url: '/ai/admin/users/import',
      headers: { ...bearer(admin.accessToken), 'content-type': 'application/json' },
      payload: JSON.stringify(rows),
    })
    expect(started.statusCode, started.body).toBe(202)
    const { workflowId } = started.json() as { workflowId: string }
    await openInPage('run', await ticket(`/v1/workflows/${workflowId}/stream-ticket`))
    await page.waitForFunction(
      (id) =>
        ((globalThis as unknown as { __seen: Record<string, Seen[]> }).__seen.tenant ?? []).some((e) => e.type === 'end' && e.data.workflowId === id),
      workflowId,
      { timeout: 20_000 },
    )
    const tenant = (await seenIn('tenant')).filter((e) => e.data.workflowId === workflowId)
    const progress = tenant.filter((e) => e.type === 'progress')
    expect(progress.length).toBeGreaterThan(0)
    const percents = progress.map((e) => e.data.percent)
    expect(percents).toEqual([...percents].sort((a, b) => a - b))
    expect(tenant.at(-1)).toMatchObject({ type: 'end', data: { status: 'completed', percent: 100 } })

    await page.waitForFunction(() => ((globalThis as unknown as { __seen: Record<string, Seen[]> }).__seen.run ?? []).some((e) => e.type === 'end'), undefined, {
      timeout: 20_000,
    })
    const run = await seenIn('run')
    expect(run[0]!.type).toBe('state')
    expect(run.at(-1)).toMatchObject({ type: 'end', data: { workflowId, status: 'completed' } })
    const ids = run.map((e) => Number(e.lastEventId))
    expect(ids).toEqual([...ids].sort((a, b) => a - b))

    // Reconnecting after the end with its id: 204, and EventSource stops for good (CLOSED).
    await openInPage('after-end', `${await ticket(`/v1/workflows/${workflowId}/stream-ticket`)}&lastEventId=${run.at(-1)!.lastEventId}`)
    await page.waitForFunction(() => (globalThis as unknown as { __state: Record<string, string> }).__state['after-end'] === 'closed', undefined, {
      timeout: 10_000,
    })
    expect(await seenIn('after-end')).toEqual([])
    expect(await stateOf('after-end')).toBe('closed')
  })
})
