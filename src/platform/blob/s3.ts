import http from 'node:http'
import https from 'node:https'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Client } from 'minio'
import type { Logger } from 'pino'
import { type AppError, ValidationError } from '../errors.js'
import { assertValidKey, BlobNotFoundError } from './keys.js'
import {
  assertPartNumber,
  assertUploadId,
  InvalidPartError,
  InvalidPartOrderError,
  MultipartUploadNotFoundError,
  PartTooSmallError,
  unquoteETag,
} from './multipart.js'
import { assertValidExpiry } from './signing.js'
import type { BlobInfo, BlobStore, OpenMultipartUpload, PutOptions, StoredPart } from './types.js'

export interface S3BlobStoreOptions {
  /** Where the S3 API answers, e.g. http://minio:9000 */
  endpoint: string
  accessKey: string
  secretKey: string
  bucket: string
  /** Also spares presigning the network call minio would otherwise make to look the region up. */
  region: string
  /**
   * Where clients outside the cluster reach the same S3 service (S3_PUBLIC_URL). Signed URLs are
   * signed for this host, since the host is part of the signature; unset, they use `endpoint`.
   */
  publicEndpoint?: string
  log: Logger
}

const DEFAULT_CONTENT_TYPE = 'application/octet-stream'
/** S3 reports a missing object as NoSuchKey on GET and as NotFound on HEAD (which has no body). */
const MISSING_CODES = new Set(['NoSuchKey', 'NotFound'])

/** minio keeps ListParts (which pages correctly) protected; the upload checks need it as it is. */
class S3Client extends Client {
  partsOf(bucket: string, key: string, uploadId: string) {
    return this.listParts(bucket, key, uploadId)
  }
}

/** Signed requests made by hand (ListMultipartUploads, streamed parts) give up after this long without an answer. */
const RAW_TIMEOUT_MS = 60_000
/** A ListMultipartUploads page is 1,000 uploads of a few hundred bytes each. */
const MAX_LISTING_BYTES = 4 * 1024 * 1024

