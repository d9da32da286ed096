import { createHash, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Static } from 'typebox'
import type { Principal } from '../../platform/auth/principal.js'
import type { BlobStore, StoredPart } from '../../platform/blob/index.js'
import { MAX_PART_NUMBER } from '../../platform/blob/index.js'
import { type Database, transaction } from '../../platform/db/client.js'
import { ValidationError } from '../../platform/errors.js'
import type { EventBus } from '../../platform/events/index.js'
import type { Sweeps } from '../../platform/sweeps/index.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import * as crud from './crud.js'
import {
  modelNotFound,
  notUploadable,
  UploadErrorCode,
  uploadExpired,
  uploadFilesMismatch,
  uploadNotFound,
  uploadNotOpen,
  uploadPartMismatch,
  uploadPartMissing,
  uploadTooLarge,
  versionLabelTaken,
} from './errors.js'
import { MAX_FILES_PER_VERSION } from './paths.js'
import type { ModelService } from './service.js'
import type { ModelUploadFileRow, ModelUploadRow } from './tables.js'
import type { ModelUpload } from './upload-schema.js'
import { createMetadataCollector, type FileFacts, metadataPatch } from './upload-metadata.js'

export const UPLOAD_WORKFLOW = 'model_ops.verify_upload'
export const UPLOAD_EXPIRY_SWEEP = 'model.upload_expiry'
export const UPLOAD_ORPHAN_SWEEP = 'model.upload_orphans'
/** The orphan sweep scans the store, not a row: it runs as this one resource. */
export const ORPHAN_SCAN_ID = '00000000-0000-4000-8000-0000000a0001'
export const ORPHAN_SCAN_INTERVAL_MS = 3_600_000
/** A complete that died between taking the upload and finishing it is given this long past expiry before the sweep takes over. */
const COMPLETING_GRACE_MS = 3_600_000
/** Fresh part URLs move an upload's expiry, but never past this long after it was opened. */
export const MAX_UPLOAD_LIFETIME_MS = 7 * 86_400_000
/** Open uploads one orphan scan looks at, and asks the database about at once. */
const ORPHAN_SCAN_LIMIT = 10_000
const ORPHAN_BATCH = 200
/** models/{modelId}/{versionId}/{path}: the version's id is the second segment. */
const VERSION_FILE_KEY = /^models\/[0-9a-f-]{36}\/([0-9a-f-]{36})\/./

export const UPLOAD_TOPIC = {
  uploaded: 'model.version_uploaded',
  failed: 'model.version_upload_failed',
  aborted: 'model.upload_aborted',
  expired: 'model.upload_expired',
} as const

export interface UploadSettings {
  maxFileBytes: number
  maxVersionBytes: number
  partBytes: number
  urlExpirySeconds: number
  orphanAfterMs: number
}

export interface UploadDeps {
  db: Database
  blob: BlobStore
  events: Pick<EventBus, 'publish'>
  sweeps: Pick<Sweeps, 'schedule' | 'unschedule'>
  workflows: Pick<WorkflowService, 'start'>
  models: Pick<ModelService, 'startVersion' | 'sealVersion'>
  settings: UploadSettings
  log: Logger
}

export interface UploadInput {
  label?: string
  files: Array<{ path: string; size: number; sha256: string }>
}

export interface CompleteInput {
  files: Array<{ path: string; parts: Array<{ partNumber: number; etag: string }> }>
}

export type UploadView = Static<typeof ModelUpload>

/** Part sizes of a file: all `partSize` but the last; an empty file is one empty part. */
export function partition(size: number, partSize: number): number[] {
  const count = Math.max(1, Math.ceil(size / partSize))
  return Array.from({ length: count }, (_, i) => Math.min(partSize, size - i * partSize))
}

/** An error that says the stored bytes are not what was declared: no retry can change that. */
export class UploadVerificationError extends Error {
  constructor(code: string, message: string) {
    super(`${code}: ${message}`)
    this.name = 'UploadVerificationError'
  }
}

