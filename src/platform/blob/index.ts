import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../../config.js'
import { createFilesystemBlobStore } from './filesystem.js'
import type { BlobStore } from './types.js'

export { assertValidKey, BlobNotFoundError } from './keys.js'
export { InvalidSignatureError, SignatureExpiredError } from './signing.js'
export type { BlobInfo, BlobStore, OpenMultipartUpload, PutOptions, StoredPart } from './types.js'
export {
  InvalidPartError,
  InvalidPartOrderError,
  MAX_PART_BYTES,
  MAX_PART_NUMBER,
  MIN_PART_BYTES,
  MultipartUploadNotFoundError,
  PartTooSmallError,
} from './multipart.js'

export interface BlobStoreOptions {
  /** Set when S3_ENDPOINT is: objects then live in that bucket and S3 signs the URLs. */
  s3?: Config['s3']
  dataDir: string
  /**
   * The filesystem store's folder when it is not DATA_DIR/objects: BLOB_DIR, a volume every
   * replica mounts, so that what one replica stores (a workflow's staged files) the others read.
   */
  dir?: string
  /** Base of the signed URLs in filesystem mode, which this API serves (registerBlobRoutes). */
  publicUrl: string
  signingKey: Buffer
  log: Logger
}

export async function createBlobStore(options: BlobStoreOptions): Promise<BlobStore> {
  if (options.s3) {
    // Loaded only when configured: the S3 client is a large share of start-up time otherwise.
    const { createS3BlobStore } = await import('./s3.js')
    return createS3BlobStore({ ...options.s3, log: options.log })
  }
  return createFilesystemBlobStore({
    root: options.dir ?? join(options.dataDir, 'objects'),
    publicUrl: options.publicUrl,
    signingKey: options.signingKey,
  })
}
