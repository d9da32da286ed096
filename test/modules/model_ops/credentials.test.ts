import { Writable } from 'node:stream'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { loggerOptions } from '../../../src/platform/logger.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { type ProviderStandIn, startProviderStandIn } from '../../helpers/providers.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'

let app: FastifyInstance
let providers: ProviderStandIn
let admin: SeededUser
let viewer: SeededUser
let other: SeededUser
const logLines: string[] = []

beforeAll(async () => {
  providers = await startProviderStandIn()
  const log = pino(loggerOptions('debug'), new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }))
  app = await buildApp(
    testConfig({ LOG_LEVEL: 'debug', MODEL_HUB_URL: `${providers.url}/hub`, OUTBOUND_CA_FILE: providers.caFile, MODEL_PROVIDER_TIMEOUT_MS: '3000' }),
    { logger: log, workflows: { hub: uniqueHub('creds'), tuning: FAST_HUB } },
  )
  await app.ready()
  const realm = uniqueRealm('cred')
  admin = await seedUser(app, { realm, role: 'admin' })
  viewer = await seedUser(app, { realm, role: 'viewer' })
  other = await seedUser(app, { realm: uniqueRealm('cred-other'), role: 'admin' })
}, 60_000)
afterAll(async () => {
  await app?.close()
  await providers?.close()
})

const create = (body: Record<string, unknown>, as: SeededUser = admin, query = '') =>
  app.inject({ method: 'POST', url: `/v1/credentials${query}`, headers: bearer(as.accessToken), payload: body })
const names = async (as: SeededUser = admin) =>
  ((await app.inject({ method: 'GET', url: '/v1/credentials?limit=100', headers: bearer(as.accessToken) })).json().items as Array<{ name: string }>).map((c) => c.name)
const allSecrets = () => [providers.keys.openai, providers.keys.anthropic, providers.keys.azure, providers.keys.hub, providers.keys.vllm, providers.keys.bedrock.secretAccessKey]

describe('providers', () => {
  it('lists the seeded providers with what a credential for each needs', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/model-providers', headers: bearer(viewer.accessToken) })
    expect(res.statusCode).toBe(200)
    const items = res.json().items as Array<{ id: string; kind: string; credentialFields: Array<{ name: string; secret: boolean; required: boolean }> }>
    expect(items.map((p) => p.id).sort()).toEqual(['anthropic', 'aws_bedrock', 'azure_openai', 'hugging_face', 'openai', 'vllm_compatible'])
    expect(items.find((p) => p.id === 'hugging_face')!.kind).toBe('hub')
    expect(items.find((p) => p.id === 'aws_bedrock')!.credentialFields.filter((f) => f.required).map((f) => f.name)).toEqual(['accessKeyId', 'secretAccessKey'])
    const rows = await app.platform.database.db.execute(sql`select count(*)::int as n from model_providers`)
    expect((rows.rows[0] as { n: number }).n).toBe(6)
  })
})

