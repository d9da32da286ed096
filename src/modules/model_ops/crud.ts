import { and, asc, count, desc, eq, getTableColumns, inArray, isNull, ne, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import { preparedStatements } from '../../platform/db/prepared.js'
import type { PageRequest, SortRequest } from '../../platform/http/pagination.js'
import {
  type ModelCredentialRow,
  type ModelProviderRow,
  type ModelRow,
  type ModelVersionFileRow,
  type ModelVersionRow,
  modelCredentials,
  modelProviders,
  models,
  modelVersionFiles,
  modelVersions,
  type ModelUploadFileRow,
  type ModelUploadPartRow,
  type ModelUploadRow,
  modelUploadFiles,
  modelUploadParts,
  modelUploads,
} from './tables.js'

// ---- providers --------------------------------------------------------------------------------

export type NewProvider = Omit<typeof modelProviders.$inferInsert, 'updatedAt'>

/** Idempotent: the rows become what the code says, whatever an older release wrote. */
export async function upsertProviders(executor: Executor, rows: NewProvider[]): Promise<void> {
  await executor
    .insert(modelProviders)
    .values(rows)
    .onConflictDoUpdate({
      target: modelProviders.id,
      set: {
        displayName: sql`excluded.display_name`,
        kind: sql`excluded.kind`,
        credentialFields: sql`excluded.credential_fields`,
        settingsFields: sql`excluded.settings_fields`,
        defaultBaseUrl: sql`excluded.default_base_url`,
        updatedAt: sql`now()`,
      },
    })
}

export async function listProviders(executor: Executor): Promise<ModelProviderRow[]> {
  return executor.select().from(modelProviders).orderBy(asc(modelProviders.id))
}

// ---- credentials ------------------------------------------------------------------------------

export type NewCredential = typeof modelCredentials.$inferInsert
export type CredentialPatch = Partial<Pick<NewCredential, 'name' | 'settings' | 'secretSealed' | 'hint' | 'status' | 'verifiedAt' | 'lastError' | 'deletedAt'>>

/** Every column but the sealed secret: what lists read. */
const { secretSealed: _sealed, ...credentialViewColumns } = getTableColumns(modelCredentials)
export type CredentialViewRow = Omit<ModelCredentialRow, 'secretSealed'>

export async function insertCredential(executor: Executor, row: NewCredential): Promise<ModelCredentialRow> {
  const [inserted] = await executor.insert(modelCredentials).values(row).returning()
  return inserted!
}

/** Tenant-scoped and live: another tenant's or a deleted credential is not found. */
export async function getCredential(executor: Executor, tenantId: string, id: string): Promise<ModelCredentialRow | undefined> {
  const [row] = await executor
    .select()
    .from(modelCredentials)
    .where(and(eq(modelCredentials.id, id), eq(modelCredentials.tenantId, tenantId), isNull(modelCredentials.deletedAt)))
  return row
}

export async function lockCredential(executor: Executor, id: string): Promise<ModelCredentialRow | undefined> {
  const [row] = await executor.select().from(modelCredentials).where(eq(modelCredentials.id, id)).for('update')
  return row
}

/** Bumps the version (the ETag) with every change. */
export async function updateCredential(executor: Executor, id: string, patch: CredentialPatch): Promise<ModelCredentialRow> {
  const [row] = await executor
    .update(modelCredentials)
    .set({ ...patch, version: sql`${modelCredentials.version} + 1`, updatedAt: sql`now()` })
    .where(eq(modelCredentials.id, id))
    .returning()
  return row!
}

export async function listCredentials(
  executor: Executor,
  tenantId: string,
  filter: { provider?: string },
  page: PageRequest,
): Promise<{ rows: CredentialViewRow[]; total: number }> {
  const where: SQL[] = [eq(modelCredentials.tenantId, tenantId), isNull(modelCredentials.deletedAt)]
  if (filter.provider) where.push(eq(modelCredentials.providerId, filter.provider))
  const [rows, [total]] = await Promise.all([
    executor
      .select(credentialViewColumns)
      .from(modelCredentials)
      .where(and(...where))
      .orderBy(desc(modelCredentials.createdAt), asc(modelCredentials.id))
      .limit(page.limit)
      .offset(page.offset),
    executor.select({ n: count() }).from(modelCredentials).where(and(...where)),
  ])
  return { rows, total: total?.n ?? 0 }
}

/** Live models that call their provider with this credential. */
export async function countModelsUsingCredential(executor: Executor, credentialId: string): Promise<number> {
  const [row] = await executor
    .select({ n: count() })
    .from(models)
    .where(and(eq(models.credentialId, credentialId), ne(models.status, 'deleted')))
  return row?.n ?? 0
}

// ---- models -----------------------------------------------------------------------------------

export type NewModel = typeof models.$inferInsert
export type ModelPatch = Partial<Omit<NewModel, 'id' | 'tenantId' | 'createdAt' | 'createdBy' | 'version' | 'updatedAt'>>

export async function insertModel(executor: Executor, row: NewModel): Promise<ModelRow> {
  const [inserted] = await executor.insert(models).values(row).returning()
  return inserted!
}

/** Tenant-scoped and live: another tenant's or a deleted model is not found. */
export async function getModel(executor: Executor, tenantId: string, id: string): Promise<ModelRow | undefined> {
  const [row] = await executor
    .select()
    .from(models)
    .where(and(eq(models.id, id), eq(models.tenantId, tenantId), ne(models.status, 'deleted')))
  return row
}

export async function lockModel(executor: Executor, id: string): Promise<ModelRow | undefined> {
  const [row] = await executor.select().from(models).where(eq(models.id, id)).for('update')
  return row
}

/** Bumps the version (the ETag) with every change. */
export async function updateModel(executor: Executor, id: string, patch: ModelPatch): Promise<ModelRow> {
  const [row] = await executor
    .update(models)
    .set({ ...patch, version: sql`${models.version} + 1`, updatedAt: sql`now()` })
    .where(eq(models.id, id))
    .returning()
  return row!
}

export interface ModelFilter {
  source?: string
  task?: string
  modality?: string
  provider?: string
  format?: string
  tag?: string
  license?: string
  status?: string
  q?: string
}

export type ModelSortField = 'name' | 'createdAt' | 'updatedAt' | 'parameterCount'

const SORT_COLUMNS = {
  name: models.name,
  createdAt: models.createdAt,
  updatedAt: models.updatedAt,
  parameterCount: models.parameterCount,
} as const

const likeLiteral = (q: string) => `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`

/** The WHERE of a list, leaving out one filter (the facet being counted sees the others only). */
function modelWhere(tenantId: string, filter: ModelFilter, without?: keyof ModelFilter): SQL[] {
  const f = { ...filter }
  if (without) delete f[without]
  const where: SQL[] = [eq(models.tenantId, tenantId)]
  where.push(f.status ? eq(models.status, f.status) : ne(models.status, 'deleted'))
  if (f.source) where.push(eq(models.source, f.source))
  if (f.provider) where.push(eq(models.providerId, f.provider))
  if (f.format) where.push(eq(models.format, f.format))
  if (f.license) where.push(eq(models.license, f.license))
  if (f.task) where.push(sql`${models.tasks} @> array[${f.task}]::text[]`)
  if (f.modality) where.push(sql`${models.modalities} @> array[${f.modality}]::text[]`)
  if (f.tag) where.push(sql`${models.tags} @> array[${f.tag}]::text[]`)
  if (f.q) {
    const like = likeLiteral(f.q)
    where.push(sql`(${models.name} ilike ${like} or ${models.description} ilike ${like})`)
  }
  return where
}

const prepared = preparedStatements()

/** The filters a prepared statement holds a placeholder for, each with the letter that names it in a statement's name. */
const PREPARED_FILTERS = { status: 's', source: 'o', provider: 'p', format: 'f', license: 'l', task: 't', modality: 'm', tag: 'g' } as const

/** Which filters are set (less the one left out), as letters: the statements of one shape differ only in values. */
function filterShape(filter: ModelFilter, without?: keyof ModelFilter): string {
  return Object.entries(PREPARED_FILTERS)
    .map(([name, letter]) => (filter[name as keyof ModelFilter] && name !== without ? letter : ''))
    .join('')
}

/** modelWhere with a placeholder for every value, for a statement prepared once per filter shape. */
function preparedWhere(filter: ModelFilter, without?: keyof ModelFilter): SQL[] {
  const set = (name: keyof ModelFilter) => Boolean(filter[name]) && name !== without
  const where: SQL[] = [eq(models.tenantId, sql.placeholder('tenantId'))]
  where.push(set('status') ? eq(models.status, sql.placeholder('status')) : ne(models.status, 'deleted'))
  if (set('source')) where.push(eq(models.source, sql.placeholder('source')))
  if (set('provider')) where.push(eq(models.providerId, sql.placeholder('provider')))
  if (set('format')) where.push(eq(models.format, sql.placeholder('format')))
  if (set('license')) where.push(eq(models.license, sql.placeholder('license')))
  if (set('task')) where.push(sql`${models.tasks} @> array[${sql.placeholder('task')}]::text[]`)
  if (set('modality')) where.push(sql`${models.modalities} @> array[${sql.placeholder('modality')}]::text[]`)
  if (set('tag')) where.push(sql`${models.tags} @> array[${sql.placeholder('tag')}]::text[]`)
  return where
}

/**
 * The page for one filter shape and sort, prepared under a name: built by drizzle and planned by
 * PostgreSQL once per connection, not on every request. Substring searches are not prepared: a
 * generic plan would not know how selective the term is.
 */
function pageStatement(executor: Executor, filter: ModelFilter, sort: SortRequest<ModelSortField>) {
  return prepared(executor, `models_list_${filterShape(filter)}_${sort.field}_${sort.direction}`, (name) => {
    const column = SORT_COLUMNS[sort.field]
    const order = sort.direction === 'asc' ? asc(column) : desc(column)
    return executor
      .select()
      .from(models)
      .where(and(...preparedWhere(filter)))
      .orderBy(sort.field === 'parameterCount' ? sql`${order} nulls last` : order, asc(models.id))
      .limit(sql.placeholder('limit'))
      .offset(sql.placeholder('offset'))
      .prepare(name)
  })
}

function countStatement(executor: Executor, filter: ModelFilter) {
  return prepared(executor, `models_count_${filterShape(filter)}`, (name) =>
    executor.select({ n: count() }).from(models).where(and(...preparedWhere(filter))).prepare(name),
  )
}

/** One page of the tenant's models matching the filter. */
export async function listModels(
  executor: Executor,
  tenantId: string,
  filter: ModelFilter,
  sort: SortRequest<ModelSortField>,
  page: PageRequest,
): Promise<ModelRow[]> {
  if (!filter.q) return pageStatement(executor, filter, sort).execute({ ...filter, tenantId, limit: page.limit, offset: page.offset })
  const column = SORT_COLUMNS[sort.field]
  const order = sort.direction === 'asc' ? asc(column) : desc(column)
  return executor
    .select()
    .from(models)
    .where(and(...modelWhere(tenantId, filter)))
    .orderBy(sort.field === 'parameterCount' ? sql`${order} nulls last` : order, asc(models.id))
    .limit(page.limit)
    .offset(page.offset)
}

/** How many of the tenant's models match the filter. */
export async function countModels(executor: Executor, tenantId: string, filter: ModelFilter): Promise<number> {
  const [row] = filter.q
    ? await executor.select({ n: count() }).from(models).where(and(...modelWhere(tenantId, filter)))
    : await countStatement(executor, filter).execute({ ...filter, tenantId })
  return row?.n ?? 0
}

/** The filters that are set, in a fixed order: two filters selecting the same models have the same key. */
export function modelFilterKey(filter: ModelFilter): string {
  const keys: Array<keyof ModelFilter> = ['status', 'source', 'provider', 'format', 'license', 'task', 'modality', 'tag', 'q']
  return JSON.stringify(keys.map((k) => filter[k] ?? null))
}

export type FacetName = 'source' | 'task' | 'modality' | 'provider' | 'format' | 'license' | 'tag'
export type Facets = Record<FacetName, Array<{ value: string; count: number }>>

const FACET_NAMES: FacetName[] = ['source', 'provider', 'format', 'license', 'task', 'modality', 'tag']

/**
 * Every facet in one statement: the models matching the filters that are not facets (tenant,
 * status, search) are read once, each facet filter becomes a flag on the row, and each facet groups
 * the rows whose flags but its own hold (a facet is counted over the models matching every filter
 * but its own). The `perFacet` most common values of each, by count then value.
 */
function facetsQuery(tenant: SQL, filter: ModelFilter, value: (name: keyof ModelFilter) => SQL, perFacet: SQL): SQL {
  // Unprepared: a facet's count is kept between requests (platform/db/kept-counts.ts), so this runs once per change.
  const where: SQL[] = [sql`tenant_id = ${tenant}`, filter.status ? sql`status = ${value('status')}` : sql`status <> 'deleted'`]
  if (filter.q) {
    const like = value('q')
    where.push(sql`(name ilike ${like} or description ilike ${like})`)
  }
  const flags: Record<FacetName, SQL | null> = {
    source: filter.source ? sql`source = ${value('source')}` : null,
    provider: filter.provider ? sql`provider_id = ${value('provider')}` : null,
    format: filter.format ? sql`format = ${value('format')}` : null,
    license: filter.license ? sql`license = ${value('license')}` : null,
    task: filter.task ? sql`tasks @> array[${value('task')}]::text[]` : null,
    modality: filter.modality ? sql`modalities @> array[${value('modality')}]::text[]` : null,
    tag: filter.tag ? sql`tags @> array[${value('tag')}]::text[]` : null,
  }
  const set = FACET_NAMES.filter((name) => flags[name])
  const columns = set.map((name) => sql`${flags[name]} as ${sql.identifier(`f_${name}`)}`)
  // Rows that fail two facet filters count in no facet: left out of the read.
  const failing = set.map((name) => sql`(case when ${flags[name]} then 0 else 1 end)`)
  if (failing.length > 1) where.push(sql`${sql.join(failing, sql` + `)} <= 1`)
  const others = (name: FacetName) => {
    const held = set.filter((other) => other !== name).map((other) => sql.identifier(`f_${other}`))
    return held.length > 0 ? sql.join(held, sql` and `) : sql`true`
  }
  const SOURCES: Record<FacetName, SQL> = {
    source: sql`select source as value from m where source is not null and ${others('source')}`,
    provider: sql`select provider_id from m where provider_id is not null and ${others('provider')}`,
    format: sql`select format from m where format is not null and ${others('format')}`,
    license: sql`select license from m where license is not null and ${others('license')}`,
    task: sql`select unnest(tasks) from m where ${others('task')}`,
    modality: sql`select unnest(modalities) from m where ${others('modality')}`,
    tag: sql`select unnest(tags) from m where ${others('tag')}`,
  }
  const grouped = FACET_NAMES.map(
    (name) => sql`select ${name}::text as facet, value, count(*)::int as count from (${SOURCES[name]}) as ${sql.identifier(`v_${name}`)}(value) group by value`,
  )
  return sql`with m as materialized (
      select source, provider_id, format, license, tasks, modalities, tags${columns.length > 0 ? sql`, ${sql.join(columns, sql`, `)}` : sql``}
      from models where ${sql.join(where, sql` and `)}
    )
    select facet, value, count from (
      select facet, value, count, row_number() over (partition by facet order by count desc, value asc) as rank
      from (${sql.join(grouped, sql` union all `)}) as g
    ) as ranked
    where rank <= ${perFacet}
    order by facet, rank`
}

/**
 * Counts per value of each facet over the tenant's models that match the other filters (so a
 * dashboard can show what choosing another value would give); the `perFacet` most common values.
 */
export async function modelFacets(executor: Executor, tenantId: string, filter: ModelFilter, perFacet: number): Promise<Facets> {
  const query = facetsQuery(sql`${tenantId}`, filter, (field) => (field === 'q' ? sql`${likeLiteral(filter.q!)}` : sql`${filter[field]}`), sql`${perFacet}`)
  const { rows } = await executor.execute<{ facet: FacetName; value: string; count: number }>(query)
  const facets = Object.fromEntries(FACET_NAMES.map((name) => [name, [] as Array<{ value: string; count: number }>])) as Facets
  for (const row of rows) facets[row.facet].push({ value: row.value, count: Number(row.count) })
  return facets
}

// ---- versions ---------------------------------------------------------------------------------

export type NewVersion = typeof modelVersions.$inferInsert
export type VersionPatch = Partial<Pick<NewVersion, 'status' | 'statusReason' | 'manifest' | 'fileCount' | 'sizeBytes' | 'sealedAt' | 'deletedAt' | 'workflowId' | 'sourceRevision'>>
export type NewVersionFile = typeof modelVersionFiles.$inferInsert

export async function insertVersion(executor: Executor, row: NewVersion, files: NewVersionFile[]): Promise<ModelVersionRow> {
  const [inserted] = await executor.insert(modelVersions).values(row).returning()
  for (let i = 0; i < files.length; i += 500) await executor.insert(modelVersionFiles).values(files.slice(i, i + 500))
  return inserted!
}

/** A live version of this model. */
export async function getVersion(executor: Executor, modelId: string, versionId: string): Promise<ModelVersionRow | undefined> {
  const [row] = await executor
    .select()
    .from(modelVersions)
    .where(and(eq(modelVersions.id, versionId), eq(modelVersions.modelId, modelId), ne(modelVersions.status, 'deleted')))
  return row
}

export async function lockVersion(executor: Executor, id: string): Promise<ModelVersionRow | undefined> {
  const [row] = await executor.select().from(modelVersions).where(eq(modelVersions.id, id)).for('update')
  return row
}

export async function updateVersion(executor: Executor, id: string, patch: VersionPatch): Promise<ModelVersionRow> {
  const [row] = await executor.update(modelVersions).set(patch).where(eq(modelVersions.id, id)).returning()
  return row!
}

export async function listVersions(executor: Executor, modelId: string, page: PageRequest): Promise<{ rows: ModelVersionRow[]; total: number }> {
  const where = and(eq(modelVersions.modelId, modelId), ne(modelVersions.status, 'deleted'))
  const [rows, [total]] = await Promise.all([
    executor
      .select()
      .from(modelVersions)
      .where(where)
      .orderBy(desc(modelVersions.createdAt), asc(modelVersions.id))
      .limit(page.limit)
      .offset(page.offset),
    executor.select({ n: count() }).from(modelVersions).where(where),
  ])
  return { rows, total: total?.n ?? 0 }
}

/** Ids of the model's live versions. */
export async function liveVersionIds(executor: Executor, modelId: string): Promise<string[]> {
  const rows = await executor
    .select({ id: modelVersions.id })
    .from(modelVersions)
    .where(and(eq(modelVersions.modelId, modelId), ne(modelVersions.status, 'deleted')))
  return rows.map((r) => r.id)
}

export async function listVersionFiles(executor: Executor, versionId: string): Promise<ModelVersionFileRow[]> {
  return executor.select().from(modelVersionFiles).where(eq(modelVersionFiles.versionId, versionId)).orderBy(asc(modelVersionFiles.path))
}

export async function deleteVersionFiles(executor: Executor, versionId: string): Promise<void> {
  await executor.delete(modelVersionFiles).where(eq(modelVersionFiles.versionId, versionId))
}

export async function markVersionFiles(executor: Executor, versionId: string, status: string): Promise<void> {
  await executor
    .update(modelVersionFiles)
    .set({ status, updatedAt: sql`now()` })
    .where(eq(modelVersionFiles.versionId, versionId))
}

/** Every file of the version back to nothing stored: pending, no bytes, no open multipart upload. */
export async function resetVersionFiles(executor: Executor, versionId: string): Promise<void> {
  await executor
    .update(modelVersionFiles)
    .set({ status: 'pending', bytesDone: 0, multipartUploadId: null, partEtags: [], updatedAt: sql`now()` })
    .where(eq(modelVersionFiles.versionId, versionId))
}

export { uniqueViolationOf } from '../../platform/db/client.js'

export async function getCredentialByName(executor: Executor, tenantId: string, name: string): Promise<ModelCredentialRow | undefined> {
  const [row] = await executor
    .select()
    .from(modelCredentials)
    .where(and(eq(modelCredentials.tenantId, tenantId), eq(modelCredentials.name, name), isNull(modelCredentials.deletedAt)))
  return row
}

export async function getModelByName(executor: Executor, tenantId: string, name: string): Promise<ModelRow | undefined> {
  const [row] = await executor
    .select()
    .from(models)
    .where(and(eq(models.tenantId, tenantId), eq(models.name, name), ne(models.status, 'deleted')))
  return row
}

// ---- the file ledger of imports ---------------------------------------------------------------------

export async function addVersionFiles(executor: Executor, files: NewVersionFile[]): Promise<void> {
  for (let i = 0; i < files.length; i += 500) await executor.insert(modelVersionFiles).values(files.slice(i, i + 500)).onConflictDoNothing()
}

export async function getVersionById(executor: Executor, id: string): Promise<ModelVersionRow | undefined> {
  const [row] = await executor.select().from(modelVersions).where(eq(modelVersions.id, id))
  return row
}

export async function findVersionByWorkflow(executor: Executor, tenantId: string, workflowId: string): Promise<ModelVersionRow | undefined> {
  const [row] = await executor
    .select()
    .from(modelVersions)
    .where(and(eq(modelVersions.tenantId, tenantId), eq(modelVersions.workflowId, workflowId)))
  return row
}

export async function countVersionsEver(executor: Executor, modelId: string): Promise<number> {
  const [row] = await executor.select({ n: count() }).from(modelVersions).where(eq(modelVersions.modelId, modelId))
  return row?.n ?? 0
}

/** The first file (by path) not yet verified, or undefined when every file is. */
export async function nextUnverifiedFile(executor: Executor, versionId: string): Promise<ModelVersionFileRow | undefined> {
  const [row] = await executor
    .select()
    .from(modelVersionFiles)
    .where(and(eq(modelVersionFiles.versionId, versionId), ne(modelVersionFiles.status, 'verified')))
    .orderBy(asc(modelVersionFiles.path))
    .limit(1)
  return row
}

export async function updateVersionFile(
  executor: Executor,
  versionId: string,
  path: string,
  patch: Partial<Pick<NewVersionFile, 'status' | 'bytesDone' | 'sha256' | 'size' | 'multipartUploadId' | 'partEtags'>>,
): Promise<void> {
  await executor
    .update(modelVersionFiles)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(and(eq(modelVersionFiles.versionId, versionId), eq(modelVersionFiles.path, path)))
}

/** A file of the version moved to another path (and blob key). */
export async function renameVersionFile(executor: Executor, versionId: string, from: string, to: { path: string; blobKey: string }): Promise<void> {
  await executor
    .update(modelVersionFiles)
    .set({ path: to.path, blobKey: to.blobKey, updatedAt: sql`now()` })
    .where(and(eq(modelVersionFiles.versionId, versionId), eq(modelVersionFiles.path, from)))
}

/** Bytes of the version's files in all, and how many of them are stored. */
export async function versionBytes(executor: Executor, versionId: string): Promise<{ total: number; done: number; files: number }> {
  const [row] = await executor
    .select({
      total: sql<string>`coalesce(sum(${modelVersionFiles.size}), 0)`,
      done: sql<string>`coalesce(sum(${modelVersionFiles.bytesDone}), 0)`,
      files: count(),
    })
    .from(modelVersionFiles)
    .where(eq(modelVersionFiles.versionId, versionId))
  return { total: Number(row?.total ?? 0), done: Number(row?.done ?? 0), files: row?.files ?? 0 }
}

// ---- uploads ----------------------------------------------------------------------------------

export type NewUpload = typeof modelUploads.$inferInsert

export type UploadPatch = Partial<Pick<NewUpload, 'status' | 'statusReason' | 'workflowId' | 'expiresAt'>>

export async function insertUpload(
  executor: Executor,
  row: NewUpload,
  files: Array<typeof modelUploadFiles.$inferInsert>,
  parts: Array<typeof modelUploadParts.$inferInsert>,
): Promise<ModelUploadRow> {
  const [inserted] = await executor.insert(modelUploads).values(row).returning()
  for (let i = 0; i < files.length; i += 500) await executor.insert(modelUploadFiles).values(files.slice(i, i + 500))
  for (let i = 0; i < parts.length; i += 1000) await executor.insert(modelUploadParts).values(parts.slice(i, i + 1000))
  return inserted!
}

/** Tenant-scoped, and of this model: another tenant's upload, or one of another model, is not found. */
export async function getUpload(executor: Executor, tenantId: string, modelId: string, id: string): Promise<ModelUploadRow | undefined> {
  const [row] = await executor
    .select()
    .from(modelUploads)
    .where(and(eq(modelUploads.id, id), eq(modelUploads.tenantId, tenantId), eq(modelUploads.modelId, modelId)))
  return row
}

/** Not scoped: for the workflow and the sweeps, which act on ids they were handed by the service. */
export async function getUploadById(executor: Executor, id: string): Promise<ModelUploadRow | undefined> {
  const [row] = await executor.select().from(modelUploads).where(eq(modelUploads.id, id))
  return row
}

export async function lockUpload(executor: Executor, id: string): Promise<ModelUploadRow | undefined> {
  const [row] = await executor.select().from(modelUploads).where(eq(modelUploads.id, id)).for('update')
  return row
}

export async function updateUpload(executor: Executor, id: string, patch: UploadPatch): Promise<ModelUploadRow> {
  const [row] = await executor
    .update(modelUploads)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(eq(modelUploads.id, id))
    .returning()
  return row!
}

export async function listUploadFiles(executor: Executor, uploadId: string): Promise<ModelUploadFileRow[]> {
  return executor.select().from(modelUploadFiles).where(eq(modelUploadFiles.uploadId, uploadId)).orderBy(asc(modelUploadFiles.path))
}

export async function updateUploadFile(
  executor: Executor,
  uploadId: string,
  path: string,
  patch: Partial<Pick<ModelUploadFileRow, 'status' | 'sha256'>>,
): Promise<void> {
  await executor
    .update(modelUploadFiles)
    .set(patch)
    .where(and(eq(modelUploadFiles.uploadId, uploadId), eq(modelUploadFiles.path, path)))
}

export async function listUploadParts(executor: Executor, uploadId: string): Promise<ModelUploadPartRow[]> {
  return executor
    .select()
    .from(modelUploadParts)
    .where(eq(modelUploadParts.uploadId, uploadId))
    .orderBy(asc(modelUploadParts.path), asc(modelUploadParts.partNumber))
}

export async function setUploadPartEtag(executor: Executor, uploadId: string, path: string, partNumber: number, etag: string): Promise<void> {
  await executor
    .update(modelUploadParts)
    .set({ etag })
    .where(and(eq(modelUploadParts.uploadId, uploadId), eq(modelUploadParts.path, path), eq(modelUploadParts.partNumber, partNumber)))
}

/** Of these store upload ids, the ones an upload still open (or being completed) owns. */
export async function liveStoreUploadIds(executor: Executor, storeUploadIds: string[]): Promise<Set<string>> {
  if (storeUploadIds.length === 0) return new Set()
  const rows = await executor
    .select({ id: modelUploadFiles.storeUploadId })
    .from(modelUploadFiles)
    .innerJoin(modelUploads, eq(modelUploads.id, modelUploadFiles.uploadId))
    .where(and(inArray(modelUploadFiles.storeUploadId, storeUploadIds), inArray(modelUploads.status, ['open', 'completing'])))
  return new Set(rows.map((r) => r.id))
}

/** The status of each of these versions that exists (deleted ones included). */
export async function versionStatuses(executor: Executor, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map()
  const rows = await executor.select({ id: modelVersions.id, status: modelVersions.status }).from(modelVersions).where(inArray(modelVersions.id, ids))
  return new Map(rows.map((r) => [r.id, r.status]))
}

/** What the verification computed for one file of a version. */
export async function recordVersionFile(executor: Executor, versionId: string, path: string, patch: { sha256?: string; status: string; bytesDone?: number }): Promise<void> {
  await executor
    .update(modelVersionFiles)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(and(eq(modelVersionFiles.versionId, versionId), eq(modelVersionFiles.path, path)))
}
