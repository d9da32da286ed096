import { sql } from 'drizzle-orm'
import { bigserial, boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

/**
 * A registered Kubernetes cluster. The kubeconfig is sealed by the vault (context: the row) and
 * dropped when the cluster is deleted or its registration fails; everything else is what the
 * cluster told us at its last sync.
 *
 * status: registering → available | failed; available ⇄ not_available → error (unreachable longer
 * than CLUSTER_ERROR_AFTER_MINUTES) → available when it answers again; deleting → deleted.
 */
export const clusters = pgTable(
  'clusters',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id').notNull(),
    name: text('name').notNull(),
    labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
    status: text('status').notNull(),
    /** Why the status is what it is: a taxonomy code (CLUSTER_UNREACHABLE…) or null when healthy. */
    statusReason: text('status_reason'),
    statusMessage: text('status_message'),
    statusSince: timestamp('status_since', { withTimezone: true }).notNull().defaultNow(),
    /** The API server URL: not a secret, shown to users. */
    server: text('server').notNull(),
    /** Normalised server URL + CA hash: the same API server registered twice in a tenant is refused. */
    identity: text('identity').notNull(),
    /** metadata.uid of kube-system: the same cluster reached through another URL. */
    kubeSystemUid: text('kube_system_uid'),
    kubeconfigSealed: text('kubeconfig_sealed'),
    /** A replacement kubeconfig being verified (PATCH); swapped in only once it is. */
    pendingKubeconfigSealed: text('pending_kubeconfig_sealed'),
    allowInsecureTls: boolean('allow_insecure_tls').notNull().default(false),
    allowHttp: boolean('allow_http').notNull().default(false),
    platform: text('platform'),
    distribution: text('distribution'),
    kubernetesVersion: text('kubernetes_version'),
    capabilities: jsonb('capabilities').$type<Record<string, unknown>>(),
    permissions: jsonb('permissions').$type<{ missing: string[] }>(),
    summary: jsonb('summary').$type<Record<string, unknown>>(),
    /** Device types present, for the list filter (GIN-indexed). */
    deviceTypes: text('device_types').array().notNull().default(sql`'{}'::text[]`),
    nodeCount: integer('node_count').notNull().default(0),
    conditions: jsonb('conditions').$type<Array<Record<string, unknown>>>().notNull().default([]),
    lastSyncAt: timestamp('last_sync_at', { withTimezone: true }),
    lastSyncDurationMs: integer('last_sync_duration_ms'),
    lastSyncError: text('last_sync_error'),
    /** Since when every sync failed; null while the cluster answers. */
    unreachableSince: timestamp('unreachable_since', { withTimezone: true }),
    registrationWorkflowId: uuid('registration_workflow_id'),
    createdBy: text('created_by').notNull(),
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    // One live registration per API server and per name in a tenant; failed and deleted rows stay as records.
    uniqueIndex('clusters_tenant_identity_live_idx').on(t.tenantId, t.identity).where(sql`${t.status} not in ('failed', 'deleted')`),
    uniqueIndex('clusters_tenant_name_live_idx').on(t.tenantId, t.name).where(sql`${t.status} not in ('failed', 'deleted')`),
    index('clusters_tenant_created_idx').on(t.tenantId, t.createdAt),
    index('clusters_tenant_name_idx').on(t.tenantId, t.name),
    index('clusters_tenant_status_idx').on(t.tenantId, t.status),
    index('clusters_tenant_kube_system_idx').on(t.tenantId, t.kubeSystemUid),
    index('clusters_device_types_idx').using('gin', t.deviceTypes),
    index('clusters_labels_idx').using('gin', t.labels),
    index('clusters_name_trgm_idx').using('gin', sql`${t.name} gin_trgm_ops`),
  ],
)

export type ClusterRow = typeof clusters.$inferSelect

/** What the last sync learnt of each node; replaced node by node at every sync. */
export const clusterNodes = pgTable(
  'cluster_nodes',
  {
    clusterId: uuid('cluster_id')
      .notNull()
      .references(() => clusters.id, { onDelete: 'cascade' }),
    tenantId: uuid('tenant_id').notNull(),
    name: text('name').notNull(),
    roles: text('roles').array().notNull(),
    schedulable: boolean('schedulable').notNull(),
    ready: boolean('ready').notNull(),
    deviceType: text('device_type').notNull(),
    /** The rest of NodeFacts (taints, conditions, versions, capacity, devices…) and `used`. */
    facts: jsonb('facts').$type<Record<string, unknown>>().notNull(),
    used: jsonb('used').$type<Record<string, unknown>>().notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('cluster_nodes_cluster_name_idx').on(t.clusterId, t.name),
    index('cluster_nodes_cluster_device_idx').on(t.clusterId, t.deviceType, t.name),
  ],
)

export type ClusterNodeRow = typeof clusterNodes.$inferSelect

/** Every status change, newest kept (the oldest past a bound are trimmed on insert). */
export const clusterStatusHistory = pgTable(
  'cluster_status_history',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    clusterId: uuid('cluster_id')
      .notNull()
      .references(() => clusters.id, { onDelete: 'cascade' }),
    tenantId: uuid('tenant_id').notNull(),
    fromStatus: text('from_status'),
    toStatus: text('to_status').notNull(),
    reason: text('reason'),
    message: text('message'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('cluster_status_history_cluster_idx').on(t.clusterId, t.id)],
)

export type ClusterStatusHistoryRow = typeof clusterStatusHistory.$inferSelect