describe('creating credentials', () => {
  it('stores a key each provider accepts, verified, showing only a hint', async () => {
    const cases = [
      { provider: 'openai', name: 'oa', secrets: { apiKey: providers.keys.openai }, settings: { baseUrl: `${providers.url}/openai/` } },
      { provider: 'anthropic', name: 'an', secrets: { apiKey: providers.keys.anthropic }, settings: { baseUrl: `${providers.url}/anthropic` } },
      { provider: 'azure_openai', name: 'az', secrets: { apiKey: providers.keys.azure }, settings: { endpoint: `${providers.url}/azure`, apiVersion: '2024-10-21' } },
      {
        provider: 'aws_bedrock',
        name: 'br',
        secrets: { accessKeyId: providers.keys.bedrock.accessKeyId, secretAccessKey: providers.keys.bedrock.secretAccessKey },
        settings: { region: providers.keys.bedrock.region, endpoint: `${providers.url}/bedrock` },
      },
      { provider: 'hugging_face', name: 'hf', secrets: { token: providers.keys.hub } },
      { provider: 'vllm_compatible', name: 'vl', secrets: { apiKey: providers.keys.vllm }, settings: { baseUrl: `${providers.url}/vllm` } },
    ]
    for (const body of cases) {
      const res = await create(body)
      expect(res.statusCode, `${body.provider}: ${res.body}`).toBe(201)
      const got = res.json()
      expect(got).toMatchObject({ provider: body.provider, name: body.name, status: 'verified' })
      expect(res.headers.location).toBe(`/v1/credentials/${got.id}`)
      expect(res.headers.etag).toBeTruthy()
      for (const s of allSecrets()) expect(res.body).not.toContain(s)
    }
    const openai = (await app.inject({ method: 'GET', url: '/v1/credentials?provider=openai', headers: bearer(viewer.accessToken) })).json()
    expect(openai.items).toHaveLength(1)
    expect(openai.items[0].hint).toBe(`sk-…${providers.keys.openai.slice(-4)}`)
    // The trailing slash of a base URL is not kept.
    expect(openai.items[0].settings.baseUrl).toBe(`${providers.url}/openai`)
    expect((await names()).sort()).toEqual(['an', 'az', 'br', 'hf', 'oa', 'vl'])
    // Anthropic's list is two pages: both were read.
    expect(providers.calls.filter((c) => c === 'GET /anthropic/v1/models').length).toBeGreaterThanOrEqual(2)
  })

  it('refuses a key the provider rejects with 422 and its message, keeps nothing, and never repeats the key', async () => {
    const wrong = `sk-proj-${'W'.repeat(40)}`
    const res = await create({ provider: 'openai', name: 'oa-bad', secrets: { apiKey: wrong }, settings: { baseUrl: `${providers.url}/openai` } })
    expect(res.statusCode).toBe(422)
    const body = res.json()
    expect(body.errorCode).toBe('CREDENTIAL_VERIFICATION_FAILED')
    expect(body.details).toMatchObject({ reason: 'REJECTED', providerStatus: 401 })
    expect(body.details.providerMessage).toContain('Incorrect API key provided')
    // The stand-in echoed the key whole; it does not come back to the caller.
    expect(res.body).not.toContain(wrong)
    expect(await names()).not.toContain('oa-bad')

    const bedrock = await create({
      provider: 'aws_bedrock',
      name: 'br-bad',
      secrets: { accessKeyId: providers.keys.bedrock.accessKeyId, secretAccessKey: 'not-the-secret-access-key-at-all-000000' },
      settings: { region: providers.keys.bedrock.region, endpoint: `${providers.url}/bedrock` },
    })
    expect(bedrock.statusCode).toBe(422)
    expect(bedrock.json().details.providerStatus).toBe(403)
    const hub = await create({ provider: 'hugging_face', name: 'hf-bad', secrets: { token: 'hf_nope_nope_nope' } })
    expect(hub.json().details).toMatchObject({ reason: 'REJECTED', providerMessage: 'Invalid credentials in Authorization header' })
    expect(await names()).not.toContain('hf-bad')
  })

  it('stores an unverified credential when asked not to verify, without calling the provider', async () => {
    const before = providers.calls.length
    const res = await create({ provider: 'openai', name: 'oa-later', secrets: { apiKey: 'sk-whatever-1234567890' } }, admin, '?verify=false')
    expect(res.statusCode).toBe(201)
    expect(res.json()).toMatchObject({ status: 'unverified', verifiedAt: null })
    expect(providers.calls.length).toBe(before)
  })

  it('refuses metadata and link-local addresses, http, missing and unknown fields, before any call', async () => {
    const before = providers.calls.length
    const metadata = await create({ provider: 'openai', name: 'oa-meta', secrets: { apiKey: providers.keys.openai }, settings: { baseUrl: 'https://169.254.169.254/latest' } })
    expect(metadata.statusCode).toBe(400)
    expect(metadata.json().details.fields[0]).toMatchObject({ field: 'body.settings.baseUrl' })
    expect(metadata.json().details.fields[0].message).toContain('denied')
    const plain = await create({ provider: 'openai', name: 'oa-http', secrets: { apiKey: providers.keys.openai }, settings: { baseUrl: 'http://127.0.0.1:9/openai' } })
    expect(plain.json().details.fields[0].message).toContain('https')
    const missing = await create({ provider: 'aws_bedrock', name: 'br-x', secrets: { accessKeyId: 'AKIA0000' }, settings: { region: 'eu-central-1' } })
    expect(missing.json().details.fields).toEqual([{ field: 'body.secrets.secretAccessKey', message: 'required' }])
    const unknown = await create({ provider: 'anthropic', name: 'an-x', secrets: { apiKey: 'k', token: 'x' } })
    expect(unknown.json().details.fields[0]).toMatchObject({ field: 'body.secrets.token' })
    expect(providers.calls.length).toBe(before)
    expect((await names()).filter((n) => n.endsWith('-meta') || n.endsWith('-http') || n.endsWith('-x'))).toEqual([])
  })

  it('refuses a name already taken with 409, and a viewer with 403', async () => {
    const again = await create({ provider: 'openai', name: 'oa', secrets: { apiKey: providers.keys.openai }, settings: { baseUrl: `${providers.url}/openai` } })
    expect(again.statusCode).toBe(409)
    expect(again.json().errorCode).toBe('CREDENTIAL_NAME_TAKEN')
    const byViewer = await create({ provider: 'hugging_face', name: 'hf-v', secrets: { token: providers.keys.hub } }, viewer)
    expect(byViewer.statusCode).toBe(403)
  })
})

