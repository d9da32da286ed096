import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import Fastify, { type FastifyInstance } from 'fastify'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BlobNotFoundError, type BlobStore, createBlobStore } from '../../src/platform/blob/index.js'
import { registerBlobRoutes } from '../../src/platform/blob/routes.js'
import { presignBlobUrl } from '../../src/platform/blob/signing.js'
import { ValidationError } from '../../src/platform/errors.js'
import { registerErrorHandling } from '../../src/platform/http/error-handler.js'
import { type SigV4Gateway, startSigV4Gateway } from '../helpers/s3-gateway.js'
import { waitFor } from '../helpers/wait.js'

const log = pino({ level: 'silent' })
const signingKey = randomBytes(32)

/** What the shared suite needs from each adapter's set-up. */
interface Subject {
  store: BlobStore
  /** The folder the backend keeps its bytes in, to show that refused calls leave it untouched. */
  storageDir: string
}

/** What differs between backends in ways the tests must know about. */
interface Backend {
  /**
   * Whether the backend itself refuses a signed URL that was tampered with. s3rver 3.7.1 does not
   * (it never computes SigV4 signatures and serves even unsigned requests), so the S3 suite runs it
   * behind test/helpers/s3-gateway.ts, which checks them as S3 does.
   */
  verifiesSignatures: boolean
}

/** s3rver ships no type declarations; this is the part of its API the tests use. */
interface S3rverServer {
  run(): Promise<{ port: number }>
  close(): Promise<void>
}
type S3rverConstructor = new (options: {
  address: string
  port: number
  silent: boolean
  directory: string
  vhostBuckets?: boolean
}) => S3rverServer

const INVALID_KEYS: Array<[string, string]> = [
  ['a parent segment', '../x'],
  ['a leading slash', '/abs'],
  ['an empty segment', 'a//b'],
  ['an empty key', ''],
  ['a current-folder segment', 'a/./b'],
  ['a space', 'a b'],
  ['2000 characters', 'k'.repeat(2000)],
]

function md5(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('hex')
}

function uniqueKey(name: string): string {
  return `test/${randomUUID()}/${name}`
}

/** Every file below dir, so that a test can see whether anything was written. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort()
}

/** A stream that yields some bytes and then fails, as an upload cut off half way does. */
function failingStream(): Readable {
  return Readable.from(
    (async function* () {
      yield Buffer.from('the first half of an upload')
      throw new Error('connection reset')
    })(),
  )
}

/** Changes one character of the signature, whichever scheme signed the URL. */
function tamperSignature(url: string): string {
  const parsed = new URL(url)
  const name = parsed.searchParams.has('sig') ? 'sig' : 'X-Amz-Signature'
  const sig = parsed.searchParams.get(name)!
  parsed.searchParams.set(name, (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1))
  return parsed.toString()
}

/**
 * The behaviour every BlobStore owes its callers, whichever backend holds the bytes. Called inside
 * each adapter's describe, whose beforeAll has built the subject by the time the tests run.
 */
