import { createHash, type Hash } from 'node:crypto'
import { Readable } from 'node:stream'
import { type BlobStore, MAX_PART_NUMBER, MIN_PART_BYTES, MultipartUploadNotFoundError } from '../../platform/blob/index.js'
import { WorkflowStepError } from '../workflow_ops/index.js'
import { HubErrorCode, HubRateLimited } from './hub.js'

/**
 * Copies one file of a hub or url import into the blob store, resumably and without holding it in memory.
 *
 * The file is fetched in `Range` requests of `partBytes`, streamed straight into the store. A file
 * up to one store part goes in one put; a larger one into ONE multipart upload of the store, each
 * store part a run of consecutive ranges (as many as make the store's 5 MiB minimum part). A
 * dropped connection asks the hub again from the byte where it stopped, inside the same part
 * body, so the store never sees it. The ledger row keeps the upload id (recorded before the first
 * part, so a cancel or a crash can always abort it), the ETags of the parts stored and the bytes
 * they hold: after a crash the next attempt asks the hub only for the rest.
 *
 * The sha256 (and the git blob SHA-1) is computed on the way while the run lives. A resumed file's
 * hash cannot be rebuilt from an incomplete upload, so a resumed file is assembled and then read
 * back once (a read, never a second write) to be checked.
 *
 * What the hub states is checked: the size, and the sha256 of an LFS file or the git blob SHA-1 of
 * a small one. A mismatch fetches the file again, a bounded number of times, then fails the run
 * with MODEL_IMPORT_VERIFICATION_FAILED.
 */
export const TransferErrorCode = {
  VERIFICATION_FAILED: 'MODEL_IMPORT_VERIFICATION_FAILED',
  CANCELLED: 'MODEL_IMPORT_CANCELLED',
} as const

/** Fetches of a whole file when what arrived does not match what the hub stated. */
export const MAX_FILE_FETCHES = 3
/** Attempts at one piece (a part, or a small file) when the connection drops or the hub stumbles. */
const MAX_PIECE_ATTEMPTS = 4

export interface LedgerFile {
  path: string
  size: number
  lfs: boolean
  sha256: string | null
  gitOid: string | null
  blobKey: string
  bytesDone: number
  /** The open multipart upload of the file, if its transfer started one. */
  multipartUploadId: string | null
  /** ETags of the parts of that upload stored so far, in order. */
  partEtags: string[]
}

/** Where a large file stands in the ledger: what a resumed attempt continues from. */
export interface LedgerProgress {
  bytesDone: number
  multipartUploadId: string | null
  partEtags: string[]
}

export type TransferBlob = Pick<BlobStore, 'put' | 'get' | 'stat' | 'delete' | 'createMultipart' | 'uploadPart' | 'listParts' | 'completeMultipart' | 'abortMultipart'>

export interface TransferTarget {
  blob: TransferBlob
  /** Bytes asked of the hub in one `Range` request. */
  partBytes: number
  /** Bytes `start`..`end` (inclusive) of the file from the hub. */
  fetchRange(start: number, end: number): Promise<Readable>
  /** Records in the ledger where the file stands (whole store parts). */
  record(progress: LedgerProgress): Promise<void>
  /** Progress within the file, for the run record; called often, throttled by the caller. */
  progress(bytesDone: number): void
  /** False once the import was cancelled: the transfer stops and removes what it just wrote. */
  stillWanted(): Promise<boolean>
}

export interface TransferResult {
  sha256: string
  /** Bytes fetched from the hub for this file, retries included. */
  fetched: number
}

type Sums = { sha256: string; gitSha1: string }

/** sha256 and the git blob SHA-1 (`blob {size}\0` + content) in one pass; `copy` keeps a state to go back to. */
/**
 * The sha256 of the file (what the manifest records) and, for a file the hub checks by its git
 * blob id (not an LFS file), that SHA-1 too; an LFS file's is never compared, so never computed
 * (`gitSha1` is then empty).
 */
function digester(size: number, gitBlob: boolean, from?: { sha256: Hash; gitSha1: Hash | null }) {
  const sha256 = from ? from.sha256.copy() : createHash('sha256')
  const gitSha1 = from ? (from.gitSha1?.copy() ?? null) : gitBlob ? createHash('sha1').update(`blob ${size}\0`) : null
  return {
    update(chunk: Buffer) {
      sha256.update(chunk)
      gitSha1?.update(chunk)
    },
    copy: () => digester(size, gitBlob, { sha256, gitSha1 }),
    digest: (): Sums => ({ sha256: sha256.digest('hex'), gitSha1: gitSha1?.digest('hex') ?? '' }),
  }
}
type Digester = ReturnType<typeof digester>

