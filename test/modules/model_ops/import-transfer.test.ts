import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BlobStore, createBlobStore } from '../../../src/platform/blob/index.js'
import { HubRateLimited } from '../../../src/modules/model_ops/hub.js'
import { type LedgerFile, type LedgerProgress, transferFile } from '../../../src/modules/model_ops/import-transfer.js'
import { tempDir } from '../../helpers/app.js'
import { startS3 } from '../../helpers/s3-store.js'

/**
 * transferFile on its own, against both stores: a large file goes into one multipart upload; a
 * transfer stopped between parts (as a crash would) resumes from the ledger, asking the "hub" only
 * for the rest, and checks the assembled object by reading it back; a cancel leaves no upload open.
 */
const MiB = 1024 * 1024
const SIZE = 11 * MiB + 4321
const file = randomBytes(SIZE)
const sha256 = createHash('sha256').update(file).digest('hex')

describe.each(['filesystem', 's3'] as const)('transferFile into the %s store', (kind) => {
  let blob: BlobStore
  let s3: Awaited<ReturnType<typeof startS3>> | undefined

  beforeAll(async () => {
    if (kind === 's3') s3 = await startS3('modelplane-transfer')
    const log = pino({ level: 'silent' })
    blob = await createBlobStore({
      dataDir: tempDir('modelplane-transfer-'),
      publicUrl: 'http://blob.example.test',
      signingKey: randomBytes(32),
      log,
      ...(s3 ? { s3: { endpoint: s3.env.S3_ENDPOINT!, accessKey: 'S3RVER', secretKey: 'S3RVER', bucket: s3.env.S3_BUCKET!, region: 'us-east-1' } } : {}),
    })
  }, 30_000)

  afterAll(async () => {
    await blob?.close()
    await s3?.close()
  })

  /** A hub serving `file`, a ledger row kept in memory, and a switch that stops the hub after some ranges. */
  function harness(key: string) {
    const ledger: LedgerFile = { path: 'w.bin', size: SIZE, lfs: true, sha256, gitOid: null, blobKey: key, bytesDone: 0, multipartUploadId: null, partEtags: [] }
    const asked: Array<[number, number]> = []
    let stopAfter = Infinity
    let wanted = true
    const target = {
      blob,
      partBytes: MiB,
      fetchRange: async (start: number, end: number) => {
        if (asked.length >= stopAfter) throw new HubRateLimited(60_000)
        asked.push([start, end])
        return Readable.from([file.subarray(start, end + 1)])
      },
      record: async (progress: LedgerProgress) => {
        Object.assign(ledger, progress, { partEtags: [...progress.partEtags] })
      },
      progress: () => {},
      stillWanted: async () => wanted,
    }
    return { ledger, asked, target, stopAfter: (n: number) => (stopAfter = n), cancel: () => (wanted = false) }
  }

  async function stored(key: string): Promise<string> {
    const hash = createHash('sha256')
    for await (const chunk of await blob.get(key)) hash.update(chunk as Buffer)
    return hash.digest('hex')
  }

  it('resumes a stopped transfer from the upload the ledger names, fetching only the rest', async () => {
    const key = `models/m/${kind}-resume/w.bin`
    const run = harness(key)
    run.stopAfter(7)
    await expect(transferFile({ ...run.ledger }, run.target)).rejects.toBeInstanceOf(HubRateLimited)
    // One store part (5 ranges of 1 MiB) is stored and counted; the upload is still open.
    expect(run.ledger).toMatchObject({ bytesDone: 5 * MiB, partEtags: [expect.any(String)] })
    expect(run.ledger.multipartUploadId).toBeTruthy()
    await expect(blob.stat(key)).resolves.toBeNull()

    run.stopAfter(Infinity)
    const result = await transferFile({ ...run.ledger }, run.target)
    expect(result.sha256).toBe(sha256)
    expect(await stored(key)).toBe(sha256)
    // The rest only, and once: the read-back check matched, so nothing was fetched again.
    expect(run.asked.slice(7)[0]).toEqual([5 * MiB, 6 * MiB - 1])
    expect(run.asked.length - 7).toBe(Math.ceil((SIZE - 5 * MiB) / MiB))
    expect(run.ledger).toMatchObject({ bytesDone: SIZE, multipartUploadId: null })
    const open = []
    for await (const upload of blob.listMultipartUploads('models/m/')) open.push(upload)
    expect(open).toEqual([])
  })

  it('aborts the multipart upload when the import is cancelled mid-file', async () => {
    const key = `models/m/${kind}-cancel/w.bin`
    const run = harness(key)
    run.cancel()
    await expect(transferFile({ ...run.ledger }, run.target)).rejects.toMatchObject({ code: 'MODEL_IMPORT_CANCELLED' })
    expect(run.asked.length).toBe(5)
    const open = []
    for await (const upload of blob.listMultipartUploads(`models/m/${kind}-cancel/`)) open.push(upload)
    expect(open).toEqual([])
    await expect(blob.stat(key)).resolves.toBeNull()
  })
})
