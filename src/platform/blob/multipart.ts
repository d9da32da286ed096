import { createHash } from 'node:crypto'
import { AppError, ValidationError } from '../errors.js'

/**
 * The rules of S3's multipart protocol that both stores keep, so that a client (and the code that
 * checks what a client sent) meets the same answers whichever store runs: part numbers 1–10,000,
 * every part but the last at least 5 MiB, a part at most 5 GiB, parts completed in ascending order
 * with the ETag each PUT answered.
 */
export const MIN_PART_BYTES = 5 * 1024 * 1024
export const MAX_PART_BYTES = 5 * 1024 ** 3
export const MAX_PART_NUMBER = 10_000

/** What our filesystem store issues (32 random bytes, base64url); S3's are longer and of other characters. */
const UPLOAD_ID_SHAPE = /^[A-Za-z0-9._~=+/-]{1,1024}$/

export class MultipartUploadNotFoundError extends AppError {
  constructor() {
    super('MULTIPART_UPLOAD_NOT_FOUND', 404, 'no multipart upload is open under this id: it was completed, aborted, or never existed')
  }
}

export class InvalidPartError extends AppError {
  constructor(partNumber?: number) {
    const which = partNumber ? `part ${partNumber}` : 'a listed part'
    super('INVALID_PART', 400, `${which} was not uploaded, or its ETag is not the one the store answered`, partNumber ? { partNumber } : {})
  }
}

export class InvalidPartOrderError extends AppError {
  constructor() {
    super('INVALID_PART_ORDER', 400, 'parts are listed once each, in ascending order of part number')
  }
}

export class PartTooSmallError extends AppError {
  constructor(partNumber: number, size: number) {
    super('PART_TOO_SMALL', 400, `part ${partNumber} is ${size} bytes: every part but the last is at least ${MIN_PART_BYTES}`, {
      partNumber,
      size,
      minimum: MIN_PART_BYTES,
    })
  }
}

export function assertPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw new ValidationError(`a part number is 1 to ${MAX_PART_NUMBER}`, [{ field: 'partNumber', message: 'out of range' }])
  }
}

export function assertUploadId(uploadId: unknown): asserts uploadId is string {
  if (typeof uploadId !== 'string' || !UPLOAD_ID_SHAPE.test(uploadId)) {
    throw new ValidationError('a multipart upload id is 1 to 1024 URL-safe characters', [{ field: 'uploadId', message: 'malformed' }])
  }
}

/** An ETag as S3 quotes it or as we store it: compared unquoted. */
export const unquoteETag = (etag: string) => etag.replace(/^W\//, '').replace(/^"|"$/g, '')

/** S3's ETag of an object assembled from parts: the MD5 of the parts' binary MD5s, "-", their count. */
export function multipartETag(partETags: string[]): string {
  const md5 = createHash('md5')
  for (const etag of partETags) md5.update(Buffer.from(unquoteETag(etag), 'hex'))
  return `${md5.digest('hex')}-${partETags.length}`
}

/** The order and presence checks of CompleteMultipartUpload, against the parts the store holds. */
export function checkCompletion(
  listed: ReadonlyArray<{ partNumber: number; etag: string }>,
  held: ReadonlyMap<number, { size: number; etag: string }>,
): void {
  if (listed.length === 0) throw new InvalidPartOrderError()
  // The order first, as S3 checks it, then each part.
  listed.forEach((part, i) => {
    if (i > 0 && part.partNumber <= listed[i - 1]!.partNumber) throw new InvalidPartOrderError()
  })
  listed.forEach((part, i) => {
    const stored = held.get(part.partNumber)
    if (!stored || stored.etag !== unquoteETag(part.etag)) throw new InvalidPartError(part.partNumber)
    if (i < listed.length - 1 && stored.size < MIN_PART_BYTES) throw new PartTooSmallError(part.partNumber, stored.size)
  })
}
