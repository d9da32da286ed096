import { and, asc, count, desc, eq, inArray, isNotNull, isNull, or, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import type { PageRequest, SortRequest } from '../../platform/http/pagination.js'
import { type NewRuntimeRow, type RuntimeRow, runtimes } from './runtime-tables.js'

/** Every query of the catalog: the data of the runtime catalog and nothing else. */

const LIVE = isNull(runtimes.deletedAt)
/** The rows a tenant sees: the shared ones and its own. */
const visibleTo = (tenantId: string) => and(LIVE, or(isNull(runtimes.tenantId), eq(runtimes.tenantId, tenantId)))

export async function insertRuntime(executor: Executor, row: NewRuntimeRow): Promise<RuntimeRow> {
  const [inserted] = await executor.insert(runtimes).values(row).returning()
  return inserted!
}

/** A live runtime the tenant sees (shared or its own); another tenant's is not found. */
export async function getVisibleRuntime(executor: Executor, tenantId: string, id: string): Promise<RuntimeRow | undefined> {
  const [row] = await executor.select().from(runtimes).where(and(eq(runtimes.id, id), visibleTo(tenantId)))
  return row
}

export async function lockRuntime(executor: Executor, id: string): Promise<RuntimeRow | undefined> {
  const [row] = await executor.select().from(runtimes).where(eq(runtimes.id, id)).for('update')
  return row
}

/**
 * Serializes writes that claim a runtime name, whatever the scope: a shared name is checked
 * against every tenant's and a tenant's against the shared ones, which two unique indexes
 * cannot do on their own. Held until the transaction ends.
 */
export async function lockRuntimeName(executor: Executor, name: string): Promise<void> {
  await executor.execute(sql`select pg_advisory_xact_lock(hashtext(${`runtime-name:${name}`}))`)
}

/**
 * Whether `name` is taken for a runtime of `tenantId` (null: a shared one). A shared name
 * collides with any live runtime of that name; a tenant's with the shared ones and its own.
 */
export async function runtimeNameTaken(executor: Executor, tenantId: string | null, name: string, exceptId?: string): Promise<boolean> {
  const scope = tenantId === null ? undefined : or(isNull(runtimes.tenantId), eq(runtimes.tenantId, tenantId))
  const except = exceptId ? sql`${runtimes.id} <> ${exceptId}` : undefined
  const [row] = await executor
    .select({ id: runtimes.id })
    .from(runtimes)
    .where(and(eq(runtimes.name, name), LIVE, scope, except))
    .limit(1)
  return row !== undefined
}

export type RuntimePatch = Partial<Omit<NewRuntimeRow, 'id' | 'tenantId' | 'createdAt' | 'createdBy' | 'version' | 'updatedAt' | 'seeded'>>

/** A change by a user: moves the version (the ETag). */
export async function updateRuntime(executor: Executor, id: string, patch: RuntimePatch): Promise<RuntimeRow> {
  const [row] = await executor
    .update(runtimes)
    .set({ ...patch, version: sql`${runtimes.version} + 1`, updatedAt: new Date() })
    .where(eq(runtimes.id, id))
    .returning()
  return row!
}

export async function softDeleteRuntime(executor: Executor, id: string, by: string): Promise<void> {
  await executor
    .update(runtimes)
    .set({ deletedAt: new Date(), updatedAt: new Date(), updatedBy: by, version: sql`${runtimes.version} + 1` })
    .where(eq(runtimes.id, id))
}

export interface RuntimeFilter {
  engine?: string
  deviceType?: string
  enabled?: boolean
  scope?: 'global' | 'tenant'
}

export type RuntimeSortField = 'name' | 'createdAt' | 'updatedAt'
const SORT_COLUMNS = { name: runtimes.name, createdAt: runtimes.createdAt, updatedAt: runtimes.updatedAt }

function filterOf(tenantId: string, filter: RuntimeFilter): SQL | undefined {
  const where: Array<SQL | undefined> = [visibleTo(tenantId)]
  if (filter.scope === 'global') where.push(isNull(runtimes.tenantId))
  if (filter.scope === 'tenant') where.push(isNotNull(runtimes.tenantId))
  if (filter.engine) where.push(eq(runtimes.engine, filter.engine))
  if (filter.deviceType) where.push(eq(runtimes.deviceType, filter.deviceType))
  if (filter.enabled !== undefined) where.push(eq(runtimes.enabled, filter.enabled))
  return and(...where)
}

/** The tenant's view of the catalog, filtered and paged (the catalog is small: runtimes_scope_list_idx serves it). */
export async function listRuntimes(
  executor: Executor,
  tenantId: string,
  filter: RuntimeFilter,
  sort: SortRequest<RuntimeSortField>,
  page: PageRequest,
): Promise<{ rows: RuntimeRow[]; total: number }> {
  const where = filterOf(tenantId, filter)
  const column = SORT_COLUMNS[sort.field]
  const rows = await executor
    .select()
    .from(runtimes)
    .where(where)
    .orderBy(sort.direction === 'asc' ? asc(column) : desc(column), asc(runtimes.id))
    .limit(page.limit)
    .offset(page.offset)
  const [total] = await executor.select({ n: count() }).from(runtimes).where(where)
  return { rows, total: total?.n ?? 0 }
}

/** The enabled runtimes a tenant may deploy with: the shared ones and its own. */
export async function enabledRuntimesFor(executor: Executor, tenantId: string): Promise<RuntimeRow[]> {
  return executor
    .select()
    .from(runtimes)
    .where(and(visibleTo(tenantId), eq(runtimes.enabled, true)))
    .orderBy(asc(runtimes.name))
}

/** Shared names ever used, deleted ones included: a seed whose name is here is not seeded again. */
export async function globalNamesEverUsed(executor: Executor, names: string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set()
  const rows = await executor
    .select({ name: runtimes.name })
    .from(runtimes)
    .where(and(isNull(runtimes.tenantId), inArray(runtimes.name, names)))
  return new Set(rows.map((r) => r.name))
}

/** Inserts rows, leaving out any whose name a concurrent start inserted first. */
export async function insertSeeds(executor: Executor, rows: NewRuntimeRow[]): Promise<number> {
  if (rows.length === 0) return 0
  const inserted = await executor.insert(runtimes).values(rows).onConflictDoNothing().returning({ id: runtimes.id })
  return inserted.length
}
