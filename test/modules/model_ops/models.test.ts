import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { type ProviderStandIn, startProviderStandIn } from '../../helpers/providers.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'

let app: FastifyInstance
let providers: ProviderStandIn
let admin: SeededUser
let viewer: SeededUser
let other: SeededUser
let credentialId: string
/** What the endpoints hook answers: model id (or model:version) → endpoints using it. */
const using = new Map<string, number>()

beforeAll(async () => {
  providers = await startProviderStandIn()
  app = await buildApp(testConfig({ OUTBOUND_CA_FILE: providers.caFile, MODEL_HUB_URL: `${providers.url}/hub` }), {
    workflows: { hub: uniqueHub('models'), tuning: FAST_HUB },
  })
  app.services.models.registerUser({
    kind: 'endpoints',
    countUsing: async (_executor, modelId, versionId) => using.get(versionId ? `${modelId}:${versionId}` : modelId) ?? 0,
  })
  await app.ready()
  const realm = uniqueRealm('models')
  admin = await seedUser(app, { realm, role: 'admin' })
  viewer = await seedUser(app, { realm, role: 'viewer' })
  other = await seedUser(app, { realm: uniqueRealm('models-other'), role: 'admin' })
  const cred = await app.inject({
    method: 'POST',
    url: '/v1/credentials',
    headers: bearer(admin.accessToken),
    payload: { provider: 'openai', name: 'oa', secrets: { apiKey: providers.keys.openai }, settings: { baseUrl: `${providers.url}/openai` } },
  })
  credentialId = cred.json().id
}, 60_000)
afterAll(async () => {
  await app?.close()
  await providers?.close()
})

const as = (user: SeededUser) => bearer(user.accessToken)
const post = (payload: Record<string, unknown>, user = admin) => app.inject({ method: 'POST', url: '/v1/models', headers: as(user), payload })
const list = async (query: string, user = admin) => (await app.inject({ method: 'GET', url: `/v1/models?${query}`, headers: as(user) })).json()

describe('creating models', () => {
  it('adds a cloud model the provider lists, ready at once, with no versions', async () => {
    const res = await post({ source: 'cloud', name: 'gpt-4o-mini', provider: 'openai', credentialId, uri: 'gpt-4o-mini', tasks: ['text-generation'], modalities: ['text', 'image'], tags: ['chat'], license: 'proprietary' })
    expect(res.statusCode, res.body).toBe(201)
    const model = res.json()
    expect(model).toMatchObject({ source: 'cloud', status: 'ready', provider: 'openai', credentialId, uri: 'gpt-4o-mini', displayName: 'gpt-4o-mini', format: null })
    expect(res.headers.location).toBe(`/v1/models/${model.id}`)
    const versions = (await app.inject({ method: 'GET', url: `/v1/models/${model.id}/versions`, headers: as(viewer) })).json()
    expect(versions).toMatchObject({ items: [], total: 0 })
  })

  it('refuses a cloud model the provider does not list (422), and hub or url sources (400 pointing at the import)', async () => {
    const missing = await post({ source: 'cloud', name: 'gpt-9', provider: 'openai', credentialId, uri: 'gpt-9' })
    expect(missing.statusCode).toBe(422)
    expect(missing.json().errorCode).toBe('MODEL_NOT_FOUND_AT_PROVIDER')
    const hub = await post({ source: 'hub', name: 'from-hub' })
    expect(hub.statusCode).toBe(400)
    expect(hub.json()).toMatchObject({ errorCode: 'MODEL_SOURCE_NEEDS_IMPORT' })
    expect(hub.json().message).toContain('/v1/models/import')
    const incomplete = await post({ source: 'cloud', name: 'half' })
    expect(incomplete.json().details.fields.map((f: { field: string }) => f.field)).toEqual(['body.provider', 'body.credentialId', 'body.uri'])
    const wrongProvider = await post({ source: 'cloud', name: 'x', provider: 'anthropic', credentialId, uri: 'gpt-4o' })
    expect(wrongProvider.statusCode).toBe(400)
    const foreignCredential = await post({ source: 'cloud', name: 'y', provider: 'openai', credentialId, uri: 'gpt-4o' }, other)
    expect(foreignCredential.statusCode).toBe(404)
    expect((await list('limit=100')).items.map((m: { name: string }) => m.name)).toEqual(['gpt-4o-mini'])
  })

  it('adds an upload model as importing; a taken name is 409; a viewer may not (403)', async () => {
    const res = await post({ source: 'upload', name: 'llama-8b', tasks: ['text-generation'], format: 'safetensors', license: 'llama3.1', tags: ['chat', 'open'], description: 'An open chat model' })
    expect(res.statusCode).toBe(201)
    expect(res.json()).toMatchObject({ status: 'importing', defaultVersionId: null })
    expect((await post({ source: 'upload', name: 'llama-8b' })).json().errorCode).toBe('MODEL_NAME_TAKEN')
    expect((await post({ source: 'upload', name: 'by-viewer' }, viewer)).statusCode).toBe(403)
    expect((await post({ source: 'upload', name: 'bad name!' })).statusCode).toBe(400)
  })
})

