import type { Readable } from 'node:stream'
import { Client } from 'minio'
import type { Logger } from 'pino'
import { assertValidKey, BlobNotFoundError } from './keys.js'
import { assertValidExpiry } from './signing.js'
import type { BlobInfo, BlobStore, PutOptions } from './types.js'

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

export async function createS3BlobStore(options: S3BlobStoreOptions): Promise<BlobStore> {
  const { bucket, region, log } = options
  const client = new Client({
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

  async function presignGet(key: string, expiresInSeconds: number): Promise<string> {
    assertValidKey(key)
    assertValidExpiry(expiresInSeconds)
    return signer.presignedGetObject(bucket, key, expiresInSeconds)
  }

  async function ping(): Promise<void> {
    if (!(await client.bucketExists(bucket))) throw new Error(`bucket ${bucket} does not exist`)
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
  }
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
