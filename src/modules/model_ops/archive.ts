import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import tar from 'tar-stream'
import yauzl from 'yauzl'
import { WorkflowStepError } from '../workflow_ops/index.js'
import { filePathProblem } from './paths.js'

/**
 * Unpacks an archive a user pointed at (tar, tar.gz, zip) into files of a version, trusting
 * nothing in it: every path must be one a version may hold (paths.ts: relative, no `..`, bounded
 * depth and length), only regular files and folders are accepted (a symlink, hardlink, device or
 * fifo refuses the archive, as does an encrypted zip entry or a path met twice), and what it
 * expands to is bounded in files, in bytes, and in bytes per compressed byte — a zip bomb is
 * refused before anything is inflated when its directory says so, and while inflating otherwise.
 * When every file sits in one folder, the folder is dropped from the paths (commonRoot).
 */
export const ArchiveErrorCode = {
  UNSAFE: 'ARCHIVE_UNSAFE',
  TOO_LARGE: 'ARCHIVE_TOO_LARGE',
  INVALID: 'ARCHIVE_INVALID',
} as const

export interface ArchiveLimits {
  maxFiles: number
  maxExpandedBytes: number
  /** Expanded bytes per compressed byte; a compressed size below RATIO_FLOOR_BYTES counts as that. */
  maxRatio: number
}

/** Small archives of JSON compress very well: the ratio is judged against at least this many bytes. */
export const RATIO_FLOOR_BYTES = 1024 * 1024

/** Stores one file of the archive; `body` must be read to its end (or the unpacking stalls). */
export type ArchiveSink = (path: string, size: number, body: Readable) => Promise<void>

/** Moves a file the sink stored under `from` to `to` (both version paths). */
export type ArchiveRelocate = (from: string, to: string) => Promise<void>

/**
 * The folder every path sits under, when there is one: an archive made of a model's folder
 * (`my-model/config.json`, `my-model/model.safetensors`) is unpacked without it, so its files are
 * at the version's root where loaders and the metadata reader look for them.
 */
export function commonRoot(paths: string[]): string | null {
  const first = paths[0]?.split('/')[0]
  if (!first || paths.some((p) => !p.startsWith(`${first}/`))) return null
  return first
}

const underRoot = (path: string, root: string) => path.slice(root.length + 1)

const unsafe = (message: string) => new WorkflowStepError(ArchiveErrorCode.UNSAFE, message)
const tooLarge = (message: string) => new WorkflowStepError(ArchiveErrorCode.TOO_LARGE, message)

/** `./a/b` → `a/b`; then the path rules of a version. */
function checkedPath(raw: string, seen: Set<string>): string {
  let path = raw
  while (path.startsWith('./')) path = path.slice(2)
  const problem = filePathProblem(path)
  if (problem) throw unsafe(`the archive holds "${raw.slice(0, 200)}": ${problem}`)
  if (seen.has(path)) throw unsafe(`the archive holds "${path}" twice`)
  seen.add(path)
  return path
}

/** Keeps the totals and refuses what goes past the limits. */
function budget(limits: ArchiveLimits, compressedBytes: () => number) {
  let files = 0
  let expanded = 0
  const allowed = () => limits.maxRatio * Math.max(RATIO_FLOOR_BYTES, compressedBytes())
  return {
    /** A new file of `declared` bytes is about to be written. */
    file(declared: number) {
      files += 1
      if (files > limits.maxFiles) throw tooLarge(`the archive holds more than ${limits.maxFiles} files`)
      if (expanded + declared > limits.maxExpandedBytes) throw tooLarge(`the archive expands to more than ${limits.maxExpandedBytes} bytes (MODEL_IMPORT_MAX_EXPANDED_BYTES)`)
    },
    /** Bytes as they come out of the decompressor. */
    bytes(count: number) {
      expanded += count
      if (expanded > limits.maxExpandedBytes) throw tooLarge(`the archive expands to more than ${limits.maxExpandedBytes} bytes (MODEL_IMPORT_MAX_EXPANDED_BYTES)`)
      if (expanded > allowed()) throw tooLarge(`the archive expands more than ${limits.maxRatio} times its size (a compression bomb)`)
    },
    get expanded() {
      return expanded
    },
  }
}

/** The entry's bytes, counted against the budget as they pass. */
async function* counted(entry: AsyncIterable<unknown>, spend: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of entry) {
    spend((chunk as Buffer).length)
    yield chunk as Buffer
  }
}

/**
 * A tar (gzipped when `gzip`) read as it streams. `compressedBytes` tells how much of the
 * archive was read so far, for the ratio; answers the files and bytes written.
 */