function blobStoreContract(subject: () => Subject, backend: Backend) {
  describe('the BlobStore contract', () => {
    let store: BlobStore
    let storageDir: string

    beforeAll(() => {
      ;({ store, storageDir } = subject())
    })

    describe('happy path', () => {
      it('returns the same bytes that were put, from a Buffer, a string or a stream', async () => {
        const bytes = randomBytes(100_000)
        const bodies: Array<[string, Buffer | string | Readable, Buffer]> = [
          ['buffer', bytes, bytes],
          ['string', 'héllo wörld', Buffer.from('héllo wörld')],
          ['stream', Readable.from([bytes.subarray(0, 70_000), bytes.subarray(70_000)]), bytes],
        ]
        for (const [kind, body, expected] of bodies) {
          const key = uniqueKey(`${kind}.bin`)
          // With the size known S3 takes one PUT; without it minio goes multipart, which s3rver lacks.
          const info = await store.put(key, body, { size: expected.length })
          expect(info).toMatchObject({ key, size: expected.length, etag: md5(expected) })
          expect(await buffer(await store.get(key))).toEqual(expected)
        }
      })

      it('reports size, content type, etag and modification time', async () => {
        const key = uniqueKey('model.json')
        const bytes = Buffer.from('{"layers":12}')
        await store.put(key, bytes, { contentType: 'application/json' })

        const info = await store.stat(key)

        expect(info).toMatchObject({
          key,
          size: bytes.length,
          contentType: 'application/json',
          etag: md5(bytes),
        })
        expect(Math.abs(info!.lastModified.getTime() - Date.now())).toBeLessThan(60_000)
      })

      it('labels an object stored without a content type as octet-stream', async () => {
        const key = uniqueKey('untyped')
        await store.put(key, 'x')
        expect((await store.stat(key))?.contentType).toBe('application/octet-stream')
      })

      it('replaces an object that is put again', async () => {
        const key = uniqueKey('weights.bin')
        await store.put(key, 'version one')
        await store.put(key, 'second version', { contentType: 'text/plain' })

        expect((await buffer(await store.get(key))).toString()).toBe('second version')
        expect(await store.stat(key)).toMatchObject({ size: 14, contentType: 'text/plain' })
      })

      it('keeps "a" and "a/b" as two separate objects, as S3 does', async () => {
        const prefix = uniqueKey('dir')
        await store.put(prefix, 'the file')
        await store.put(`${prefix}/child`, 'the child')

        expect((await buffer(await store.get(prefix))).toString()).toBe('the file')
        expect((await buffer(await store.get(`${prefix}/child`))).toString()).toBe('the child')
      })

      it('forgets a deleted object', async () => {
        const key = uniqueKey('gone.bin')
        await store.put(key, 'soon gone')

        await store.delete(key)

        expect(await store.stat(key)).toBeNull()
        await expect(store.get(key)).rejects.toBeInstanceOf(BlobNotFoundError)
      })

      it('answers the readiness check', async () => {
        await expect(store.ping()).resolves.toBeUndefined()
      })
    })

    describe('errors', () => {
      it('stats a missing key as null', async () => {
        expect(await store.stat(uniqueKey('never-written'))).toBeNull()
      })

      it('refuses to get a missing key with BLOB_NOT_FOUND', async () => {
        const error = await store.get(uniqueKey('never-written')).catch((err: unknown) => err)
        expect(error).toBeInstanceOf(BlobNotFoundError)
        expect(error).toMatchObject({ code: 'BLOB_NOT_FOUND', status: 404 })
      })

      it('accepts deleting a key that does not exist', async () => {
        const key = uniqueKey('never-written')
        await store.delete(key)
        expect(await store.stat(key)).toBeNull()
      })

      it('stores nothing when the body stream fails half way', async () => {
        const key = uniqueKey('cut-off.bin')
        await expect(store.put(key, failingStream(), { size: 1000 })).rejects.toThrow('connection reset')
        expect(await store.stat(key)).toBeNull()
      })

      it.each(INVALID_KEYS)('refuses a key with %s without touching storage', async (_why, key) => {
        const before = filesUnder(storageDir)
        const calls = [
          () => store.put(key, 'data'),
          () => store.get(key),
          () => store.stat(key),
          () => store.delete(key),
          () => store.presignGet(key, 60),
          () => store.presignPut(key, 60),
        ]
        for (const call of calls) {
          await expect(call()).rejects.toBeInstanceOf(ValidationError)
        }
        expect(filesUnder(storageDir)).toEqual(before)
      })

      it('refuses signed URLs that would live longer than seven days or not at all', async () => {
        const key = uniqueKey('x')
        await expect(store.presignGet(key, 8 * 24 * 3600)).rejects.toBeInstanceOf(ValidationError)
        await expect(store.presignPut(key, 0)).rejects.toBeInstanceOf(ValidationError)
      })
    })

    describe('signed URLs', () => {
      it('uploads with a signed PUT URL and downloads the same bytes with a signed GET URL', async () => {
        const key = uniqueKey('upload.bin')
        const bytes = randomBytes(50_000)

        const put = await fetch(await store.presignPut(key, 300), {
          method: 'PUT',
          body: bytes,
          headers: { 'content-type': 'application/x-model' },
        })
        expect(put.status).toBe(200)

        const got = await fetch(await store.presignGet(key, 300))
        expect(got.status).toBe(200)
        expect(got.headers.get('content-type')).toBe('application/x-model')
        expect(Buffer.from(await got.arrayBuffer())).toEqual(bytes)
        expect(await store.stat(key)).toMatchObject({ size: bytes.length, etag: md5(bytes) })
      })

      it('signs the same GET URL for the same signing time, and it downloads until it expires', async () => {
        const key = uniqueKey('stable.bin')
        await store.put(key, 'weights')
        const signedAt = new Date(Math.floor(Date.now() / 60_000) * 60_000)
        const first = await store.presignGet(key, 3600, signedAt)
        expect(await store.presignGet(key, 3600, new Date(signedAt))).toBe(first)
        expect(await store.presignGet(key, 3600, new Date(signedAt.getTime() + 60_000))).not.toBe(first)
        const got = await fetch(first)
        expect(got.status).toBe(200)
        expect(await got.text()).toBe('weights')
      })

      it.runIf(backend.verifiesSignatures)('refuses a URL whose signature was altered', async () => {
        const key = uniqueKey('guarded.bin')
        await store.put(key, 'secret weights')

        const got = await fetch(tamperSignature(await store.presignGet(key, 300)))
        expect(got.status).toBe(403)

        const put = await fetch(tamperSignature(await store.presignPut(key, 300)), {
          method: 'PUT',
          body: 'evil',
        })
        expect(put.status).toBe(403)
        expect((await buffer(await store.get(key))).toString()).toBe('secret weights')
      })

      it.runIf(backend.verifiesSignatures)('refuses a URL signed for another key', async () => {
        const signedFor = uniqueKey('public.bin')
        const other = uniqueKey('private.bin')
        await store.put(other, 'not for you')
        const url = await store.presignGet(signedFor, 300)

        const got = await fetch(url.replace(signedFor, other))

        expect(got.status).toBe(403)
      })
    })

    describe('multipart uploads', () => {
      const MiB = 1024 * 1024

      it('assembles parts a client PUT through part URLs, with the ETag S3 gives such an object', async () => {
        const key = uniqueKey('weights.safetensors')
        const uploadId = await store.createMultipart(key, { contentType: 'application/octet-stream' })
        const parts = [randomBytes(5 * MiB), randomBytes(1000)]
        const etags: string[] = []
        for (const [i, part] of parts.entries()) {
          const res = await fetch(await store.presignPart(key, uploadId, i + 1, 60), { method: 'PUT', body: part })
          expect(res.status).toBe(200)
          etags.push(res.headers.get('etag')!.replace(/"/g, ''))
        }
        expect(etags).toEqual(parts.map(md5))
        expect(await store.listParts(key, uploadId)).toEqual([
          { partNumber: 1, size: 5 * MiB, etag: etags[0] },
          { partNumber: 2, size: 1000, etag: etags[1] },
        ])
        const opened = []
        for await (const open of store.listMultipartUploads(key)) opened.push(open.uploadId)
        expect(opened).toEqual([uploadId])

        const info = await store.completeMultipart(key, uploadId, etags.map((etag, i) => ({ partNumber: i + 1, etag })))
        expect(info.size).toBe(5 * MiB + 1000)
        const expectedETag = createHash('md5').update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()))).digest('hex')
        expect(info.etag).toBe(`${expectedETag}-2`)
        expect(md5(await buffer(await store.get(key)))).toBe(md5(Buffer.concat(parts)))
        await expect(store.listParts(key, uploadId)).rejects.toMatchObject({ code: 'MULTIPART_UPLOAD_NOT_FOUND' })
        // A part URL used again after completion stores nothing.
        const replay = await fetch(await store.presignPart(key, uploadId, 2, 60), { method: 'PUT', body: randomBytes(10) })
        expect(replay.status).toBe(404)
        expect((await store.stat(key))?.size).toBe(5 * MiB + 1000)
      })

      it('refuses a wrong ETag, a missing part and a small middle part; the upload stays open to be completed right', async () => {
        const key = uniqueKey('checked.bin')
        const uploadId = await store.createMultipart(key)
        const small = randomBytes(100)
        const part = await store.uploadPart(key, uploadId, 1, small, small.length)
        expect(part).toEqual({ partNumber: 1, size: 100, etag: md5(small) })
        await expect(store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: md5(Buffer.from('x')) }])).rejects.toMatchObject({ code: 'INVALID_PART' })
        await expect(store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: part.etag }, { partNumber: 2, etag: part.etag }])).rejects.toMatchObject({
          code: expect.stringMatching(/^(INVALID_PART|PART_TOO_SMALL)$/),
        })
        await store.uploadPart(key, uploadId, 2, small, small.length)
        await expect(store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: part.etag }, { partNumber: 2, etag: part.etag }])).rejects.toMatchObject({ code: 'PART_TOO_SMALL' })
        await expect(store.completeMultipart(key, uploadId, [{ partNumber: 2, etag: part.etag }, { partNumber: 1, etag: part.etag }])).rejects.toMatchObject({ code: 'INVALID_PART_ORDER' })
        expect((await store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: part.etag }])).size).toBe(100)
      })

      it('aborts: the parts are gone, the upload is no longer listed, a second abort is no error', async () => {
        const prefix = `test/${randomUUID()}/`
        const key = `${prefix}abandoned.bin`
        const uploadId = await store.createMultipart(key)
        await store.uploadPart(key, uploadId, 1, randomBytes(64), 64)
        await store.abortMultipart(key, uploadId)
        await store.abortMultipart(key, uploadId)
        await expect(store.listParts(key, uploadId)).rejects.toMatchObject({ code: 'MULTIPART_UPLOAD_NOT_FOUND' })
        const listed = []
        for await (const open of store.listMultipartUploads(prefix)) listed.push(open)
        expect(listed).toEqual([])
        expect(await store.stat(key)).toBeNull()
        // An id used with another key names no upload.
        const other = await store.createMultipart(`${prefix}other.bin`)
        await expect(store.listParts(key, other)).rejects.toMatchObject({ code: 'MULTIPART_UPLOAD_NOT_FOUND' })
        await store.abortMultipart(`${prefix}other.bin`, other)
      })

      it('lists open uploads under a prefix across pages, by key, and not those of other prefixes', async () => {
        const prefix = `test/${randomUUID()}/`
        const keys = ['a.bin', 'b.bin', 'b.bin', 'deep/c.bin', 'e.bin'].map((k) => `${prefix}${k}`)
        const ids: string[] = []
        for (const key of keys) ids.push(await store.createMultipart(key))
        const elsewhereKey = uniqueKey('x.bin')
        const elsewhere = await store.createMultipart(elsewhereKey)
        const listed = []
        for await (const open of store.listMultipartUploads(prefix, { pageSize: 2 })) listed.push(open)
        expect(listed.map((o) => o.key)).toEqual(keys)
        expect(new Set(listed.map((o) => o.uploadId))).toEqual(new Set(ids))
        expect(listed.every((o) => o.initiated.getTime() > Date.now() - 60_000)).toBe(true)
        for (const [i, key] of keys.entries()) await store.abortMultipart(key, ids[i]!)
        await store.abortMultipart(elsewhereKey, elsewhere)
      })

      it('refuses an expired or tampered part URL', async () => {
        const key = uniqueKey('late.bin')
        const uploadId = await store.createMultipart(key)
        const url = await store.presignPart(key, uploadId, 1, 1)
        await new Promise((resolve) => setTimeout(resolve, 2_100))
        expect((await fetch(url, { method: 'PUT', body: randomBytes(10) })).status).toBe(403)
        const other = new URL(await store.presignPart(key, uploadId, 1, 60))
        other.searchParams.set('partNumber', '2')
        expect((await fetch(other, { method: 'PUT', body: randomBytes(10) })).status).toBe(403)
        expect(await store.listParts(key, uploadId)).toEqual([])
        await store.abortMultipart(key, uploadId)
      })
    })
  })
}