/** What retrying a piece cannot change: a refusal, a rate limit (the workflow waits), a cancel. */
function final(err: unknown): boolean {
  if (err instanceof HubRateLimited) return true
  const code = err instanceof WorkflowStepError ? err.code : undefined
  return code === HubErrorCode.UNAUTHORIZED || code === HubErrorCode.NOT_FOUND || code === TransferErrorCode.CANCELLED
}

/**
 * Bytes of one store part: whole ranges, at least the store's minimum part, few enough parts for
 * the store's limit. Depends only on the file's size and the range size, so a resumed attempt
 * cuts the file the same way.
 */
export function storePartBytes(size: number, partBytes: number): number {
  const ranges = Math.max(Math.ceil(MIN_PART_BYTES / partBytes), Math.ceil(size / (partBytes * MAX_PART_NUMBER)))
  return ranges * partBytes
}

/** Removes what a transfer of the file may have left: its object and its open multipart upload. */
export async function discardFile(blob: Pick<BlobStore, 'delete' | 'abortMultipart'>, file: Pick<LedgerFile, 'blobKey' | 'multipartUploadId'>): Promise<void> {
  if (file.multipartUploadId) await blob.abortMultipart(file.blobKey, file.multipartUploadId)
  await blob.delete(file.blobKey)
}