describe('the catalog', () => {
  beforeAll(async () => {
    await post({ source: 'upload', name: 'bge-small', tasks: ['embedding'], format: 'onnx', license: 'mit', tags: ['open'], description: 'Small embedding model' })
    await post({ source: 'upload', name: 'qwen-gguf', tasks: ['text-generation'], format: 'gguf', license: 'apache-2.0', tags: ['chat', 'quantized'] })
  })

  it('filters by each field, searches name and description, sorts and pages', async () => {
    const names = (page: { items: Array<{ name: string }> }) => page.items.map((m) => m.name)
    expect(names(await list('source=cloud'))).toEqual(['gpt-4o-mini'])
    expect(names(await list('task=embedding'))).toEqual(['bge-small'])
    expect(names(await list('tag=chat&sort=name:asc'))).toEqual(['gpt-4o-mini', 'llama-8b', 'qwen-gguf'])
    expect(names(await list('format=gguf'))).toEqual(['qwen-gguf'])
    expect(names(await list('license=mit'))).toEqual(['bge-small'])
    expect(names(await list('provider=openai'))).toEqual(['gpt-4o-mini'])
    expect(names(await list('modality=image'))).toEqual(['gpt-4o-mini'])
    expect(names(await list('status=importing&sort=name:desc'))).toEqual(['qwen-gguf', 'llama-8b', 'bge-small'])
    expect(names(await list('q=EMBEDDING'))).toEqual(['bge-small'])
    expect(names(await list('q=%25'))).toEqual([])
    const paged = await list('sort=name:asc&limit=2&page=2')
    expect(paged).toMatchObject({ total: 4, totalExact: true, page: 2, limit: 2 })
    expect(names(paged)).toEqual(['llama-8b', 'qwen-gguf'])
    expect((await app.inject({ method: 'GET', url: '/v1/models?format=zip', headers: as(admin) })).statusCode).toBe(400)
    // Another tenant sees none of them.
    expect((await list('', other)).total).toBe(0)
  })

  it('counts facets over the models the other filters select', async () => {
    const all = (await app.inject({ method: 'GET', url: '/v1/models/facets', headers: as(viewer) })).json()
    expect(all.source).toEqual([{ value: 'upload', count: 3 }, { value: 'cloud', count: 1 }])
    expect(all.tag).toEqual([{ value: 'chat', count: 3 }, { value: 'open', count: 2 }, { value: 'quantized', count: 1 }])
    expect(all.format).toEqual([{ value: 'gguf', count: 1 }, { value: 'onnx', count: 1 }, { value: 'safetensors', count: 1 }])
    expect(all.provider).toEqual([{ value: 'openai', count: 1 }])
    expect(all.modality).toEqual([{ value: 'image', count: 1 }, { value: 'text', count: 1 }])
    const chat = (await app.inject({ method: 'GET', url: '/v1/models/facets?tag=chat&source=upload', headers: as(viewer) })).json()
    // The tag facet ignores the tag filter but keeps source=upload; the source facet keeps tag=chat.
    expect(chat.tag).toEqual([{ value: 'chat', count: 2 }, { value: 'open', count: 2 }, { value: 'quantized', count: 1 }])
    expect(chat.source).toEqual([{ value: 'upload', count: 2 }, { value: 'cloud', count: 1 }])
    expect(chat.task).toEqual([{ value: 'text-generation', count: 2 }])
    const foreign = (await app.inject({ method: 'GET', url: '/v1/models/facets', headers: as(other) })).json()
    expect(foreign.source).toEqual([])
  })
})

