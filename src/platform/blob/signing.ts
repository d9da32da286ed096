import { createHmac, timingSafeEqual } from 'node:crypto'
import { AppError, ValidationError } from '../errors.js'

export type SignedMethod = 'GET' | 'PUT'

/** S3 caps presigned URLs at seven days; the filesystem adapter keeps the same contract. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 60 * 60

export class InvalidSignatureError extends AppError {
  constructor() {
    super('INVALID_SIGNATURE', 403, 'the signed URL is not valid for this request')
  }
}

export class SignatureExpiredError extends AppError {
  constructor() {
    super('SIGNATURE_EXPIRED', 403, 'the signed URL has expired')
  }
}

/** One part of a multipart upload, which a part URL is bound to. */
export interface SignedPart {
  uploadId: string
  partNumber: number
}

/**
 * Method, key and expiry are all bound: a URL cannot be reused for another object, verb or time.
 * A part URL binds its upload and part number too; its text has two more lines than an object
 * URL's (a key holds no newline), so neither kind of URL can pass for the other.
 */
export function signBlobRequest(
  signingKey: Buffer,
  method: SignedMethod,
  key: string,
  expires: number,
  part?: SignedPart,
): string {
  const text = `${method}\n${key}\n${expires}${part ? `\n${part.uploadId}\n${part.partNumber}` : ''}`
  return createHmac('sha256', signingKey).update(text).digest('base64url')
}

export function assertValidExpiry(expiresInSeconds: number): void {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_PRESIGN_SECONDS) {
    throw new ValidationError(`a signed URL lives 1 to ${MAX_PRESIGN_SECONDS} seconds`, [
      { field: 'expiresInSeconds', message: 'out of range' },
    ])
  }
}

export interface PresignRequest {
  publicUrl: string
  signingKey: Buffer
  method: SignedMethod
  /** Already validated with assertValidKey: its characters need no escaping. */
  key: string
  expiresInSeconds: number
  /** Milliseconds since the epoch; tests move it to mint URLs that are already expired. */
  now?: number
  /** Set for a part URL (PUT only). */
  part?: SignedPart
}

export function presignBlobUrl(request: PresignRequest): string {
  assertValidExpiry(request.expiresInSeconds)
  const issuedAt = Math.floor((request.now ?? Date.now()) / 1000)
  const expires = issuedAt + request.expiresInSeconds
  const sig = signBlobRequest(request.signingKey, request.method, request.key, expires, request.part)
  const query = new URLSearchParams({ method: request.method, expires: String(expires), sig })
  if (request.part) {
    query.set('uploadId', request.part.uploadId)
    query.set('partNumber', String(request.part.partNumber))
  }
  return `${request.publicUrl.replace(/\/+$/, '')}/v1/blobs/${request.key}?${query.toString()}`
}

export interface SignedRequest {
  method: SignedMethod
  key: string
  expires: number
  sig: string
  part?: SignedPart
}

/**
 * Throws InvalidSignatureError unless sig was made with signingKey for exactly this method, key
 * and expiry, then SignatureExpiredError if it is past its time. The signature is checked first
 * so that an expiry answer is only ever given about a URL this service really issued.
 */
export function verifyBlobRequest(signingKey: Buffer, request: SignedRequest, now = Date.now()): void {
  // Compared as text, not decoded: base64 decoding forgives stray characters, the text does not.
  const expected = Buffer.from(signBlobRequest(signingKey, request.method, request.key, request.expires, request.part))
  const given = Buffer.from(request.sig)
  // timingSafeEqual needs equal lengths; the length of an HMAC is public, so this leaks nothing.
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new InvalidSignatureError()
  if (request.expires * 1000 <= now) throw new SignatureExpiredError()
}
