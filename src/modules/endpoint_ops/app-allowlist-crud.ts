import { randomUUID } from 'node:crypto'
import { eq, isNull, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import { type AppImportAllowlistRow, appImportAllowlist } from './app-tables.js'

const scopeIs = (tenantId: string | null) => (tenantId === null ? isNull(appImportAllowlist.tenantId) : eq(appImportAllowlist.tenantId, tenantId))

export async function findAllowlist(executor: Executor, tenantId: string | null, forUpdate = false): Promise<AppImportAllowlistRow | undefined> {
  const query = executor.select().from(appImportAllowlist).where(scopeIs(tenantId))
  const [row] = forUpdate ? await query.for('update') : await query
  return row
}

/** The tenant's row and the global row, in one read: what a tenant's list is made of. */
export async function findAllowlistsFor(executor: Executor, tenantId: string): Promise<{ tenant?: AppImportAllowlistRow; global?: AppImportAllowlistRow }> {
  const rows = await executor
    .select()
    .from(appImportAllowlist)
    .where(sql`${appImportAllowlist.tenantId} = ${tenantId} or ${appImportAllowlist.tenantId} is null`)
  return { tenant: rows.find((r) => r.tenantId === tenantId), global: rows.find((r) => r.tenantId === null) }
}

/** Writes the scope's list: a new row, or the next version of the existing one. */
export async function saveAllowlist(executor: Executor, tenantId: string | null, entries: string[], updatedBy: string): Promise<AppImportAllowlistRow> {
  const [row] = await executor
    .insert(appImportAllowlist)
    .values({ id: randomUUID(), tenantId, entries, updatedBy })
    .onConflictDoUpdate({
      target: appImportAllowlist.tenantId,
      set: { entries, updatedBy, version: sql`${appImportAllowlist.version} + 1`, updatedAt: sql`now()` },
    })
    .returning()
  return row!
}
