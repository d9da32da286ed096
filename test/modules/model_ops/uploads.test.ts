import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buffer } from 'node:stream/consumers'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { ORPHAN_SCAN_ID, UPLOAD_EXPIRY_SWEEP, UPLOAD_ORPHAN_SWEEP } from '../../../src/modules/model_ops/index.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { configJson, modelCard, safetensorsFile, tinyLlamaTensors } from '../../helpers/hub/index.js'
import { type SigV4Gateway, startSigV4Gateway } from '../../helpers/s3-gateway.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'

/**
 * Uploads of a version straight into the object store, on both stores: the client PUTs parts to
 * presigned URLs with fetch (never through the API's own routes), completes, and the workflow
 * reads the bytes back, hashes them and seals the version, or fails it and removes its objects.
 */

const MiB = 1024 * 1024

/** s3rver ships no type declarations; this is the part of its API the tests use. */
interface S3rverServer {
  run(): Promise<{ port: number }>
  close(): Promise<void>
}
type S3rverConstructor = new (options: { address: string; port: number; silent: boolean; directory: string }) => S3rverServer

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

interface UploadFile {
  path: string
  bytes: Buffer
}

/** A small model: config, card, safetensors weights of a few hundred KB, and a 6 MB file that takes two parts. */
function modelFiles(): UploadFile[] {
  return [
    { path: 'config.json', bytes: Buffer.from(configJson({ max_position_embeddings: 4096 })) },
    { path: 'README.md', bytes: Buffer.from(modelCard({ license: 'apache-2.0', pipeline_tag: 'text-generation', tags: ['tiny'] })) },
    {
      path: 'model.safetensors',
      bytes: safetensorsFile([...tinyLlamaTensors(), { name: 'extra.weight', dtype: 'F16', shape: [256, 512] }], { format: 'pt' }),
    },
    { path: 'data/tokenizer.bin', bytes: randomBytes(6 * MiB) },
  ]
}

interface Harness {
  app: FastifyInstance
  /** Part URLs as the API gave them, pointed at where this test's servers listen. */
  reach(url: string): string
}

interface Store {
  name: string
  env(): Record<string, string>
  /** Where the filesystem store's signed URLs are served: the app itself, listening on a loopback port. */
  listen: boolean
  setUp(): Promise<void>
  tearDown(): Promise<void>
}

let s3Dir: string
let s3Server: S3rverServer
let gateway: SigV4Gateway

const STORES: Store[] = [
  { name: 'filesystem store', env: () => ({}), listen: true, setUp: async () => {}, tearDown: async () => {} },
  {
    name: 'S3 (s3rver behind a SigV4 gateway)',
    listen: false,
    env: () => ({ S3_ENDPOINT: gateway.url, S3_ACCESS_KEY: 'S3RVER', S3_SECRET_KEY: 'S3RVER', S3_BUCKET: 'model-uploads', S3_REGION: 'us-east-1' }),
    async setUp() {
      s3Dir = mkdtempSync(join(tmpdir(), 'modelplane-uploads-s3-'))
      const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor
      s3Server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir })
      const { port } = await s3Server.run()
      gateway = await startSigV4Gateway({ upstream: `http://127.0.0.1:${port}`, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1' })
    },
    async tearDown() {
      await gateway?.close()
      await s3Server?.close()
      if (s3Dir) rmSync(s3Dir, { recursive: true, force: true })
    },
  },
]

async function harness(store: Store, env: Record<string, string>): Promise<Harness> {
  const app = await buildApp(
    testConfig({
      MODEL_UPLOAD_PART_BYTES: String(5 * MiB),
      MODEL_UPLOAD_MAX_FILE_BYTES: String(8 * MiB),
      MODEL_UPLOAD_MAX_VERSION_BYTES: String(20 * MiB),
      MODEL_UPLOAD_ORPHAN_AFTER_SECONDS: '1',
      SWEEP_POLL_MS: '60000',
      ...store.env(),
      ...env,
    }),
    { workflows: { hub: uniqueHub('uploads'), tuning: FAST_HUB } },
  )
  await app.ready()
  if (!store.listen) return { app, reach: (url) => url }
  const base = new URL(await app.listen({ port: 0, host: '127.0.0.1' }))
  return {
    app,
    reach(url) {
      const target = new URL(url)
      target.protocol = base.protocol
      target.host = base.host
      return target.toString()
    },
  }
}

