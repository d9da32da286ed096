import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { Client } from 'minio'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SigV4Gateway, startSigV4Gateway } from '../helpers/s3-gateway.js'

/**
 * S3 multipart uploads through the test S3 (s3rver behind test/helpers/s3-gateway.ts, which answers
 * the multipart calls itself): with the real minio client, and with presigned part URLs as a client
 * outside the cluster uses them. Every request is checked for its SigV4 signature on the way in.
 */

/** s3rver ships no type declarations; this is the part of its API the tests use. */
interface S3rverServer {
  run(): Promise<{ port: number }>
  close(): Promise<void>
}
type S3rverConstructor = new (options: { address: string; port: number; silent: boolean; directory: string }) => S3rverServer

/** minio keeps ListParts protected; the upload sweep and these tests need it as it is. */
class TestClient extends Client {
  partsOf(bucket: string, key: string, uploadId: string) {
    return this.listParts(bucket, key, uploadId)
  }
}

const BUCKET = 'multipart-test'
const MiB = 1024 * 1024

let dir: string
let server: S3rverServer
let gateway: SigV4Gateway
let client: TestClient

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'modelplane-s3rver-mp-'))
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor
  server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir })
  const { port } = await server.run()
  gateway = await startSigV4Gateway({ upstream: `http://127.0.0.1:${port}`, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1' })
  const url = new URL(gateway.url)
  client = new TestClient({
    endPoint: url.hostname,
    port: Number(url.port),
    useSSL: false,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    region: 'us-east-1',
    pathStyle: true,
  })
  await client.makeBucket(BUCKET, 'us-east-1')
})

afterAll(async () => {
  await gateway?.close()
  await server?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

function uniqueKey(name: string): string {
  return `uploads/${randomUUID()}/${name}`
}

function md5(bytes: Buffer): Buffer {
  return createHash('md5').update(bytes).digest()
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** The ETag S3 gives an object assembled from parts: the MD5 of the parts' MD5s, then "-" and their count. */
function multipartETag(parts: Buffer[]): string {
  return `${createHash('md5').update(Buffer.concat(parts.map(md5))).digest('hex')}-${parts.length}`
}

/** A URL for one part of an upload, signed for the client that will PUT it. */
function partUrl(key: string, uploadId: string, partNumber: number, expires = 600, signedAt?: Date): Promise<string> {
  return client.presignedUrl('PUT', BUCKET, key, expires, { partNumber: String(partNumber), uploadId }, signedAt)
}

async function putPart(url: string, body: Buffer): Promise<Response> {
  return fetch(url, { method: 'PUT', body })
}

/** Sends each part through its presigned URL; returns the ETags the store answered, unquoted. */
async function uploadParts(key: string, uploadId: string, parts: Buffer[]): Promise<Array<{ part: number; etag: string }>> {
  const etags: Array<{ part: number; etag: string }> = []
  for (const [index, body] of parts.entries()) {
    const response = await putPart(await partUrl(key, uploadId, index + 1), body)
    expect(response.status).toBe(200)
    etags.push({ part: index + 1, etag: response.headers.get('etag')!.replace(/"/g, '') })
  }
  return etags
}

async function openUploads(prefix: string): Promise<Array<{ key: string; uploadId: string; size: number }>> {
  const found: Array<{ key: string; uploadId: string; size: number }> = []
  for await (const item of client.listIncompleteUploads(BUCKET, prefix, true)) {
    found.push({ key: item.key, uploadId: item.uploadId, size: item.size })
  }
  return found
}

describe('multipart uploads with the minio client', () => {
  it('stores a 70 MiB stream in parts and serves back the same bytes', { timeout: 60_000 }, async () => {
    const key = uniqueKey('weights.safetensors')
    const size = 70 * MiB
    const sent = createHash('sha256')
    // Generated as it is read: one mebibyte at a time, never the whole object.
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < size / MiB; i++) {
          const chunk = randomBytes(MiB)
          sent.update(chunk)
          yield chunk
        }
      })(),
    )

    const result = await client.putObject(BUCKET, key, source, size, { 'Content-Type': 'application/octet-stream' })
    // Above minio's 64 MiB part size, so it went in two parts, and the ETag says so as S3's would.
    expect(result.etag).toMatch(/^[0-9a-f]{32}-2$/)

    const stat = await client.statObject(BUCKET, key)
    expect(stat.size).toBe(size)
    expect(stat.etag).toBe(result.etag)
    expect(stat.metaData['content-type']).toBe('application/octet-stream')
    const received = createHash('sha256')
    for await (const chunk of await client.getObject(BUCKET, key)) received.update(chunk as Buffer)
    expect(received.digest('hex')).toBe(sent.digest('hex'))
    expect(await openUploads(key)).toEqual([])
  })
})

describe('multipart uploads through presigned part URLs', () => {
  it('accepts parts PUT by a plain HTTP client, lists them, and assembles them on completion', async () => {
    const key = uniqueKey('model.gguf')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, { 'Content-Type': 'application/x-gguf' })
    const parts = [randomBytes(5 * MiB), randomBytes(1234)]
    const etags = await uploadParts(key, uploadId, parts)
    expect(etags.map(({ etag }) => etag)).toEqual(parts.map((part) => md5(part).toString('hex')))

    const listed = await client.partsOf(BUCKET, key, uploadId)
    expect(listed.map(({ part, etag, size }) => ({ part, etag, size }))).toEqual([
      { part: 1, etag: etags[0]!.etag, size: 5 * MiB },
      { part: 2, etag: etags[1]!.etag, size: 1234 },
    ])

    const done = await client.completeMultipartUpload(BUCKET, key, uploadId, etags)
    expect(done.etag).toBe(multipartETag(parts))
    expect(sha256(await buffer(await client.getObject(BUCKET, key)))).toBe(sha256(Buffer.concat(parts)))
    const stat = await client.statObject(BUCKET, key)
    expect(stat.metaData['content-type']).toBe('application/x-gguf')
    // Completed: the upload is gone, as are its parts.
    await expect(client.partsOf(BUCKET, key, uploadId)).rejects.toMatchObject({ code: 'NoSuchUpload' })
  })

  it('replaces a part sent again, and assembles only the parts listed', async () => {
    const key = uniqueKey('resent.bin')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, {})
    await uploadParts(key, uploadId, [randomBytes(5 * MiB), randomBytes(10)])
    const [first] = await uploadParts(key, uploadId, [randomBytes(100)])
    expect((await client.partsOf(BUCKET, key, uploadId)).map(({ part, size }) => [part, size])).toEqual([
      [1, 100],
      [2, 10],
    ])
    await client.completeMultipartUpload(BUCKET, key, uploadId, [first!])
    expect((await client.statObject(BUCKET, key)).size).toBe(100)
  })

  it('refuses an expired part URL with 403 and stores nothing from it', async () => {
    const key = uniqueKey('late.bin')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, {})
    // Signed two minutes ago for one minute: lapsed, whatever the machine's load.
    const url = await partUrl(key, uploadId, 1, 60, new Date(Date.now() - 120_000))
    const response = await putPart(url, randomBytes(1024))
    expect(response.status).toBe(403)
    expect(await response.text()).toContain('expired')
    expect(await client.partsOf(BUCKET, key, uploadId)).toEqual([])

    // A part URL whose query was changed (another part number) is refused too.
    const tampered = new URL(await partUrl(key, uploadId, 1))
    tampered.searchParams.set('partNumber', '2')
    expect((await putPart(tampered.toString(), randomBytes(10))).status).toBe(403)
    await client.abortMultipartUpload(BUCKET, key, uploadId)
  })
})