// ---------------------------------------------------------------------------------------------
// Filesystem adapter, its signed URLs served by a real Fastify app on a loopback port.

let fsDataDir: string
let fsApp: FastifyInstance
let fsBaseUrl: string
let fsStore: BlobStore

async function setUpFilesystem(): Promise<Subject> {
  fsDataDir = mkdtempSync(join(tmpdir(), 'modelplane-blob-'))
  // The app must serve before its address is known; a second store over the same folder then
  // signs URLs that point at it.
  const serving = await createBlobStore({ dataDir: fsDataDir, publicUrl: 'http://unused', signingKey, log })
  fsApp = Fastify()
  registerErrorHandling(fsApp)
  await registerBlobRoutes(fsApp, serving, signingKey)
  fsBaseUrl = await fsApp.listen({ port: 0, host: '127.0.0.1' })
  fsStore = await createBlobStore({ dataDir: fsDataDir, publicUrl: fsBaseUrl, signingKey, log })
  expect(fsStore.kind).toBe('filesystem')
  return { store: fsStore, storageDir: join(fsDataDir, 'objects') }
}

async function tearDownFilesystem(): Promise<void> {
  await fsApp?.close()
  if (fsDataDir) rmSync(fsDataDir, { recursive: true, force: true })
}

describe('filesystem blob store', () => {
  let subject: Subject
  beforeAll(async () => {
    subject = await setUpFilesystem()
  })
  afterAll(tearDownFilesystem)

  blobStoreContract(() => subject, { verifiesSignatures: true })

  describe('signed URLs served by the API', () => {
    it('refuses an expired URL with SIGNATURE_EXPIRED', async () => {
      const key = uniqueKey('old.bin')
      await fsStore.put(key, 'x')
      const url = presignBlobUrl({
        publicUrl: fsBaseUrl,
        signingKey,
        method: 'GET',
        key,
        expiresInSeconds: 60,
        now: Date.now() - 3_600_000,
      })

      const response = await fetch(url)

      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ errorCode: 'SIGNATURE_EXPIRED' })
    })

    it('refuses an altered signature with INVALID_SIGNATURE', async () => {
      const key = uniqueKey('x.bin')
      const response = await fetch(tamperSignature(await fsStore.presignGet(key, 60)))
      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ errorCode: 'INVALID_SIGNATURE' })
    })

    it('refuses to upload through a URL signed for download', async () => {
      const key = uniqueKey('read-only.bin')
      const response = await fetch(await fsStore.presignGet(key, 60), { method: 'PUT', body: 'sneaky' })

      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ errorCode: 'INVALID_SIGNATURE' })
      expect(await fsStore.stat(key)).toBeNull()
    })

    it('answers BLOB_NOT_FOUND for a validly signed URL to a missing object', async () => {
      const response = await fetch(await fsStore.presignGet(uniqueKey('absent.bin'), 60))
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ errorCode: 'BLOB_NOT_FOUND' })
    })

    it('answers HEAD with length, type and ETag but no body', async () => {
      const key = uniqueKey('head.txt')
      await fsStore.put(key, 'twelve bytes', { contentType: 'text/plain' })

      const response = await fetch(await fsStore.presignGet(key, 60), { method: 'HEAD' })

      expect(response.status).toBe(200)
      expect(response.headers.get('content-length')).toBe('12')
      expect(response.headers.get('content-type')).toBe('text/plain')
      expect(response.headers.get('etag')).toBe(`"${md5(Buffer.from('twelve bytes'))}"`)
      expect(await response.text()).toBe('')
    })

    it('serves downloads as attachments so a browser never renders uploaded HTML as this origin', async () => {
      const key = uniqueKey('page.html')
      await fsStore.put(key, '<script>alert(1)</script>', { contentType: 'text/html' })

      const response = await fetch(await fsStore.presignGet(key, 60))

      expect(response.headers.get('content-disposition')).toBe('attachment')
      expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    })

    it('stores a JSON upload as raw bytes rather than parsing it', async () => {
      const key = uniqueKey('config.json')
      const body = '{ "not": "reformatted" }'

      const response = await fetch(await fsStore.presignPut(key, 60), {
        method: 'PUT',
        body,
        headers: { 'content-type': 'application/json' },
      })

      expect(await response.json()).toEqual({ key, size: body.length, etag: md5(Buffer.from(body)) })
      expect((await buffer(await fsStore.get(key))).toString()).toBe(body)
    })

    it('refuses an upload declared larger than 5 GiB before reading it', async () => {
      const url = new URL(await fsStore.presignPut(uniqueKey('huge.bin'), 60))
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(url, { method: 'PUT', headers: { 'content-length': String(6 * 1024 ** 3) } })
        req.on('response', async (res) => {
          resolve({ status: res.statusCode ?? 0, body: (await buffer(res)).toString() })
          req.destroy()
        })
        req.on('error', reject)
        req.flushHeaders()
      })

      expect(status).toBe(413)
      expect(JSON.parse(body)).toMatchObject({ errorCode: 'PAYLOAD_TOO_LARGE' })
    })

    it('stores a stream whose length nobody announced', async () => {
      const key = uniqueKey('unsized.bin')
      const bytes = randomBytes(200_000)
      await fsStore.put(key, Readable.from([bytes.subarray(0, 1), bytes.subarray(1)]))
      expect(await buffer(await fsStore.get(key))).toEqual(bytes)
    })

    it('leaves no temp file behind when an upload fails', async () => {
      await expect(fsStore.put(uniqueKey('cut.bin'), failingStream())).rejects.toThrow()
      expect(readdirSync(join(fsDataDir, 'objects', 'tmp'))).toEqual([])
    })
  })
})

