import { and, asc, count, desc, eq, ne, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import { type Raw, type Row, statement } from '../../platform/db/raw.js'
import type { PageRequest, SortRequest } from '../../platform/http/pagination.js'
import { type ClusterNodeRow, type ClusterRow, type ClusterStatusHistoryRow, clusterNodes, clusters, clusterStatusHistory } from './tables.js'

/** Statuses of a registration that holds its identity and name (failed and deleted rows are records only). */
const LIVE = sql`${clusters.status} not in ('failed', 'deleted')`
/** History kept per cluster; older rows are trimmed as new ones arrive. */
export const HISTORY_KEPT = 500

export type NewCluster = typeof clusters.$inferInsert

export async function insertCluster(executor: Executor, row: NewCluster): Promise<ClusterRow> {
  const [inserted] = await executor.insert(clusters).values(row).returning()
  return inserted!
}

export async function findLiveClusterByIdentity(executor: Executor, tenantId: string, identity: string): Promise<ClusterRow | undefined> {
  const [row] = await executor
    .select()
    .from(clusters)
    .where(and(eq(clusters.tenantId, tenantId), eq(clusters.identity, identity), LIVE))
  return row
}

export async function findLiveClusterByName(executor: Executor, tenantId: string, name: string): Promise<ClusterRow | undefined> {
  const [row] = await executor.select().from(clusters).where(and(eq(clusters.tenantId, tenantId), eq(clusters.name, name), LIVE))
  return row
}

/** Another live cluster of the tenant that is the same Kubernetes cluster (same kube-system uid). */
export async function findLiveClusterByKubeSystemUid(
  executor: Executor,
  tenantId: string,
  uid: string,
  exceptId: string,
): Promise<ClusterRow | undefined> {
  const [row] = await executor
    .select()
    .from(clusters)
    .where(and(eq(clusters.tenantId, tenantId), eq(clusters.kubeSystemUid, uid), ne(clusters.id, exceptId), LIVE))
    .limit(1)
  return row
}

/** Tenant-scoped: another tenant's cluster is not found. */
export async function getCluster(executor: Executor, tenantId: string, id: string): Promise<ClusterRow | undefined> {
  const [row] = await executor.select().from(clusters).where(and(eq(clusters.id, id), eq(clusters.tenantId, tenantId)))
  return row
}

/** By id alone: for activities and sweeps, which carry the id their own run was started with. */
export async function getClusterById(executor: Executor, id: string): Promise<ClusterRow | undefined> {
  const [row] = await executor.select().from(clusters).where(eq(clusters.id, id))
  return row
}

export async function lockCluster(executor: Executor, id: string): Promise<ClusterRow | undefined> {
  const [row] = await executor.select().from(clusters).where(eq(clusters.id, id)).for('update')
  return row
}

export type ClusterPatch = Partial<Omit<NewCluster, 'id' | 'tenantId' | 'createdAt' | 'createdBy' | 'version' | 'updatedAt'>>

/** Bumps the version (the ETag) with every change. */
export async function updateCluster(executor: Executor, id: string, patch: ClusterPatch): Promise<ClusterRow> {
  const [row] = await executor
    .update(clusters)
    .set({ ...patch, version: sql`${clusters.version} + 1`, updatedAt: sql`now()` })
    .where(eq(clusters.id, id))
    .returning()
  return row!
}

export interface ClusterFilter {
  status?: string
  platform?: string
  deviceType?: string
  label?: { key: string; value: string }
  q?: string
}

export type ClusterSortField = 'name' | 'createdAt' | 'status' | 'lastSyncAt'

/**
 * The columns a listed cluster shows, and no others: a page never carries the sealed kubeconfigs
 * (kilobytes of ciphertext a row, read, parsed and dropped) nor what only the sync reads.
 */
const LISTED_COLUMNS = `id, name, labels, status, status_reason, status_message, status_since, server, platform, distribution,
  kubernetes_version, capabilities, permissions, summary, conditions, last_sync_at, last_sync_duration_ms, last_sync_error,
  registration_workflow_id, created_by, created_at, updated_at`

export type ListedClusterRow = Pick<
  ClusterRow,
  | 'id'
  | 'name'
  | 'labels'
  | 'status'
  | 'statusReason'
  | 'statusMessage'
  | 'statusSince'
  | 'server'
  | 'platform'
  | 'distribution'
  | 'kubernetesVersion'
  | 'capabilities'
  | 'permissions'
  | 'summary'
  | 'conditions'
  | 'lastSyncAt'
  | 'lastSyncDurationMs'
  | 'lastSyncError'
  | 'registrationWorkflowId'
  | 'createdBy'
  | 'createdAt'
  | 'updatedAt'
>

/** One listed row as both drivers give it (timestamps as Date, jsonb parsed). */
function listedRow(r: Row): ListedClusterRow {
  return {
    id: r.id as string,
    name: r.name as string,
    labels: r.labels as Record<string, string>,
    status: r.status as string,
    statusReason: r.status_reason as string | null,
    statusMessage: r.status_message as string | null,
    statusSince: r.status_since as Date,
    server: r.server as string,
    platform: r.platform as string | null,
    distribution: r.distribution as string | null,
    kubernetesVersion: r.kubernetes_version as string | null,
    capabilities: r.capabilities as Record<string, unknown> | null,
    permissions: r.permissions as { missing: string[] } | null,
    summary: r.summary as Record<string, unknown> | null,
    conditions: r.conditions as Array<Record<string, unknown>>,
    lastSyncAt: r.last_sync_at as Date | null,
    lastSyncDurationMs: r.last_sync_duration_ms as number | null,
    lastSyncError: r.last_sync_error as string | null,
    registrationWorkflowId: r.registration_workflow_id as string | null,
    createdBy: r.created_by as string,
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
  }
}

const SORT_COLUMNS: Record<ClusterSortField, string> = {
  name: 'name',
  createdAt: 'created_at',
  status: 'status',
  lastSyncAt: 'last_sync_at',
}

/**
 * The filter's where clause with a numbered parameter for every value present, and the values in
 * that order; the clause's text depends only on which filters are present (its shape), never on
 * their values, so one prepared statement serves every value.
 */
function listFilter(tenantId: string, filter: ClusterFilter): { shape: string; where: string; values: unknown[] } {
  const values: unknown[] = [tenantId]
  const where = ['tenant_id = $1::uuid']
  let shape = ''
  // Deleted clusters are records, shown only when asked for by status.
  if (filter.status) {
    where.push(`status = $${values.push(filter.status)}::text`)
    shape += 's'
  } else where.push("status <> 'deleted'")
  if (filter.platform) {
    where.push(`platform = $${values.push(filter.platform)}::text`)
    shape += 'p'
  }
  if (filter.deviceType) {
    where.push(`$${values.push(filter.deviceType)}::text = any(device_types)`)
    shape += 'd'
  }
  if (filter.label) {
    where.push(`labels @> $${values.push(JSON.stringify({ [filter.label.key]: filter.label.value }))}::jsonb`)
    shape += 'l'
  }
  if (filter.q) {
    where.push(`name ilike $${values.push(`%${filter.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`)}::text`)
    shape += 'q'
  }
  return { shape: shape || 'n', where: where.join(' and '), values }
}

/**
 * A page of the tenant's clusters as plain SQL (platform/db/raw.ts): a named statement per filter
 * shape and sort, planned once per pooled connection, its rows mapped here without the query
 * builder's per-row mapping.
 */
export async function listClusterPage(
  raw: Raw,
  tenantId: string,
  filter: ClusterFilter,
  sort: SortRequest<ClusterSortField>,
  page: PageRequest,
): Promise<ListedClusterRow[]> {
  const { shape, where, values } = listFilter(tenantId, filter)
  const nulls = sort.field === 'lastSyncAt' ? ' nulls last' : ''
  const page_ = statement(
    `clusters_page_${shape}_${sort.field}_${sort.direction}`,
    `select ${LISTED_COLUMNS} from clusters where ${where}
     order by ${SORT_COLUMNS[sort.field]} ${sort.direction}${nulls}, id asc
     limit $${values.length + 1}::int offset $${values.length + 2}::int`,
  )
  const rows = await raw.query(page_, [...values, page.limit, page.offset])
  return rows.map(listedRow)
}

/** How many of the tenant's clusters match the filter (the list's total). */
export async function countClusters(raw: Raw, tenantId: string, filter: ClusterFilter): Promise<number> {
  const { shape, where, values } = listFilter(tenantId, filter)
  const [row] = await raw.query<{ n: number }>(statement(`clusters_count_${shape}`, `select count(*)::int as n from clusters where ${where}`), values)
  return row?.n ?? 0
}

export async function insertStatusHistory(
  executor: Executor,
  entry: { clusterId: string; tenantId: string; fromStatus: string | null; toStatus: string; reason: string | null; message: string | null },
): Promise<void> {
  const [row] = await executor.insert(clusterStatusHistory).values(entry).returning({ id: clusterStatusHistory.id })
  // Bounded: a cluster flapping for a year keeps its latest HISTORY_KEPT changes.
  await executor
    .delete(clusterStatusHistory)
    .where(and(eq(clusterStatusHistory.clusterId, entry.clusterId), sql`${clusterStatusHistory.id} <= ${row!.id - HISTORY_KEPT}`))
}

export async function listStatusHistory(
  executor: Executor,
  clusterId: string,
  page: PageRequest,
): Promise<{ rows: ClusterStatusHistoryRow[]; total: number }> {
  const [rows, [total]] = await Promise.all([
    executor
      .select()
      .from(clusterStatusHistory)
      .where(eq(clusterStatusHistory.clusterId, clusterId))
      .orderBy(desc(clusterStatusHistory.id))
      .limit(page.limit)
      .offset(page.offset),
    executor.select({ n: count() }).from(clusterStatusHistory).where(eq(clusterStatusHistory.clusterId, clusterId)),
  ])
  return { rows, total: total?.n ?? 0 }
}

/** What a sync learnt of one node, as it is written (the cluster and tenant are the same for all). */
export interface NodeWrite {
  name: string
  roles: string[]
  schedulable: boolean
  ready: boolean
  deviceType: string
  facts: unknown
  used: unknown
}

/** Nodes per statement: bounds the JSON text one statement carries for a very large cluster. */
const NODES_PER_STATEMENT = 1_000

/**
 * The cluster's nodes become exactly `nodes`: upserted by name, the ones no longer there removed.
 *
 * The nodes travel as one JSON parameter unpacked by `jsonb_to_recordset`, not as nine bound
 * parameters a node: a sync then holds one string instead of drizzle's parameter arrays and the
 * per-value SQL chunks it builds for every row.
 */
export async function replaceClusterNodes(executor: Executor, cluster: { id: string; tenantId: string }, nodes: readonly NodeWrite[]): Promise<void> {
  for (let i = 0; i < nodes.length; i += NODES_PER_STATEMENT) {
    const json = JSON.stringify(
      nodes.slice(i, i + NODES_PER_STATEMENT).map((n) => ({
        name: n.name,
        roles: n.roles,
        schedulable: n.schedulable,
        ready: n.ready,
        device_type: n.deviceType,
        facts: n.facts,
        used: n.used,
      })),
    )
    await executor.execute(sql`
      insert into cluster_nodes (cluster_id, tenant_id, name, roles, schedulable, ready, device_type, facts, used)
      select ${cluster.id}::uuid, ${cluster.tenantId}::uuid, n.name, n.roles, n.schedulable, n.ready, n.device_type, n.facts, n.used
      from jsonb_to_recordset(${json}::jsonb)
        as n(name text, roles text[], schedulable boolean, ready boolean, device_type text, facts jsonb, used jsonb)
      on conflict (cluster_id, name) do update set
        roles = excluded.roles, schedulable = excluded.schedulable, ready = excluded.ready,
        device_type = excluded.device_type, facts = excluded.facts, used = excluded.used, updated_at = now()`)
  }
  const names = JSON.stringify(nodes.map((n) => n.name))
  await executor
    .delete(clusterNodes)
    .where(and(eq(clusterNodes.clusterId, cluster.id), sql`${clusterNodes.name} not in (select jsonb_array_elements_text(${names}::jsonb))`))
}

export async function deleteClusterNodes(executor: Executor, clusterId: string): Promise<void> {
  await executor.delete(clusterNodes).where(eq(clusterNodes.clusterId, clusterId))
}

export async function listClusterNodes(
  executor: Executor,
  clusterId: string,
  filter: { deviceType?: string; schedulable?: boolean },
  page: PageRequest,
): Promise<{ rows: ClusterNodeRow[]; total: number }> {
  const where: SQL[] = [eq(clusterNodes.clusterId, clusterId)]
  if (filter.deviceType) where.push(eq(clusterNodes.deviceType, filter.deviceType))
  if (filter.schedulable !== undefined) where.push(eq(clusterNodes.schedulable, filter.schedulable))
  const [rows, [total]] = await Promise.all([
    executor
      .select()
      .from(clusterNodes)
      .where(and(...where))
      .orderBy(asc(clusterNodes.name))
      .limit(page.limit)
      .offset(page.offset),
    executor.select({ n: count() }).from(clusterNodes).where(and(...where)),
  ])
  return { rows, total: total?.n ?? 0 }
}

/** Every node of a cluster, for placement (a cluster has hundreds of nodes at most). */
export async function allClusterNodes(executor: Executor, clusterId: string): Promise<ClusterNodeRow[]> {
  return executor.select().from(clusterNodes).where(eq(clusterNodes.clusterId, clusterId)).orderBy(asc(clusterNodes.name))
}

/**
 * What the cluster told us (sync results, status): recorded without moving `version` or
 * `updated_at`, which follow the user's own changes, so an If-Match read before a sync still holds.
 */
export async function recordClusterState(executor: Executor, id: string, patch: ClusterPatch): Promise<ClusterRow> {
  const [row] = await executor.update(clusters).set(patch).where(eq(clusters.id, id)).returning()
  return row!
}

/** Only for a row whose registration never started (its workflow could not be scheduled). */
export async function deleteClusterRow(executor: Executor, id: string): Promise<void> {
  await executor.delete(clusters).where(eq(clusters.id, id))
}

export { uniqueViolationOf } from '../../platform/db/client.js'
