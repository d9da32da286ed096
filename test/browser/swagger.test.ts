import net, { type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp } from '../helpers/app.js'
import { type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'

/**
 * Swagger UI as an administrator uses it, in headless Chromium (Debian's, never a downloaded one):
 * open /docs, authorize with a bearer token, and run GET /v1/auth/me with "Try it out". PUBLIC_URL
 * is the default http://localhost:<PORT>, so opening the docs at 127.0.0.1 is the case that used
 * to fail ("Failed to fetch": the page's CSP refused a call to another origin).
 */
const CHROMIUM = '/usr/bin/chromium'

let app: FastifyInstance
let port: number
let browser: Browser
let user: SeededUser

beforeAll(async () => {
  port = await freePort()
  app = await buildTestApp({ PORT: String(port) })
  await app.listen({ host: '127.0.0.1', port })
  user = await seedUser(app, { realm: uniqueRealm('docs'), role: 'viewer' })
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    // launch() gives the browser a fresh profile in a temporary folder of its own, removed on close.
  })
})

afterAll(async () => {
  await browser?.close()
  await app?.close()
})

/** A port nobody listens on now, so PUBLIC_URL (http://localhost:<PORT>) can name it before the app listens. */
async function freePort(): Promise<number> {
  const probe = net.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

/** Authorize, expand GET /v1/auth/me, Try it out, Execute: what an administrator clicks. */
async function callMeThroughSwaggerUi(page: Page, docsUrl: string) {
  await page.goto(docsUrl)
  const servers = page.locator('.servers select')
  const selectedServer = await servers.inputValue()
  const serverOptions = await servers.locator('option').allInnerTexts()
  await page.locator('button.btn.authorize').first().click()
  await page.locator('input[aria-label="auth-bearer-value"]').fill(user.accessToken)
  // The bearer scheme's own Authorize button in the dialog, then Close.
  await page.locator('.auth-container', { has: page.locator('input[aria-label="auth-bearer-value"]') }).locator('button.authorize').click()
  await page.locator('.modal-ux').getByRole('button', { name: 'Close' }).first().click()

  const operation = page.locator('#operations-auth-getMe')
  await operation.locator('.opblock-summary').click()
  await operation.locator('button.try-out__btn').click()
  await operation.locator('button.execute').click()
  const live = operation.locator('.live-responses-table .response')
  await live.first().waitFor()
  await live.first().scrollIntoViewIfNeeded()
  return {
    selectedServer,
    serverOptions,
    status: (await live.locator('.response-col_status').first().innerText()).trim(),
    body: await live.locator('.response-col_description').first().innerText(),
    requestUrl: (await operation.locator('.request-url pre').innerText()).trim(),
  }
}

describe('Swagger UI', () => {
  for (const host of ['localhost', '127.0.0.1']) {
    it(`runs "Try it out" on GET /v1/auth/me with a bearer token when opened at ${host}`, async () => {
      const context = await browser.newContext()
      try {
        const page = await context.newPage()
        const seen = await callMeThroughSwaggerUi(page, `http://${host}:${port}/docs`)
        await page.screenshot({ path: `/tmp/modelplane-swagger-${host}.png` })
        expect(seen.status).toBe('200')
        expect(seen.body).toContain(user.email)
        expect(seen.requestUrl).toBe(`http://${host}:${port}/v1/auth/me`)
        // The server selected is the relative one; PUBLIC_URL is offered second.
        expect(seen.selectedServer).toBe('/')
        expect(seen.serverOptions).toHaveLength(2)
        expect(seen.serverOptions[1]).toContain(`http://localhost:${port}`)
      } finally {
        await context.close()
      }
    })
  }

  it('shows the realistic examples, and no lock on the public routes', async () => {
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      await page.goto(`http://127.0.0.1:${port}/docs`)
      const login = page.locator('#operations-auth-login')
      const me = page.locator('#operations-auth-getMe')
      await login.waitFor()
      expect(await login.locator('.authorization__btn').count()).toBe(0)
      expect(await me.locator('.authorization__btn').count()).toBe(1)

      await login.locator('.opblock-summary').click()
      const requestExample = login.locator('.opblock-section-request-body .highlight-code')
      await requestExample.waitFor()
      expect(await requestExample.innerText()).toContain('ada.lovelace@acme.example')

      const create = page.locator('#operations-users-createAiUser')
      await create.locator('.opblock-summary').click()
      const createExample = create.locator('.opblock-section-request-body .highlight-code')
      await createExample.waitFor()
      expect(await createExample.innerText()).toMatch(/"role": "developer"/)
      await createExample.scrollIntoViewIfNeeded()
      await page.screenshot({ path: '/tmp/modelplane-swagger-examples.png' })
      const created = create.locator('.responses-table .response[data-code="201"]')
      expect(await created.innerText()).toContain('Created')
      expect(await created.innerText()).toContain('grace.hopper@acme.example')
    } finally {
      await context.close()
    }
  })
})
