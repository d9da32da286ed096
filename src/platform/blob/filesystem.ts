import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { constants, createReadStream, createWriteStream } from 'node:fs'
import { access, link, mkdir, open, readdir, readFile, rename, rm, stat as statPath } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ValidationError } from '../errors.js'
import { assertValidKey, BlobNotFoundError } from './keys.js'
import {
  assertPartNumber,
  checkCompletion,
  MultipartUploadNotFoundError,
  multipartETag,
} from './multipart.js'
import { assertValidExpiry, presignBlobUrl } from './signing.js'
import type { BlobInfo, BlobStore, OpenMultipartUpload, PutOptions, StoredPart } from './types.js'

export interface FilesystemBlobStoreOptions {
  /** DATA_DIR/objects; created when missing. */
  root: string
  /** Base of the signed URLs, which this process serves itself (see routes.ts). */
  publicUrl: string
  signingKey: Buffer
  /**
   * A multipart upload of at most this many parts completes as an object made of its part files,
   * linked into place: no byte is written again. A larger one is copied into one file (a read of
   * such an object would hold that many files open). Default 256.
   */
  maxLinkedParts?: number
}

const DEFAULT_CONTENT_TYPE = 'application/octet-stream'
/** Temp files older than this belong to writes that died with their process. */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000
/** The ids this store issues: 24 random bytes, base64url. Anything else names no upload (and no path). */
const UPLOAD_ID = /^[A-Za-z0-9_-]{32}$/

/** An open multipart upload: `multipart/{uploadId}/upload.json`, its parts beside it. */
interface UploadRecord {
  key: string
  initiated: string
  contentType: string
}

/** One stored part: `{n}.json` names the immutable content file, as an object's sidecar does. */
interface PartRecord extends StoredPart {
  file: string
}

/**
 * What the store knows about an object. Writing it is the commit point of a put: until the sidecar
 * is renamed into place the old version (or nothing) is visible, afterwards the new one.
 */
interface Sidecar {
  key: string
  size: number
  contentType: string
  etag: string
  lastModified: string
  /** Name of the immutable content file, beside the sidecar. */
  file: string
  /**
   * An object completed from a multipart upload: its content is these files, beside the sidecar,
   * in order (`file` is then the first of them). Absent for an object in one file.
   */
  parts?: Array<{ file: string; size: number }>
}

/** Every content file of an object version. */
const contentFiles = (sidecar: Sidecar): string[] => (sidecar.parts ? sidecar.parts.map((p) => p.file) : [sidecar.file])

/**
 * Where a key lives. Files are named by the SHA-256 of the key rather than by the key itself: S3
 * lets "a" and "a/b" exist together while a filesystem cannot hold a file and a folder of one name,
 * and no text from a caller ever becomes part of a path.
 */
interface Place {
  dir: string
  name: string
  sidecarPath: string
}