describe('completion checks every part as S3 does', () => {
  it('refuses a part listed with the wrong ETag (InvalidPart) and one never uploaded', async () => {
    const key = uniqueKey('wrong-etag.bin')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, {})
    const part = await client.uploadPart({ bucketName: BUCKET, objectName: key, uploadID: uploadId, partNumber: 1, headers: {} }, randomBytes(64))
    await expect(
      client.completeMultipartUpload(BUCKET, key, uploadId, [{ part: 1, etag: md5(Buffer.from('other bytes')).toString('hex') }]),
    ).rejects.toMatchObject({ code: 'InvalidPart' })
    await expect(
      client.completeMultipartUpload(BUCKET, key, uploadId, [{ part: 1, etag: part.etag }, { part: 2, etag: part.etag }]),
    ).rejects.toMatchObject({ code: 'InvalidPart' })
    // Refused, the upload stays open and can still be completed right.
    await client.completeMultipartUpload(BUCKET, key, uploadId, [{ part: 1, etag: part.etag }])
    expect((await client.statObject(BUCKET, key)).size).toBe(64)
  })

  it('refuses a part below 5 MiB that is not the last (EntityTooSmall)', async () => {
    const key = uniqueKey('small-parts.bin')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, {})
    const etags = await uploadParts(key, uploadId, [randomBytes(5 * MiB - 1), randomBytes(10)])
    await expect(client.completeMultipartUpload(BUCKET, key, uploadId, etags)).rejects.toMatchObject({ code: 'EntityTooSmall' })
    await expect(client.statObject(BUCKET, key)).rejects.toMatchObject({ code: 'NotFound' })
  })

  it('refuses parts listed out of order (InvalidPartOrder)', async () => {
    const key = uniqueKey('order.bin')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, {})
    const etags = await uploadParts(key, uploadId, [randomBytes(5 * MiB), randomBytes(10)])
    await expect(client.completeMultipartUpload(BUCKET, key, uploadId, [...etags].reverse())).rejects.toMatchObject({
      code: 'InvalidPartOrder',
    })
    await expect(client.completeMultipartUpload(BUCKET, key, uploadId, [etags[0]!, etags[0]!])).rejects.toMatchObject({
      code: 'InvalidPartOrder',
    })
  })
})

