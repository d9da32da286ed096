import { createHash, type Hash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { BlobStore } from '../../platform/blob/index.js'
import { WorkflowStepError } from '../workflow_ops/index.js'
import { HubErrorCode, HubRateLimited } from './hub.js'

/**
 * Copies one file of a hub import into the blob store, resumably and without holding it in memory.
 *
 * A file up to one part is fetched and stored in one go, hashed on the way. A larger file is
 * fetched part by part (each a `Range` request) into part objects beside the version
 * (`models/{model}/{version}-parts/{path}/{n}`), the ledger counting the parts stored; a dropped
 * connection costs one part, and a crash costs the part in flight: the next attempt asks the hub
 * for the rest. A hash cannot survive a crash, so the parts are then read back, in order, into
 * the final object and hashed on the way: that read is what the file is checked against.
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
}

export interface TransferTarget {
  blob: Pick<BlobStore, 'put' | 'get' | 'delete'>
  partBytes: number
  /** The part objects of a file live under this prefix. */
  partPrefix: string
  /** Bytes `start`..`end` (inclusive) of the file from the hub. */
  fetchRange(start: number, end: number): Promise<Readable>
  /** Records in the ledger how many bytes of the file are stored (whole parts). */
  recordBytes(bytesDone: number): Promise<void>
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

/** sha256 and the git blob SHA-1 (`blob {size}\0` + content) in one pass. */
function digester(size: number) {
  const sha256 = createHash('sha256')
  const gitSha1: Hash = createHash('sha1').update(`blob ${size}\0`)
  return {
    update(chunk: Buffer) {
      sha256.update(chunk)
      gitSha1.update(chunk)
    },
    digest: () => ({ sha256: sha256.digest('hex'), gitSha1: gitSha1.digest('hex') }),
  }
}

/** Exactly `count` bytes of `source`; fewer (a connection cut short) is an error, more are not read. */
async function* exactly(source: Readable, count: number, seen: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  let left = count
  try {
    for await (const raw of source) {
      if (left === 0) break
      const chunk = (raw as Buffer).length > left ? (raw as Buffer).subarray(0, left) : (raw as Buffer)
      left -= chunk.length
      seen(chunk)
      yield chunk
      if (left === 0) break
    }
  } finally {
    source.destroy()
  }
  if (left > 0) throw new WorkflowStepError(HubErrorCode.UNREACHABLE, `the hub's answer ended ${left} bytes early`)
}

/** What retrying a piece cannot change: a refusal, a rate limit (the workflow waits), a cancel. */
function final(err: unknown): boolean {
  if (err instanceof HubRateLimited) return true
  const code = err instanceof WorkflowStepError ? err.code : undefined
  return code === HubErrorCode.UNAUTHORIZED || code === HubErrorCode.NOT_FOUND || code === TransferErrorCode.CANCELLED
}

export const partKeyOf = (partPrefix: string, index: number) => `${partPrefix}/${String(index).padStart(5, '0')}`

export function partCount(size: number, partBytes: number): number {
  return Math.max(1, Math.ceil(size / partBytes))
}

/** Every key a file may have written: its own and its parts'. */
export function keysOfFile(file: Pick<LedgerFile, 'size' | 'blobKey'>, partPrefix: string, partBytes: number): string[] {
  const keys = [file.blobKey]
  if (file.size > partBytes) for (let i = 0; i < partCount(file.size, partBytes); i++) keys.push(partKeyOf(partPrefix, i))
  return keys
}

export async function transferFile(file: LedgerFile, target: TransferTarget): Promise<TransferResult> {
  let fetched = 0
  let bytesDone = file.size > target.partBytes ? file.bytesDone - (file.bytesDone % target.partBytes) : 0

  /** Fetches bytes start..end into `key`, hashing into `seen`; retried from `start` when cut off. */
  async function piece(key: string, start: number, end: number, seen: () => (chunk: Buffer) => void): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const see = seen()
      let got = 0
      try {
        const source = await target.fetchRange(start, end)
        const info = await target.blob.put(
          key,
          Readable.from(
            exactly(source, end - start + 1, (chunk) => {
              fetched += chunk.length
              got += chunk.length
              see(chunk)
              target.progress(start + got)
            }),
          ),
          { size: end - start + 1 },
        )
        if (info.size !== end - start + 1) throw new WorkflowStepError(HubErrorCode.ERROR, `stored ${info.size} bytes of ${end - start + 1}`)
        if (!(await target.stillWanted())) {
          await target.blob.delete(key)
          throw new WorkflowStepError(TransferErrorCode.CANCELLED, 'the import was cancelled')
        }
        return
      } catch (err) {
        if (final(err) || attempt >= MAX_PIECE_ATTEMPTS) throw err
      }
    }
  }

  for (let fetch = 1; ; fetch++) {
    let sums: { sha256: string; gitSha1: string }
    if (file.size <= target.partBytes) {
      let hash = digester(file.size)
      if (file.size === 0) {
        await target.blob.put(file.blobKey, Buffer.alloc(0), { size: 0 })
      } else {
        await piece(file.blobKey, 0, file.size - 1, () => {
          hash = digester(file.size)
          return (chunk) => hash.update(chunk)
        })
      }
      sums = hash.digest()
    } else {
      const parts = partCount(file.size, target.partBytes)
      for (let i = Math.floor(bytesDone / target.partBytes); i < parts; i++) {
        const start = i * target.partBytes
        const end = Math.min(file.size, start + target.partBytes) - 1
        await piece(partKeyOf(target.partPrefix, i), start, end, () => () => {})
        bytesDone = end + 1
        await target.recordBytes(bytesDone)
      }
      sums = await assemble(file, target, parts)
    }
    const expected = file.lfs ? file.sha256 : file.gitOid
    const actual = file.lfs ? sums.sha256 : sums.gitSha1
    if (expected === null || expected.toLowerCase() === actual) {
      if (file.size > target.partBytes) await removeParts(target, partCount(file.size, target.partBytes))
      return { sha256: sums.sha256, fetched }
    }
    // What arrived is not what the hub stated: start the file over.
    await target.blob.delete(file.blobKey)
    if (file.size > target.partBytes) await removeParts(target, partCount(file.size, target.partBytes))
    bytesDone = 0
    await target.recordBytes(0)
    if (fetch >= MAX_FILE_FETCHES) {
      throw new WorkflowStepError(
        TransferErrorCode.VERIFICATION_FAILED,
        `${file.path} did not match the hub's ${file.lfs ? 'sha256' : 'git blob id'} after ${fetch} fetches`,
      )
    }
  }
}

/** Reads the parts back in order into the file's own object, hashing what is read. */
async function assemble(file: LedgerFile, target: TransferTarget, parts: number): Promise<{ sha256: string; gitSha1: string }> {
  const hash = digester(file.size)
  async function* concatenated(): AsyncGenerator<Buffer> {
    for (let i = 0; i < parts; i++) {
      for await (const chunk of await target.blob.get(partKeyOf(target.partPrefix, i))) {
        hash.update(chunk as Buffer)
        yield chunk as Buffer
      }
    }
  }
  const info = await target.blob.put(file.blobKey, Readable.from(concatenated()), { size: file.size })
  if (info.size !== file.size) throw new WorkflowStepError(TransferErrorCode.VERIFICATION_FAILED, `${file.path} was stored with ${info.size} bytes of ${file.size}`)
  return hash.digest()
}

async function removeParts(target: TransferTarget, parts: number): Promise<void> {
  for (let i = 0; i < parts; i++) await target.blob.delete(partKeyOf(target.partPrefix, i))
}