export async function createFilesystemBlobStore(options: FilesystemBlobStoreOptions): Promise<BlobStore> {
  const { root, publicUrl, signingKey } = options
  const maxLinkedParts = options.maxLinkedParts ?? 256
  const tempDir = join(root, 'tmp')
  await mkdir(tempDir, { recursive: true })
  await removeStaleTempFiles(tempDir)
  const withKeyLock = createKeyedLock()

  function locate(key: string): Place {
    const name = createHash('sha256').update(key).digest('hex')
    const dir = join(root, name.slice(0, 2))
    return { dir, name, sidecarPath: join(dir, `${name}.json`) }
  }

  async function put(
    key: string,
    body: Readable | Buffer | string,
    putOptions: PutOptions = {},
  ): Promise<BlobInfo> {
    assertValidKey(key)
    const place = locate(key)
    const written = await writeToTemp(tempDir, body)
    const file = `${place.name}.${randomUUID()}.bin`
    try {
      await mkdir(place.dir, { recursive: true })
      await rename(written.path, join(place.dir, file))
    } catch (err) {
      await removeQuietly(written.path)
      throw err
    }
    const sidecar: Sidecar = {
      key,
      size: written.size,
      contentType: putOptions.contentType || DEFAULT_CONTENT_TYPE,
      etag: written.etag,
      lastModified: new Date().toISOString(),
      file,
    }
    try {
      await withKeyLock(key, () => commit(place, sidecar))
    } catch (err) {
      await removeQuietly(join(place.dir, file))
      throw err
    }
    return toInfo(sidecar)
  }

  /** Publishes the new version, then drops the content of the one it replaced. */
  async function commit(place: Place, sidecar: Sidecar): Promise<void> {
    const previous = await readSidecar(place)
    await writeJsonAtomically(tempDir, place.sidecarPath, sidecar)
    if (previous) {
      const kept = new Set(contentFiles(sidecar))
      for (const file of contentFiles(previous)) if (!kept.has(file)) await removeQuietly(join(place.dir, file))
    }
  }

  async function get(key: string): Promise<Readable> {
    assertValidKey(key)
    const place = locate(key)
    // A put that replaces the object between reading the sidecar and opening its content deletes
    // that content; reading the sidecar again finds the new version.
    for (let attempt = 0; attempt < 3; attempt++) {
      const sidecar = await readSidecar(place)
      if (!sidecar) break
      // The open handles keep this version readable even if it is replaced while streaming.
      const handles = await openAll(contentFiles(sidecar).map((file) => join(place.dir, file)))
      if (handles.length === 1) return handles[0]!.createReadStream()
      if (handles.length > 0) return Readable.from(concatenated(handles))
    }
    throw new BlobNotFoundError(key)
  }

  async function stat(key: string): Promise<BlobInfo | null> {
    assertValidKey(key)
    const sidecar = await readSidecar(locate(key))
    return sidecar ? toInfo(sidecar) : null
  }

  async function remove(key: string): Promise<void> {
    assertValidKey(key)
    const place = locate(key)
    await withKeyLock(key, async () => {
      const sidecar = await readSidecar(place)
      if (!sidecar) return
      // The sidecar goes first: from that moment the key is gone, whatever happens to the content.
      await removeQuietly(place.sidecarPath)
      for (const file of contentFiles(sidecar)) await removeQuietly(join(place.dir, file))
    })
  }

  // async so that a bad key or expiry rejects the promise, as every other method does, not throws.
  async function presign(method: 'GET' | 'PUT', key: string, expiresInSeconds: number, signedAt?: Date): Promise<string> {
    assertValidKey(key)
    return presignBlobUrl({ publicUrl, signingKey, method, key, expiresInSeconds, ...(signedAt ? { now: signedAt.getTime() } : {}) })
  }

  // ---- multipart: the same protocol as S3, its part URLs served by routes.ts -----------------------

  const multipartDir = join(root, 'multipart')
  await mkdir(multipartDir, { recursive: true })
  const uploadDir = (uploadId: string) => join(multipartDir, uploadId)

  /** The upload, if it is open and for this key; NoSuchUpload otherwise, as S3 answers an id used with another key. */
  async function openUpload(key: string, uploadId: string): Promise<UploadRecord> {
    assertValidKey(key)
    if (!UPLOAD_ID.test(uploadId)) throw new MultipartUploadNotFoundError()
    const record = await readJson<UploadRecord>(join(uploadDir(uploadId), 'upload.json'))
    if (!record || record.key !== key) throw new MultipartUploadNotFoundError()
    return record
  }

  async function createMultipart(key: string, options: { contentType?: string } = {}): Promise<string> {
    assertValidKey(key)
    const uploadId = randomBytes(24).toString('base64url')
    await mkdir(uploadDir(uploadId))
    const record: UploadRecord = { key, initiated: new Date().toISOString(), contentType: options.contentType || DEFAULT_CONTENT_TYPE }
    await writeJsonAtomically(tempDir, join(uploadDir(uploadId), 'upload.json'), record)
    return uploadId
  }

  async function presignPart(key: string, uploadId: string, partNumber: number, expiresInSeconds: number): Promise<string> {
    assertValidKey(key)
    assertPartNumber(partNumber)
    assertValidExpiry(expiresInSeconds)
    return presignBlobUrl({ publicUrl, signingKey, method: 'PUT', key, expiresInSeconds, part: { uploadId, partNumber } })
  }

  async function readParts(uploadId: string): Promise<PartRecord[]> {
    const names = (await readdir(uploadDir(uploadId)).catch(() => [] as string[])).filter((n) => /^\d+\.json$/.test(n))
    const parts: PartRecord[] = []
    for (const name of names) {
      const part = await readJson<PartRecord>(join(uploadDir(uploadId), name))
      if (part) parts.push(part)
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber)
  }

  async function uploadPart(key: string, uploadId: string, partNumber: number, body: Readable | Buffer, size?: number): Promise<StoredPart> {
    assertPartNumber(partNumber)
    await openUpload(key, uploadId)
    const written = await writeToTemp(tempDir, body)
    const dir = uploadDir(uploadId)
    const file = `${partNumber}.${randomUUID()}.bin`
    try {
      if (size !== undefined && written.size !== size) {
        throw new ValidationError('the part is shorter or longer than its Content-Length', [{ field: 'body', message: 'incomplete' }])
      }
      await rename(written.path, join(dir, file))
    } catch (err) {
      await removeQuietly(written.path)
      throw err
    }
    const part: PartRecord = { partNumber, size: written.size, etag: written.etag, file }
    // A part sent again replaces the earlier one, as on S3; the lock keeps the record and its file paired.
    await withKeyLock(`${uploadId}/${partNumber}`, async () => {
      try {
        // Completed or aborted while the bytes were arriving: they belong to nothing any more.
        await openUpload(key, uploadId)
        const previous = await readJson<PartRecord>(join(dir, `${partNumber}.json`))
        await writeJsonAtomically(tempDir, join(dir, `${partNumber}.json`), part)
        if (previous && previous.file !== file) await removeQuietly(join(dir, previous.file))
      } catch (err) {
        await removeQuietly(join(dir, file))
        throw err
      }
    })
    return { partNumber, size: part.size, etag: part.etag }
  }

  async function listParts(key: string, uploadId: string): Promise<StoredPart[]> {
    await openUpload(key, uploadId)
    return (await readParts(uploadId)).map(({ partNumber, size, etag }) => ({ partNumber, size, etag }))
  }

  async function completeMultipart(key: string, uploadId: string, listed: ReadonlyArray<{ partNumber: number; etag: string }>): Promise<BlobInfo> {
    // One completion (or abort) of an upload at a time: the second finds it gone, as on S3.
    return withKeyLock(`upload:${uploadId}`, async () => {
      const record = await openUpload(key, uploadId)
      const held = new Map((await readParts(uploadId)).map((p) => [p.partNumber, p]))
      checkCompletion(listed, held)
      const parts = listed.map((p) => held.get(p.partNumber)!)
      const dir = uploadDir(uploadId)
      // The ETag S3 gives an assembled object, so that callers compare the same thing on both stores.
      const etag = multipartETag(parts.map((p) => p.etag))
      if (parts.length <= maxLinkedParts) {
        const sidecar = await linkParts(key, record, dir, parts, etag)
        await rm(dir, { recursive: true, force: true })
        return toInfo(sidecar)
      }
      const info = await put(
        key,
        Readable.from(
          (async function* () {
            for (const part of parts) yield* createReadStream(join(dir, part.file))
          })(),
        ),
        { contentType: record.contentType },
      )
      await rm(dir, { recursive: true, force: true })
      const place = locate(key)
      await withKeyLock(key, async () => {
        const sidecar = await readSidecar(place)
        if (sidecar && sidecar.etag === info.etag) await writeJsonAtomically(tempDir, place.sidecarPath, { ...sidecar, etag })
      })
      return { ...info, etag }
    })
  }

  /**
   * The object made of the upload's part files, hard-linked beside the sidecar (the upload keeps its
   * own names until it is removed, so a failure here leaves it as it was, as S3 leaves an upload
   * whose completion failed). Every part was flushed to disk when it was stored.
   */
  async function linkParts(key: string, record: UploadRecord, dir: string, parts: PartRecord[], etag: string): Promise<Sidecar> {
    const place = locate(key)
    await mkdir(place.dir, { recursive: true })
    const version = randomUUID()
    const linked: Array<{ file: string; size: number }> = []
    try {
      for (const [i, part] of parts.entries()) {
        const file = `${place.name}.${version}.${i + 1}.bin`
        await link(join(dir, part.file), join(place.dir, file))
        linked.push({ file, size: part.size })
      }
      const sidecar: Sidecar = {
        key,
        size: parts.reduce((sum, p) => sum + p.size, 0),
        contentType: record.contentType,
        etag,
        lastModified: new Date().toISOString(),
        file: linked[0]!.file,
        parts: linked,
      }
      await withKeyLock(key, () => commit(place, sidecar))
      return sidecar
    } catch (err) {
      for (const { file } of linked) await removeQuietly(join(place.dir, file))
      throw err
    }
  }

  async function abortMultipart(key: string, uploadId: string): Promise<void> {
    await withKeyLock(`upload:${uploadId}`, async () => {
      try {
        await openUpload(key, uploadId)
      } catch (err) {
        if (err instanceof MultipartUploadNotFoundError) return
        throw err
      }
      await rm(uploadDir(uploadId), { recursive: true, force: true })
    })
  }

  async function* listMultipartUploads(prefix: string): AsyncIterable<OpenMultipartUpload> {
    const open: OpenMultipartUpload[] = []
    for (const uploadId of await readdir(multipartDir)) {
      if (!UPLOAD_ID.test(uploadId)) continue
      const record = await readJson<UploadRecord>(join(uploadDir(uploadId), 'upload.json'))
      if (record && record.key.startsWith(prefix)) open.push({ key: record.key, uploadId, initiated: new Date(record.initiated) })
    }
    open.sort((a, b) => (a.key !== b.key ? (a.key < b.key ? -1 : 1) : a.initiated.getTime() - b.initiated.getTime()))
    yield* open
  }

  return {
    kind: 'filesystem',
    put,
    get,
    stat,
    delete: remove,
    presignPut: (key, expiresInSeconds) => presign('PUT', key, expiresInSeconds),
    presignGet: (key, expiresInSeconds, signedAt) => presign('GET', key, expiresInSeconds, signedAt),
    ping: () => access(root, constants.R_OK | constants.W_OK),
    close: async () => {},
    createMultipart,
    presignPart,
    uploadPart,
    listParts,
    completeMultipart,
    abortMultipart,
    listMultipartUploads,
  }
}

