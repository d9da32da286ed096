import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buffer } from 'node:stream/consumers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BlobStore } from '../../src/platform/blob/index.js'
import { createFilesystemBlobStore } from '../../src/platform/blob/filesystem.js'

/**
 * The filesystem store completes a multipart upload by linking its part files into the object (no
 * byte written again), up to `maxLinkedParts` parts, and by copying them into one file above that.
 * Either way the object reads, replaces and deletes as any other.
 */
const MiB = 1024 * 1024
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex')
let root: string
let linking: BlobStore
let copying: BlobStore

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'modelplane-fs-multipart-'))
  const signing = { publicUrl: 'http://blobs.example.test', signingKey: randomBytes(32) }
  linking = await createFilesystemBlobStore({ root: join(root, 'linking'), ...signing })
  copying = await createFilesystemBlobStore({ root: join(root, 'copying'), ...signing, maxLinkedParts: 1 })
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** The content files of objects under a store's root: every .bin outside its multipart and tmp folders, with their inodes. */
function objectFiles(store: 'linking' | 'copying'): Array<{ name: string; inode: number; size: number }> {
  const base = join(root, store)
  return readdirSync(base)
    .filter((dir) => dir !== 'multipart' && dir !== 'tmp')
    .flatMap((dir) => readdirSync(join(base, dir)).filter((n) => n.endsWith('.bin')).map((n) => join(base, dir, n)))
    .map((path) => ({ name: path, inode: statSync(path).ino, size: statSync(path).size }))
}

function partInodes(store: 'linking' | 'copying', uploadId: string): number[] {
  const dir = join(root, store, 'multipart', uploadId)
  return readdirSync(dir)
    .filter((n) => n.endsWith('.bin'))
    .map((n) => statSync(join(dir, n)).ino)
    .sort()
}

async function uploadInParts(store: BlobStore, key: string, parts: Buffer[]): Promise<{ uploadId: string; etags: Array<{ partNumber: number; etag: string }> }> {
  const uploadId = await store.createMultipart(key)
  const etags = []
  for (const [i, part] of parts.entries()) etags.push({ partNumber: i + 1, etag: (await store.uploadPart(key, uploadId, i + 1, part, part.length)).etag })
  return { uploadId, etags }
}

describe('filesystem multipart completion', () => {
  it('makes the object of the stored part files themselves: same bytes, S3 ETag, the parts never copied', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(3000)]
    const { uploadId, etags } = await uploadInParts(linking, 'models/m/v/weights.bin', parts)
    const inodes = partInodes('linking', uploadId)
    const info = await linking.completeMultipart('models/m/v/weights.bin', uploadId, etags)
    expect(info.size).toBe(10 * MiB + 3000)
    expect(info.etag).toBe(`${createHash('md5').update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()))).digest('hex')}-3`)
    expect((await linking.stat('models/m/v/weights.bin'))?.etag).toBe(info.etag)
    expect(md5(await buffer(await linking.get('models/m/v/weights.bin')))).toBe(md5(Buffer.concat(parts)))
    // The object's files are the parts' own (same inodes): nothing was written a second time, and the upload is gone.
    const files = objectFiles('linking')
    expect(files.map((f) => f.inode).sort()).toEqual(inodes)
    expect(files.reduce((sum, f) => sum + f.size, 0)).toBe(info.size)
    expect(readdirSync(join(root, 'linking', 'multipart'))).toEqual([])
  })

  it('a read that started keeps its version when the object is replaced; the replaced parts and a deleted object leave no file', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(2 * MiB)]
    const { uploadId, etags } = await uploadInParts(linking, 'models/m/v/replaced.bin', parts)
    await linking.completeMultipart('models/m/v/replaced.bin', uploadId, etags)
    const before = objectFiles('linking').length
    const reading = await linking.get('models/m/v/replaced.bin')
    await linking.put('models/m/v/replaced.bin', Buffer.from('a new version'))
    expect(md5(await buffer(reading))).toBe(md5(Buffer.concat(parts)))
    expect((await buffer(await linking.get('models/m/v/replaced.bin'))).toString()).toBe('a new version')
    expect(objectFiles('linking').length).toBe(before - 2 + 1)
    await linking.delete('models/m/v/replaced.bin')
    expect(objectFiles('linking').length).toBe(before - 2)
  })

  it('an upload of more parts than maxLinkedParts is copied into one file, with the same bytes and ETag', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(1000)]
    const { uploadId, etags } = await uploadInParts(copying, 'models/m/v/copied.bin', parts)
    const info = await copying.completeMultipart('models/m/v/copied.bin', uploadId, etags)
    expect(info.etag).toMatch(/-2$/)
    expect(md5(await buffer(await copying.get('models/m/v/copied.bin')))).toBe(md5(Buffer.concat(parts)))
    expect(objectFiles('copying')).toHaveLength(1)
  })
})
