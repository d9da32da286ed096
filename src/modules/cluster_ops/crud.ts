import { and, asc, count, desc, eq, ne, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import { preparedStatements } from '../../platform/db/prepared.js'
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

const SORT_COLUMNS = {
  name: clusters.name,
  createdAt: clusters.createdAt,
  status: clusters.status,
  lastSyncAt: clusters.lastSyncAt,
} as const

/**
 * The columns a listed cluster shows, and no others: a page never carries the sealed kubeconfigs
 * (kilobytes of ciphertext a row, read, parsed and dropped) nor what only the sync reads.
 */
const LISTED = {
  id: clusters.id,
  name: clusters.name,
  labels: clusters.labels,
  status: clusters.status,
  statusReason: clusters.statusReason,
  statusMessage: clusters.statusMessage,
  statusSince: clusters.statusSince,
  server: clusters.server,
  platform: clusters.platform,
  distribution: clusters.distribution,
  kubernetesVersion: clusters.kubernetesVersion,
  capabilities: clusters.capabilities,
  permissions: clusters.permissions,
  summary: clusters.summary,
  conditions: clusters.conditions,
  lastSyncAt: clusters.lastSyncAt,
  lastSyncDurationMs: clusters.lastSyncDurationMs,
  lastSyncError: clusters.lastSyncError,
  registrationWorkflowId: clusters.registrationWorkflowId,
  createdBy: clusters.createdBy,
  createdAt: clusters.createdAt,
  updatedAt: clusters.updatedAt,
}

export type ListedClusterRow = Pick<ClusterRow, keyof typeof LISTED>

/** Which optional clauses a list has: one prepared statement per shape, never per value. */
function listShape(filter: ClusterFilter, sort: SortRequest<ClusterSortField>): string {
  const clauses = [filter.status ? 's' : 'n', filter.platform ? 'p' : '', filter.deviceType ? 'd' : '', filter.label ? 'l' : '', filter.q ? 'q' : '']
  return `${clauses.join('')}_${sort.field}_${sort.direction}`
}

const prepared = preparedStatements()

/**
 * The page and its count for one filter shape, with placeholders for every value, prepared under
 * a name: built by drizzle and planned by PostgreSQL once per connection, not on every request.
 */
function listStatements(executor: Executor, filter: ClusterFilter, sort: SortRequest<ClusterSortField>) {
  return prepared(executor, `clusters_list_${listShape(filter, sort)}`, (name) => {
    const where: SQL[] = [eq(clusters.tenantId, sql.placeholder('tenantId'))]
    // Deleted clusters are records, shown only when asked for by status.
    where.push(filter.status ? eq(clusters.status, sql.placeholder('status')) : ne(clusters.status, 'deleted'))
    if (filter.platform) where.push(eq(clusters.platform, sql.placeholder('platform')))
    if (filter.deviceType) where.push(sql`${clusters.deviceTypes} @> array[${sql.placeholder('deviceType')}]::text[]`)
    if (filter.label) where.push(sql`${clusters.labels} @> ${sql.placeholder('label')}::jsonb`)
    if (filter.q) where.push(sql`${clusters.name} ilike ${sql.placeholder('q')}`)
    const column = SORT_COLUMNS[sort.field]
    const order = sort.direction === 'asc' ? asc(column) : desc(column)
    const page = executor
      .select(LISTED)
      .from(clusters)
      .where(and(...where))
      .orderBy(sort.field === 'lastSyncAt' ? sql`${order} nulls last` : order, asc(clusters.id))
      .limit(sql.placeholder('limit'))
      .offset(sql.placeholder('offset'))
      .prepare(name)
    const total = executor
      .select({ n: count() })
      .from(clusters)
      .where(and(...where))
      .prepare(`${name}_n`)
    return { page, total }
  })
}

export async function listClusters(
  executor: Executor,
  tenantId: string,
  filter: ClusterFilter,
  sort: SortRequest<ClusterSortField>,
  page: PageRequest,
): Promise<{ rows: ListedClusterRow[]; total: number }> {
  const statements = listStatements(executor, filter, sort)
  const values = {
    tenantId,
    status: filter.status,
    platform: filter.platform,
    deviceType: filter.deviceType,
    label: filter.label ? JSON.stringify({ [filter.label.key]: filter.label.value }) : undefined,
    q: filter.q ? `%${filter.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined,
  }
  const [rows, [total]] = await Promise.all([
    statements.page.execute({ ...values, limit: page.limit, offset: page.offset }),
    statements.total.execute(values),
  ])
  return { rows, total: total?.n ?? 0 }
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
