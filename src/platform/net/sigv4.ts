import { createHash, createHmac } from 'node:crypto'

/**
 * AWS Signature Version 4 for one request (the header form), as AWS documents it: a canonical
 * request, a string to sign over its hash, and a key derived from the secret by date, region and
 * service. Small enough to keep here rather than pull in an SDK for one signed GET.
 */
export interface AwsCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

export interface SignableRequest {
  method: string
  url: URL
  /** Headers to send and sign, beside host and x-amz-date which are added. */
  headers?: Record<string, string>
  body?: string
}

const sha256 = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex')
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest()

/** RFC 3986 encoding: encodeURIComponent leaves !'()* alone, SigV4 does not. */
const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

const amzDate = (now: Date) => now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')

/** The headers to send: the given ones plus host, x-amz-date, x-amz-security-token and authorization. */
export function signV4(
  request: SignableRequest,
  credentials: AwsCredentials,
  scope: { region: string; service: string },
  now: Date = new Date(),
): Record<string, string> {
  const date = amzDate(now)
  const day = date.slice(0, 8)
  const headers: Record<string, string> = { ...request.headers, host: request.url.host, 'x-amz-date': date }
  if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken
  const lower = Object.entries(headers)
    .map(([k, v]) => [k.toLowerCase(), v.trim().replace(/\s+/g, ' ')] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const signedHeaders = lower.map(([k]) => k).join(';')
  const path = request.url.pathname.split('/').map((segment) => encode(decodeURIComponent(segment))).join('/') || '/'
  const query = [...request.url.searchParams.entries()]
    .map(([k, v]) => [encode(k), encode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak === bk ? (av < bv ? -1 : 1) : ak < bk ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const canonical = [
    request.method.toUpperCase(),
    path,
    query,
    lower.map(([k, v]) => `${k}:${v}\n`).join(''),
    signedHeaders,
    headers['x-amz-content-sha256'] ?? sha256(request.body ?? ''),
  ].join('\n')
  const credentialScope = `${day}/${scope.region}/${scope.service}/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', date, credentialScope, sha256(canonical)].join('\n')
  let key: Buffer = hmac(`AWS4${credentials.secretAccessKey}`, day)
  for (const part of [scope.region, scope.service, 'aws4_request']) key = hmac(key, part)
  const signature = createHmac('sha256', key).update(toSign, 'utf8').digest('hex')
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${credentialScope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  }
}
