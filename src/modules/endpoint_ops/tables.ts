import { sql } from 'drizzle-orm'
import { bigserial, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

/**
 * A model (or, with kind `app`, a user's code) served on a cluster. `spec` is what the user asked
 * for, `revision` moves with every change of it, and `appliedRevision`/`appliedSpec` are the last
 * revision whose rollout completed: a failed update is rolled back to it. The runtime's API key is
 * sealed by the vault (context: the row).
 *
 * phase: deploying → running | failed; running ⇄ degraded; running ⇄ scaled_to_zero;
 * any → deleting → deleted.
 */
export const endpoints = pgTable(
  'endpoints',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id').notNull(),
    kind: text('kind').notNull().default('model'),
    name: text('name').notNull(),
    clusterId: uuid('cluster_id').notNull(),
    modelId: uuid('model_id'),
    versionId: uuid('version_id'),
    runtime: text('runtime'),
    deviceType: text('device_type'),
    spec: jsonb('spec').$type<Record<string, unknown>>().notNull(),
    revision: integer('revision').notNull().default(1),
    appliedRevision: integer('applied_revision'),
    appliedSpec: jsonb('applied_spec').$type<Record<string, unknown>>(),
    /** the planner's answer for the current revision (resources, engine arguments, placement) */
    plan: jsonb('plan').$type<Record<string, unknown>>(),
    namespace: text('namespace'),
    phase: text('phase').notNull(),
    conditions: jsonb('conditions').$type<Array<Record<string, unknown>>>().notNull().default([]),
    statusReason: text('status_reason'),
    statusMessage: text('status_message'),
    statusSince: timestamp('status_since', { withTimezone: true }).notNull().defaultNow(),
    failedStep: text('failed_step'),
    apiKeySealed: text('api_key_sealed'),
    baseUrl: text('base_url'),
    /** per pod, the last request counter read and when it last moved (idle scale to zero) */
    activity: jsonb('activity').$type<Record<string, unknown>>().notNull().default({}),
    lastActivityAt: timestamp('last_activity_at', { withTimezone: true }).notNull().defaultNow(),
    workflowId: uuid('workflow_id'),
    createdBy: text('created_by').notNull(),
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('endpoints_tenant_kind_name_live_idx').on(t.tenantId, t.kind, t.name).where(sql`${t.phase} <> 'deleted'`),
    index('endpoints_tenant_created_idx').on(t.tenantId, t.kind, t.createdAt),
    index('endpoints_cluster_live_idx').on(t.clusterId).where(sql`${t.phase} <> 'deleted'`),
    index('endpoints_model_live_idx').on(t.modelId, t.versionId).where(sql`${t.phase} <> 'deleted'`),
  ],
)

export type EndpointRow = typeof endpoints.$inferSelect
export type NewEndpointRow = typeof endpoints.$inferInsert

/** Every phase change, the newest kept (older ones trimmed on insert). */
export const endpointStatusHistory = pgTable(
  'endpoint_status_history',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    endpointId: uuid('endpoint_id')
      .notNull()
      .references(() => endpoints.id, { onDelete: 'cascade' }),
    tenantId: uuid('tenant_id').notNull(),
    fromPhase: text('from_phase'),
    toPhase: text('to_phase').notNull(),
    reason: text('reason'),
    message: text('message'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('endpoint_status_history_endpoint_idx').on(t.endpointId, t.id)],
)

export type EndpointStatusHistoryRow = typeof endpointStatusHistory.$inferSelect