describe('one model', () => {
  const idOf = async (name: string) => ((await list('limit=100')).items as Array<{ id: string; name: string }>).find((m) => m.name === name)!.id

  it('reads and updates with ETag; a stale If-Match is 412; another tenant gets 404', async () => {
    const id = await idOf('llama-8b')
    const read = await app.inject({ method: 'GET', url: `/v1/models/${id}`, headers: as(viewer) })
    const etag = read.headers.etag as string
    const res = await app.inject({ method: 'PATCH', url: `/v1/models/${id}`, headers: { ...as(admin), 'if-match': etag }, payload: { displayName: 'Llama 8B', tags: ['chat'], description: null } })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ displayName: 'Llama 8B', tags: ['chat'], description: null })
    const stale = await app.inject({ method: 'PATCH', url: `/v1/models/${id}`, headers: { ...as(admin), 'if-match': etag }, payload: { license: 'mit' } })
    expect(stale.statusCode).toBe(412)
    expect((await app.inject({ method: 'PATCH', url: `/v1/models/${id}`, headers: as(admin), payload: {} })).statusCode).toBe(400)
    expect((await app.inject({ method: 'PATCH', url: `/v1/models/${id}`, headers: as(viewer), payload: { license: 'mit' } })).statusCode).toBe(403)
    for (const method of ['GET', 'DELETE'] as const) {
      const foreign = await app.inject({ method, url: `/v1/models/${id}`, headers: as(other) })
      expect(foreign.statusCode).toBe(404)
      expect(foreign.json().errorCode).toBe('MODEL_NOT_FOUND')
    }
  })

  it('is not deleted while an endpoint uses it (409), nor its credential; then deleted: 404, name free, credential free', async () => {
    const id = await idOf('gpt-4o-mini')
    using.set(id, 2)
    const busy = await app.inject({ method: 'DELETE', url: `/v1/models/${id}`, headers: as(admin) })
    expect(busy.statusCode).toBe(409)
    expect(busy.json()).toMatchObject({ errorCode: 'MODEL_IN_USE', details: { users: [{ kind: 'endpoints', count: 2 }] } })
    const credentialBusy = await app.inject({ method: 'DELETE', url: `/v1/credentials/${credentialId}`, headers: as(admin) })
    expect(credentialBusy.statusCode).toBe(409)
    expect(credentialBusy.json().errorCode).toBe('CREDENTIAL_IN_USE')
    using.delete(id)
    expect((await app.inject({ method: 'DELETE', url: `/v1/models/${id}`, headers: as(admin) })).statusCode).toBe(204)
    expect((await app.inject({ method: 'GET', url: `/v1/models/${id}`, headers: as(admin) })).statusCode).toBe(404)
    expect((await post({ source: 'cloud', name: 'gpt-4o-mini', provider: 'openai', credentialId, uri: 'gpt-4o-mini' })).statusCode).toBe(201)
    const events = await app.platform.database.db.execute(sql`select topic, payload from outbox_events where tenant_id = ${admin.tenantId} and payload->>'modelId' = ${id}`)
    expect((events.rows as Array<{ topic: string }>).map((e) => e.topic).sort()).toEqual(['model.created', 'model.deleted'])
  })
})