export async function unpackTar(
  source: Readable,
  gzip: boolean,
  limits: ArchiveLimits,
  compressedBytes: () => number,
  sink: ArchiveSink,
  relocate: ArchiveRelocate,
): Promise<{ files: number; bytes: number; root: string | null }> {
  const extract = tar.extract()
  const seen = new Set<string>()
  // A tar is read as it streams, so whether every file shares one folder is known only at its end.
  // The first file's folder is taken as the root and left out of the paths; a later file outside
  // it puts the files stored so far back under the folder (relocate) and keeps paths as they are.
  let root: string | null | undefined
  const stored: string[] = []
  const spent = budget(limits, compressedBytes)
  const feeding = (gzip ? pipeline(source, createGunzip(), extract) : pipeline(source, extract)).then(
    () => null,
    (err: unknown) => err,
  )
  try {
    for await (const entry of extract) {
      const { name, type, size = 0 } = entry.header
      if (type === 'directory') {
        entry.resume()
        continue
      }
      if (type !== 'file' && type !== 'contiguous-file') throw unsafe(`the archive holds a ${type ?? 'special'} entry "${name.slice(0, 200)}": only regular files are imported`)
      const full = checkedPath(name, seen)
      if (root === undefined) root = commonRoot([full])
      if (root && !full.startsWith(`${root}/`)) {
        for (const path of stored) await relocate(path, `${root}/${path}`)
        root = null
      }
      const path = root ? underRoot(full, root) : full
      spent.file(size)
      await sink(path, size, Readable.from(counted(entry, (n) => spent.bytes(n))))
      if (root) stored.push(path)
    }
  } catch (err) {
    source.destroy()
    await feeding
    throw err instanceof WorkflowStepError ? err : invalid(err)
  }
  const failed = await feeding
  if (failed) throw invalid(failed)
  return { files: seen.size, bytes: spent.expanded, root: root ?? null }
}

/** A zip already on local disk (its directory is at its end): the directory is judged before any entry is read. */
export async function unpackZip(file: string, limits: ArchiveLimits, sink: ArchiveSink): Promise<{ files: number; bytes: number; root: string | null }> {
  let zip: yauzl.ZipFile
  try {
    zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: true })
  } catch (err) {
    throw invalid(err)
  }
  try {
    const entries: Array<{ entry: yauzl.Entry; path: string }> = []
    const seen = new Set<string>()
    let declared = 0
    if (zip.entryCount > limits.maxFiles * 2) throw tooLarge(`the archive holds more than ${limits.maxFiles} files`)
    for await (const entry of zip.eachEntry()) {
      if (entry.fileName.endsWith('/')) continue
      const mode = (entry.externalFileAttributes >>> 16) & 0o170000
      if (mode !== 0 && mode !== 0o100000) throw unsafe(`the archive holds "${entry.fileName.slice(0, 200)}", which is not a regular file (a link or a device)`)
      if (entry.isEncrypted()) throw unsafe(`the archive holds an encrypted entry "${entry.fileName.slice(0, 200)}"`)
      if (!entry.canDecodeFileData()) throw unsafe(`the archive uses a compression this server does not read ("${entry.fileName.slice(0, 200)}")`)
      entries.push({ entry, path: checkedPath(entry.fileName, seen) })
      declared += entry.uncompressedSize
    }
    // What the directory declares is what yauzl then holds each entry to (validateEntrySizes).
    const spent = budget(limits, () => zip.fileSize)
    if (entries.length > limits.maxFiles) throw tooLarge(`the archive holds more than ${limits.maxFiles} files`)
    if (declared > limits.maxRatio * Math.max(RATIO_FLOOR_BYTES, zip.fileSize)) {
      throw tooLarge(`the archive expands to ${declared} bytes from ${zip.fileSize}, more than ${limits.maxRatio} times its size (a compression bomb)`)
    }
    if (declared > limits.maxExpandedBytes) throw tooLarge(`the archive expands to ${declared} bytes, more than ${limits.maxExpandedBytes} (MODEL_IMPORT_MAX_EXPANDED_BYTES)`)
    // The directory lists every path up front: a folder they all sit in is left out of them.
    const root = commonRoot(entries.map((e) => e.path))
    for (const { entry, path } of entries) {
      spent.file(entry.uncompressedSize)
      const body = await zip.openReadStreamPromise(entry).catch((err: unknown) => {
        throw invalid(err)
      })
      await sink(root ? underRoot(path, root) : path, entry.uncompressedSize, Readable.from(counted(body, (n) => spent.bytes(n))))
    }
    return { files: entries.length, bytes: spent.expanded, root }
  } catch (err) {
    throw err instanceof WorkflowStepError ? err : invalid(err)
  } finally {
    zip.close()
  }
}

/** yauzl, tar-stream and zlib report a malformed archive in their own words: kept, bounded. */
function invalid(err: unknown): WorkflowStepError {
  const message = err instanceof Error ? err.message : String(err)
  // yauzl refuses absolute paths and `..` itself (strictFileNames): those are unsafe, not malformed.
  if (/invalid relative path|absolute path|invalid characters in fileName/i.test(message)) return unsafe(`the archive holds a path outside the version: ${message.slice(0, 200)}`)
  if (/uncompressed size|too many bytes|too few bytes/i.test(message)) return unsafe(`the archive's entries are not the sizes its directory states: ${message.slice(0, 200)}`)
  return new WorkflowStepError(ArchiveErrorCode.INVALID, `the archive cannot be read: ${message.slice(0, 300)}`)
}