export async function createS3BlobStore(options: S3BlobStoreOptions): Promise<BlobStore> {
  const { bucket, region, log } = options
  const client = new S3Client({
    ...connectionOf(options.endpoint),
    accessKey: options.accessKey,
    secretKey: options.secretKey,
    region,
    pathStyle: true,
  })
  // Signing is local computation (the region is known), so a client for an unreachable public host is fine.
  const signer = options.publicEndpoint
    ? new Client({
        ...connectionOf(options.publicEndpoint),
        accessKey: options.accessKey,
        secretKey: options.secretKey,
        region,
        pathStyle: true,
      })
    : client
  await ensureBucket(client, bucket, region, log)

  async function put(
    key: string,
    body: Readable | Buffer | string,
    putOptions: PutOptions = {},
  ): Promise<BlobInfo> {
    assertValidKey(key)
    const contentType = putOptions.contentType || DEFAULT_CONTENT_TYPE
    await client.putObject(bucket, key, body, putOptions.size, { 'Content-Type': contentType })
    // S3 is the authority on size and time; one HEAD is cheap next to an upload.
    const info = await stat(key)
    if (!info) throw new Error('the object store lost an object right after storing it')
    return info
  }

  async function get(key: string): Promise<Readable> {
    assertValidKey(key)
    try {
      return await client.getObject(bucket, key)
    } catch (err) {
      if (isMissing(err)) throw new BlobNotFoundError(key)
      throw err
    }
  }

  async function stat(key: string): Promise<BlobInfo | null> {
    assertValidKey(key)
    try {
      const item = await client.statObject(bucket, key)
      return {
        key,
        size: item.size,
        contentType: contentTypeOf(item.metaData),
        etag: item.etag,
        lastModified: item.lastModified,
      }
    } catch (err) {
      if (isMissing(err)) return null
      throw err
    }
  }

  async function remove(key: string): Promise<void> {
    assertValidKey(key)
    // S3 answers 204 for a key that is not there, so a missing key needs no special case.
    await client.removeObject(bucket, key)
  }

  async function presignPut(key: string, expiresInSeconds: number): Promise<string> {
    assertValidKey(key)
    assertValidExpiry(expiresInSeconds)
    return signer.presignedPutObject(bucket, key, expiresInSeconds)
  }

  async function presignGet(key: string, expiresInSeconds: number, signedAt?: Date): Promise<string> {
    assertValidKey(key)
    assertValidExpiry(expiresInSeconds)
    return signer.presignedGetObject(bucket, key, expiresInSeconds, {}, signedAt)
  }

  async function ping(): Promise<void> {
    if (!(await client.bucketExists(bucket))) throw new Error(`bucket ${bucket} does not exist`)
  }

  // ---- multipart ---------------------------------------------------------------------------------

  async function createMultipart(key: string, createOptions: { contentType?: string } = {}): Promise<string> {
    assertValidKey(key)
    return client.initiateNewMultipartUpload(bucket, key, { 'Content-Type': createOptions.contentType || DEFAULT_CONTENT_TYPE })
  }

  async function presignPart(key: string, uploadId: string, partNumber: number, expiresInSeconds: number): Promise<string> {
    assertValidKey(key)
    assertUploadId(uploadId)
    assertPartNumber(partNumber)
    assertValidExpiry(expiresInSeconds)
    return signer.presignedUrl('PUT', bucket, key, expiresInSeconds, { partNumber: String(partNumber), uploadId })
  }

  /**
   * Streamed through a part URL signed for the internal endpoint: over plain HTTP minio signs the
   * payload's SHA-256, which would mean holding the whole part in memory first.
   */
  async function uploadPart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, size?: number): Promise<StoredPart> {
    assertValidKey(key)
    assertUploadId(uploadId)
    assertPartNumber(partNumber)
    const length = Buffer.isBuffer(body) ? body.length : size
    if (length === undefined) throw new ValidationError('S3 needs the length of a part before its bytes', [{ field: 'size', message: 'required' }])
    const url = await client.presignedUrl('PUT', bucket, key, 300, { partNumber: String(partNumber), uploadId })
    const answer = await rawRequest(url, 'PUT', { body: Buffer.isBuffer(body) ? Readable.from([body]) : body, length })
    if (answer.status !== 200) throw s3Failure(answer)
    return { partNumber, size: length, etag: unquoteETag(answer.etag ?? '') }
  }

  async function listParts(key: string, uploadId: string): Promise<StoredPart[]> {
    assertValidKey(key)
    assertUploadId(uploadId)
    try {
      const parts = await client.partsOf(bucket, key, uploadId)
      return parts.map((p) => ({ partNumber: p.part, size: p.size, etag: unquoteETag(p.etag) })).sort((a, b) => a.partNumber - b.partNumber)
    } catch (err) {
      throw multipartError(err) ?? err
    }
  }

  async function completeMultipart(key: string, uploadId: string, parts: ReadonlyArray<{ partNumber: number; etag: string }>): Promise<BlobInfo> {
    assertValidKey(key)
    assertUploadId(uploadId)
    if (parts.length === 0) throw new InvalidPartOrderError()
    try {
      await client.completeMultipartUpload(
        bucket,
        key,
        uploadId,
        parts.map((p) => ({ part: p.partNumber, etag: unquoteETag(p.etag) })),
      )
    } catch (err) {
      throw multipartError(err) ?? err
    }
    const info = await stat(key)
    if (!info) throw new Error('the object store lost an object right after assembling it')
    return info
  }

  async function abortMultipart(key: string, uploadId: string): Promise<void> {
    assertValidKey(key)
    assertUploadId(uploadId)
    try {
      await client.abortMultipartUpload(bucket, key, uploadId)
    } catch (err) {
      if (s3CodeOf(err) !== 'NoSuchUpload') throw err
    }
  }

  /**
   * Paged by hand with signed requests: minio's listIncompleteUploads loses its place between pages
   * (its parser reads NextUploadIdMarker under another name, so the next page starts with an empty
   * upload-id marker) and also lists every upload's parts to sum their sizes.
   */
  async function* listMultipartUploads(prefix: string, listOptions: { pageSize?: number } = {}): AsyncIterable<OpenMultipartUpload> {
    const pageSize = Math.max(1, Math.min(1000, Math.floor(listOptions.pageSize ?? 1000)))
    let keyMarker = ''
    let uploadIdMarker = ''
    for (;;) {
      const query: Record<string, string> = { uploads: '', prefix, 'max-uploads': String(pageSize) }
      if (keyMarker) Object.assign(query, { 'key-marker': keyMarker, 'upload-id-marker': uploadIdMarker })
      const url = await client.presignedUrl('GET', bucket, '', 300, query)
      const answer = await rawRequest(url, 'GET')
      if (answer.status !== 200) throw s3Failure(answer)
      const page = parseUploadListing(answer.body)
      yield* page.uploads
      if (!page.truncated || !page.nextKeyMarker) return
      keyMarker = page.nextKeyMarker
      uploadIdMarker = page.nextUploadIdMarker ?? ''
    }
  }

  return {
    kind: 's3',
    put,
    get,
    stat,
    delete: remove,
    presignPut,
    presignGet,
    ping,
    // minio keeps no connections that need closing beyond Node's shared agent.
    close: async () => {},
    createMultipart,
    presignPart,
    uploadPart,
    listParts,
    completeMultipart,
    abortMultipart,
    listMultipartUploads,
  }
}

interface RawAnswer {
  status: number
  etag: string | undefined
  body: string
}

