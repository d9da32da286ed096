import type { Readable } from 'node:stream'

export interface BlobInfo {
  key: string
  size: number
  contentType: string
  /** Unquoted. The MD5 hex of the content, except for S3 multipart uploads ("<hex>-<parts>"). */
  etag: string
  lastModified: Date
}

export interface PutOptions {
  contentType?: string
  /**
   * Known length of a stream body, when the caller has it. Without it the minio client treats the
   * stream as possibly huge and uploads it multipart, holding a part (up to hundreds of MiB) in
   * memory; with it, an object up to the part size (64 MiB) is buffered and sent in one PUT, and a
   * larger one in parts of about size/10000. Ignored by the filesystem store, which always streams.
   */
  size?: number
}

/**
 * Object storage for model artifacts and uploads. S3/MinIO when S3_ENDPOINT is set, a folder under
 * DATA_DIR/objects otherwise. Keys are relative paths of safe characters (see assertValidKey).
 */
export interface BlobStore {
  readonly kind: 'filesystem' | 's3'
  put(key: string, body: Readable | Buffer | string, options?: PutOptions): Promise<BlobInfo>
  /** Throws BlobNotFoundError when the key does not exist. */
  get(key: string): Promise<Readable>
  /** null when the key does not exist. */
  stat(key: string): Promise<BlobInfo | null>
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>
  /** A URL that lets its holder PUT the object until it expires, without credentials. */
  presignPut(key: string, expiresInSeconds: number): Promise<string>
  /** A URL that lets its holder GET the object until it expires, without credentials. */
  presignGet(key: string, expiresInSeconds: number): Promise<string>
  ping(): Promise<void>
  close(): Promise<void>
}