// ---------------------------------------------------------------------------------------------
// S3 adapter against a real local S3 server (s3rver): real minio client, real HTTP, real bucket.

let s3Dir: string
let s3Server: S3rverServer | undefined
let s3Gateway: SigV4Gateway | undefined

async function setUpS3(): Promise<Subject> {
  s3Dir = mkdtempSync(join(tmpdir(), 'modelplane-s3rver-'))
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor
  s3Server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir })
  const { port } = await s3Server.run()
  // s3rver checks no signature: S3's check stands in front of it (test/helpers/s3-gateway.ts).
  s3Gateway = await startSigV4Gateway({
    upstream: `http://127.0.0.1:${port}`,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    region: 'us-east-1',
  })
  const store = await createBlobStore({
    s3: {
      endpoint: s3Gateway.url,
      accessKey: 'S3RVER',
      secretKey: 'S3RVER',
      bucket: 'modelplane-test',
      region: 'us-east-1',
    },
    dataDir: s3Dir,
    publicUrl: 'http://unused',
    signingKey,
    log,
  })
  expect(store.kind).toBe('s3')
  return { store, storageDir: s3Dir }
}

async function tearDownS3(): Promise<void> {
  await s3Gateway?.close()
  await s3Server?.close()
  if (s3Dir) rmSync(s3Dir, { recursive: true, force: true })
}

