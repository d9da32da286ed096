import { randomUUID } from 'node:crypto'
import type { Static } from 'typebox'
import type { Logger } from 'pino'
import type { Principal } from '../../platform/auth/principal.js'
import type { BlobStore } from '../../platform/blob/index.js'
import { changeScope } from '../../platform/db/changes.js'
import { type Database, type Executor, transaction } from '../../platform/db/client.js'
import type { KeptCounts } from '../../platform/db/kept-counts.js'
import { ValidationError } from '../../platform/errors.js'
import type { EventBus } from '../../platform/events/index.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { type PageResult, pageRequest, pageResult, parseSort } from '../../platform/http/pagination.js'
import type { CredentialService } from './credentials.js'
import * as crud from './crud.js'
import {
  credentialNotFound,
  credentialVerificationFailed,
  modelInUse,
  modelNameTaken,
  modelNotFound,
  modelNotFoundAtProvider,
  nothingToUpdate,
  sourceNeedsImport,
  versionInUse,
  versionIsDefault,
  versionNotFound,
  versionNotReady,
} from './errors.js'
import { blobKeyOf, filePathProblem, MAX_FILES_PER_VERSION } from './paths.js'
import { PROVIDERS } from './providers.js'
import { type Model, MODEL_SORT_FIELDS, type ModelProvider, type ModelVersion } from './schema.js'
import type { ModelRow, ModelVersionFileRow, ModelVersionRow } from './tables.js'

export const MODEL_TOPIC = {
  created: 'model.created',
  updated: 'model.updated',
  deleted: 'model.deleted',
  versionPromoted: 'model.version_promoted',
  versionDeleted: 'model.version_deleted',
} as const

/** Values per facet in GET /v1/models/facets: enough for a dashboard, bounded whatever the tenant holds. */
export const FACET_LIMIT = 50

/**
 * A module that serves models (endpoints) says how many of its objects use a model, or one
 * version of it, so that neither is deleted under them. Counted inside the deleting transaction.
 */
export interface ModelUser {
  /** Plural noun for messages: `endpoints`. */
  kind: string
  countUsing(executor: Executor, modelId: string, versionId?: string): Promise<number>
}

export interface ModelInput {
  source: string
  name: string
  displayName?: string
  provider?: string
  credentialId?: string
  uri?: string
  tasks?: string[]
  modalities?: string[]
  architecture?: string
  contextLength?: number
  format?: string
  license?: string
  tags?: string[]
  description?: string
}

export interface ModelUpdateInput {
  displayName?: string
  description?: string | null
  tags?: string[]
  tasks?: string[]
  license?: string | null
}

export type ModelListQuery = crud.ModelFilter & { sort?: string; page?: number; limit?: number }

/** A version as an import or upload starts it: its files, each path checked. */
export interface VersionInput {
  label: string
  sourceRevision?: string | null
  status: 'importing' | 'uploading'
  workflowId?: string | null
  createdBy: string
  files: Array<{ path: string; size: number; sha256?: string | null; gitOid?: string | null; lfs?: boolean }>
}

export interface ModelServiceDeps {
  db: Database
  blob: Pick<BlobStore, 'delete'>
  events: Pick<EventBus, 'publish'>
  credentials: Pick<CredentialService, 'remoteModel'>
  /** Totals and facets kept between requests until the tenant's models change (scope `models:<tenant id>`). */
  counts: KeptCounts
  log: Logger
}

type ModelView = Static<typeof Model>
type VersionView = Static<typeof ModelVersion>