export async function transferFile(given: LedgerFile, target: TransferTarget): Promise<TransferResult> {
  const file = { ...given, partEtags: [...given.partEtags] }
  const partSize = storePartBytes(file.size, target.partBytes)
  const multipart = file.size > partSize
  let fetched = 0
  /** Set when the bytes come from the hub: a store's complaint about a body it could not read says less. */
  let sourceError: unknown

  /**
   * Bytes start..end of the file, in ranges of partBytes; a range cut short is asked again from
   * where it stopped, so the stream it feeds sees each byte once.
   */
  async function* fetchBytes(start: number, end: number, hash: Digester): AsyncGenerator<Buffer> {
    for (let from = start; from <= end; ) {
      const to = Math.min(end, from + target.partBytes - 1)
      for (let attempt = 1; from <= to; attempt++) {
        try {
          const source = await target.fetchRange(from, to)
          try {
            for await (const raw of source) {
              const chunk = (raw as Buffer).length > to - from + 1 ? (raw as Buffer).subarray(0, to - from + 1) : (raw as Buffer)
              fetched += chunk.length
              hash.update(chunk)
              from += chunk.length
              target.progress(from)
              yield chunk
              if (from > to) break
            }
          } finally {
            source.destroy()
          }
          if (from <= to) throw new WorkflowStepError(HubErrorCode.UNREACHABLE, `the hub's answer ended ${to - from + 1} bytes early`)
        } catch (err) {
          if (final(err) || attempt >= MAX_PIECE_ATTEMPTS) {
            sourceError = err
            throw err
          }
        }
      }
    }
  }

  /** Stores start..end under `store`, retried from `start` when the store or the hub fails it; answers the hash after. */
  async function piece<T>(start: number, end: number, hash: Digester, store: (body: Readable) => Promise<T>): Promise<{ stored: T; hash: Digester }> {
    for (let attempt = 1; ; attempt++) {
      const running = hash.copy()
      sourceError = undefined
      try {
        return { stored: await store(Readable.from(fetchBytes(start, end, running))), hash: running }
      } catch (err) {
        const cause = sourceError ?? err
        if (final(cause) || attempt >= MAX_PIECE_ATTEMPTS) throw cause
      }
    }
  }

  async function cancelled(): Promise<never> {
    await discardFile(target.blob, file)
    await target.record({ bytesDone: 0, multipartUploadId: null, partEtags: [] })
    throw new WorkflowStepError(TransferErrorCode.CANCELLED, 'the import was cancelled')
  }

  /** The whole file into its object in one put. */
  async function single(): Promise<Sums> {
    if (file.size === 0) {
      await target.blob.put(file.blobKey, Buffer.alloc(0), { size: 0 })
      return digester(0, !file.lfs).digest()
    }
    const { stored, hash } = await piece(0, file.size - 1, digester(file.size, !file.lfs), (body) => target.blob.put(file.blobKey, body, { size: file.size }))
    if (stored.size !== file.size) throw new WorkflowStepError(HubErrorCode.ERROR, `stored ${stored.size} bytes of ${file.size}`)
    if (!(await target.stillWanted())) await cancelled()
    return hash.digest()
  }

  /** The file into one multipart upload, continuing the one the ledger names if the store still holds it. */
  async function parts(): Promise<Sums> {
    const count = Math.ceil(file.size / partSize)
    let etags = file.partEtags.slice(0, Math.floor(file.bytesDone / partSize))
    let resumed = false
    if (file.multipartUploadId) {
      const held = await target.blob.listParts(file.blobKey, file.multipartUploadId).catch((err: unknown) => {
        if (err instanceof MultipartUploadNotFoundError) return null
        throw err
      })
      if (held === null && file.bytesDone === file.size && (await target.blob.stat(file.blobKey))?.size === file.size) {
        // Assembled before the crash, not yet marked verified: only the check is left.
        return readBack()
      }
      if (held === null) {
        file.multipartUploadId = null
        etags = []
      } else {
        // Only parts the store still holds as the ledger says count; the rest are fetched again.
        const kept = etags.findIndex((etag, i) => held.find((p) => p.partNumber === i + 1)?.etag !== etag)
        if (kept >= 0) etags = etags.slice(0, kept)
        resumed = etags.length > 0
      }
    }
    if (!file.multipartUploadId) {
      etags = []
      file.multipartUploadId = await target.blob.createMultipart(file.blobKey)
      await target.record({ bytesDone: 0, multipartUploadId: file.multipartUploadId, partEtags: [] })
    }
    const uploadId = file.multipartUploadId
    let hash = digester(file.size, !file.lfs)
    for (let i = etags.length; i < count; i++) {
      const start = i * partSize
      const end = Math.min(file.size, start + partSize) - 1
      const done = await piece(start, end, hash, (body) => target.blob.uploadPart(file.blobKey, uploadId, i + 1, body, end - start + 1))
      if (done.stored.size !== end - start + 1) throw new WorkflowStepError(HubErrorCode.ERROR, `stored ${done.stored.size} bytes of ${end - start + 1}`)
      hash = done.hash
      etags.push(done.stored.etag)
      if (!(await target.stillWanted())) await cancelled()
      await target.record({ bytesDone: end + 1, multipartUploadId: uploadId, partEtags: etags })
    }
    const info = await target.blob.completeMultipart(
      file.blobKey,
      uploadId,
      etags.map((etag, i) => ({ partNumber: i + 1, etag })),
    )
    if (info.size !== file.size) throw new WorkflowStepError(TransferErrorCode.VERIFICATION_FAILED, `${file.path} was stored with ${info.size} bytes of ${file.size}`)
    file.multipartUploadId = null
    await target.record({ bytesDone: file.size, multipartUploadId: null, partEtags: [] })
    return resumed ? readBack() : hash.digest()
  }

  /** Hashes the stored object by reading it once. */
  async function readBack(): Promise<Sums> {
    const hash = digester(file.size, !file.lfs)
    for await (const chunk of await target.blob.get(file.blobKey)) hash.update(chunk as Buffer)
    return hash.digest()
  }

  for (let fetch = 1; ; fetch++) {
    const sums = multipart ? await parts() : await single()
    const expected = file.lfs ? file.sha256 : file.gitOid
    const actual = file.lfs ? sums.sha256 : sums.gitSha1
    if (expected === null || expected.toLowerCase() === actual) return { sha256: sums.sha256, fetched }
    // What arrived is not what the hub stated: start the file over.
    await discardFile(target.blob, file)
    file.multipartUploadId = null
    file.partEtags = []
    file.bytesDone = 0
    await target.record({ bytesDone: 0, multipartUploadId: null, partEtags: [] })
    if (fetch >= MAX_FILE_FETCHES) {
      throw new WorkflowStepError(
        TransferErrorCode.VERIFICATION_FAILED,
        `${file.path} did not match the hub's ${file.lfs ? 'sha256' : 'git blob id'} after ${fetch} fetches`,
      )
    }
  }
}