describe('S3 blob store (s3rver behind a SigV4 check)', () => {
  let subject: Subject
  beforeAll(async () => {
    subject = await setUpS3()
  })
  afterAll(tearDownS3)

  blobStoreContract(() => subject, { verifiesSignatures: true })

  it('stands behind a check that refuses unsigned requests and URLs past their expiry', async () => {
    const key = uniqueKey('guarded.bin')
    await subject.store.put(key, 'weights')
    const unsigned = await fetch(`${s3Gateway!.url}/modelplane-test/${key}`)
    expect(unsigned.status).toBe(403)
    expect(await unsigned.text()).toContain('<Code>AccessDenied</Code>')

    // A URL good for a minute serves the object; one good for a second is refused once it lapses
    // (eventually: how soon after signing the first fetch happens depends on the machine's load).
    expect((await fetch(await subject.store.presignGet(key, 60))).status).toBe(200)
    const brief = await subject.store.presignGet(key, 1)
    let refusal = ''
    await waitFor(async () => {
      const response = await fetch(brief)
      refusal = await response.text()
      return response.status === 403
    }, 15_000, 'a one-second URL was still served')
    // Refused as expired (by the check, or by s3rver if the check let it through in its last moment).
    expect(refusal).toMatch(/the signed URL has expired|Request has expired/)
  })
})