export function modelView(row: ModelRow): ModelView {
  return {
    id: row.id,
    name: row.name,
    displayName: row.displayName,
    source: row.source as ModelView['source'],
    provider: row.providerId as ModelView['provider'],
    credentialId: row.credentialId,
    uri: row.uri,
    tasks: row.tasks,
    modalities: row.modalities,
    architecture: row.architecture,
    parameterCount: row.parameterCount,
    contextLength: row.contextLength,
    dtype: row.dtype,
    quantization: row.quantization,
    format: row.format as ModelView['format'],
    license: row.license,
    tags: row.tags,
    description: row.description,
    metadata: row.metadata,
    status: row.status as ModelView['status'],
    statusReason: row.statusReason,
    defaultVersionId: row.defaultVersionId,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

function versionView(row: ModelVersionRow, defaultId: string | null): VersionView {
  return {
    id: row.id,
    modelId: row.modelId,
    label: row.label,
    sourceRevision: row.sourceRevision,
    status: row.status as VersionView['status'],
    statusReason: row.statusReason,
    isDefault: row.id === defaultId,
    fileCount: row.fileCount,
    sizeBytes: row.sizeBytes,
    files: row.manifest.files,
    workflowId: row.workflowId,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    sealedAt: row.sealedAt ? row.sealedAt.toISOString() : null,
  }
}

const etag = (row: Pick<ModelRow, 'updatedAt' | 'version'>) => etagOf(row.updatedAt, row.version)

export function createModelService(deps: ModelServiceDeps) {
  const { db, blob, events, credentials, counts, log } = deps
  const users: ModelUser[] = []

  async function visible(principal: Principal, id: string): Promise<ModelRow> {
    const row = await crud.getModel(db, principal.tenantId, id)
    if (!row) throw modelNotFound()
    return row
  }

  /** The model, locked, if it is the caller's and not deleted. */
  async function locked(tx: Executor, principal: Principal, id: string): Promise<ModelRow> {
    const row = await crud.lockModel(tx, id)
    if (!row || row.tenantId !== principal.tenantId || row.status === 'deleted') throw modelNotFound()
    return row
  }

  async function usersOf(tx: Executor, modelId: string, versionId?: string): Promise<Array<{ kind: string; count: number }>> {
    const inUse: Array<{ kind: string; count: number }> = []
    for (const user of users) {
      const count = await user.countUsing(tx, modelId, versionId)
      if (count > 0) inUse.push({ kind: user.kind, count })
    }
    return inUse
  }

  /** Blobs go after the rows are committed; a failure leaves orphans to a later sweep, never a half-deleted version. */
  async function deleteBlobs(keys: string[]): Promise<void> {
    for (const key of keys) {
      try {
        await blob.delete(key)
      } catch (err) {
        log.warn({ key, err: { message: (err as Error).message } }, 'a model file could not be deleted from the store')
      }
    }
  }

  /** Marks the version deleted and forgets its files; answers the blob keys to delete after commit. */
  async function dropVersion(tx: Executor, version: ModelVersionRow): Promise<string[]> {
    const files = await crud.listVersionFiles(tx, version.id)
    await crud.deleteVersionFiles(tx, version.id)
    await crud.updateVersion(tx, version.id, { status: 'deleted', deletedAt: new Date() })
    return files.map((f) => f.blobKey)
  }

  const service = {
    /** Endpoints declare themselves here while the app is built. */
    registerUser(user: ModelUser): void {
      users.push(user)
    },

    providers(query: { page?: number; limit?: number }): PageResult<Static<typeof ModelProvider>> {
      const page = pageRequest(query)
      const items = PROVIDERS.map(({ mainSecret: _main, ...p }) => p)
      return pageResult(items.slice(page.offset, page.offset + page.limit), items.length, page)
    },

    /**
     * upload: the record, `importing` until a version is sealed. cloud: the provider must list the
     * model for this credential; then it is `ready`, with no versions. hub and url: the import route.
     */
    async create(principal: Principal, input: ModelInput): Promise<{ model: ModelView; etag: string }> {
      if (input.source === 'hub' || input.source === 'url') throw sourceNeedsImport(input.source)
      const problems: Array<{ field: string; message: string }> = []
      if (input.source === 'cloud') {
        for (const field of ['provider', 'credentialId', 'uri'] as const) if (!input[field]) problems.push({ field: `body.${field}`, message: 'required for a cloud model' })
        if (input.format) problems.push({ field: 'body.format', message: 'a cloud model has no files' })
      } else {
        for (const field of ['provider', 'credentialId', 'uri'] as const) if (input[field]) problems.push({ field: `body.${field}`, message: 'only for a cloud model' })
      }
      if (problems.length > 0) throw new ValidationError(`the model was refused: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems)
      if (await crud.getModelByName(db, principal.tenantId, input.name)) throw modelNameTaken(input.name)

      if (input.source === 'cloud') {
        // The call happens before any transaction: no row is locked while a provider thinks.
        const remote = await credentials.remoteModel(principal.tenantId, input.credentialId!, input.uri!)
        if (!remote) throw credentialNotFound()
        if (remote.provider.id !== input.provider) {
          throw new ValidationError(`the credential is for ${remote.provider.id}, not ${input.provider}`, [{ field: 'body.credentialId', message: `a ${remote.provider.id} credential` }])
        }
        if (remote.provider.kind !== 'cloud') {
          throw new ValidationError(`${remote.provider.id} is a hub: its models are imported`, [{ field: 'body.provider', message: 'not a cloud provider' }])
        }
        if (!remote.result.ok) throw credentialVerificationFailed(remote.result)
        if (remote.result.found === false) throw modelNotFoundAtProvider(input.uri!, remote.provider.displayName, remote.result.message)
      }

      const id = randomUUID()
      const row = await transaction(db, async (tx) => {
        const inserted = await crud
          .insertModel(tx, {
            id,
            tenantId: principal.tenantId,
            name: input.name,
            displayName: input.displayName ?? input.name,
            source: input.source,
            providerId: input.provider ?? null,
            credentialId: input.credentialId ?? null,
            uri: input.uri ?? null,
            tasks: input.tasks ?? [],
            modalities: input.modalities ?? [],
            architecture: input.architecture ?? null,
            contextLength: input.contextLength ?? null,
            format: input.format ?? null,
            license: input.license ?? null,
            tags: input.tags ?? [],
            description: input.description ?? null,
            status: input.source === 'cloud' ? 'ready' : 'importing',
            createdBy: principal.id,
          })
          .catch((err: unknown) => {
            if (crud.uniqueViolationOf(err) === 'models_tenant_name_live_idx') throw modelNameTaken(input.name)
            throw err
          })
        await events.publish(tx, MODEL_TOPIC.created, { modelId: id, name: input.name, source: input.source }, { tenantId: principal.tenantId })
        return inserted
      })
      counts.forget(changeScope.models(principal.tenantId))
      log.info({ modelId: id, source: input.source }, 'model created')
      return { model: modelView(row), etag: etag(row) }
    },

    async list(principal: Principal, query: ModelListQuery): Promise<PageResult<ModelView>> {
      const page = pageRequest(query)
      const sort = parseSort(query.sort, MODEL_SORT_FIELDS, { field: 'createdAt', direction: 'desc' })
      const { sort: _s, page: _p, limit: _l, ...filter } = query
      const tenantId = principal.tenantId
      const total = () => counts.get(changeScope.models(tenantId), `total:${crud.modelFilterKey(filter)}`, () => crud.countModels(db, tenantId, filter))
      if (filter.q) {
        // A search mostly fits on its page, and its count reads every match: a page that is not
        // full (and not past the end) says the total itself.
        const rows = await crud.listModels(db, tenantId, filter, sort, page)
        const known = rows.length < page.limit && (rows.length > 0 || page.offset === 0)
        return pageResult(rows.map(modelView), known ? page.offset + rows.length : await total(), page)
      }
      const [rows, counted] = await Promise.all([crud.listModels(db, tenantId, filter, sort, page), total()])
      return pageResult(rows.map(modelView), counted, page)
    },

    async facets(principal: Principal, filter: crud.ModelFilter): Promise<crud.Facets> {
      const tenantId = principal.tenantId
      return counts.get(changeScope.models(tenantId), `facets:${crud.modelFilterKey(filter)}`, () => crud.modelFacets(db, tenantId, filter, FACET_LIMIT))
    },

    /** Models of the tenant changed (a write through this process has committed): its counts are stale now. */
    catalogChanged(tenantId: string): void {
      counts.forget(changeScope.models(tenantId))
    },

    /**
     * For modules that serve models: the tenant's ready model, the version asked for (the default
     * otherwise) once it is ready, and that version's files. Another tenant's model is not found.
     */
    async servingSource(
      tenantId: string,
      modelId: string,
      versionId?: string,
    ): Promise<{ model: ModelRow; version: ModelVersionRow | null; files: ModelVersionFileRow[] }> {
      const model = await crud.getModel(db, tenantId, modelId)
      if (!model || model.status === 'deleted') throw modelNotFound()
      if (model.source === 'cloud') return { model, version: null, files: [] }
      const id = versionId ?? model.defaultVersionId
      const version = id ? await crud.getVersion(db, model.id, id) : undefined
      if (!version || version.status === 'deleted') throw versionNotFound()
      if (version.status !== 'ready') throw versionNotReady(version.status, 'served')
      return { model, version, files: await crud.listVersionFiles(db, version.id) }
    },

    async get(principal: Principal, id: string): Promise<{ model: ModelView; etag: string }> {
      const row = await visible(principal, id)
      return { model: modelView(row), etag: etag(row) }
    },

    async update(principal: Principal, id: string, input: ModelUpdateInput, ifMatch?: string[]): Promise<{ model: ModelView; etag: string }> {
      const fields = Object.keys(input) as Array<keyof ModelUpdateInput>
      if (fields.length === 0) throw nothingToUpdate('displayName, description, tags, tasks or license')
      const row = await transaction(db, async (tx) => {
        const before = await locked(tx, principal, id)
        assertIfMatch(ifMatch, etag(before))
        const updated = await crud.updateModel(tx, id, input)
        await events.publish(tx, MODEL_TOPIC.updated, { modelId: id, name: updated.name, fields }, { tenantId: principal.tenantId })
        return updated
      })
      counts.forget(changeScope.models(principal.tenantId))
      return { model: modelView(row), etag: etag(row) }
    },

    /** Soft: the record stays as `deleted` (its name free again), its versions' files go. 409 while in use. */
    async remove(principal: Principal, id: string, ifMatch?: string[]): Promise<void> {
      const keys = await transaction(db, async (tx) => {
        const row = await locked(tx, principal, id)
        assertIfMatch(ifMatch, etag(row))
        const inUse = await usersOf(tx, id)
        if (inUse.length > 0) throw modelInUse(inUse)
        const dropped: string[] = []
        for (const versionId of await crud.liveVersionIds(tx, id)) {
          const version = await crud.lockVersion(tx, versionId)
          if (version) dropped.push(...(await dropVersion(tx, version)))
        }
        await crud.updateModel(tx, id, { status: 'deleted', deletedAt: new Date(), defaultVersionId: null })
        await events.publish(tx, MODEL_TOPIC.deleted, { modelId: id, name: row.name }, { tenantId: principal.tenantId })
        return dropped
      })
      counts.forget(changeScope.models(principal.tenantId))
      await deleteBlobs(keys)
      log.info({ modelId: id, files: keys.length }, 'model deleted')
    },

    // ---- versions ---------------------------------------------------------------------------------

    async versions(principal: Principal, id: string, query: { page?: number; limit?: number }): Promise<PageResult<VersionView>> {
      const model = await visible(principal, id)
      const page = pageRequest(query)
      const { rows, total } = await crud.listVersions(db, id, page)
      return pageResult(rows.map((r) => versionView(r, model.defaultVersionId)), total, page)
    },

    /** Makes a ready version the model's default (and a model still `importing` ready). */
    async promote(principal: Principal, id: string, versionId: string): Promise<VersionView> {
      const promoted = await transaction(db, async (tx) => {
        const model = await locked(tx, principal, id)
        const version = await crud.getVersion(tx, id, versionId)
        if (!version) throw versionNotFound()
        if (version.status !== 'ready') throw versionNotReady(version.status)
        if (model.defaultVersionId !== versionId) {
          await crud.updateModel(tx, id, { defaultVersionId: versionId, ...(model.status === 'importing' ? { status: 'ready', statusReason: null } : {}) })
          await events.publish(
            tx,
            MODEL_TOPIC.versionPromoted,
            { modelId: id, name: model.name, versionId, label: version.label, previousVersionId: model.defaultVersionId },
            { tenantId: principal.tenantId },
          )
        }
        return versionView(version, versionId)
      })
      counts.forget(changeScope.models(principal.tenantId))
      return promoted
    },

    /** Deletes a version and its files: not the default while another version remains, never one in use. */
    async removeVersion(principal: Principal, id: string, versionId: string): Promise<void> {
      const keys = await transaction(db, async (tx) => {
        const model = await locked(tx, principal, id)
        const version = await crud.lockVersion(tx, versionId)
        if (!version || version.modelId !== id || version.status === 'deleted') throw versionNotFound()
        const live = await crud.liveVersionIds(tx, id)
        if (model.defaultVersionId === versionId && live.length > 1) throw versionIsDefault()
        const inUse = await usersOf(tx, id, versionId)
        if (inUse.length > 0) throw versionInUse(inUse)
        const dropped = await dropVersion(tx, version)
        if (model.defaultVersionId === versionId) await crud.updateModel(tx, id, { defaultVersionId: null })
        await events.publish(tx, MODEL_TOPIC.versionDeleted, { modelId: id, name: model.name, versionId, label: version.label }, { tenantId: principal.tenantId })
        return dropped
      })
      await deleteBlobs(keys)
      log.info({ modelId: id, versionId, files: keys.length }, 'model version deleted')
    },

    // ---- for imports and uploads (later slices) -----------------------------------------------------

    /** Records a new version and the ledger of its files (pending), every path checked. */
    async startVersion(tenantId: string, modelId: string, input: VersionInput): Promise<ModelVersionRow> {
      if (input.files.length > MAX_FILES_PER_VERSION) throw new ValidationError(`a version holds at most ${MAX_FILES_PER_VERSION} files`)
      const seen = new Set<string>()
      const problems: Array<{ field: string; message: string }> = []
      input.files.forEach((file, i) => {
        const problem = filePathProblem(file.path) ?? (seen.has(file.path) ? 'listed twice' : null)
        if (problem) problems.push({ field: `files.${i}.path`, message: problem })
        seen.add(file.path)
      })
      if (problems.length > 0) throw new ValidationError(`the version's files were refused: ${problems[0]!.message}`, problems.slice(0, 20))
      const id = randomUUID()
      return transaction(db, async (tx) => {
        const model = await crud.lockModel(tx, modelId)
        if (!model || model.tenantId !== tenantId || model.status === 'deleted') throw modelNotFound()
        return crud.insertVersion(
          tx,
          {
            id,
            modelId,
            tenantId,
            label: input.label,
            sourceRevision: input.sourceRevision ?? null,
            status: input.status,
            workflowId: input.workflowId ?? null,
            createdBy: input.createdBy,
          },
          input.files.map((f) => ({
            versionId: id,
            path: f.path,
            size: f.size,
            sha256: f.sha256 ?? null,
            gitOid: f.gitOid ?? null,
            lfs: f.lfs === true,
            blobKey: blobKeyOf(modelId, id, f.path),
            status: 'pending',
          })),
        )
      })
    },

    /**
     * Seals a version whose files are all stored and checked: its manifest is written from the
     * ledger, it becomes immutable, and the model's first sealed version becomes its default.
     */
    async sealVersion(versionId: string): Promise<ModelVersionRow> {
      const sealed = await transaction(db, async (tx) => {
        const version = await crud.lockVersion(tx, versionId)
        if (!version || version.status === 'deleted') throw versionNotFound()
        if (version.status === 'ready') return version
        const model = await crud.lockModel(tx, version.modelId)
        if (!model || model.status === 'deleted') throw modelNotFound()
        const files = await crud.listVersionFiles(tx, versionId)
        await crud.markVersionFiles(tx, versionId, 'verified')
        const sealed = await crud.updateVersion(tx, versionId, {
          status: 'ready',
          statusReason: null,
          manifest: { files: files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) },
          fileCount: files.length,
          sizeBytes: files.reduce((sum, f) => sum + f.size, 0),
          sealedAt: new Date(),
        })
        if (!model.defaultVersionId) {
          await crud.updateModel(tx, model.id, { defaultVersionId: versionId, ...(model.status !== 'ready' ? { status: 'ready', statusReason: null } : {}) })
        }
        return sealed
      })
      counts.forget(changeScope.models(sealed.tenantId))
      return sealed
    },
  }
  return service
}

export type ModelService = ReturnType<typeof createModelService>