/** One signed request by URL; the answer's body is read up to MAX_LISTING_BYTES. */
async function rawRequest(url: string, method: 'GET' | 'PUT', send?: { body: Readable; length: number }): Promise<RawAnswer> {
  const target = new URL(url)
  const lib = target.protocol === 'https:' ? https : http
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = lib.request(
      target,
      { method, timeout: RAW_TIMEOUT_MS, headers: send ? { 'content-length': String(send.length) } : {} },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_LISTING_BYTES) return void res.destroy(new Error('the object store answered more than expected'))
          chunks.push(chunk)
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, etag: res.headers.etag, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('the object store did not answer in time')))
    req.on('error', reject)
    if (send) pipeline(send.body, req).catch(reject)
    else req.end()
  })
}

const xmlText = (xml: string, tag: string) => {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)
  return m ? xmlUnescape(m[1]!) : undefined
}

function xmlUnescape(value: string): string {
  return value.replace(/&(quot|amp|lt|gt|apos|#\d+|#x[0-9a-f]+);/gi, (whole, name: string) => {
    if (name[0] === '#') return String.fromCodePoint(name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : Number(name.slice(1)))
    return ({ quot: '"', amp: '&', lt: '<', gt: '>', apos: "'" } as Record<string, string>)[name.toLowerCase()] ?? whole
  })
}

/** The fields of a ListMultipartUploadsResult that paging and the sweep use. */
export function parseUploadListing(xml: string): {
  uploads: OpenMultipartUpload[]
  truncated: boolean
  nextKeyMarker: string | undefined
  nextUploadIdMarker: string | undefined
} {
  const uploads = [...xml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)].map(([, inner]) => ({
    key: xmlText(inner!, 'Key') ?? '',
    uploadId: xmlText(inner!, 'UploadId') ?? '',
    initiated: new Date(xmlText(inner!, 'Initiated') ?? 0),
  }))
  return {
    uploads,
    truncated: xmlText(xml, 'IsTruncated') === 'true',
    nextKeyMarker: xmlText(xml, 'NextKeyMarker'),
    nextUploadIdMarker: xmlText(xml, 'NextUploadIdMarker'),
  }
}

/** An S3 error document as an error: the code and message S3 gave, no URL (it carries a signature). */
function s3Failure(answer: RawAnswer): Error {
  const code = xmlText(answer.body, 'Code') ?? `HTTP${answer.status}`
  const failure = multipartError({ code })
  if (failure) return failure
  const err = new Error(`the object store answered ${answer.status} ${code}: ${(xmlText(answer.body, 'Message') ?? '').slice(0, 200)}`)
  return Object.assign(err, { code })
}

/** S3's multipart error codes as the errors both stores throw; undefined for anything else. */
function multipartError(err: unknown): AppError | undefined {
  const code = s3CodeOf(err)
  const partNumber = Number((err as { PartNumber?: unknown } | null)?.PartNumber) || undefined
  if (code === 'NoSuchUpload') return new MultipartUploadNotFoundError()
  if (code === 'InvalidPart') return new InvalidPartError(partNumber)
  if (code === 'InvalidPartOrder') return new InvalidPartOrderError()
  if (code === 'EntityTooSmall') return new PartTooSmallError(partNumber ?? 0, Number((err as { ProposedSize?: unknown }).ProposedSize ?? 0))
  return undefined
}

function connectionOf(endpoint: string): { endPoint: string; port: number; useSSL: boolean } {
  const url = new URL(endpoint)
  const useSSL = url.protocol === 'https:'
  if (!useSSL && url.protocol !== 'http:') throw new Error('S3_ENDPOINT must be an http:// or https:// URL')
  return { endPoint: url.hostname, port: url.port ? Number(url.port) : useSSL ? 443 : 80, useSSL }
}

/** Several replicas may start at once: losing the race to create the bucket is fine. */
async function ensureBucket(client: Client, bucket: string, region: string, log: Logger): Promise<void> {
  if (await client.bucketExists(bucket)) return
  try {
    await client.makeBucket(bucket, region)
    log.info({ bucket, region }, 'object store bucket created')
  } catch (err) {
    if (s3CodeOf(err) === 'BucketAlreadyOwnedByYou') return
    // Servers word a lost race differently (s3rver: BucketAlreadyExists, which on AWS means another
    // account's bucket). Whether we can reach the bucket now is what counts.
    if (await client.bucketExists(bucket).catch(() => false)) return
    throw err
  }
}

/** minio lower-cases the header names it returns as metadata. */
function contentTypeOf(metaData: Record<string, unknown>): string {
  const value = metaData['content-type']
  return typeof value === 'string' && value ? value : DEFAULT_CONTENT_TYPE
}

function isMissing(err: unknown): boolean {
  const code = s3CodeOf(err)
  return code !== undefined && MISSING_CODES.has(code)
}

/** By shape rather than instanceof: minio ships CommonJS and ESM builds, each with its own S3Error. */
function s3CodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
