import { and, eq, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import { clusterServingSettings, type NewServingSettingsRow, type ServingSettingsRow } from './runtime-tables.js'

/** Every query of the per-cluster serving settings. */

export async function getServingSettings(executor: Executor, tenantId: string, clusterId: string): Promise<ServingSettingsRow | undefined> {
  const [row] = await executor
    .select()
    .from(clusterServingSettings)
    .where(and(eq(clusterServingSettings.tenantId, tenantId), eq(clusterServingSettings.clusterId, clusterId)))
  return row
}

/** The row, locked; settings not yet written are locked by key, so two first writes take turns too. */
export async function lockServingSettings(executor: Executor, tenantId: string, clusterId: string): Promise<ServingSettingsRow | undefined> {
  await executor.execute(sql`select pg_advisory_xact_lock(hashtext(${`serving-settings:${tenantId}:${clusterId}`}))`)
  const [row] = await executor
    .select()
    .from(clusterServingSettings)
    .where(and(eq(clusterServingSettings.tenantId, tenantId), eq(clusterServingSettings.clusterId, clusterId)))
    .for('update')
  return row
}

export type ServingSettingsValues = Omit<NewServingSettingsRow, 'tenantId' | 'clusterId' | 'version' | 'createdAt' | 'updatedAt'>

/** Writes the whole settings; a first write creates the row, later ones move its version. */
export async function putServingSettings(
  executor: Executor,
  tenantId: string,
  clusterId: string,
  values: ServingSettingsValues,
): Promise<ServingSettingsRow> {
  const [row] = await executor
    .insert(clusterServingSettings)
    .values({ tenantId, clusterId, ...values })
    .onConflictDoUpdate({
      target: [clusterServingSettings.tenantId, clusterServingSettings.clusterId],
      set: { ...values, version: sql`${clusterServingSettings.version} + 1`, updatedAt: new Date() },
    })
    .returning()
  return row!
}
