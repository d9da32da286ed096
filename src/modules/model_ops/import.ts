import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { minimatch } from 'minimatch'
import type { Logger } from 'pino'
import type { Principal } from '../../platform/auth/principal.js'
import type { BlobStore } from '../../platform/blob/index.js'
import { type Database, transaction } from '../../platform/db/client.js'
import { ValidationError } from '../../platform/errors.js'
import type { EventBus } from '../../platform/events/index.js'
import { type Progress, type WorkflowService, WorkflowStepError } from '../workflow_ops/index.js'
import type { CredentialService } from './credentials.js'
import * as crud from './crud.js'
import { credentialNotFound, modelNameTaken, modelNotFound } from './errors.js'
import { fetchFileRange, type HubAccess, HubRateLimited, listHubFiles, resolveCommit } from './hub.js'
import { discardFile, type LedgerFile, type TransferBlob, type LedgerProgress, transferFile, TransferErrorCode } from './import-transfer.js'
import { readModelMetadata } from './import-metadata.js'
import { blobKeyOf, filePathProblem, MAX_FILES_PER_VERSION } from './paths.js'
import { MODEL_TOPIC, type ModelService } from './service.js'
import type { ModelVersionFileRow } from './tables.js'

export const IMPORT_WORKFLOW = 'model_ops.importModel'
export const IMPORT_TOPIC = { imported: 'model.imported' } as const
const RESOURCE_KIND = 'model'
/** Steps of an import as the run record counts them. */
export const IMPORT_STEPS = { list: 1, download: 2, finish: 3, total: 3 } as const
/** Progress is written at most this often while bytes flow. */
const PROGRESS_EVERY_MS = 500

export interface HubImportInput {
  source: 'hub'
  repo: string
  revision?: string
  credentialId?: string
  include?: string[]
  exclude?: string[]
  name?: string
  displayName?: string
  /** A new version of this (hub) model instead of a new model. */
  modelId?: string
}

/** What the workflow carries: ids and the request, never a token (activities read it from the vault). */
export interface ImportRef {
  modelId: string
  versionId: string
  repo: string
  revision: string
  credentialId: string | null
  include: string[]
  exclude: string[]
}

/** What a source's start hands to the shared part: the model to record and the workflow to start. */
export interface ImportSpec {
  workflowType: string
  /** What the Idempotency-Key is bound to (the request as sent). */
  fingerprint: unknown
  idempotencyKey?: string | undefined
  source: 'hub' | 'url'
  providerId: string | null
  credentialId: string | null
  /** Shown as the model's uri and in logs: never a secret. */
  uri: string
  name: string
  displayName: string
  /** A new version of this model (of the same source) instead of a new model. */
  modelId?: string | undefined
  summary: string
  inputOf(modelId: string, versionId: string): object
}

export interface ImportAccepted {
  modelId: string
  versionId: string
  workflowId: string
}

/** What finishing, failing and cancelling an import need of its workflow input. */
export type VersionRef = Pick<ImportRef, 'modelId' | 'versionId'> & { repo?: string; url?: string }

/** An activity asks the workflow to wait (the hub said 429) instead of failing. */
export type MaybeWait<T> = T | { waitMs: number }

export interface ImportServiceDeps {
  db: Database
  blob: TransferBlob
  events: Pick<EventBus, 'publish'>
  models: Pick<ModelService, 'startVersion' | 'sealVersion' | 'catalogChanged'>
  credentials: Pick<CredentialService, 'secretsOf'>
  workflows: Pick<WorkflowService, 'start' | 'findIdempotentRun' | 'reportProgress'>
  hubUrl: string
  /** Files above this are fetched and stored in parts of this size (MODEL_IMPORT_PART_MB). */
  partBytes: number
  log: Logger
}

/** `include` keeps only matching paths (all when empty), `exclude` then drops matches. */
export function selectFiles<T extends { path: string }>(files: T[], include: string[], exclude: string[]): T[] {
  const options = { dot: true, nocomment: true, nonegate: true }
  return files.filter(
    (f) => (include.length === 0 || include.some((g) => minimatch(f.path, g, options))) && !exclude.some((g) => minimatch(f.path, g, options)),
  )
}

const ledgerFile = (row: ModelVersionFileRow): LedgerFile => ({
  path: row.path,
  size: row.size,
  lfs: row.lfs,
  sha256: row.sha256,
  gitOid: row.gitOid,
  blobKey: row.blobKey,
  bytesDone: row.bytesDone,
  multipartUploadId: row.multipartUploadId,
  partEtags: row.partEtags,
})