export function createUploadService(deps: UploadDeps) {
  const { db, blob, events, sweeps, workflows, models, settings, log } = deps

  /** `urls`: per file, the URL of each part by its index, where one was minted; `only`: list those parts alone. */
  function view(row: ModelUploadRow, files: ModelUploadFileRow[], urls?: Map<string, Array<string | undefined>>, only = false): UploadView {
    return {
      id: row.id,
      modelId: row.modelId,
      versionId: row.versionId,
      status: row.status as UploadView['status'],
      statusReason: row.statusReason,
      partSize: row.partSize,
      expiresAt: row.expiresAt.toISOString(),
      workflowId: row.workflowId,
      createdBy: row.createdBy,
      createdAt: row.createdAt.toISOString(),
      files: files.map((f) => ({
        path: f.path,
        size: f.size,
        sha256: f.declaredSha256,
        status: f.status as UploadView['files'][number]['status'],
        parts: partition(f.size, row.partSize)
          .map((size, i) => ({ partNumber: i + 1, size, url: urls?.get(f.path)?.[i] }))
          .filter((part) => !only || part.url !== undefined)
          .map(({ url, ...part }) => (url === undefined ? part : { ...part, url })),
      })),
    }
  }

  function checkLimits(input: UploadInput): void {
    if (input.files.length > MAX_FILES_PER_VERSION) throw new ValidationError(`a version holds at most ${MAX_FILES_PER_VERSION} files`)
    const oversize = input.files.flatMap((f, i) =>
      f.size > settings.maxFileBytes ? [{ field: `body.files.${i}.size`, message: `over the limit of ${settings.maxFileBytes} bytes a file` }] : [],
    )
    if (oversize.length > 0) {
      throw uploadTooLarge(`${input.files[Number(oversize[0]!.field.split('.')[2])]!.path} is larger than a file may be (${settings.maxFileBytes} bytes)`, oversize.slice(0, 20), settings.maxFileBytes)
    }
    const total = input.files.reduce((sum, f) => sum + f.size, 0)
    if (total > settings.maxVersionBytes) {
      throw uploadTooLarge(`the files add up to ${total} bytes, more than a version may hold (${settings.maxVersionBytes})`, [{ field: 'body.files', message: 'too large in all' }], settings.maxVersionBytes)
    }
    const parts = input.files.reduce((sum, f) => sum + partition(f.size, settings.partBytes).length, 0)
    if (parts > MAX_PART_NUMBER) {
      throw uploadTooLarge(`the files need ${parts} parts in all; one upload hands out at most ${MAX_PART_NUMBER} part URLs: upload them in several versions`, [{ field: 'body.files', message: 'too many parts' }], MAX_PART_NUMBER)
    }
  }

  /** Drops what an upload put in the store: open multipart uploads, and objects assembled from them. */
  async function dropStored(files: ModelUploadFileRow[]): Promise<void> {
    for (const file of files) {
      try {
        await blob.abortMultipart(file.blobKey, file.storeUploadId)
        await blob.delete(file.blobKey)
      } catch (err) {
        // The orphan sweep finds a multipart upload left behind; an object is left for the version's deletion.
        log.warn({ key: file.blobKey, err: { message: (err as Error).message } }, 'an uploaded file could not be dropped from the store')
      }
    }
  }

  async function visible(principal: Principal, modelId: string, uploadId: string): Promise<ModelUploadRow> {
    const row = await crud.getUpload(db, principal.tenantId, modelId, uploadId)
    if (!row) throw uploadNotFound()
    return row
  }

  /**
   * Ends an upload that will not be completed (aborted, expired, or failed verification): its
   * version fails with the reason, then its parts and objects leave the store. Answers false when
   * the upload had already moved on and nothing was done.
   */
  async function close(uploadId: string, status: 'aborted' | 'expired' | 'failed', reason: string, from: string[]): Promise<boolean> {
    // A failed verification's objects go before the version says failed, so no one sees a failed
    // version with files still in the store; nothing else writes to an upload that is verifying.
    // An open upload changes status first instead: that is what stops a complete racing with it.
    if (status === 'failed') {
      const current = await crud.getUploadById(db, uploadId)
      // A sealed version's files are never dropped here, whatever asks (a late cancel, a retried step).
      if (!current || !from.includes(current.status)) return false
      await dropStored(await crud.listUploadFiles(db, uploadId))
    }
    const closed = await transaction(db, async (tx) => {
      const row = await crud.lockUpload(tx, uploadId)
      if (!row || !from.includes(row.status)) return null
      await crud.updateUpload(tx, uploadId, { status, statusReason: reason })
      const version = await crud.lockVersion(tx, row.versionId)
      if (version && version.status !== 'deleted' && version.status !== 'ready') {
        await crud.updateVersion(tx, row.versionId, { status: 'failed', statusReason: reason })
      }
      await sweeps.unschedule(tx, UPLOAD_EXPIRY_SWEEP, uploadId)
      const topic = status === 'aborted' ? UPLOAD_TOPIC.aborted : status === 'expired' ? UPLOAD_TOPIC.expired : UPLOAD_TOPIC.failed
      await events.publish(tx, topic, { modelId: row.modelId, versionId: row.versionId, uploadId, reason }, { tenantId: row.tenantId })
      return { row, files: await crud.listUploadFiles(tx, uploadId) }
    })
    if (!closed) return false
    if (status !== 'failed') await dropStored(closed.files)
    log.info({ uploadId, versionId: closed.row.versionId, status }, 'model upload closed')
    return true
  }

  return {
    /**
     * Opens an upload: a version (`uploading`) with its ledger, one multipart upload per file in
     * the store, and presigned URLs for every part, valid until the upload expires.
     */
    async start(principal: Principal, modelId: string, input: UploadInput): Promise<UploadView> {
      const model = await crud.getModel(db, principal.tenantId, modelId)
      if (!model) throw modelNotFound()
      if (model.source !== 'upload') throw notUploadable(model.source)
      checkLimits(input)
      const label = input.label ?? `v${(await crud.countVersionsEver(db, modelId)) + 1}`
      const version = await models
        .startVersion(principal.tenantId, modelId, {
          label,
          status: 'uploading',
          createdBy: principal.id,
          files: input.files.map((f) => ({ path: f.path, size: f.size })),
        })
        .catch((err: unknown) => {
          if (crud.uniqueViolationOf(err) === 'model_versions_model_label_live_idx') throw versionLabelTaken(label)
          if (err instanceof ValidationError) {
            // startVersion names fields as `files.N.path`; the request knows them under body.
            for (const f of err.details.fields) if (!f.field.startsWith('body.')) f.field = `body.${f.field}`
          }
          throw err
        })
      const id = randomUUID()
      const ledger = await crud.listVersionFiles(db, version.id)
      const declared = new Map(input.files.map((f) => [f.path, f]))
      const opened: ModelUploadFileRow[] = []
      try {
        for (const file of ledger) {
          const storeUploadId = await blob.createMultipart(file.blobKey)
          opened.push({
            uploadId: id,
            path: file.path,
            blobKey: file.blobKey,
            storeUploadId,
            size: file.size,
            declaredSha256: declared.get(file.path)!.sha256.toLowerCase(),
            sha256: null,
            partCount: partition(file.size, settings.partBytes).length,
            status: 'open',
          })
        }
        const expiresAt = new Date(Date.now() + settings.urlExpirySeconds * 1000)
        const row = await transaction(db, async (tx) => {
          const inserted = await crud.insertUpload(
            tx,
            { id, tenantId: principal.tenantId, modelId, versionId: version.id, status: 'open', partSize: settings.partBytes, expiresAt, createdBy: principal.id },
            opened,
            opened.flatMap((f) => partition(f.size, settings.partBytes).map((size, i) => ({ uploadId: id, path: f.path, partNumber: i + 1, size }))),
          )
          await sweeps.schedule(tx, UPLOAD_EXPIRY_SWEEP, id, { dueInMs: settings.urlExpirySeconds * 1000 })
          return inserted
        })
        const urls = new Map<string, string[]>()
        for (const file of opened) {
          const list: string[] = []
          for (let n = 1; n <= file.partCount; n++) list.push(await blob.presignPart(file.blobKey, file.storeUploadId, n, settings.urlExpirySeconds))
          urls.set(file.path, list)
        }
        log.info({ uploadId: id, modelId, versionId: version.id, files: opened.length }, 'model upload opened')
        return view(row, opened, urls)
      } catch (err) {
        await dropStored(opened)
        await crud.updateVersion(db, version.id, { status: 'failed', statusReason: `the upload could not be opened: ${(err as Error).message.slice(0, 200)}` })
        throw err
      }
    },

    async get(principal: Principal, modelId: string, uploadId: string): Promise<UploadView> {
      const row = await visible(principal, modelId, uploadId)
      return view(row, await crud.listUploadFiles(db, uploadId))
    },

    /**
     * Checks every part against the store (present, of its size, with the ETag the client got),
     * assembles each file, and starts the workflow that verifies the bytes and seals the version.
     * Exactly one complete of an upload gets past the status change to `completing`; a check that
     * fails hands the upload back `open`, so the client can send a part again and retry.
     */
    async complete(principal: Principal, modelId: string, uploadId: string, input: CompleteInput): Promise<UploadView> {
      await visible(principal, modelId, uploadId)
      await transaction(db, async (tx) => {
        const row = await crud.lockUpload(tx, uploadId)
        if (!row) throw uploadNotFound()
        if (row.status !== 'open') throw uploadNotOpen(row.status)
        if (row.expiresAt.getTime() <= Date.now()) throw uploadExpired()
        await crud.updateUpload(tx, uploadId, { status: 'completing' })
      })
      let files: ModelUploadFileRow[]
      try {
        files = await crud.listUploadFiles(db, uploadId)
        const expected = await crud.listUploadParts(db, uploadId)
        const listed = checkListed(files, input)
        for (const file of files.filter((f) => f.status === 'open')) {
          const stored = new Map((await blob.listParts(file.blobKey, file.storeUploadId)).map((p) => [p.partNumber, p]))
          for (const part of expected.filter((p) => p.path === file.path)) {
            const sent = listed.get(file.path)!.get(part.partNumber)
            checkPart(file.path, part, sent!, stored.get(part.partNumber))
          }
        }
        for (const file of files.filter((f) => f.status === 'open')) {
          const parts = [...listed.get(file.path)!.entries()].map(([partNumber, etag]) => ({ partNumber, etag }))
          for (const part of parts) await crud.setUploadPartEtag(db, uploadId, file.path, part.partNumber, part.etag)
          await blob.completeMultipart(file.blobKey, file.storeUploadId, parts)
          // Recorded one by one: a retry after a failure half way skips what the store already assembled.
          await crud.updateUploadFile(db, uploadId, file.path, { status: 'completed' })
          file.status = 'completed'
        }
      } catch (err) {
        await crud.updateUpload(db, uploadId, { status: 'open' })
        throw err
      }

      // Verifying before the run starts: the run's steps expect it, and may be quicker than this request.
      const verifying = await transaction(db, async (tx) => {
        const locked = (await crud.lockUpload(tx, uploadId))!
        const updated = await crud.updateUpload(tx, uploadId, { status: 'verifying' })
        await crud.updateVersion(tx, locked.versionId, { status: 'verifying' })
        for (const file of files) await crud.recordVersionFile(tx, locked.versionId, file.path, { status: 'stored' })
        await sweeps.unschedule(tx, UPLOAD_EXPIRY_SWEEP, uploadId)
        return updated
      })
      let started: { workflowId: string }
      try {
        started = await workflows.start({
          type: UPLOAD_WORKFLOW,
          tenantId: principal.tenantId,
          resource: { kind: 'model_version', id: verifying.versionId },
          startedBy: principal.id,
          input: { uploadId },
          inputSummary: `verify upload ${uploadId}`,
        })
      } catch (err) {
        await close(uploadId, 'failed', `the verification could not be started: ${(err as Error).message.slice(0, 200)}`, ['verifying'])
        throw err
      }
      const row = await transaction(db, async (tx) => {
        await crud.updateVersion(tx, verifying.versionId, { workflowId: started.workflowId })
        return crud.updateUpload(tx, uploadId, { workflowId: started.workflowId })
      })
      log.info({ uploadId, versionId: row.versionId, workflowId: started.workflowId }, 'model upload completed in the store; verifying')
      return view(row, files)
    },

    /**
     * Fresh presigned URLs for an open upload whose URLs expired or are about to: for every part
     * the store does not hold yet (`all`: every part, to send one again). The URLs live the
     * configured URL lifetime from now, and the upload's expiry moves with them (an upload still
     * being sent is not abandoned), never past MAX_UPLOAD_LIFETIME_MS after it was opened. The
     * answer lists, per file, only the parts it minted URLs for.
     */
    async refreshParts(principal: Principal, modelId: string, uploadId: string, options: { all?: boolean } = {}): Promise<UploadView> {
      await visible(principal, modelId, uploadId)
      const row = await transaction(db, async (tx) => {
        const locked = await crud.lockUpload(tx, uploadId)
        if (!locked) throw uploadNotFound()
        if (locked.status !== 'open') throw uploadNotOpen(locked.status)
        if (locked.expiresAt.getTime() <= Date.now()) throw uploadExpired()
        const latest = locked.createdAt.getTime() + MAX_UPLOAD_LIFETIME_MS
        const expiresAt = new Date(Math.max(locked.expiresAt.getTime(), Math.min(Date.now() + settings.urlExpirySeconds * 1000, latest)))
        if (expiresAt.getTime() !== locked.expiresAt.getTime()) {
          await sweeps.schedule(tx, UPLOAD_EXPIRY_SWEEP, uploadId, { dueInMs: expiresAt.getTime() - Date.now() })
          return crud.updateUpload(tx, uploadId, { expiresAt })
        }
        return locked
      })
      const files = await crud.listUploadFiles(db, uploadId)
      // A URL never outlives its upload: the sweep would drop what it carried.
      const lifetimeSeconds = Math.max(1, Math.ceil((row.expiresAt.getTime() - Date.now()) / 1000))
      const urls = new Map<string, Array<string | undefined>>()
      for (const file of files) {
        const stored = options.all ? new Set<number>() : new Set((await blob.listParts(file.blobKey, file.storeUploadId)).map((p) => p.partNumber))
        const list: Array<string | undefined> = []
        for (let n = 1; n <= file.partCount; n++) {
          list.push(stored.has(n) ? undefined : await blob.presignPart(file.blobKey, file.storeUploadId, n, lifetimeSeconds))
        }
        urls.set(file.path, list)
      }
      log.info({ uploadId, modelId, all: options.all === true }, 'model upload part URLs minted again')
      return view(row, files, urls, true)
    },

    /** Drops an open upload: its parts leave the store and its version fails. */
    async abort(principal: Principal, modelId: string, uploadId: string): Promise<void> {
      const row = await visible(principal, modelId, uploadId)
      if (row.status !== 'open') throw uploadNotOpen(row.status)
      const done = await close(uploadId, 'aborted', `${UploadErrorCode.ABORTED}: the upload was aborted`, ['open'])
      if (!done) throw uploadNotOpen((await crud.getUpload(db, principal.tenantId, modelId, uploadId))?.status ?? 'gone')
    },

    // ---- the workflow's steps -----------------------------------------------------------------

    /**
     * Reads every stored file back, computing its SHA-256 and size (the client's declarations are
     * compared, never trusted) and what its metadata says; a mismatch throws
     * UploadVerificationError. `progress` is told the bytes read so far.
     */
    async verify(uploadId: string, progress: (done: number, total: number, path: string) => Promise<void>): Promise<{ files: number; bytes: number }> {
      const row = await crud.getUploadById(db, uploadId)
      if (!row) throw uploadNotFound()
      const files = await crud.listUploadFiles(db, uploadId)
      const total = files.reduce((sum, f) => sum + f.size, 0)
      const facts: FileFacts[] = []
      let done = 0
      let reported = 0
      for (const file of files) {
        const hash = createHash('sha256')
        const collector = createMetadataCollector(file.path)
        let size = 0
        await progress(done, total, file.path)
        for await (const chunk of await blob.get(file.blobKey)) {
          const bytes = chunk as Buffer
          hash.update(bytes)
          collector?.push(bytes)
          size += bytes.length
          done += bytes.length
          if (done - reported > 64 * 1024 * 1024) {
            reported = done
            await progress(done, total, file.path)
          }
        }
        const sha256 = hash.digest('hex')
        if (size !== file.size) {
          throw new UploadVerificationError(UploadErrorCode.SIZE_MISMATCH, `${file.path} is ${size} bytes in the store; ${file.size} were declared`)
        }
        if (sha256 !== file.declaredSha256) {
          throw new UploadVerificationError(UploadErrorCode.HASH_MISMATCH, `${file.path}: the stored bytes hash to sha256 ${sha256}, not the ${file.declaredSha256} declared`)
        }
        await transaction(db, async (tx) => {
          await crud.updateUploadFile(tx, uploadId, file.path, { status: 'verified', sha256 })
          await crud.recordVersionFile(tx, row.versionId, file.path, { sha256, status: 'stored', bytesDone: size })
        })
        const fact = collector?.finish(log)
        if (fact) facts.push(fact)
      }
      const patch = metadataPatch(facts, files.map((f) => f.path))
      if (patch) {
        await transaction(db, async (tx) => {
          const model = await crud.lockModel(tx, row.modelId)
          if (model && model.status !== 'deleted') await crud.updateModel(tx, row.modelId, patch(model))
        })
      }
      return { files: files.length, bytes: total }
    },

    /** Seals the verified version (the model's first becomes its default) and says so. */
    async seal(uploadId: string): Promise<{ versionId: string; files: number; sizeBytes: number }> {
      const row = await crud.getUploadById(db, uploadId)
      if (!row) throw uploadNotFound()
      const version = await models.sealVersion(row.versionId)
      await transaction(db, async (tx) => {
        const locked = await crud.lockUpload(tx, uploadId)
        if (locked?.status !== 'verifying') return
        await crud.updateUpload(tx, uploadId, { status: 'completed', statusReason: null })
        await events.publish(
          tx,
          UPLOAD_TOPIC.uploaded,
          { modelId: row.modelId, versionId: row.versionId, label: version.label, uploadId, files: version.fileCount, sizeBytes: version.sizeBytes },
          { tenantId: row.tenantId },
        )
      })
      log.info({ uploadId, versionId: row.versionId }, 'model version uploaded and sealed')
      return { versionId: row.versionId, files: version.fileCount, sizeBytes: version.sizeBytes }
    },

    /** The version fails with the reason and its objects leave the store (a verification failure, or a cancel). */
    async fail(uploadId: string, reason: string): Promise<void> {
      await close(uploadId, 'failed', reason.slice(0, 1000), ['verifying', 'completing'])
    },

    // ---- sweeps -------------------------------------------------------------------------------

    /** The expiry sweep's run for one upload: not yet due, moved on (forgotten), or expired now. */
    async expire(uploadId: string): Promise<{ nextInMs?: number }> {
      const row = await crud.getUploadById(db, uploadId)
      if (!row || (row.status !== 'open' && row.status !== 'completing')) {
        await sweeps.unschedule(db, UPLOAD_EXPIRY_SWEEP, uploadId)
        return {}
      }
      const due = row.expiresAt.getTime() + (row.status === 'completing' ? COMPLETING_GRACE_MS : 0)
      if (due > Date.now()) return { nextInMs: due - Date.now() }
      await close(uploadId, 'expired', `${UploadErrorCode.EXPIRED}: the upload was not completed before ${row.expiresAt.toISOString()}`, [row.status])
      return {}
    },

    /**
     * Aborts multipart uploads under models/ that nothing is writing any more and that are older
     * than MODEL_UPLOAD_ORPHAN_AFTER_SECONDS: left by a process that died between opening them in
     * the store and recording them, or by an abort the store did not answer. Not an orphan: one an
     * open upload owns, one of a version still importing (an import streams its files through
     * multipart uploads of its own), and one whose key is not a version's file (not ours to judge).
     */
    async sweepOrphans(signal: AbortSignal): Promise<{ seen: number; aborted: number }> {
      const cutoff = Date.now() - settings.orphanAfterMs
      let seen = 0
      let aborted = 0
      let batch: Array<{ key: string; uploadId: string; versionId: string }> = []
      const flush = async () => {
        const live = await crud.liveStoreUploadIds(db, batch.map((b) => b.uploadId))
        const statuses = await crud.versionStatuses(db, [...new Set(batch.map((b) => b.versionId))])
        for (const open of batch) {
          if (signal.aborted) break
          if (live.has(open.uploadId) || statuses.get(open.versionId) === 'importing') continue
          await blob.abortMultipart(open.key, open.uploadId)
          aborted++
        }
        batch = []
      }
      for await (const open of blob.listMultipartUploads('models/')) {
        if (signal.aborted || seen >= ORPHAN_SCAN_LIMIT) break
        seen++
        const versionId = VERSION_FILE_KEY.exec(open.key)?.[1]
        if (!versionId || open.initiated.getTime() > cutoff) continue
        batch.push({ ...open, versionId })
        if (batch.length >= ORPHAN_BATCH) await flush()
      }
      await flush()
      if (aborted > 0) log.info({ seen, aborted }, 'orphaned multipart uploads aborted')
      return { seen, aborted }
    },
  }

  /** Every file of the upload listed once, with exactly its parts 1..n, each once. */
  function checkListed(files: ModelUploadFileRow[], input: CompleteInput): Map<string, Map<number, string>> {
    const problems: Array<{ field: string; message: string }> = []
    const byPath = new Map(files.map((f) => [f.path, f]))
    const listed = new Map<string, Map<number, string>>()
    input.files.forEach((entry, i) => {
      const file = byPath.get(entry.path)
      if (!file) return problems.push({ field: `body.files.${i}.path`, message: 'not a file of this upload' })
      if (listed.has(entry.path)) return problems.push({ field: `body.files.${i}.path`, message: 'listed twice' })
      const parts = new Map<number, string>()
      for (const part of entry.parts) {
        if (parts.has(part.partNumber)) return problems.push({ field: `body.files.${i}.parts`, message: `part ${part.partNumber} listed twice` })
        if (part.partNumber > file.partCount) return problems.push({ field: `body.files.${i}.parts`, message: `the file has ${file.partCount} part(s)` })
        parts.set(part.partNumber, part.etag.replace(/^"|"$/g, ''))
      }
      listed.set(entry.path, new Map([...parts.entries()].sort((a, b) => a[0] - b[0])))
    })
    files.forEach((f) => {
      if (!listed.has(f.path) && problems.length < 20) problems.push({ field: 'body.files', message: `${f.path} is missing` })
    })
    if (problems.length > 0) throw uploadFilesMismatch(`the files listed are not the upload's: ${problems[0]!.field} ${problems[0]!.message}`, problems.slice(0, 20))
    for (const file of files) {
      for (let n = 1; n <= file.partCount; n++) if (!listed.get(file.path)!.has(n)) throw uploadPartMissing(file.path, n)
    }
    return listed
  }
}

function checkPart(path: string, expected: { partNumber: number; size: number }, sentETag: string, stored: StoredPart | undefined): void {
  if (!stored) throw uploadPartMissing(path, expected.partNumber)
  if (stored.etag !== sentETag) throw uploadPartMismatch(path, expected.partNumber, 'etag', sentETag, stored.etag)
  if (stored.size !== expected.size) throw uploadPartMismatch(path, expected.partNumber, 'size', expected.size, stored.size)
}

export type UploadService = ReturnType<typeof createUploadService>
