import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMultipartStand } from './s3-multipart.js'

/**
 * The signature check of S3, in front of a local S3 server that has none (s3rver serves any
 * request, signed or not). Every request must carry AWS Signature Version 4, in its Authorization
 * header (what the client library sends) or in its query string (a presigned URL), computed with
 * the gateway's key pair for its region; a presigned URL must also be within its expiry. What
 * passes goes on to the server untouched; what does not is answered 403 with S3's error document,
 * as S3 and MinIO answer it. The payload hash is taken as the request states it (S3 also checks it
 * against the body; the tests here are about who may ask, not about corrupted uploads), except for
 * multipart parts.
 *
 * s3rver lacks most of S3's multipart protocol, so the gateway answers every multipart call itself
 * (test/helpers/s3-multipart.ts says what is modelled) and hands s3rver only the assembled object.
 */
export interface SigV4Gateway {
  url: string
  close(): Promise<void>
}

const ALGORITHM = 'AWS4-HMAC-SHA256'

/** RFC 3986 encoding as SigV4 asks for it: everything but A-Z a-z 0-9 - _ . ~ is escaped. */
function awsEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

function hmac(key: Buffer | string, value: string): Buffer {
  return createHmac('sha256', key).update(value).digest()
}

/** "20261125T101500Z" → epoch milliseconds, or NaN. */
function parseAmzDate(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value)
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : Number.NaN
}

interface Signed {
  credential: string
  signedHeaders: string[]
  signature: string
  amzDate: string
  payloadHash: string
  /** The query parameters that enter the canonical request. */
  query: Array<[string, string]>
  expiresSeconds?: number
}

/** What the request says it was signed with, from its header or its query string. */
function readSignature(req: http.IncomingMessage, url: URL): Signed | string {
  const header = req.headers.authorization
  const query = [...url.searchParams.entries()]
  if (header) {
    const m = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(header)
    if (!m) return 'the Authorization header is not AWS Signature Version 4'
    return {
      credential: m[1]!,
      signedHeaders: m[2]!.split(';'),
      signature: m[3]!,
      amzDate: String(req.headers['x-amz-date'] ?? ''),
      payloadHash: String(req.headers['x-amz-content-sha256'] ?? ''),
      query,
    }
  }
  if (url.searchParams.get('X-Amz-Algorithm') === ALGORITHM) {
    return {
      credential: url.searchParams.get('X-Amz-Credential') ?? '',
      signedHeaders: (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';'),
      signature: url.searchParams.get('X-Amz-Signature') ?? '',
      amzDate: url.searchParams.get('X-Amz-Date') ?? '',
      payloadHash: url.searchParams.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD',
      query: query.filter(([name]) => name !== 'X-Amz-Signature'),
      expiresSeconds: Number(url.searchParams.get('X-Amz-Expires')),
    }
  }
  return 'the request is not signed'
}

function check(req: http.IncomingMessage, keys: { accessKey: string; secretKey: string; region: string }): string | undefined {
  const url = new URL(req.url ?? '/', 'http://gateway')
  const signed = readSignature(req, url)
  if (typeof signed === 'string') return signed
  const [accessKey, day, region, service, terminator] = signed.credential.split('/')
  if (accessKey !== keys.accessKey) return 'unknown access key'
  if (region !== keys.region || service !== 's3' || terminator !== 'aws4_request') return 'wrong credential scope'
  const at = parseAmzDate(signed.amzDate)
  if (Number.isNaN(at) || signed.amzDate.slice(0, 8) !== day) return 'bad request date'
  if (signed.expiresSeconds !== undefined) {
    if (!(signed.expiresSeconds >= 1 && signed.expiresSeconds <= 604_800)) return 'bad expiry'
    if (Date.now() > at + signed.expiresSeconds * 1000) return 'the signed URL has expired'
  }
  if (!signed.signedHeaders.includes('host')) return 'the host header is not signed'

  const path = url.pathname
    .split('/')
    .map((segment) => awsEncode(decodeURIComponent(segment)))
    .join('/')
  const query = signed.query
    .map(([name, value]) => [awsEncode(name), awsEncode(value)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&')
  const headers = signed.signedHeaders
    .map((name) => {
      const value = req.headers[name]
      return `${name}:${(Array.isArray(value) ? value.join(',') : (value ?? '')).trim().replace(/\s+/g, ' ')}\n`
    })
    .join('')
  const canonical = [req.method, path, query, headers, signed.signedHeaders.join(';'), signed.payloadHash].join('\n')
  const scope = `${day}/${region}/s3/aws4_request`
  const toSign = [ALGORITHM, signed.amzDate, scope, sha256(canonical)].join('\n')
  const key = hmac(hmac(hmac(hmac(`AWS4${keys.secretKey}`, day!), region!), 's3'), 'aws4_request')
  const expected = hmac(key, toSign)
  const given = Buffer.from(signed.signature, 'hex')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'the signature does not match'
  return undefined
}

function refuse(res: http.ServerResponse, reason: string): void {
  const code = reason === 'the request is not signed' ? 'AccessDenied' : 'SignatureDoesNotMatch'
  res.writeHead(403, { 'content-type': 'application/xml' })
  res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${reason}</Message></Error>`)
}

export async function startSigV4Gateway(options: {
  upstream: string
  accessKey: string
  secretKey: string
  region: string
}): Promise<SigV4Gateway> {
  const upstream = new URL(options.upstream)
  const multipart = await createMultipartStand({ upstream, owner: options.accessKey })
  const server = http.createServer((req, res) => {
    const problem = check(req, options)
    if (problem) {
      req.resume()
      return refuse(res, problem)
    }
    if (multipart.handle(req, res)) return
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        const headers = { ...answer.headers }
        if ((req.method === 'GET' || req.method === 'HEAD') && headers.etag) {
          const [, bucket = '', ...key] = new URL(req.url ?? '/', 'http://gateway').pathname.split('/')
          try {
            headers.etag = multipart.etagOf(decodeURIComponent(bucket), key.map(decodeURIComponent).join('/'), headers.etag)
          } catch {
            // A path that does not decode names no assembled object: its ETag stays as s3rver gave it.
          }
        }
        res.writeHead(answer.statusCode ?? 502, headers)
        answer.pipe(res)
      },
    )
    forward.on('error', () => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    req.pipe(forward)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
      await multipart.close()
    },
  }
}