describe('abandoned uploads', () => {
  it('answers NoSuchUpload for an aborted upload, to every call', async () => {
    const key = uniqueKey('aborted.bin')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, {})
    const etags = await uploadParts(key, uploadId, [randomBytes(100)])
    await client.abortMultipartUpload(BUCKET, key, uploadId)

    await expect(client.partsOf(BUCKET, key, uploadId)).rejects.toMatchObject({ code: 'NoSuchUpload' })
    await expect(client.completeMultipartUpload(BUCKET, key, uploadId, etags)).rejects.toMatchObject({ code: 'NoSuchUpload' })
    await expect(client.abortMultipartUpload(BUCKET, key, uploadId)).rejects.toMatchObject({ code: 'NoSuchUpload' })
    const late = await putPart(await partUrl(key, uploadId, 2), randomBytes(10))
    expect(late.status).toBe(404)
    expect(await late.text()).toContain('<Code>NoSuchUpload</Code>')
    expect(await openUploads(key)).toEqual([])
  })

  it('does not let an upload ID serve another key', async () => {
    const key = uniqueKey('owner.bin')
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, key, {})
    const elsewhere = await putPart(await partUrl(uniqueKey('other.bin'), uploadId, 1), randomBytes(10))
    expect(elsewhere.status).toBe(404)
    expect(await elsewhere.text()).toContain('<Code>NoSuchUpload</Code>')
    await client.abortMultipartUpload(BUCKET, key, uploadId)
  })

  it('lists open uploads with the size of their parts, and pages through them', async () => {
    const prefix = `sweep/${randomUUID()}/`
    const keys = [`${prefix}a.bin`, `${prefix}b.bin`, `${prefix}deep/c.bin`]
    const ids: string[] = []
    for (const key of keys) ids.push(await client.initiateNewMultipartUpload(BUCKET, key, {}))
    await uploadParts(keys[1]!, ids[1]!, [randomBytes(300)])
    const done = await client.initiateNewMultipartUpload(BUCKET, `${prefix}done.bin`, {})
    await client.completeMultipartUpload(BUCKET, `${prefix}done.bin`, done, await uploadParts(`${prefix}done.bin`, done, [randomBytes(5)]))

    expect(await openUploads(prefix)).toEqual([
      { key: keys[0], uploadId: ids[0], size: 0 },
      { key: keys[1], uploadId: ids[1], size: 300 },
      { key: keys[2], uploadId: ids[2], size: 0 },
    ])

    // As a sweep pages: two at a time, from where the last page ended.
    const page = async (query: Record<string, string>) => {
      const url = await client.presignedUrl('GET', BUCKET, '', 60, { uploads: '', prefix, 'max-uploads': '2', ...query })
      const response = await fetch(url)
      expect(response.status).toBe(200)
      return response.text()
    }
    const first = await page({})
    expect(first).toContain('<IsTruncated>true</IsTruncated>')
    expect([...first.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1])).toEqual(keys.slice(0, 2))
    const nextKey = /<NextKeyMarker>([^<]+)</.exec(first)![1]!
    const nextId = /<NextUploadIdMarker>([^<]+)</.exec(first)![1]!
    const second = await page({ 'key-marker': nextKey, 'upload-id-marker': nextId })
    expect(second).toContain('<IsTruncated>false</IsTruncated>')
    expect([...second.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1])).toEqual([keys[2]])

    // With a delimiter, what lies deeper is summed up as a common prefix.
    const shallow = await page({ delimiter: '/', 'max-uploads': '10' })
    expect([...shallow.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1])).toEqual(keys.slice(0, 2))
    expect(shallow).toContain(`<CommonPrefixes><Prefix>${prefix}deep/</Prefix></CommonPrefixes>`)

    for (const [i, key] of keys.entries()) await client.abortMultipartUpload(BUCKET, key, ids[i]!)
    expect(await openUploads(prefix)).toEqual([])
  })

  it('answers NoSuchBucket for uploads into a bucket that does not exist', async () => {
    await expect(client.initiateNewMultipartUpload('no-such-bucket', 'x.bin', {})).rejects.toMatchObject({ code: 'NoSuchBucket' })
  })
})