for (const store of STORES) {
  describe(`uploads to the ${store.name}`, () => {
    let main: Harness
    /** An app whose uploads expire after three seconds. */
    let brief: Harness
    let admin: SeededUser
    let viewer: SeededUser
    let other: SeededUser

    beforeAll(async () => {
      await store.setUp()
      main = await harness(store, { MODEL_UPLOAD_URL_EXPIRY_SECONDS: '600' })
      brief = await harness(store, { MODEL_UPLOAD_URL_EXPIRY_SECONDS: '3' })
      const realm = uniqueRealm('uploads')
      admin = await seedUser(main.app, { realm, role: 'admin' })
      viewer = await seedUser(main.app, { realm, role: 'viewer' })
      other = await seedUser(main.app, { realm: uniqueRealm('uploads-other'), role: 'admin' })
    }, 60_000)

    afterAll(async () => {
      await main?.app.close()
      await brief?.app.close()
      await store.tearDown()
    })

    const as = (user: SeededUser) => bearer(user.accessToken)

    async function newModel(h = main, user = admin): Promise<string> {
      const res = await h.app.inject({ method: 'POST', url: '/v1/models', headers: as(user), payload: { source: 'upload', name: `up-${randomUUID().slice(0, 8)}` } })
      expect(res.statusCode, res.body).toBe(201)
      return res.json().id
    }

    async function open(modelId: string, files: Array<{ path: string; size: number; sha256: string }>, h = main, user = admin) {
      return h.app.inject({ method: 'POST', url: `/v1/models/${modelId}/versions/uploads`, headers: as(user), payload: { files } })
    }

    const declare = (files: UploadFile[]) => files.map((f) => ({ path: f.path, size: f.bytes.length, sha256: sha256(f.bytes) }))

    type Opened = { id: string; versionId: string; partSize: number; files: Array<{ path: string; parts: Array<{ partNumber: number; size: number; url: string }> }> }

    /** PUTs every part of every file with fetch, as a client would; answers the ETags per file. */
    async function putAll(h: Harness, opened: Opened, files: UploadFile[]) {
      const etags = []
      for (const file of opened.files) {
        const bytes = files.find((f) => f.path === file.path)!.bytes
        const parts = []
        for (const part of file.parts) {
          const start = (part.partNumber - 1) * opened.partSize
          const res = await fetch(h.reach(part.url), { method: 'PUT', body: bytes.subarray(start, start + part.size) })
          expect(res.status, await res.clone().text()).toBe(200)
          parts.push({ partNumber: part.partNumber, etag: res.headers.get('etag')! })
        }
        etags.push({ path: file.path, parts })
      }
      return etags
    }

    const complete = (modelId: string, uploadId: string, files: unknown, h = main) =>
      h.app.inject({ method: 'POST', url: `/v1/models/${modelId}/versions/uploads/${uploadId}/complete`, headers: as(admin), payload: { files } })

    const getUpload = async (modelId: string, uploadId: string, h = main) =>
      (await h.app.inject({ method: 'GET', url: `/v1/models/${modelId}/versions/uploads/${uploadId}`, headers: as(admin) })).json()

    async function settled(modelId: string, uploadId: string, h = main) {
      let upload: { status: string; statusReason: string | null } = { status: 'open', statusReason: null }
      await waitFor(async () => ['completed', 'failed'].includes((upload = await getUpload(modelId, uploadId, h)).status), 30_000, 'the upload did not settle')
      return upload
    }

    const versions = async (modelId: string) =>
      (await main.app.inject({ method: 'GET', url: `/v1/models/${modelId}/versions`, headers: as(admin) })).json().items as Array<{
        id: string
        status: string
        statusReason: string | null
        files: Array<{ path: string; size: number; sha256: string }>
      }>

    async function openUploadsUnder(h: Harness, prefix: string): Promise<string[]> {
      const found: string[] = []
      for await (const upload of h.app.platform.blob.listMultipartUploads(prefix)) found.push(upload.uploadId)
      return found
    }

    describe('happy path', () => {
      it('takes parts PUT straight to the store, verifies the bytes itself, reads the metadata and seals the version', { timeout: 60_000 }, async () => {
        const modelId = await newModel()
        const files = modelFiles()
        const res = await open(modelId, declare(files))
        expect(res.statusCode, res.body).toBe(201)
        const opened = res.json() as Opened & { status: string; expiresAt: string }
        expect(res.headers.location).toBe(`/v1/models/${modelId}/versions/uploads/${opened.id}`)
        expect(opened.status).toBe('open')
        expect(new Date(opened.expiresAt).getTime()).toBeGreaterThan(Date.now() + 500_000)
        const big = opened.files.find((f) => f.path === 'data/tokenizer.bin')!
        expect(big.parts.map((p) => p.size)).toEqual([5 * MiB, 1 * MiB])
        expect((await versions(modelId))[0]).toMatchObject({ id: opened.versionId, status: 'uploading' })

        const etags = await putAll(main, opened, files)
        const done = await complete(modelId, opened.id, etags)
        expect(done.statusCode, done.body).toBe(202)
        expect(done.json()).toMatchObject({ status: 'verifying', workflowId: expect.any(String) })
        expect(await settled(modelId, opened.id)).toMatchObject({ status: 'completed' })

        const [version] = await versions(modelId)
        expect(version).toMatchObject({ id: opened.versionId, status: 'ready', statusReason: null })
        expect(version!.files).toEqual(
          files.map((f) => ({ path: f.path, size: f.bytes.length, sha256: sha256(f.bytes) })).sort((a, b) => (a.path < b.path ? -1 : 1)),
        )
        const stored = await buffer(await main.app.platform.blob.get(`models/${modelId}/${opened.versionId}/data/tokenizer.bin`))
        expect(sha256(stored)).toBe(sha256(files[3]!.bytes))

        const model = (await main.app.inject({ method: 'GET', url: `/v1/models/${modelId}`, headers: as(viewer) })).json()
        expect(model).toMatchObject({
          status: 'ready',
          defaultVersionId: opened.versionId,
          architecture: 'LlamaForCausalLM',
          contextLength: 4096,
          format: 'safetensors',
          license: 'apache-2.0',
          tasks: ['text-generation'],
          parameterCount: 4656 + 256 * 512,
        })
        const events = await main.app.platform.database.db.execute(
          sql`select payload from outbox_events where topic = 'model.version_uploaded' and payload->>'versionId' = ${opened.versionId}`,
        )
        expect(events.rows).toHaveLength(1)

        // A part URL used again after completion stores nothing, and the version's bytes stay as they were.
        const replay = await fetch(main.reach(big.parts[1]!.url), { method: 'PUT', body: randomBytes(1000) })
        expect(replay.status).toBe(404)
        expect((await main.app.platform.blob.stat(`models/${modelId}/${opened.versionId}/data/tokenizer.bin`))?.size).toBe(6 * MiB)
        expect(await openUploadsUnder(main, `models/${modelId}/`)).toEqual([])
      })
    })

    describe('refused', () => {
      it('a missing part, a wrong ETag and a part of the wrong size: 400, the upload stays open and no version is sealed', { timeout: 60_000 }, async () => {
        const modelId = await newModel()
        const files = modelFiles().slice(2)
        const opened = (await open(modelId, declare(files))).json() as Opened
        const weights = opened.files.find((f) => f.path === 'model.safetensors')!
        const big = opened.files.find((f) => f.path === 'data/tokenizer.bin')!
        const bigBytes = files[1]!.bytes

        const w = await fetch(main.reach(weights.parts[0]!.url), { method: 'PUT', body: files[0]!.bytes })
        const first = await fetch(main.reach(big.parts[0]!.url), { method: 'PUT', body: bigBytes.subarray(0, 5 * MiB) })
        const listed = (lastETag: string) => [
          { path: 'model.safetensors', parts: [{ partNumber: 1, etag: w.headers.get('etag')! }] },
          { path: 'data/tokenizer.bin', parts: [{ partNumber: 1, etag: first.headers.get('etag')! }, { partNumber: 2, etag: lastETag }] },
        ]

        const missing = await complete(modelId, opened.id, listed('"0123456789abcdef0123456789abcdef"'))
        expect(missing.statusCode).toBe(400)
        expect(missing.json()).toMatchObject({ errorCode: 'MODEL_UPLOAD_PART_MISSING', details: { path: 'data/tokenizer.bin', partNumber: 2 } })

        // The last part with a byte too many: its ETag is right, its size is not.
        const long = await fetch(main.reach(big.parts[1]!.url), { method: 'PUT', body: Buffer.concat([bigBytes.subarray(5 * MiB), Buffer.from('!')]) })
        const tooLong = await complete(modelId, opened.id, listed(long.headers.get('etag')!))
        expect(tooLong.json()).toMatchObject({ errorCode: 'MODEL_UPLOAD_PART_MISMATCH', details: { reason: 'size', expected: 1 * MiB, stored: 1 * MiB + 1 } })

        // Sent again with the right bytes: the ETag the client kept from the first PUT is no longer the store's.
        const right = await fetch(main.reach(big.parts[1]!.url), { method: 'PUT', body: bigBytes.subarray(5 * MiB) })
        const stale = await complete(modelId, opened.id, listed(long.headers.get('etag')!))
        expect(stale.statusCode).toBe(400)
        expect(stale.json()).toMatchObject({ errorCode: 'MODEL_UPLOAD_PART_MISMATCH', details: { reason: 'etag', partNumber: 2 } })

        const unknownFile = await complete(modelId, opened.id, [...listed(right.headers.get('etag')!), { path: 'other.bin', parts: [{ partNumber: 1, etag: 'abc' }] }])
        expect(unknownFile.json().errorCode).toBe('MODEL_UPLOAD_FILES_MISMATCH')

        expect(await getUpload(modelId, opened.id)).toMatchObject({ status: 'open' })
        expect((await versions(modelId))[0]).toMatchObject({ status: 'uploading' })

        // Then completed right, it goes through.
        expect((await complete(modelId, opened.id, listed(right.headers.get('etag')!))).statusCode).toBe(202)
        expect(await settled(modelId, opened.id)).toMatchObject({ status: 'completed' })
      })

      it('an oversize file, a version too large, a bad path, a model of another source, a viewer, another tenant', async () => {
        const modelId = await newModel()
        const sha = sha256(Buffer.from('x'))
        const oversize = await open(modelId, [{ path: 'huge.bin', size: 8 * MiB + 1, sha256: sha }])
        expect(oversize.statusCode).toBe(400)
        expect(oversize.json()).toMatchObject({ errorCode: 'MODEL_UPLOAD_TOO_LARGE', details: { limit: 8 * MiB, fields: [{ field: 'body.files.0.size' }] } })
        const tooMuch = await open(modelId, [1, 2, 3].map((i) => ({ path: `shard-${i}.bin`, size: 8 * MiB, sha256: sha })))
        expect(tooMuch.json().errorCode).toBe('MODEL_UPLOAD_TOO_LARGE')
        const badPath = await open(modelId, [{ path: '../escape.bin', size: 1, sha256: sha }])
        expect(badPath.statusCode).toBe(400)
        expect(badPath.json().details.fields[0].field).toBe('body.files.0.path')
        expect(await versions(modelId)).toEqual([])

        expect((await open(modelId, [{ path: 'a.bin', size: 1, sha256: sha }], main, viewer)).statusCode).toBe(403)
        expect((await open(modelId, [{ path: 'a.bin', size: 1, sha256: sha }], main, other)).statusCode).toBe(404)
        const opened = (await open(modelId, [{ path: 'a.bin', size: 1, sha256: sha }])).json()
        const foreign = await main.app.inject({ method: 'GET', url: `/v1/models/${modelId}/versions/uploads/${opened.id}`, headers: as(other) })
        expect(foreign.statusCode).toBe(404)
        const foreignAbort = await main.app.inject({ method: 'DELETE', url: `/v1/models/${modelId}/versions/uploads/${opened.id}`, headers: as(other) })
        expect(foreignAbort.statusCode).toBe(404)
        expect(await getUpload(modelId, opened.id)).toMatchObject({ status: 'open' })
      })

      it('an upload aborted: its parts leave the store, its version fails, its URLs store nothing more', async () => {
        const modelId = await newModel()
        const files = modelFiles().slice(0, 1)
        const opened = (await open(modelId, declare(files))).json() as Opened
        await putAll(main, opened, files)
        const aborted = await main.app.inject({ method: 'DELETE', url: `/v1/models/${modelId}/versions/uploads/${opened.id}`, headers: as(admin) })
        expect(aborted.statusCode).toBe(204)
        expect(await getUpload(modelId, opened.id)).toMatchObject({ status: 'aborted' })
        expect((await versions(modelId))[0]).toMatchObject({ status: 'failed', statusReason: expect.stringContaining('MODEL_UPLOAD_ABORTED') })
        expect(await openUploadsUnder(main, `models/${modelId}/`)).toEqual([])
        expect((await fetch(main.reach(opened.files[0]!.parts[0]!.url), { method: 'PUT', body: files[0]!.bytes })).status).toBe(404)
        const again = await complete(modelId, opened.id, [{ path: 'config.json', parts: [{ partNumber: 1, etag: 'abc' }] }])
        expect(again.json()).toMatchObject({ errorCode: 'MODEL_UPLOAD_NOT_OPEN', details: { status: 'aborted' } })
      })

      it('a URL that expired, and a URL changed to another part: 403; a complete after expiry: 410', { timeout: 30_000 }, async () => {
        const modelId = await newModel(brief)
        const files = modelFiles().slice(0, 1)
        const opened = (await open(modelId, declare(files), brief)).json() as Opened
        const url = new URL(brief.reach(opened.files[0]!.parts[0]!.url))
        const otherPart = new URL(url)
        otherPart.searchParams.set('partNumber', '2')
        expect((await fetch(otherPart, { method: 'PUT', body: files[0]!.bytes })).status).toBe(403)
        await new Promise((resolve) => setTimeout(resolve, 3_500))
        const late = await fetch(url, { method: 'PUT', body: files[0]!.bytes })
        expect(late.status).toBe(403)
        const tooLate = await complete(modelId, opened.id, [{ path: 'config.json', parts: [{ partNumber: 1, etag: 'abc' }] }], brief)
        expect(tooLate.statusCode).toBe(410)
        expect(tooLate.json().errorCode).toBe('MODEL_UPLOAD_EXPIRED')
      })
    })

    describe('fresh part URLs', () => {
      const refresh = (modelId: string, uploadId: string, h = main, user = admin, query = '') =>
        h.app.inject({ method: 'POST', url: `/v1/models/${modelId}/versions/uploads/${uploadId}/parts${query}`, headers: as(user) })

      it('an upload that outlives its URLs gets new ones for the parts not yet stored: the old URL is refused, the new one completes it', { timeout: 30_000 }, async () => {
        const modelId = await newModel(brief)
        const files = modelFiles().slice(3)
        const bytes = files[0]!.bytes
        const openedAt = Date.now()
        const opened = (await open(modelId, declare(files), brief)).json() as Opened & { expiresAt: string }
        const [first, second] = opened.files[0]!.parts
        const put = (url: string, partNumber: number) =>
          fetch(brief.reach(url), { method: 'PUT', body: bytes.subarray((partNumber - 1) * opened.partSize, partNumber * opened.partSize) })
        const sent1 = await put(first!.url, 1)
        expect(sent1.status).toBe(200)
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, openedAt + 1_800 - Date.now())))

        const fresh = await refresh(modelId, opened.id, brief)
        expect(fresh.statusCode, fresh.body).toBe(200)
        const renewed = fresh.json() as Opened & { expiresAt: string; status: string }
        expect(renewed.status).toBe('open')
        // Part 1 is in the store: only part 2 has a new URL. The upload now lives as long as it.
        expect(renewed.files[0]!.parts.map((p) => p.partNumber)).toEqual([2])
        expect(Date.parse(renewed.expiresAt)).toBeGreaterThan(Date.parse(opened.expiresAt))
        expect((await getUpload(modelId, opened.id, brief)).expiresAt).toBe(renewed.expiresAt)

        await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(opened.expiresAt) + 200 - Date.now())))
        // (A few bytes: the refusal comes before the body is read, and a large unread body would hold the connection.)
        const stale = await fetch(brief.reach(second!.url), { method: 'PUT', body: 'late' })
        expect(stale.status).toBe(403)
        expect(await stale.text()).toContain('expired')
        const sent2 = await put(renewed.files[0]!.parts[0]!.url, 2)
        expect(sent2.status, await sent2.clone().text()).toBe(200)
        const parts = [
          { partNumber: 1, etag: sent1.headers.get('etag')! },
          { partNumber: 2, etag: sent2.headers.get('etag')! },
        ]
        const done = await complete(modelId, opened.id, [{ path: files[0]!.path, parts }], brief)
        expect(done.statusCode, done.body).toBe(202)
        expect(await settled(modelId, opened.id, brief)).toMatchObject({ status: 'completed' })
      })

      it('all=true mints every part again; only model:manage of the tenant, only while open', { timeout: 30_000 }, async () => {
        const modelId = await newModel()
        const files = modelFiles().slice(3)
        const opened = (await open(modelId, declare(files))).json() as Opened
        const all = await refresh(modelId, opened.id, main, admin, '?all=true')
        expect(all.statusCode, all.body).toBe(200)
        expect((all.json() as Opened).files[0]!.parts.map((p) => p.partNumber)).toEqual([1, 2])
        expect((await refresh(modelId, opened.id, main, viewer)).statusCode).toBe(403)
        const foreign = await refresh(modelId, opened.id, main, other)
        expect(foreign.statusCode).toBe(404)
        expect(foreign.json().errorCode).toBe('MODEL_UPLOAD_NOT_FOUND')
        expect((await refresh(modelId, opened.id, main, admin, '?all=maybe')).statusCode).toBe(400)
        const etags = await putAll(main, opened, files)
        // Every part is stored: nothing left to mint.
        expect((await refresh(modelId, opened.id)).json().files[0].parts).toEqual([])
        expect((await complete(modelId, opened.id, etags)).statusCode).toBe(202)
        const closed = await refresh(modelId, opened.id)
        expect(closed.statusCode).toBe(409)
        expect(closed.json().errorCode).toBe('MODEL_UPLOAD_NOT_OPEN')
      })
    })

    describe('verification', () => {
      it('a declared sha256 the bytes do not have: the version fails with MODEL_UPLOAD_HASH_MISMATCH and its objects are removed', { timeout: 60_000 }, async () => {
        const modelId = await newModel()
        const files = modelFiles().slice(0, 3)
        const declared = declare(files)
        declared[2]!.sha256 = sha256(Buffer.from('other bytes'))
        const opened = (await open(modelId, declared)).json() as Opened
        expect((await complete(modelId, opened.id, await putAll(main, opened, files))).statusCode).toBe(202)
        const upload = await settled(modelId, opened.id)
        expect(upload.status).toBe('failed')
        expect(upload.statusReason).toContain('MODEL_UPLOAD_HASH_MISMATCH')
        expect(upload.statusReason).toContain('model.safetensors')
        const [version] = await versions(modelId)
        expect(version).toMatchObject({ status: 'failed', statusReason: expect.stringContaining('MODEL_UPLOAD_HASH_MISMATCH') })
        for (const file of files) expect(await main.app.platform.blob.stat(`models/${modelId}/${opened.versionId}/${file.path}`)).toBeNull()
        const model = (await main.app.inject({ method: 'GET', url: `/v1/models/${modelId}`, headers: as(admin) })).json()
        expect(model).toMatchObject({ defaultVersionId: null, status: 'importing' })
      })

      it('concurrent completes of one upload make one version', { timeout: 60_000 }, async () => {
        const modelId = await newModel()
        const files = modelFiles().slice(0, 3)
        const opened = (await open(modelId, declare(files))).json() as Opened
        const etags = await putAll(main, opened, files)
        const answers = await Promise.all([1, 2, 3, 4].map(() => complete(modelId, opened.id, etags)))
        expect(answers.map((a) => a.statusCode).sort()).toEqual([202, 409, 409, 409])
        for (const a of answers.filter((x) => x.statusCode === 409)) expect(a.json().errorCode).toBe('MODEL_UPLOAD_NOT_OPEN')
        expect(await settled(modelId, opened.id)).toMatchObject({ status: 'completed' })
        expect((await versions(modelId)).map((v) => v.status)).toEqual(['ready'])
        const runs = await main.app.platform.database.db.execute(sql`select count(*)::int as n from workflow_runs where resource_id = ${opened.versionId}`)
        expect(runs.rows[0]).toEqual({ n: 1 })
      })
    })

    describe('abandoned uploads', () => {
      it('an expired upload is swept: its multipart uploads and objects are gone, its version failed', { timeout: 30_000 }, async () => {
        const modelId = await newModel(brief)
        const files = modelFiles().slice(0, 1)
        const opened = (await open(modelId, declare(files), brief)).json() as Opened
        await putAll(brief, opened, files)
        expect(await openUploadsUnder(brief, `models/${modelId}/`)).toHaveLength(1)
        await new Promise((resolve) => setTimeout(resolve, 3_200))
        expect(await brief.app.platform.sweeps.runNow(UPLOAD_EXPIRY_SWEEP, opened.id)).toBe('ran')
        expect(await getUpload(modelId, opened.id, brief)).toMatchObject({ status: 'expired', statusReason: expect.stringContaining('MODEL_UPLOAD_EXPIRED') })
        expect(await openUploadsUnder(brief, `models/${modelId}/`)).toEqual([])
        expect(await brief.app.platform.blob.stat(`models/${modelId}/${opened.versionId}/config.json`)).toBeNull()
        const version = (await brief.app.inject({ method: 'GET', url: `/v1/models/${modelId}/versions`, headers: as(admin) })).json().items[0]
        expect(version).toMatchObject({ status: 'failed' })
      })

      it('a multipart upload under models/ that no upload knows is aborted; an open upload and an import are left alone', { timeout: 30_000 }, async () => {
        const blob = main.app.platform.blob
        const orphanKey = `models/${randomUUID()}/${randomUUID()}/orphan.bin`
        const orphan = await blob.createMultipart(orphanKey)
        await blob.uploadPart(orphanKey, orphan, 1, randomBytes(100), 100)
        const modelId = await newModel()
        const files = modelFiles().slice(0, 1)
        const opened = (await open(modelId, declare(files))).json() as Opened
        // An import writes through multipart uploads of its own, which no upload owns.
        const importing = await main.app.services.models.startVersion(admin.tenantId, modelId, { label: 'imported', status: 'importing', createdBy: admin.id, files: [{ path: 'big.bin', size: 1 }] })
        const importKey = `models/${modelId}/${importing.id}/big.bin`
        await blob.createMultipart(importKey)
        await new Promise((resolve) => setTimeout(resolve, 1_200))
        await main.app.platform.sweeps.runNow(UPLOAD_ORPHAN_SWEEP, ORPHAN_SCAN_ID)
        expect(await openUploadsUnder(main, orphanKey)).toEqual([])
        expect(await openUploadsUnder(main, `models/${modelId}/${opened.versionId}/`)).toHaveLength(1)
        expect(await openUploadsUnder(main, importKey)).toHaveLength(1)
      })
    })
  })
}
