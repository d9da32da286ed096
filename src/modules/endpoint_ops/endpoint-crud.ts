import { and, asc, count, desc, eq, inArray, lte, ne, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import { preparedStatements } from '../../platform/db/prepared.js'
import type { PageRequest, SortRequest } from '../../platform/http/pagination.js'
import { type EndpointRow, type EndpointStatusHistoryRow, endpoints, endpointStatusHistory, type NewEndpointRow } from './tables.js'

/** History kept per endpoint; older rows are trimmed as new ones arrive. */
export const ENDPOINT_HISTORY_KEPT = 500

const LIVE = ne(endpoints.phase, 'deleted')

export async function insertEndpoint(executor: Executor, row: NewEndpointRow): Promise<EndpointRow> {
  const [inserted] = await executor.insert(endpoints).values(row).returning()
  return inserted!
}

/** Tenant-scoped: another tenant's endpoint is not found. */
export async function getEndpoint(executor: Executor, tenantId: string, kind: string, id: string): Promise<EndpointRow | undefined> {
  const [row] = await executor
    .select()
    .from(endpoints)
    .where(and(eq(endpoints.id, id), eq(endpoints.tenantId, tenantId), eq(endpoints.kind, kind)))
  return row
}

/** By id alone: for activities and sweeps, which carry the id their own run was started with. */
export async function getEndpointById(executor: Executor, id: string): Promise<EndpointRow | undefined> {
  const [row] = await executor.select().from(endpoints).where(eq(endpoints.id, id))
  return row
}

export async function lockEndpoint(executor: Executor, id: string): Promise<EndpointRow | undefined> {
  const [row] = await executor.select().from(endpoints).where(eq(endpoints.id, id)).for('update')
  return row
}

export async function findLiveEndpointByName(executor: Executor, tenantId: string, kind: string, name: string): Promise<EndpointRow | undefined> {
  const [row] = await executor
    .select()
    .from(endpoints)
    .where(and(eq(endpoints.tenantId, tenantId), eq(endpoints.kind, kind), eq(endpoints.name, name), LIVE))
  return row
}

export type EndpointPatch = Partial<Omit<NewEndpointRow, 'id' | 'tenantId' | 'kind' | 'createdAt' | 'createdBy' | 'version' | 'updatedAt'>>

/** A change the user made: bumps the version (the ETag). */
export async function updateEndpoint(executor: Executor, id: string, patch: EndpointPatch): Promise<EndpointRow> {
  const [row] = await executor
    .update(endpoints)
    .set({ ...patch, version: sql`${endpoints.version} + 1`, updatedAt: sql`now()` })
    .where(eq(endpoints.id, id))
    .returning()
  return row!
}

/** What the cluster told us (status, activity): recorded without moving the ETag. */
export async function recordEndpointState(executor: Executor, id: string, patch: EndpointPatch): Promise<EndpointRow> {
  const [row] = await executor.update(endpoints).set(patch).where(eq(endpoints.id, id)).returning()
  return row!
}

export async function countLiveOnCluster(executor: Executor, clusterId: string): Promise<number> {
  const [row] = await executor.select({ n: count() }).from(endpoints).where(and(eq(endpoints.clusterId, clusterId), LIVE))
  return row?.n ?? 0
}

export async function liveIdsOnCluster(executor: Executor, clusterId: string): Promise<Array<{ id: string; phase: string }>> {
  return executor.select({ id: endpoints.id, phase: endpoints.phase }).from(endpoints).where(and(eq(endpoints.clusterId, clusterId), LIVE))
}

export async function countLiveUsingModel(executor: Executor, modelId: string, versionId?: string): Promise<number> {
  const where = [eq(endpoints.modelId, modelId), LIVE]
  if (versionId) where.push(eq(endpoints.versionId, versionId))
  const [row] = await executor.select({ n: count() }).from(endpoints).where(and(...where))
  return row?.n ?? 0
}

/** Live endpoints naming a runtime: of one tenant, or of every tenant for a shared runtime (null). */
export async function countLiveUsingRuntime(executor: Executor, runtimeName: string, tenantId: string | null): Promise<number> {
  const where = [eq(endpoints.runtime, runtimeName), LIVE]
  if (tenantId) where.push(eq(endpoints.tenantId, tenantId))
  const [row] = await executor.select({ n: count() }).from(endpoints).where(and(...where))
  return row?.n ?? 0
}

export interface EndpointFilter {
  clusterId?: string
  modelId?: string
  phase?: string
  runtime?: string
  deviceType?: string
  q?: string
  /** apps: only this user's own (a user without admin rank) */
  createdBy?: string
}

export type EndpointSortField = 'name' | 'createdAt' | 'phase'

const SORT_COLUMNS = { name: endpoints.name, createdAt: endpoints.createdAt, phase: endpoints.phase } as const

/** A page never carries the sealed key nor the applied spec. */
const LISTED = {
  id: endpoints.id,
  kind: endpoints.kind,
  name: endpoints.name,
  clusterId: endpoints.clusterId,
  modelId: endpoints.modelId,
  versionId: endpoints.versionId,
  runtime: endpoints.runtime,
  deviceType: endpoints.deviceType,
  spec: endpoints.spec,
  revision: endpoints.revision,
  appliedRevision: endpoints.appliedRevision,
  namespace: endpoints.namespace,
  phase: endpoints.phase,
  conditions: endpoints.conditions,
  statusReason: endpoints.statusReason,
  statusMessage: endpoints.statusMessage,
  statusSince: endpoints.statusSince,
  failedStep: endpoints.failedStep,
  baseUrl: endpoints.baseUrl,
  lastActivityAt: endpoints.lastActivityAt,
  workflowId: endpoints.workflowId,
  createdBy: endpoints.createdBy,
  version: endpoints.version,
  createdAt: endpoints.createdAt,
  updatedAt: endpoints.updatedAt,
}

export type ListedEndpointRow = Pick<EndpointRow, keyof typeof LISTED>

/**
 * An app's spec in a page: its files as paths and sizes, not their text (up to 500 KB an app), so
 * a page of apps is not a page of source code.
 */
const APP_LISTED = {
  ...LISTED,
  spec: sql<Record<string, unknown>>`(${endpoints.spec} - 'files') || jsonb_build_object('files', coalesce((select jsonb_agg(jsonb_build_object('path', f->>'path', 'bytes', octet_length(f->>'content'))) from jsonb_array_elements(${endpoints.spec}->'files') f), '[]'::jsonb))`,
}

const prepared = preparedStatements()

function listShape(kind: string, f: EndpointFilter, sort: SortRequest<EndpointSortField>): string {
  const flags = [f.clusterId ? 'c' : '', f.modelId ? 'm' : '', f.phase ? 's' : 'n', f.runtime ? 'r' : '', f.deviceType ? 'd' : '', f.q ? 'q' : '', f.createdBy ? 'o' : '']
  return `${kind}_${flags.join('')}_${sort.field}_${sort.direction}`
}

function listStatements(executor: Executor, kind: string, filter: EndpointFilter, sort: SortRequest<EndpointSortField>) {
  return prepared(executor, `endpoints_list_${listShape(kind, filter, sort)}`, (name) => {
    const where: SQL[] = [eq(endpoints.tenantId, sql.placeholder('tenantId')), eq(endpoints.kind, sql.placeholder('kind'))]
    // Deleted endpoints are records, shown only when asked for by phase.
    where.push(filter.phase ? eq(endpoints.phase, sql.placeholder('phase')) : LIVE)
    if (filter.clusterId) where.push(eq(endpoints.clusterId, sql.placeholder('clusterId')))
    if (filter.modelId) where.push(eq(endpoints.modelId, sql.placeholder('modelId')))
    if (filter.runtime) where.push(eq(endpoints.runtime, sql.placeholder('runtime')))
    if (filter.deviceType) where.push(eq(endpoints.deviceType, sql.placeholder('deviceType')))
    if (filter.q) where.push(sql`${endpoints.name} ilike ${sql.placeholder('q')}`)
    if (filter.createdBy) where.push(eq(endpoints.createdBy, sql.placeholder('createdBy')))
    const column = SORT_COLUMNS[sort.field]
    const page = executor
      .select(kind === 'app' ? APP_LISTED : LISTED)
      .from(endpoints)
      .where(and(...where))
      .orderBy(sort.direction === 'asc' ? asc(column) : desc(column), asc(endpoints.id))
      .limit(sql.placeholder('limit'))
      .offset(sql.placeholder('offset'))
      .prepare(name)
    const total = executor.select({ n: count() }).from(endpoints).where(and(...where)).prepare(`${name}_n`)
    return { page, total }
  })
}

export async function listEndpoints(
  executor: Executor,
  tenantId: string,
  kind: string,
  filter: EndpointFilter,
  sort: SortRequest<EndpointSortField>,
  page: PageRequest,
): Promise<{ rows: ListedEndpointRow[]; total: number }> {
  const statements = listStatements(executor, kind, filter, sort)
  const values = {
    tenantId,
    kind,
    ...filter,
    q: filter.q ? `%${filter.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined,
  }
  const [rows, [total]] = await Promise.all([
    statements.page.execute({ ...values, limit: page.limit, offset: page.offset }),
    statements.total.execute(values),
  ])
  return { rows, total: total?.n ?? 0 }
}

export async function insertEndpointHistory(
  executor: Executor,
  entry: { endpointId: string; tenantId: string; fromPhase: string | null; toPhase: string; reason: string | null; message: string | null },
): Promise<void> {
  const [row] = await executor.insert(endpointStatusHistory).values(entry).returning({ id: endpointStatusHistory.id })
  await executor
    .delete(endpointStatusHistory)
    .where(and(eq(endpointStatusHistory.endpointId, entry.endpointId), lte(endpointStatusHistory.id, row!.id - ENDPOINT_HISTORY_KEPT)))
}

export async function listEndpointHistory(
  executor: Executor,
  endpointId: string,
  page: PageRequest,
): Promise<{ rows: EndpointStatusHistoryRow[]; total: number }> {
  const [rows, [total]] = await Promise.all([
    executor
      .select()
      .from(endpointStatusHistory)
      .where(eq(endpointStatusHistory.endpointId, endpointId))
      .orderBy(desc(endpointStatusHistory.id))
      .limit(page.limit)
      .offset(page.offset),
    executor.select({ n: count() }).from(endpointStatusHistory).where(eq(endpointStatusHistory.endpointId, endpointId)),
  ])
  return { rows, total: total?.n ?? 0 }
}

export async function endpointsByIds(executor: Executor, ids: string[]): Promise<EndpointRow[]> {
  if (!ids.length) return []
  return executor.select().from(endpoints).where(inArray(endpoints.id, ids))
}

export { uniqueViolationOf } from '../../platform/db/client.js'
