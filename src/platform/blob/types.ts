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

/** A part of an open multipart upload, as the store holds it. */
export interface StoredPart {
  partNumber: number
  size: number
  /** Unquoted MD5 hex of the part. */
  etag: string
}

/** An open multipart upload, as ListMultipartUploads names it. */
export interface OpenMultipartUpload {
  key: string
  uploadId: string
  initiated: Date
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
  /**
   * `signedAt` (default now) makes the URL a function of its inputs: the same key, lifetime and
   * signing time give the same URL, so desired state that holds one can be applied twice unchanged.
   */
  presignGet(key: string, expiresInSeconds: number, signedAt?: Date): Promise<string>
  ping(): Promise<void>
  close(): Promise<void>

  // Multipart uploads (multipart.ts has the rules both stores keep). A client uploads the parts
  // itself through presignPart URLs; the API only opens, checks, completes and aborts.

  /** Opens a multipart upload of `key`; answers its upload id. */
  createMultipart(key: string, options?: { contentType?: string }): Promise<string>
  /** A URL that lets its holder PUT this one part of this upload until it expires. */
  presignPart(key: string, uploadId: string, partNumber: number, expiresInSeconds: number): Promise<string>
  /**
   * Stores one part from this process (the signed part URLs of the filesystem store land here).
   * `size` is required for a stream on S3, which needs the length up front.
   */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, size?: number): Promise<StoredPart>
  /** The parts stored so far, by part number. Throws MultipartUploadNotFoundError. */
  listParts(key: string, uploadId: string): Promise<StoredPart[]>
  /** Assembles the listed parts into the object; parts not listed are dropped. Throws the errors of multipart.ts. */
  completeMultipart(key: string, uploadId: string, parts: ReadonlyArray<{ partNumber: number; etag: string }>): Promise<BlobInfo>
  /** Drops the upload and its parts; an upload that is not open is not an error. */
  abortMultipart(key: string, uploadId: string): Promise<void>
  /** Every open upload whose key starts with `prefix`, ordered by key then start, paged underneath (`pageSize` at most 1000). */
  listMultipartUploads(prefix: string, options?: { pageSize?: number }): AsyncIterable<OpenMultipartUpload>
}