describe('S3 signed URLs for clients outside the cluster', () => {
  let server: S3rverServer
  let gateway: SigV4Gateway | undefined
  let dir: string
  afterAll(async () => {
    await gateway?.close()
    await server?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** GET through the signature check with the Host header a client would send to that origin. */
  function getAs(host: string, url: URL): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const target = new URL(gateway!.url)
      const req = httpRequest(
        { host: target.hostname, port: target.port, path: `${url.pathname}${url.search}`, headers: { host } },
        (res) => {
          let body = ''
          res.on('data', (chunk) => {
            body += chunk
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
        },
      )
      req.on('error', reject)
      req.end()
    })
  }

  it('are signed for S3_PUBLIC_URL while the API itself talks to the internal endpoint', async () => {
    dir = mkdtempSync(join(tmpdir(), 'modelplane-s3rver-'))
    const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor
    // Path-style only: a request with the public Host must not be read as a bucket named after it.
    server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, vhostBuckets: false })
    const { port } = await server.run()
    gateway = await startSigV4Gateway({ upstream: `http://127.0.0.1:${port}`, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1' })
    const store = await createBlobStore({
      s3: {
        endpoint: gateway.url,
        publicEndpoint: 'https://files.example.test',
        accessKey: 'S3RVER',
        secretKey: 'S3RVER',
        bucket: 'modelplane-public',
        region: 'us-east-1',
      },
      dataDir: dir,
      publicUrl: 'http://unused',
      signingKey,
      log,
    })
    // The API's own calls go to the internal endpoint, through the signature check.
    await store.put('models/a.bin', Buffer.from('weights'), { contentType: 'application/octet-stream' })
    expect((await store.stat('models/a.bin'))?.size).toBe(7)
    const url = new URL(await store.presignGet('models/a.bin', 60))
    expect(url.origin).toBe('https://files.example.test')
    expect(url.pathname).toBe('/modelplane-public/models/a.bin')
    // The signature covers the public host: S3 behind that name serves it, and the same URL sent
    // with the internal host fails the check (it was not signed for it).
    expect(await getAs('files.example.test', url)).toEqual({ status: 200, body: 'weights' })
    const internal = await getAs(new URL(gateway.url).host, url)
    expect(internal.status).toBe(403)
    expect(internal.body).toContain('the signature does not match')
  })
})
