import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { Client } from 'minio'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { computeDigests, type HubStandIn, startHubStandIn, tinyModelRepo } from '../../helpers/hub/index.js'
import { type SigV4Gateway, startSigV4Gateway } from '../../helpers/s3-gateway.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'
import { openEventStream } from '../workflow_ops/sse-client.js'

/**
 * Hub imports end to end against the hub stand-in, on the filesystem store and on S3 (s3rver
 * behind the SigV4 gateway): files pinned, fetched in parts, checked, metadata read, version
 * sealed; and what goes wrong on the way — a cut connection, a corrupted byte, a gated repository,
 * a rate limit, a cancel.
 */
const MiB = 1024 * 1024
const BIG = 5 * MiB + 12_345

interface S3rverServer {
  run(): Promise<{ port: number }>
  close(): Promise<void>
}

type Store = 'filesystem' | 's3'

async function startS3(): Promise<{ env: Record<string, string>; list(prefix: string): Promise<string[]>; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'modelplane-import-s3-'))
  const S3rver = createRequire(import.meta.url)('s3rver') as new (o: Record<string, unknown>) => S3rverServer
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir })
  const { port } = await server.run()
  const gateway: SigV4Gateway = await startSigV4Gateway({ upstream: `http://127.0.0.1:${port}`, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1' })
  const url = new URL(gateway.url)
  const client = new Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1', pathStyle: true })
  return {
    env: { S3_ENDPOINT: gateway.url, S3_ACCESS_KEY: 'S3RVER', S3_SECRET_KEY: 'S3RVER', S3_BUCKET: 'modelplane-import', S3_REGION: 'us-east-1' },
    async list(prefix) {
      const keys: string[] = []
      for await (const item of client.listObjectsV2('modelplane-import', prefix, true)) if (item.name) keys.push(item.name)
      return keys
    },
    async close() {
      await gateway.close()
      await server.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The keys the filesystem store holds (it names files by hash; the key is in each sidecar). */
function filesystemKeys(root: string, prefix: string): string[] {
  const keys: string[] = []
  for (const dir of readdirSync(root)) {
    if (dir === 'tmp') continue
    for (const name of readdirSync(join(root, dir))) {
      if (!name.endsWith('.json')) continue
      const key = (JSON.parse(readFileSync(join(root, dir, name), 'utf8')) as { key: string }).key
      if (key.startsWith(prefix)) keys.push(key)
    }
  }
  return keys
}

describe.each<Store>(['filesystem', 's3'])('hub import into the %s store', (store) => {
  let app: FastifyInstance
  let hub: HubStandIn
  let s3: Awaited<ReturnType<typeof startS3>> | undefined
  let admin: SeededUser
  let base: string
  let repoSeq = 0

  beforeAll(async () => {
    hub = await startHubStandIn()
    if (store === 's3') s3 = await startS3()
    app = await buildApp(testConfig({ MODEL_HUB_URL: hub.url, MODEL_IMPORT_PART_MB: '1', LOG_LEVEL: 'silent', ...(s3?.env ?? {}) }), {
      workflows: { hub: uniqueHub('import'), tuning: FAST_HUB },
    })
    base = await app.listen({ port: 0, host: '127.0.0.1' })
    admin = await seedUser(app, { realm: uniqueRealm('import'), role: 'admin' })
  }, 60_000)
  afterAll(async () => {
    await app?.close()
    await hub?.close()
    await s3?.close()
  })

  const as = () => bearer(admin.accessToken)
  const keysUnder = (prefix: string) => (s3 ? s3.list(prefix) : Promise.resolve(filesystemKeys(app.platform.config.blobDir, prefix)))

  /** A repository of the tiny model plus one generated LFS file of several parts. */
  function addRepo(options: { gated?: boolean; big?: number } = {}) {
    const id = `acme/tiny-${store}-${++repoSeq}`
    const spec = tinyModelRepo(id)
    spec.files.push({ path: '0-weights.bin', generated: { size: options.big ?? BIG, seed: repoSeq }, lfs: true })
    if (options.gated) spec.gated = true
    const { commit } = hub.addRepo(spec)
    return { id, commit }
  }

  async function startImport(payload: Record<string, unknown>, headers: Record<string, string> = {}) {
    return app.inject({ method: 'POST', url: '/v1/models/import', headers: { ...as(), ...headers }, payload: { source: 'hub', ...payload } })
  }

  async function finished(workflowId: string): Promise<{ status: string; error: { code: string; message: string } | null; message: string; percent: number }> {
    let run: { status: string; error: { code: string; message: string } | null; message: string; percent: number } | undefined
    await waitFor(
      async () => {
        run = (await app.inject({ method: 'GET', url: `/v1/workflows/${workflowId}`, headers: as() })).json()
        return ['completed', 'failed', 'cancelled'].includes(run!.status)
      },
      60_000,
      'the import did not finish',
    )
    return run!
  }

  const versionsOf = async (modelId: string) => (await app.inject({ method: 'GET', url: `/v1/models/${modelId}/versions`, headers: as() })).json().items

  it('imports a repository pinned to its commit: files checked and stored, metadata read, version sealed, progress streamed', async () => {
    const { id, commit } = addRepo()
    const res = await startImport({ repo: id })
    expect(res.statusCode, res.body).toBe(202)
    const { modelId, versionId, workflowId } = res.json()
    const stream = await openEventStream(`${base}/v1/workflows/${workflowId}/events`, as())
    expect((await finished(workflowId)).status).toBe('completed')
    await waitFor(() => stream.events.some((e) => e.event === 'end'), 10_000, 'the stream did not end')
    stream.abort()

    const model = (await app.inject({ method: 'GET', url: `/v1/models/${modelId}`, headers: as() })).json()
    expect(model).toMatchObject({
      status: 'ready',
      source: 'hub',
      uri: id,
      provider: 'hugging_face',
      defaultVersionId: versionId,
      architecture: 'LlamaForCausalLM',
      parameterCount: 4656,
      format: 'safetensors',
      license: 'apache-2.0',
      tasks: ['text-generation'],
    })
    expect(model.tags).toEqual(expect.arrayContaining(['llama', 'tiny']))
    const [version] = await versionsOf(modelId)
    expect(version).toMatchObject({ id: versionId, status: 'ready', sourceRevision: commit, fileCount: 5 })
    const weights = version.files.find((f: { path: string }) => f.path === '0-weights.bin')
    const expected = await computeDigests({ kind: 'generated', size: BIG, seed: repoSeq })
    expect(weights).toEqual({ path: '0-weights.bin', size: BIG, sha256: expected.sha256 })
    // What is stored is the file itself, whole, and no part object is left beside it.
    const stored = createHash('sha256')
    for await (const chunk of await app.platform.blob.get(`models/${modelId}/${versionId}/0-weights.bin`)) stored.update(chunk as Buffer)
    expect(stored.digest('hex')).toBe(expected.sha256)
    expect((await keysUnder(`models/${modelId}/${versionId}`)).sort()).toEqual(
      ['0-weights.bin', 'README.md', 'config.json', 'model.safetensors', 'tokenizer.json'].map((p) => `models/${modelId}/${versionId}/${p}`).sort(),
    )
    // Every file was fetched at the pinned commit; progress went by bytes, in order, to 100.
    expect(hub.stats.requests.filter((r) => r.url.includes(`/${id}/resolve/`)).every((r) => r.url.includes(`/resolve/${commit}/`))).toBe(true)
    const progress = stream.events
      .filter((e) => e.event === 'progress')
      .map((e) => JSON.parse(e.data) as { percent: number; message: string; bytesDone: number | null; bytesTotal: number | null })
    expect(progress.some((p) => /downloading 0-weights\.bin: \d+ of \d+ bytes/.test(p.message))).toBe(true)
    // Bytes as fields a dashboard can draw a bar from: of the whole version, never going back.
    const byBytes = progress.filter((p) => p.bytesTotal !== null)
    expect(byBytes.length).toBeGreaterThan(0)
    const totalBytes = version.files.reduce((n: number, f: { size: number }) => n + f.size, 0)
    expect(new Set(byBytes.map((p) => p.bytesTotal))).toEqual(new Set([totalBytes]))
    const done = byBytes.map((p) => p.bytesDone!)
    expect(done).toEqual([...done].sort((a, b) => a - b))
    const percents = progress.map((p) => p.percent)
    expect(percents).toEqual([...percents].sort((a, b) => a - b))
    expect(JSON.parse(stream.events.at(-1)!.data)).toMatchObject({ status: 'completed', percent: 100 })
  })

  it('resumes a cut connection with Range, fetching little more than the file', async () => {
    const { id } = addRepo()
    hub.failures.dropAfterBytes('0-weights.bin', 300_000, 2)
    const before = hub.stats.bytesServed('0-weights.bin')
    const { workflowId } = (await startImport({ repo: id })).json()
    expect((await finished(workflowId)).status).toBe('completed')
    expect(hub.stats.bytesServed('0-weights.bin') - before).toBeLessThan(1.3 * BIG)
    expect(hub.stats.requests.some((r) => r.url.includes(`/${id}/resolve/`) && r.range !== undefined && !r.range.startsWith('bytes=0-'))).toBe(true)
  })

  it('fetches a file again when a byte arrives corrupted, and completes', async () => {
    const { id } = addRepo()
    hub.failures.corruptByte('config.json', 10, 1)
    hub.failures.corruptByte('0-weights.bin', 2 * MiB + 7, 1)
    const { modelId, workflowId } = (await startImport({ repo: id })).json()
    expect((await finished(workflowId)).status).toBe('completed')
    const fetches = hub.stats.requests.filter((r) => r.url.endsWith(`/${id}/resolve/${r.url.split('/resolve/')[1]?.split('/')[0]}/config.json`))
    expect(fetches.length).toBe(2)
    const [version] = await versionsOf(modelId)
    const config = version.files.find((f: { path: string }) => f.path === 'config.json')
    const stored = createHash('sha256')
    for await (const chunk of await app.platform.blob.get(`models/${modelId}/${version.id}/config.json`)) stored.update(chunk as Buffer)
    expect(config.sha256).toBe(stored.digest('hex'))
  })

  it('fails a gated repository without a credential with HUB_UNAUTHORIZED, and imports it with one whose token is never shown', async () => {
    const { id } = addRepo({ gated: true })
    const refused = (await startImport({ repo: id })).json()
    const run = await finished(refused.workflowId)
    expect(run.status).toBe('failed')
    expect(run.error?.code).toBe('HUB_UNAUTHORIZED')
    const model = (await app.inject({ method: 'GET', url: `/v1/models/${refused.modelId}`, headers: as() })).json()
    expect(model.status).toBe('failed')
    expect(model.statusReason).toContain('HUB_UNAUTHORIZED')

    const cred = await app.inject({
      method: 'POST',
      url: '/v1/credentials?verify=false',
      headers: as(),
      payload: { provider: 'hugging_face', name: `hf-${store}`, secrets: { token: hub.tokens.valid } },
    })
    expect(cred.statusCode, cred.body).toBe(201)
    const started = await startImport({ repo: id, name: `gated-${store}`, credentialId: cred.json().id })
    expect(started.body).not.toContain(hub.tokens.valid)
    expect((await finished(started.json().workflowId)).status).toBe('completed')
    const record = await app.inject({ method: 'GET', url: `/v1/workflows/${started.json().workflowId}`, headers: as() })
    expect(record.body).not.toContain(hub.tokens.valid)
    // The model's events (model.created, model.imported) and the run's carry ids and names, never the token.
    const events = await app.platform.database.db.execute(sql`select topic, payload::text as payload from outbox_events where payload::text like ${`%${started.json().modelId}%`}`)
    const rows = events.rows as Array<{ topic: string; payload: string }>
    expect(rows.map((r) => r.topic).filter((t) => t.startsWith('model.')).sort()).toEqual(['model.created', 'model.imported'])
    for (const row of rows) expect(row.payload).not.toContain(hub.tokens.valid)
  })

  it('waits out a 429 as the hub asks and completes', async () => {
    const { id } = addRepo({ big: 1000 })
    hub.failures.tooManyRequests(2, 1)
    const startedAt = Date.now()
    const { workflowId } = (await startImport({ repo: id })).json()
    expect((await finished(workflowId)).status).toBe('completed')
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1_000)
  })

  it('keeps only the files include/exclude select', async () => {
    const { id } = addRepo()
    const { modelId, workflowId } = (await startImport({ repo: id, include: ['*.json', 'README.md'], exclude: ['tokenizer.*'] })).json()
    expect((await finished(workflowId)).status).toBe('completed')
    const [version] = await versionsOf(modelId)
    expect(version.files.map((f: { path: string }) => f.path)).toEqual(['README.md', 'config.json'])
  })

  it('answers a repeated Idempotency-Key with the first import, and refuses the key for another request', async () => {
    const { id } = addRepo({ big: 1000 })
    const key = `imp-${store}-${Date.now()}`
    const first = await startImport({ repo: id, name: `idem-${store}` }, { 'idempotency-key': key })
    const again = await startImport({ repo: id, name: `idem-${store}` }, { 'idempotency-key': key })
    expect(again.statusCode).toBe(202)
    expect(again.json()).toEqual(first.json())
    const other = await startImport({ repo: id, name: `idem2-${store}` }, { 'idempotency-key': key })
    expect(other.statusCode).toBe(422)
    expect(other.json().errorCode).toBe('IDEMPOTENCY_KEY_REUSED')
    await finished(first.json().workflowId)
  })

  it('leaves no object under the version when the import is cancelled mid-file', async () => {
    const { id } = addRepo({ big: 40 * MiB })
    const { modelId, versionId, workflowId } = (await startImport({ repo: id })).json()
    // Once a part is stored the hub starts answering 429 for a minute: the run waits, and is cancelled.
    const partsStored = async () => {
      const rows = await app.platform.database.db.execute(sql`select bytes_done from model_version_files where version_id = ${versionId} and path = '0-weights.bin'`)
      return Number((rows.rows[0] as { bytes_done?: string } | undefined)?.bytes_done ?? 0)
    }
    await waitFor(async () => (await partsStored()) > 0, 30_000, 'no part was stored')
    hub.failures.tooManyRequests(1_000, 60)
    try {
      const cancel = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/cancel`, headers: as() })
      expect(cancel.statusCode, cancel.body).toBe(202)
      await waitFor(async () => (await keysUnder(`models/${modelId}/${versionId}`)).length === 0, 20_000, 'objects of the cancelled version remain')
      const open = async () => {
        const uploads = []
        for await (const upload of app.platform.blob.listMultipartUploads(`models/${modelId}/${versionId}/`)) uploads.push(upload)
        return uploads
      }
      await waitFor(async () => (await open()).length === 0, 20_000, 'the multipart upload of the cancelled version is still open')
      await waitFor(async () => (await versionsOf(modelId))[0]?.status === 'failed', 10_000, 'the version was not failed')
      expect((await versionsOf(modelId))[0].statusReason).toContain('CANCELLED')
    } finally {
      hub.failures.tooManyRequests(0, 0)
    }
  })
})
