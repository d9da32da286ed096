import { and, asc, count, desc, eq, isNull, or, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import type { PageRequest, SortRequest } from '../../platform/http/pagination.js'
import { type AppTemplateRow, appTemplates, type NewAppTemplateRow } from './app-tables.js'

export const APP_TEMPLATE_SORT_FIELDS = ['name', 'createdAt'] as const
export type AppTemplateSortField = (typeof APP_TEMPLATE_SORT_FIELDS)[number]

/** Who is looking: global templates, and of the tenant's, all (admin rank) or the caller's own. */
export interface TemplateViewer {
  tenantId: string
  ownerId: string
  allOfTenant: boolean
}

function visibleTo(viewer: TemplateViewer, scope?: 'global' | 'tenant'): SQL {
  const global = isNull(appTemplates.tenantId)
  const tenant = viewer.allOfTenant
    ? eq(appTemplates.tenantId, viewer.tenantId)
    : and(eq(appTemplates.tenantId, viewer.tenantId), eq(appTemplates.ownerId, viewer.ownerId))!
  const which = scope === 'global' ? global : scope === 'tenant' ? tenant : or(global, tenant)!
  return and(isNull(appTemplates.deletedAt), which)!
}

export async function listTemplates(
  executor: Executor,
  viewer: TemplateViewer,
  filter: { scope?: 'global' | 'tenant' },
  sort: SortRequest<AppTemplateSortField>,
  page: PageRequest,
): Promise<{ rows: AppTemplateRow[]; total: number }> {
  const where = visibleTo(viewer, filter.scope)
  const column = sort.field === 'name' ? appTemplates.name : appTemplates.createdAt
  const rows = await executor
    .select()
    .from(appTemplates)
    .where(where)
    .orderBy(sort.direction === 'asc' ? asc(column) : desc(column), asc(appTemplates.id))
    .limit(page.limit)
    .offset(page.offset)
  const [counted] = await executor.select({ n: count() }).from(appTemplates).where(where)
  return { rows, total: counted?.n ?? 0 }
}

/** The template when the viewer may see it; undefined otherwise (another tenant's, another user's, deleted, unknown). */
export async function findVisibleTemplate(executor: Executor, viewer: TemplateViewer, id: string, forUpdate = false): Promise<AppTemplateRow | undefined> {
  const query = executor.select().from(appTemplates).where(and(eq(appTemplates.id, id), visibleTo(viewer)))
  const [row] = forUpdate ? await query.for('update') : await query
  return row
}

export async function insertTemplate(executor: Executor, row: NewAppTemplateRow): Promise<AppTemplateRow> {
  const [inserted] = await executor.insert(appTemplates).values(row).returning()
  return inserted!
}

/** Seeds by key: what exists (edited, or deleted and kept as a tombstone) is left as it is. Answers how many were new. */
export async function insertMissingSeeds(executor: Executor, rows: NewAppTemplateRow[]): Promise<number> {
  if (rows.length === 0) return 0
  const inserted = await executor.insert(appTemplates).values(rows).onConflictDoNothing({ target: appTemplates.seedKey }).returning({ id: appTemplates.id })
  return inserted.length
}

export async function updateTemplate(
  executor: Executor,
  id: string,
  patch: Partial<Pick<NewAppTemplateRow, 'name' | 'description' | 'files' | 'entry'>>,
): Promise<AppTemplateRow> {
  const [updated] = await executor
    .update(appTemplates)
    .set({ ...patch, version: sql`${appTemplates.version} + 1`, updatedAt: sql`now()` })
    .where(eq(appTemplates.id, id))
    .returning()
  return updated!
}

/** A seeded template stays as a tombstone (its key keeps it from coming back); any other goes. */
export async function deleteTemplate(executor: Executor, row: Pick<AppTemplateRow, 'id' | 'seedKey'>): Promise<void> {
  if (row.seedKey) {
    await executor.update(appTemplates).set({ deletedAt: sql`now()`, updatedAt: sql`now()` }).where(eq(appTemplates.id, row.id))
  } else {
    await executor.delete(appTemplates).where(eq(appTemplates.id, row.id))
  }
}
