import { AppError, ValidationError } from '../errors.js'

const MAX_KEY_LENGTH = 1024
const KEY_SHAPE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/

/**
 * Keys are relative paths of safe characters, so that a key can never name a place outside the
 * store, needs no escaping in a URL, and means the same thing to the filesystem and S3 adapters.
 */
export function assertValidKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw invalidKey(`a blob key is 1 to ${MAX_KEY_LENGTH} characters`)
  }
  if (!KEY_SHAPE.test(key)) {
    throw invalidKey('a blob key is segments of letters, digits, ".", "_" or "-" joined by "/"')
  }
  if (key.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw invalidKey('a blob key may not contain "." or ".." segments')
  }
}

function invalidKey(message: string): ValidationError {
  return new ValidationError(message, [{ field: 'key', message }])
}

export class BlobNotFoundError extends AppError {
  constructor(key: string) {
    super('BLOB_NOT_FOUND', 404, 'no blob exists under this key', { key })
  }
}
