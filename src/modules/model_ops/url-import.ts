import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import type { Principal } from '../../platform/auth/principal.js'
import type { Database } from '../../platform/db/client.js'
import { ValidationError } from '../../platform/errors.js'
import { type Outbound, OutboundError } from '../../platform/net/outbound.js'
import type { Vault } from '../../platform/vault.js'
import { type Progress, type WorkflowService, WorkflowStepError } from '../workflow_ops/index.js'
import { type ArchiveLimits, unpackTar, unpackZip } from './archive.js'
import * as crud from './crud.js'
import { IMPORT_STEPS, type ImportAccepted, type ImportService, recordProgress } from './import.js'
import { discardFile, type TransferBlob, transferFile, TransferErrorCode } from './import-transfer.js'
import { blobKeyOf, MAX_FILES_PER_VERSION } from './paths.js'
import { fetchUrl, fetchUrlRange, fileNameOf, kindOf, probeUrl, shownUrl, UrlErrorCode, type UrlKind } from './url-source.js'

/**
 * `source: url` imports: one file or one archive fetched by HTTPS into a version, on the same
 * machinery as the hub's (ledger, parts, progress by bytes, metadata, seal, cancel). A plain file
 * whose server answers Range and states its length is fetched in parts that resume; anything else
 * (an archive, a server without Range, no length) is read in one pass, bounded all the same, and
 * an attempt that fails starts that pass over.
 */
export const URL_IMPORT_WORKFLOW = 'model_ops.importUrl'
const PROGRESS_EVERY_MS = 500

export interface UrlImportInput {
  source: 'url'
  url: string
  sha256?: string
  name?: string
  displayName?: string
  modelId?: string
}

/**
 * The workflow's input. The URL is in it (a signed URL's query string included, which is why it is
 * never shown: the model's uri, logs and events carry `shownUrl`); nothing else that could be a secret.
 */
export interface UrlImportRef {
  modelId: string
  versionId: string
  /**
   * The URL sealed by the vault (bound to the version): a signed URL's query is a credential, and a
   * workflow's input lives on in the engine's history and the run record.
   */
  sealedUrl: string
  fileName: string
  kind: UrlKind
  sha256: string | null
}

/** How the transfer reads the file, as the probe found it. */
export interface UrlPlan {
  mode: 'ranged' | 'stream'
  size: number | null
}

export interface UrlImportServiceDeps {
  db: Database
  blob: TransferBlob
  vault: Pick<Vault, 'encrypt' | 'decrypt'>
  outbound: Pick<Outbound, 'open' | 'check'>
  imports: Pick<ImportService, 'begin' | 'firstOf' | 'finish' | 'fail' | 'cancel'>
  workflows: Pick<WorkflowService, 'reportProgress'>
  partBytes: number
  maxDownloadBytes: number
  archive: Omit<ArchiveLimits, 'maxFiles'>
  /** Where a zip waits on local disk while it is unpacked (its directory is at its end). */
  scratchDir: string
  log: Logger
}

/** `Qwen2.5-0.5B.tar.gz` → `Qwen2.5-0.5B`, within the model name rule. */
function defaultName(fileName: string): string {
  const base = fileName.replace(/\.(tar\.gz|tgz|tar|zip|safetensors|gguf|bin|onnx)$/i, '').replace(/^[^A-Za-z0-9]+/, '')
  return (base || 'model').slice(0, 128)
}

/**
 * transferFile speaks of the hub: on a url import its codes are the URL's. A bare stream error (the
 * server cut the answer short, after the retries) is the URL being unreachable.
 */