describe('versions', () => {
  let modelId: string
  const files = (tag: string) => [
    { path: 'config.json', size: 2, sha256: null },
    { path: `weights/${tag}.safetensors`, size: 4, sha256: null },
  ]
  async function sealed(label: string): Promise<string> {
    const version = await app.services.models.startVersion(admin.tenantId, modelId, { label, status: 'uploading', createdBy: admin.id, files: files(label) })
    for (const f of files(label)) await app.platform.blob.put(`models/${modelId}/${version.id}/${f.path}`, 'x'.repeat(f.size))
    await app.services.models.sealVersion(version.id)
    return version.id
  }
  const versions = async () => (await app.inject({ method: 'GET', url: `/v1/models/${modelId}/versions`, headers: as(viewer) })).json()

  beforeAll(async () => {
    modelId = (await post({ source: 'upload', name: 'versioned', format: 'safetensors' })).json().id
  })

  it('refuses file paths that could leave the version', async () => {
    for (const path of ['../escape', '/etc/passwd', 'a/../../b', 'a//b', 'C:/x', `${'d/'.repeat(20)}f`, 'white space.bin']) {
      await expect(
        app.services.models.startVersion(admin.tenantId, modelId, { label: 'bad', status: 'uploading', createdBy: admin.id, files: [{ path, size: 1 }] }),
        path,
      ).rejects.toMatchObject({ code: 'VALIDATION_ERROR' })
    }
  })

  it('seals the first version as the default and makes the model ready; lists versions with their manifests', async () => {
    const v1 = await sealed('v1')
    const model = (await app.inject({ method: 'GET', url: `/v1/models/${modelId}`, headers: as(viewer) })).json()
    expect(model).toMatchObject({ status: 'ready', defaultVersionId: v1 })
    const page = await versions()
    expect(page.items).toHaveLength(1)
    expect(page.items[0]).toMatchObject({ id: v1, label: 'v1', status: 'ready', isDefault: true, fileCount: 2, sizeBytes: 6 })
    expect(page.items[0].files.map((f: { path: string }) => f.path)).toEqual(['config.json', 'weights/v1.safetensors'])
  })

  it('promotes a ready version only, and will not delete the default while another remains', async () => {
    const v1 = (await versions()).items[0].id
    const v2 = await sealed('v2')
    const pending = await app.services.models.startVersion(admin.tenantId, modelId, { label: 'v3', status: 'uploading', createdBy: admin.id, files: files('v3') })
    const notReady = await app.inject({ method: 'POST', url: `/v1/models/${modelId}/versions/${pending.id}/promote`, headers: as(admin) })
    expect(notReady.statusCode).toBe(409)
    expect(notReady.json().errorCode).toBe('MODEL_VERSION_NOT_READY')
    const promoted = await app.inject({ method: 'POST', url: `/v1/models/${modelId}/versions/${v2}/promote`, headers: as(admin) })
    expect(promoted.statusCode, promoted.body).toBe(200)
    expect(promoted.json()).toMatchObject({ id: v2, isDefault: true })
    expect((await app.inject({ method: 'GET', url: `/v1/models/${modelId}`, headers: as(viewer) })).json().defaultVersionId).toBe(v2)
    const isDefault = await app.inject({ method: 'DELETE', url: `/v1/models/${modelId}/versions/${v2}`, headers: as(admin) })
    expect(isDefault.statusCode).toBe(409)
    expect(isDefault.json().errorCode).toBe('MODEL_VERSION_IS_DEFAULT')
    expect((await app.inject({ method: 'POST', url: `/v1/models/${modelId}/versions/${v1}/promote`, headers: as(viewer) })).statusCode).toBe(403)
    expect((await app.inject({ method: 'POST', url: `/v1/models/${modelId}/versions/${v1}/promote`, headers: as(other) })).statusCode).toBe(404)
  })

  it('deletes a version no endpoint uses, with its files; 409 while one does', async () => {
    const v1 = (await versions()).items.find((v: { label: string }) => v.label === 'v1').id
    using.set(`${modelId}:${v1}`, 1)
    const busy = await app.inject({ method: 'DELETE', url: `/v1/models/${modelId}/versions/${v1}`, headers: as(admin) })
    expect(busy.statusCode).toBe(409)
    expect(busy.json().errorCode).toBe('MODEL_VERSION_IN_USE')
    using.delete(`${modelId}:${v1}`)
    expect((await app.platform.blob.stat(`models/${modelId}/${v1}/weights/v1.safetensors`))?.size).toBe(4)
    const res = await app.inject({ method: 'DELETE', url: `/v1/models/${modelId}/versions/${v1}`, headers: as(admin) })
    expect(res.statusCode).toBe(204)
    expect(await app.platform.blob.stat(`models/${modelId}/${v1}/weights/v1.safetensors`)).toBeNull()
    expect(await app.platform.blob.stat(`models/${modelId}/${v1}/config.json`)).toBeNull()
    expect((await versions()).items.map((v: { label: string }) => v.label).sort()).toEqual(['v2', 'v3'])
    expect((await app.inject({ method: 'DELETE', url: `/v1/models/${modelId}/versions/${v1}`, headers: as(admin) })).statusCode).toBe(404)
  })
})

describe('cloud models on Azure OpenAI', () => {
  it('name a deployment, read at the resource: a present one is added, a missing or unfinished one is 422', async () => {
    // A tenant of its own, so the catalog counts above stay as they are.
    const owner = await seedUser(app, { realm: uniqueRealm('models-azure'), role: 'admin' })
    const cred = await app.inject({
      method: 'POST',
      url: '/v1/credentials',
      headers: as(owner),
      payload: { provider: 'azure_openai', name: 'az', secrets: { apiKey: providers.keys.azure }, settings: { endpoint: `${providers.url}/azure` } },
    })
    expect(cred.statusCode, cred.body).toBe(201)
    const azure = (uri: string) => post({ source: 'cloud', name: `az-${uri}`, provider: 'azure_openai', credentialId: cred.json().id, uri }, owner)

    const before = providers.calls.length
    const present = await azure('chat-prod')
    expect(present.statusCode, present.body).toBe(201)
    expect(present.json()).toMatchObject({ status: 'ready', provider: 'azure_openai', uri: 'chat-prod' })
    // The deployment was read, not the resource's model list.
    expect(providers.calls.slice(before)).toEqual(['GET /azure/openai/deployments/chat-prod'])

    // gpt-4o is a model the resource lists, but no deployment has that name: it cannot be called.
    const missing = await azure('gpt-4o')
    expect(missing.statusCode).toBe(422)
    expect(missing.json()).toMatchObject({ errorCode: 'MODEL_NOT_FOUND_AT_PROVIDER', details: { providerMessage: expect.stringContaining('deployment for this resource does not exist') } })
    const unfinished = await azure('embed-creating')
    expect(unfinished.statusCode).toBe(422)
    expect(unfinished.json().details.providerMessage).toContain('running')
    expect(JSON.stringify([present.json(), missing.json(), unfinished.json()])).not.toContain(providers.keys.azure)
  })
})