interface TempFile {
  path: string
  size: number
  etag: string
}

/**
 * Streams the body into a fresh temp file, hashing as it goes. The file is flushed to disk before
 * it is renamed into place, so a crash never publishes a half-written object; a failed stream
 * removes the temp file.
 */
async function writeToTemp(tempDir: string, body: Readable | Buffer | string): Promise<TempFile> {
  const path = join(tempDir, randomUUID())
  const md5 = createHash('md5')
  let size = 0
  try {
    await pipeline(
      typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([Buffer.from(body)]) : body,
      async function* measure(chunks: AsyncIterable<Buffer | string>) {
        for await (const chunk of chunks) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
          md5.update(bytes)
          size += bytes.length
          yield bytes
        }
      },
      // flush: fsync before close, so the rename never publishes bytes still only in the page cache.
      createWriteStream(path, { flags: 'wx', flush: true }),
    )
  } catch (err) {
    await removeQuietly(path)
    throw err
  }
  return { path, size, etag: md5.digest('hex') }
}

async function writeJsonAtomically(tempDir: string, target: string, value: unknown): Promise<void> {
  const path = join(tempDir, `${randomUUID()}.json`)
  try {
    const handle = await open(path, 'wx')
    try {
      await handle.writeFile(JSON.stringify(value))
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(path, target)
  } catch (err) {
    await removeQuietly(path)
    throw err
  }
}

async function readSidecar(place: Place): Promise<Sidecar | null> {
  return readJson<Sidecar>(place.sidecarPath)
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch (err) {
    if (isMissing(err)) return null
    throw err
  }
}

/** Handles to every file, or none when one of them is gone (the version was replaced meanwhile). */
async function openAll(paths: string[]) {
  const handles = []
  for (const path of paths) {
    const handle = await openIfPresent(path)
    if (!handle) {
      for (const opened of handles) await opened.close()
      return []
    }
    handles.push(handle)
  }
  return handles
}

/** The files' bytes one after the other; each handle is closed when read (or when reading stops). */
async function* concatenated(handles: Array<Awaited<ReturnType<typeof open>>>): AsyncGenerator<Buffer> {
  let next = 0
  try {
    for (; next < handles.length; next++) {
      for await (const chunk of handles[next]!.createReadStream({ autoClose: false })) yield chunk as Buffer
      await handles[next]!.close()
    }
  } finally {
    for (; next < handles.length; next++) await handles[next]!.close().catch(() => undefined)
  }
}

async function openIfPresent(path: string) {
  try {
    return await open(path, 'r')
  } catch (err) {
    if (isMissing(err)) return null
    throw err
  }
}

function toInfo(sidecar: Sidecar): BlobInfo {
  return {
    key: sidecar.key,
    size: sidecar.size,
    contentType: sidecar.contentType,
    etag: sidecar.etag,
    lastModified: new Date(sidecar.lastModified),
  }
}

async function removeStaleTempFiles(tempDir: string): Promise<void> {
  const cutoff = Date.now() - STALE_TEMP_MS
  for (const entry of await readdir(tempDir)) {
    const path = join(tempDir, entry)
    const info = await statPath(path).catch(() => null)
    if (info && info.mtimeMs < cutoff) await removeQuietly(path)
  }
}

async function removeQuietly(path: string): Promise<void> {
  await rm(path, { force: true })
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT'
}

/**
 * Runs one function at a time per key. Puts and deletes of one key read the current sidecar and
 * then replace it; without this, two of them at once could both delete the same old content and
 * leave one new content file that no sidecar names.
 */
function createKeyedLock() {
  const tails = new Map<string, Promise<void>>()
  return async function withKeyLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const run = (tails.get(key) ?? Promise.resolve()).then(fn)
    const tail = run.then(
      () => {},
      () => {},
    )
    tails.set(key, tail)
    try {
      return await run
    } finally {
      if (tails.get(key) === tail) tails.delete(key)
    }
  }
}