describe('one credential', () => {
  const idOf = async (name: string) =>
    ((await app.inject({ method: 'GET', url: '/v1/credentials?limit=100', headers: bearer(admin.accessToken) })).json().items as Array<{ id: string; name: string }>).find(
      (c) => c.name === name,
    )!.id

  it("is another tenant's 404, for reads and writes", async () => {
    const id = await idOf('az')
    for (const [method, payload] of [['GET'], ['PATCH', { name: 'mine' }], ['DELETE']] as const) {
      const res = await app.inject({ method, url: `/v1/credentials/${id}`, headers: bearer(other.accessToken), ...(payload ? { payload } : {}) })
      expect(res.statusCode, method).toBe(404)
      expect(res.json().errorCode).toBe('CREDENTIAL_NOT_FOUND')
    }
  })

  it('rotates: a new key is verified before it replaces the old one; a stale If-Match is 412', async () => {
    const id = await idOf('vl')
    const read = await app.inject({ method: 'GET', url: `/v1/credentials/${id}`, headers: bearer(admin.accessToken) })
    const etag = read.headers.etag as string
    const refused = await app.inject({
      method: 'PATCH',
      url: `/v1/credentials/${id}`,
      headers: { ...bearer(admin.accessToken), 'if-match': etag },
      payload: { secrets: { apiKey: 'vllm-token-wrong' } },
    })
    expect(refused.statusCode).toBe(422)
    // The old key is still the one stored.
    expect((await app.inject({ method: 'GET', url: `/v1/credentials/${id}`, headers: bearer(admin.accessToken) })).headers.etag).toBe(etag)
    providers.keys.vllm = 'vllm-token-rotated-2'
    const rotated = await app.inject({
      method: 'PATCH',
      url: `/v1/credentials/${id}`,
      headers: { ...bearer(admin.accessToken), 'if-match': etag },
      payload: { secrets: { apiKey: providers.keys.vllm } },
    })
    expect(rotated.statusCode, rotated.body).toBe(200)
    expect(rotated.json()).toMatchObject({ status: 'verified', hint: 'vll…ed-2' })
    const stale = await app.inject({ method: 'PATCH', url: `/v1/credentials/${id}`, headers: { ...bearer(admin.accessToken), 'if-match': etag }, payload: { name: 'vl2' } })
    expect(stale.statusCode).toBe(412)
  })

  it('will not send a stored key to a new address unless the key is sent again', async () => {
    const id = await idOf('oa')
    const res = await app.inject({ method: 'PATCH', url: `/v1/credentials/${id}`, headers: bearer(admin.accessToken), payload: { settings: { baseUrl: 'https://attacker.example' } } })
    expect(res.statusCode).toBe(400)
    expect(res.json().details.fields).toEqual([{ field: 'body.secrets', message: 'required with a new address' }])
  })

  it('deletes: 204, then 404, and the name is free again', async () => {
    const id = await idOf('oa-later')
    const res = await app.inject({ method: 'DELETE', url: `/v1/credentials/${id}`, headers: bearer(admin.accessToken) })
    expect(res.statusCode).toBe(204)
    expect((await app.inject({ method: 'GET', url: `/v1/credentials/${id}`, headers: bearer(admin.accessToken) })).statusCode).toBe(404)
    const rows = await app.platform.database.db.execute(sql`select secret_sealed from model_credentials where id = ${id}`)
    expect((rows.rows[0] as { secret_sealed: string | null }).secret_sealed).toBeNull()
    expect((await create({ provider: 'openai', name: 'oa-later', secrets: { apiKey: 'sk-whatever-0987654321' } }, admin, '?verify=false')).statusCode).toBe(201)
  })
})

describe('secrets', () => {
  it('are in no event, no log line, and in the database only sealed', async () => {
    await app.platform.events.drain()
    const events = await app.platform.database.db.execute(sql`select topic, payload from outbox_events where tenant_id = ${admin.tenantId} and topic like 'credential.%'`)
    const topics = (events.rows as Array<{ topic: string }>).map((e) => e.topic)
    expect(topics).toEqual(expect.arrayContaining(['credential.created', 'credential.rotated', 'credential.deleted']))
    const everything = JSON.stringify(events.rows) + logLines.join('')
    const table = JSON.stringify((await app.platform.database.db.execute(sql`select * from model_credentials where tenant_id = ${admin.tenantId}`)).rows)
    for (const s of [...allSecrets(), 'vllm-token-wrong', 'not-the-secret-access-key-at-all-000000']) {
      expect(everything).not.toContain(s)
      expect(table).not.toContain(s)
    }
    expect(logLines.join('')).toContain('model credential created')
  })
})