function asUrlFailure(err: unknown): unknown {
  if (!(err instanceof WorkflowStepError)) {
    return new WorkflowStepError(UrlErrorCode.UNREACHABLE, `the download stopped: ${err instanceof Error ? err.message.slice(0, 200) : 'error'}`)
  }
  if (!err.code.startsWith('HUB_')) return err
  const message = err.message.slice(err.code.length + 2).replace(/the hub('s)?/g, 'the server$1')
  return new WorkflowStepError(err.code.replace(/^HUB_/, 'URL_'), message)
}

export function createUrlImportService(deps: UrlImportServiceDeps) {
  const { db, blob, outbound, imports, workflows, partBytes, maxDownloadBytes, log } = deps
  const urlContext = (versionId: string) => `model-version:${versionId}:source-url`
  const urlOf = (ref: Pick<UrlImportRef, 'versionId' | 'sealedUrl'>) => deps.vault.decrypt(ref.sealedUrl, urlContext(ref.versionId))
  const limits: ArchiveLimits = { ...deps.archive, maxFiles: MAX_FILES_PER_VERSION }

  async function versionOf(ref: UrlImportRef) {
    const version = await crud.getVersionById(db, ref.versionId)
    if (!version || version.modelId !== ref.modelId) throw new WorkflowStepError('MODEL_VERSION_NOT_FOUND', 'the version being imported is gone')
    return version
  }

  const wanted = async (versionId: string) => (await crud.getVersionById(db, versionId))?.status === 'importing'

  /** Progress by bytes, throttled; `total` null when the server stated no length. */
  function reporter(runId: string, total: number | null, label: string) {
    let last = 0
    let chain: Promise<unknown> = Promise.resolve()
    return {
      report(done: number, force = false) {
        const now = Date.now()
        if (!force && now - last < PROGRESS_EVERY_MS) return
        last = now
        const progress: Progress = {
          step: IMPORT_STEPS.download,
          totalSteps: IMPORT_STEPS.total,
          percent: total ? 2 + Math.floor((Math.min(done, total) / Math.max(1, total)) * 95) : 2,
          message: total ? `downloading ${label}: ${done} of ${total} bytes` : `downloading ${label}: ${done} bytes`,
          bytesDone: done,
          bytesTotal: total,
        }
        chain = chain.then(() => workflows.reportProgress(runId, progress)).catch((err: unknown) => log.warn({ err, runId }, 'import progress not recorded'))
      },
      settled: () => chain,
    }
  }

  /** Removes what an earlier one-pass attempt stored: that pass starts over. */
  async function clearLedger(ref: UrlImportRef): Promise<void> {
    for (const row of await crud.listVersionFiles(db, ref.versionId)) {
      await discardFile(blob, row)
    }
    await crud.deleteVersionFiles(db, ref.versionId)
  }

  /** Stores one file of the pass: in the ledger first (so a cancel finds it), then its bytes, then verified. */
  function storeInto(ref: UrlImportRef): (path: string, size: number | null, body: Readable) => Promise<void> {
    return async (path, size, body) => {
      if (!(await wanted(ref.versionId))) {
        body.destroy()
        throw new WorkflowStepError(TransferErrorCode.CANCELLED, 'the import was cancelled')
      }
      const blobKey = blobKeyOf(ref.modelId, ref.versionId, path)
      await crud.addVersionFiles(db, [{ versionId: ref.versionId, path, size: size ?? 0, sha256: null, gitOid: null, lfs: false, blobKey, status: 'pending' }])
      const hash = createHash('sha256')
      const hashed = Readable.from(
        (async function* () {
          for await (const chunk of body) {
            hash.update(chunk as Buffer)
            yield chunk as Buffer
          }
        })(),
      )
      const info = await blob.put(blobKey, hashed, size === null ? {} : { size })
      if (size !== null && info.size !== size) throw new WorkflowStepError(TransferErrorCode.VERIFICATION_FAILED, `${path} was stored with ${info.size} bytes of ${size}`)
      await crud.updateVersionFile(db, ref.versionId, path, { size: info.size, bytesDone: info.size, status: 'verified', sha256: hash.digest('hex') })
    }
  }

  /**
   * Puts a file this pass stored back under another path: a tar whose first files shared a folder
   * that a later one does not. A copy through this process (the store has no rename), then the
   * ledger row follows, then the old object goes.
   */
  function relocateIn(ref: UrlImportRef): (from: string, to: string) => Promise<void> {
    return async (from, to) => {
      const fromKey = blobKeyOf(ref.modelId, ref.versionId, from)
      const toKey = blobKeyOf(ref.modelId, ref.versionId, to)
      const info = await blob.stat(fromKey)
      await blob.put(toKey, await blob.get(fromKey), info ? { size: info.size } : {})
      await crud.renameVersionFile(db, ref.versionId, from, { path: to, blobKey: toKey })
      await blob.delete(fromKey)
    }
  }

  /** The ranged path: the file is one ledger row, fetched in parts with Range like a hub file. */
  async function transferRanged(runId: string, ref: UrlImportRef): Promise<{ files: number; bytes: number }> {
    // A retried attempt after a cancel would open a new multipart upload for a version nobody wants.
    if (!(await wanted(ref.versionId))) throw new WorkflowStepError(TransferErrorCode.CANCELLED, 'the import was cancelled')
    const row = await crud.nextUnverifiedFile(db, ref.versionId)
    const totals = await crud.versionBytes(db, ref.versionId)
    if (!row) return { files: totals.files, bytes: totals.total }
    const progress = reporter(runId, row.size, row.path)
    progress.report(row.bytesDone, true)
    try {
      const result = await transferFile(
        {
          path: row.path,
          size: row.size,
          lfs: true,
          sha256: row.sha256,
          gitOid: null,
          blobKey: row.blobKey,
          bytesDone: row.bytesDone,
          multipartUploadId: row.multipartUploadId,
          partEtags: row.partEtags,
        },
        {
          blob,
          partBytes,
          fetchRange: (start, end) => fetchUrlRange(outbound, urlOf(ref), start, end),
          record: recordProgress(db, ref.versionId, row.path),
          progress: (bytes) => progress.report(bytes),
          stillWanted: () => wanted(ref.versionId),
        },
      )
      if (!(await wanted(ref.versionId))) {
        await discardFile(blob, row)
        throw new WorkflowStepError(TransferErrorCode.CANCELLED, 'the import was cancelled')
      }
      await crud.updateVersionFile(db, ref.versionId, row.path, { bytesDone: row.size, status: 'verified', sha256: result.sha256 })
      progress.report(row.size, true)
      log.info({ versionId: ref.versionId, path: row.path, size: row.size, fetched: result.fetched }, 'model file imported')
      return { files: 1, bytes: row.size }
    } catch (err) {
      throw asUrlFailure(err)
    } finally {
      await progress.settled()
    }
  }

  /** The one-pass path: the download is counted, bounded and hashed as it flows into the unpacker. */
  async function transferStream(runId: string, ref: UrlImportRef): Promise<{ files: number; bytes: number }> {
    await clearLedger(ref)
    const { body, size } = await fetchUrl(outbound, urlOf(ref))
    if (size !== null && size > maxDownloadBytes) {
      body.destroy()
      throw new WorkflowStepError(UrlErrorCode.TOO_LARGE, `${shownUrl(urlOf(ref))} is ${size} bytes, more than ${maxDownloadBytes} (MODEL_IMPORT_MAX_DOWNLOAD_BYTES)`)
    }
    const progress = reporter(runId, size, ref.fileName)
    const hash = createHash('sha256')
    let downloaded = 0
    const counted = Readable.from(
      (async function* () {
        for await (const chunk of body) {
          downloaded += (chunk as Buffer).length
          if (downloaded > maxDownloadBytes) throw new WorkflowStepError(UrlErrorCode.TOO_LARGE, `${shownUrl(urlOf(ref))} sent more than ${maxDownloadBytes} bytes (MODEL_IMPORT_MAX_DOWNLOAD_BYTES)`)
          hash.update(chunk as Buffer)
          progress.report(downloaded)
          yield chunk as Buffer
        }
        if (size !== null && downloaded !== size) throw new WorkflowStepError(UrlErrorCode.UNREACHABLE, `${shownUrl(urlOf(ref))} ended after ${downloaded} of ${size} bytes`)
      })(),
    )
    const sink = storeInto(ref)
    let stored: { files: number; bytes: number; root?: string | null }
    try {
      if (ref.kind === 'tar' || ref.kind === 'tgz') {
        stored = await unpackTar(counted, ref.kind === 'tgz', limits, () => downloaded, sink, relocateIn(ref))
      } else if (ref.kind === 'zip') {
        await mkdir(deps.scratchDir, { recursive: true })
        const dir = await mkdtemp(join(deps.scratchDir, 'zip-'))
        try {
          await pipeline(counted, createWriteStream(join(dir, 'archive.zip')))
          checkSha256(ref, hash.copy().digest('hex'))
          stored = await unpackZip(join(dir, 'archive.zip'), limits, sink)
        } finally {
          await rm(dir, { recursive: true, force: true })
        }
      } else {
        // A plain file the server would not give by Range: stored as it comes.
        await sink(ref.fileName, size, counted)
        stored = { files: 1, bytes: downloaded }
      }
      checkSha256(ref, hash.digest('hex'))
      if (stored.files === 0) throw new WorkflowStepError('MODEL_IMPORT_NO_FILES', 'the archive holds no file')
    } catch (err) {
      body.destroy()
      await progress.settled()
      // Nothing of a failed pass is kept: the next attempt starts it over.
      await clearLedger(ref).catch((cleanup: unknown) => log.warn({ err: cleanup, versionId: ref.versionId }, 'a failed url import pass was not cleared'))
      throw asUrlFailure(err)
    }
    progress.report(downloaded, true)
    await progress.settled()
    log.info({ versionId: ref.versionId, kind: ref.kind, downloaded, files: stored.files, bytes: stored.bytes, root: stored.root ?? null }, 'url import stored')
    return stored
  }

  function checkSha256(ref: UrlImportRef, actual: string): void {
    if (ref.sha256 && ref.sha256 !== actual) {
      throw new WorkflowStepError(TransferErrorCode.VERIFICATION_FAILED, `${ref.fileName} has sha256 ${actual}, not the ${ref.sha256} the import named`)
    }
  }

  return {
    /**
     * Checks what can be checked before anything is dialled (https, no credentials in the URL, no
     * denied literal address, a file name at the end of the path), then records the model and
     * version and starts the import.
     */
    async start(principal: Principal, input: UrlImportInput, idempotencyKey?: string): Promise<ImportAccepted> {
      const first = await imports.firstOf(principal, URL_IMPORT_WORKFLOW, input, idempotencyKey)
      if (first) return first
      try {
        outbound.check(input.url, false)
      } catch (err) {
        if (!(err instanceof OutboundError)) throw err
        throw new ValidationError(`url: ${err.message}`, [{ field: 'body.url', message: err.failure === 'REFUSED' ? 'a denied address' : err.message }])
      }
      const fileName = fileNameOf(input.url)
      if (!fileName) {
        throw new ValidationError('url: its path must end in a file name (letters, digits, ".", "_", "-")', [{ field: 'body.url', message: 'no file name' }])
      }
      const shown = shownUrl(input.url)
      return imports.begin(principal, {
        workflowType: URL_IMPORT_WORKFLOW,
        fingerprint: input,
        idempotencyKey,
        source: 'url',
        providerId: null,
        credentialId: null,
        uri: shown,
        name: input.name ?? defaultName(fileName),
        displayName: input.displayName ?? fileName,
        modelId: input.modelId,
        summary: `import ${shown}`.slice(0, 500),
        inputOf: (modelId, versionId): UrlImportRef => ({
          modelId,
          versionId,
          sealedUrl: deps.vault.encrypt(input.url, urlContext(versionId)),
          fileName,
          kind: kindOf(fileName),
          sha256: input.sha256?.toLowerCase() ?? null,
        }),
      })
    },

    /**
     * Asks the server for the first byte: a plain file with Range and a length gets its ledger row
     * (kept by a retried run, which then resumes it); anything else is read in one pass.
     */
    async probe(runId: string, ref: UrlImportRef): Promise<UrlPlan> {
      const version = await versionOf(ref)
      if (version.status !== 'importing' && version.status !== 'failed') throw new WorkflowStepError('MODEL_VERSION_NOT_IMPORTING', `the version is ${version.status}`)
      await workflows.reportProgress(runId, { step: IMPORT_STEPS.list, totalSteps: IMPORT_STEPS.total, percent: 0, message: `asking ${shownUrl(urlOf(ref))}` })
      const probe = await probeUrl(outbound, urlOf(ref))
      if (probe.size !== null && probe.size > maxDownloadBytes) {
        throw new WorkflowStepError(UrlErrorCode.TOO_LARGE, `${shownUrl(urlOf(ref))} is ${probe.size} bytes, more than ${maxDownloadBytes} (MODEL_IMPORT_MAX_DOWNLOAD_BYTES)`)
      }
      if (version.status === 'failed') {
        // A retried run: the version imports again, from what the ledger kept.
        await crud.updateVersion(db, ref.versionId, { status: 'importing', statusReason: null })
        const model = await crud.getModel(db, version.tenantId, ref.modelId)
        if (model?.status === 'failed') await crud.updateModel(db, ref.modelId, { status: 'importing', statusReason: null })
      }
      if (ref.kind !== 'file' || !probe.ranges || probe.size === null) return { mode: 'stream', size: probe.size }
      const rows = await crud.listVersionFiles(db, ref.versionId)
      const kept = rows.length === 1 && rows[0]!.path === ref.fileName && rows[0]!.size === probe.size
      if (!kept) {
        await clearLedger(ref)
        await crud.addVersionFiles(db, [
          { versionId: ref.versionId, path: ref.fileName, size: probe.size, sha256: ref.sha256, gitOid: null, lfs: true, blobKey: blobKeyOf(ref.modelId, ref.versionId, ref.fileName), status: 'pending' },
        ])
      }
      return { mode: 'ranged', size: probe.size }
    },

    async transfer(runId: string, input: UrlImportRef & { plan: UrlPlan }): Promise<{ files: number; bytes: number }> {
      const { plan, ...ref } = input
      const version = await versionOf(ref)
      if (version.status !== 'importing') throw new WorkflowStepError(TransferErrorCode.CANCELLED, `the version is ${version.status}`)
      return plan.mode === 'ranged' ? transferRanged(runId, ref) : transferStream(runId, ref)
    },

    finish: (runId: string, ref: UrlImportRef) => imports.finish(runId, { modelId: ref.modelId, versionId: ref.versionId, url: shownUrl(urlOf(ref)) }),
    fail: (ref: UrlImportRef, reason: string) => imports.fail(ref, reason),
    cancel: (ref: UrlImportRef) => imports.cancel(ref),
  }
}

export type UrlImportService = ReturnType<typeof createUrlImportService>