/** The ledger's record of where a file's transfer stands; `pending` until it is verified. */
export const recordProgress = (db: Database, versionId: string, path: string) => (progress: LedgerProgress) =>
  crud.updateVersionFile(db, versionId, path, { ...progress, status: 'pending' })

const defaultName = (repo: string) => repo.replace('/', '--').slice(0, 128)

function rateLimited(err: unknown): { waitMs: number } {
  if (err instanceof HubRateLimited) return { waitMs: err.retryAfterMs }
  throw err
}

export function createImportService(deps: ImportServiceDeps) {
  const { db, blob, events, models, credentials, workflows, hubUrl, partBytes, log } = deps

  async function access(ref: ImportRef, tenantId: string): Promise<HubAccess> {
    if (!ref.credentialId) return { hubUrl, repo: ref.repo }
    const secrets = await credentials.secretsOf(tenantId, ref.credentialId, 'hugging_face')
    if (!secrets?.token) throw new WorkflowStepError('HUB_UNAUTHORIZED', 'the hugging_face credential of the import was deleted')
    return { hubUrl, repo: ref.repo, token: secrets.token }
  }

  async function versionOf(ref: VersionRef) {
    const version = await crud.getVersionById(db, ref.versionId)
    if (!version || version.modelId !== ref.modelId) throw new WorkflowStepError('MODEL_VERSION_NOT_FOUND', 'the version being imported is gone')
    return version
  }

  async function wanted(versionId: string): Promise<boolean> {
    return (await crud.getVersionById(db, versionId))?.status === 'importing'
  }

  /** Removes every object and open multipart upload the version may hold while importing; answers how many files. */
  async function discardVersion(versionId: string): Promise<number> {
    const files = await crud.listVersionFiles(db, versionId)
    for (const file of files) await discardFile(blob, file)
    return files.length
  }

  /** The model keeps a status of its own only while it has no ready version. */
  async function failModel(tx: Parameters<Parameters<typeof transaction>[1]>[0], modelId: string, reason: string): Promise<void> {
    const model = await crud.lockModel(tx, modelId)
    if (model && model.status === 'importing' && !model.defaultVersionId) await crud.updateModel(tx, modelId, { status: 'failed', statusReason: reason })
  }

  /** The import a repeated Idempotency-Key already started, if any. */
  async function firstOf(principal: Principal, type: string, fingerprint: unknown, idempotencyKey?: string): Promise<ImportAccepted | null> {
    if (!idempotencyKey) return null
    const first = await workflows.findIdempotentRun(principal.tenantId, idempotencyKey, type, fingerprint)
    if (!first) return null
    const version = await crud.findVersionByWorkflow(db, principal.tenantId, first.workflowId)
    return version ? { modelId: version.modelId, versionId: version.id, workflowId: first.workflowId } : null
  }

  /**
   * Records the model (or takes the model of the same source named by `modelId`) and a version
   * `importing`, and starts the import's workflow; undone when the workflow cannot start.
   */
  async function begin(principal: Principal, spec: ImportSpec): Promise<ImportAccepted> {
    let modelId = spec.modelId
    let createdModel = false
    if (modelId) {
      const model = await crud.getModel(db, principal.tenantId, modelId)
      if (!model) throw modelNotFound()
      if (model.source !== spec.source) {
        throw new ValidationError(`a new version by this import needs a model imported from a ${spec.source}`, [{ field: 'body.modelId', message: `a ${model.source} model` }])
      }
    } else {
      modelId = randomUUID()
      await transaction(db, async (tx) => {
        await crud
          .insertModel(tx, {
            id: modelId!,
            tenantId: principal.tenantId,
            name: spec.name,
            displayName: spec.displayName,
            source: spec.source,
            providerId: spec.providerId,
            credentialId: spec.credentialId,
            uri: spec.uri,
            status: 'importing',
            createdBy: principal.id,
          })
          .catch((err: unknown) => {
            if (crud.uniqueViolationOf(err) === 'models_tenant_name_live_idx') throw modelNameTaken(spec.name)
            throw err
          })
        await events.publish(tx, MODEL_TOPIC.created, { modelId, name: spec.name, source: spec.source }, { tenantId: principal.tenantId })
      })
      // The caller lists the catalog next: it must count the new model (other changes by the workflow are heard on commit).
      models.catalogChanged(principal.tenantId)
      createdModel = true
    }
    const label = `v${(await crud.countVersionsEver(db, modelId)) + 1}`
    const version = await models.startVersion(principal.tenantId, modelId, { label, status: 'importing', createdBy: principal.id, files: [] })
    const undo = async () => {
      await transaction(db, async (tx) => {
        await crud.updateVersion(tx, version.id, { status: 'deleted', deletedAt: new Date() })
        if (createdModel) await crud.updateModel(tx, modelId!, { status: 'deleted', deletedAt: new Date() })
      })
      models.catalogChanged(principal.tenantId)
    }
    let started: { workflowId: string; deduplicated: boolean }
    try {
      started = await workflows.start({
        type: spec.workflowType,
        tenantId: principal.tenantId,
        resource: { kind: RESOURCE_KIND, id: modelId },
        startedBy: principal.id,
        input: { ...spec.inputOf(modelId, version.id) },
        inputSummary: spec.summary,
        ...(spec.idempotencyKey ? { idempotencyKey: spec.idempotencyKey, fingerprintOf: spec.fingerprint } : {}),
      })
    } catch (err) {
      await undo()
      throw err
    }
    if (started.deduplicated) {
      // The same key raced us and won: its import is the answer, ours never started.
      await undo()
      const first = await crud.findVersionByWorkflow(db, principal.tenantId, started.workflowId)
      return { modelId: first?.modelId ?? modelId, versionId: first?.id ?? version.id, workflowId: started.workflowId }
    }
    await crud.updateVersion(db, version.id, { workflowId: started.workflowId })
    log.info({ modelId, versionId: version.id, workflowId: started.workflowId, source: spec.source, uri: spec.uri }, 'model import started')
    return { modelId, versionId: version.id, workflowId: started.workflowId }
  }

  return {
    begin,
    firstOf,

    /**
     * Records the model (or takes the hub model named by `modelId`) and a version `importing`,
     * then starts the import. A repeated Idempotency-Key answers the first import.
     */
    async start(principal: Principal, input: HubImportInput, idempotencyKey?: string): Promise<ImportAccepted> {
      const first = await firstOf(principal, IMPORT_WORKFLOW, input, idempotencyKey)
      if (first) return first
      for (const [field, globs] of [['include', input.include], ['exclude', input.exclude]] as const) {
        for (const [i, glob] of (globs ?? []).entries()) {
          if (!minimatch.makeRe(glob, { dot: true })) throw new ValidationError(`${field} pattern ${i} is not a glob`, [{ field: `body.${field}.${i}`, message: 'not a glob' }])
        }
      }
      if (input.credentialId) {
        const ok = await credentials.secretsOf(principal.tenantId, input.credentialId, 'hugging_face')
        if (!ok) throw credentialNotFound()
      }
      const revision = input.revision ?? 'main'
      return begin(principal, {
        workflowType: IMPORT_WORKFLOW,
        fingerprint: input,
        idempotencyKey,
        source: 'hub',
        providerId: 'hugging_face',
        credentialId: input.credentialId ?? null,
        uri: input.repo,
        name: input.name ?? defaultName(input.repo),
        displayName: input.displayName ?? input.repo,
        modelId: input.modelId,
        summary: `import ${input.repo}@${revision}`,
        inputOf: (modelId, versionId): ImportRef => ({
          modelId,
          versionId,
          repo: input.repo,
          revision,
          credentialId: input.credentialId ?? null,
          include: input.include ?? [],
          exclude: input.exclude ?? [],
        }),
      })
    },

    /**
     * Pins the revision to its commit and writes the ledger of the files to fetch. A retried run
     * finds both already there and keeps them: it continues where the failed one stopped.
     */
    async list(runId: string, ref: ImportRef): Promise<MaybeWait<{ files: number; bytes: number; commit: string }>> {
      const version = await versionOf(ref)
      if (version.status === 'failed') {
        await transaction(db, async (tx) => {
          await crud.updateVersion(tx, ref.versionId, { status: 'importing', statusReason: null })
          const model = await crud.lockModel(tx, ref.modelId)
          if (model?.status === 'failed') await crud.updateModel(tx, ref.modelId, { status: 'importing', statusReason: null })
        })
      } else if (version.status !== 'importing') {
        throw new WorkflowStepError('MODEL_VERSION_NOT_IMPORTING', `the version is ${version.status}`)
      }
      await workflows.reportProgress(runId, { step: IMPORT_STEPS.list, totalSteps: IMPORT_STEPS.total, percent: 0, message: `listing ${ref.repo}@${ref.revision}` })
      const known = await crud.versionBytes(db, ref.versionId)
      if (version.sourceRevision && known.files > 0) return { files: known.files, bytes: known.total, commit: version.sourceRevision }
      try {
        const hub = await access(ref, version.tenantId)
        const commit = await resolveCommit(hub, ref.revision)
        const listed = await listHubFiles(hub, commit, MAX_FILES_PER_VERSION * 4)
        const chosen = selectFiles(listed, ref.include, ref.exclude)
        if (chosen.length === 0) throw new WorkflowStepError('MODEL_IMPORT_NO_FILES', 'no file of the repository matches include/exclude')
        if (chosen.length > MAX_FILES_PER_VERSION) throw new WorkflowStepError('MODEL_IMPORT_TOO_MANY_FILES', `a version holds at most ${MAX_FILES_PER_VERSION} files`)
        const refused = chosen.find((f) => filePathProblem(f.path) !== null)
        if (refused) throw new WorkflowStepError('MODEL_IMPORT_BAD_PATH', `the repository holds a file path a version cannot: ${refused.path.slice(0, 200)} (${filePathProblem(refused.path)})`)
        await transaction(db, async (tx) => {
          await crud.addVersionFiles(
            tx,
            chosen.map((f) => ({
              versionId: ref.versionId,
              path: f.path,
              size: f.size,
              sha256: f.sha256,
              gitOid: f.gitOid,
              lfs: f.lfs,
              blobKey: blobKeyOf(ref.modelId, ref.versionId, f.path),
              status: 'pending',
            })),
          )
          await crud.updateVersion(tx, ref.versionId, { sourceRevision: commit })
        })
        return { files: chosen.length, bytes: chosen.reduce((n, f) => n + f.size, 0), commit }
      } catch (err) {
        return rateLimited(err)
      }
    },

    /** Fetches the next file not yet verified; answers done when there is none left. */
    async transferNext(runId: string, ref: ImportRef): Promise<MaybeWait<{ done: boolean; path?: string }>> {
      const version = await versionOf(ref)
      if (version.status !== 'importing') throw new WorkflowStepError(TransferErrorCode.CANCELLED, `the version is ${version.status}`)
      const row = await crud.nextUnverifiedFile(db, ref.versionId)
      if (!row) return { done: true }
      const totals = await crud.versionBytes(db, ref.versionId)
      const before = totals.done - row.bytesDone
      let lastReport = 0
      let reporting: Promise<unknown> = Promise.resolve()
      const report = (fileBytes: number, force = false) => {
        const now = Date.now()
        if (!force && now - lastReport < PROGRESS_EVERY_MS) return
        lastReport = now
        const done = Math.min(totals.total, before + fileBytes)
        const progress: Progress = {
          step: IMPORT_STEPS.download,
          totalSteps: IMPORT_STEPS.total,
          percent: 2 + Math.floor((done / Math.max(1, totals.total)) * 95),
          message: `downloading ${row.path}: ${done} of ${totals.total} bytes`,
          bytesDone: done,
          bytesTotal: totals.total,
        }
        reporting = reporting.then(() => workflows.reportProgress(runId, progress)).catch((err: unknown) => log.warn({ err, runId }, 'import progress not recorded'))
      }
      report(row.bytesDone, true)
      try {
        const hub = await access(ref, version.tenantId)
        const commit = version.sourceRevision!
        const result = await transferFile(ledgerFile(row), {
          blob,
          partBytes,
          fetchRange: (start, end) => fetchFileRange(hub, commit, row.path, start, end),
          record: recordProgress(db, ref.versionId, row.path),
          progress: (bytes) => report(bytes),
          stillWanted: () => wanted(ref.versionId),
        })
        if (!(await wanted(ref.versionId))) {
          // Cancelled while the last bytes were stored: the compensation may have swept already.
          await discardFile(blob, row)
          throw new WorkflowStepError(TransferErrorCode.CANCELLED, 'the import was cancelled')
        }
        await crud.updateVersionFile(db, ref.versionId, row.path, { bytesDone: row.size, status: 'verified', sha256: result.sha256 })
        report(row.size, true)
        await reporting
        log.info({ versionId: ref.versionId, path: row.path, size: row.size, fetched: result.fetched }, 'model file imported')
        return { done: false, path: row.path }
      } catch (err) {
        await reporting
        return rateLimited(err)
      }
    },

    /** Reads the metadata from the stored files, seals the version, and announces the model. */
    async finish(runId: string, ref: VersionRef): Promise<{ modelId: string; versionId: string; files: number; bytes: number; commit: string | null }> {
      const version = await versionOf(ref)
      await workflows.reportProgress(runId, { step: IMPORT_STEPS.finish, totalSteps: IMPORT_STEPS.total, percent: 97, message: 'reading metadata and sealing the version' })
      const files = await crud.listVersionFiles(db, ref.versionId)
      if (version.status === 'importing') {
        const facts = await readModelMetadata(files, (key, bytes) => readPrefix(blob, key, bytes), log)
        await transaction(db, async (tx) => {
          const model = await crud.lockModel(tx, ref.modelId)
          if (!model || model.status === 'deleted') throw new WorkflowStepError('MODEL_NOT_FOUND', 'the model was deleted during its import')
          await crud.updateModel(tx, ref.modelId, { ...facts, metadata: { ...model.metadata, ...facts.metadata, sourceRevision: version.sourceRevision } })
          await events.publish(
            tx,
            IMPORT_TOPIC.imported,
            { modelId: ref.modelId, name: model.name, versionId: ref.versionId, ...(ref.url ? { url: ref.url } : { repo: ref.repo }), commit: version.sourceRevision, files: files.length },
            { tenantId: version.tenantId },
          )
        })
      }
      const sealed = await models.sealVersion(ref.versionId)
      await workflows.reportProgress(runId, { step: IMPORT_STEPS.finish, totalSteps: IMPORT_STEPS.total, percent: 100, message: `imported ${files.length} files` })
      log.info({ modelId: ref.modelId, versionId: ref.versionId, files: files.length }, 'model imported')
      return { modelId: ref.modelId, versionId: ref.versionId, files: sealed.fileCount, bytes: sealed.sizeBytes, commit: version.sourceRevision }
    },

    /** A failed run leaves the version `failed` with its files: a retry of the run continues from them. */
    async fail(ref: VersionRef, reason: string): Promise<void> {
      await transaction(db, async (tx) => {
        const version = await crud.lockVersion(tx, ref.versionId)
        if (!version || version.status !== 'importing') return
        await crud.updateVersion(tx, ref.versionId, { status: 'failed', statusReason: reason.slice(0, 1000) })
        await failModel(tx, ref.modelId, reason.slice(0, 1000))
      })
      log.warn({ modelId: ref.modelId, versionId: ref.versionId, reason: reason.slice(0, 300) }, 'model import failed')
    },

    /** Cancelled: every object the version holds goes, and the version is failed as cancelled. */
    async cancel(ref: VersionRef): Promise<{ modelId: string; versionId: string; status: string; objectsRemoved: number }> {
      const reason = 'CANCELLED: the import was cancelled'
      await transaction(db, async (tx) => {
        const version = await crud.lockVersion(tx, ref.versionId)
        if (!version || version.status === 'ready' || version.status === 'deleted') return
        await crud.updateVersion(tx, ref.versionId, { status: 'failed', statusReason: reason })
        await failModel(tx, ref.modelId, reason)
      })
      const removed = await discardVersion(ref.versionId)
      await crud.resetVersionFiles(db, ref.versionId)
      log.info({ modelId: ref.modelId, versionId: ref.versionId, objects: removed }, 'model import cancelled')
      return { modelId: ref.modelId, versionId: ref.versionId, status: 'cancelled', objectsRemoved: removed }
    },
  }
}

export type ImportService = ReturnType<typeof createImportService>

/** The first `bytes` bytes of a stored object (fewer if it is shorter), reading no further. */
export async function readPrefix(blob: Pick<BlobStore, 'get'>, key: string, bytes: number): Promise<Buffer> {
  const stream: Readable = await blob.get(key)
  const chunks: Buffer[] = []
  let got = 0
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer)
      got += (chunk as Buffer).length
      if (got >= bytes) break
    }
  } finally {
    stream.destroy()
  }
  return Buffer.concat(chunks).subarray(0, bytes)
}
