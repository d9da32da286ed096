import { sql } from 'drizzle-orm'
import { boolean, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import type { ApiKeyPassing, ProductTag } from './catalog.js'
import type { ServingSettings } from './serving-settings.js'

/**
 * The runtime catalog: serving engines per device type with pinned images. `tenant_id` null is a
 * shared (global) runtime every tenant sees; otherwise the runtime is the tenant's own. Rows are
 * deleted softly (`deleted_at`) so that a seeded runtime an operator deleted is remembered and
 * not seeded again; `seeded` marks the rows the installation started from.
 */
export const runtimes = pgTable(
  'runtimes',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id'),
    name: text('name').notNull(),
    engine: text('engine').notNull(),
    deviceType: text('device_type').notNull(),
    image: text('image').notNull(),
    tag: text('tag').notNull(),
    productTags: jsonb('product_tags').$type<ProductTag[]>().notNull().default([]),
    argsTemplate: jsonb('args_template').$type<string[]>().notNull().default([]),
    port: integer('port').notNull(),
    healthPath: text('health_path').notNull(),
    readinessPath: text('readiness_path').notNull(),
    modelProbePath: text('model_probe_path').notNull(),
    metricsPath: text('metrics_path').notNull(),
    concurrencyMetric: text('concurrency_metric'),
    formats: jsonb('formats').$type<string[]>().notNull().default([]),
    tasks: jsonb('tasks').$type<string[]>().notNull().default([]),
    openaiRoutes: jsonb('openai_routes').$type<string[]>().notNull().default([]),
    apiKey: jsonb('api_key').$type<ApiKeyPassing>().notNull(),
    runAsUser: integer('run_as_user'),
    enabled: boolean('enabled').notNull().default(true),
    description: text('description').notNull().default(''),
    seeded: boolean('seeded').notNull().default(false),
    version: integer('version').notNull().default(1),
    createdBy: text('created_by').notNull(),
    updatedBy: text('updated_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    // A name is unique among the live runtimes of its scope: the shared ones, or one tenant's.
    uniqueIndex('runtimes_global_name_live_idx').on(t.name).where(sql`${t.tenantId} is null and ${t.deletedAt} is null`),
    uniqueIndex('runtimes_tenant_name_live_idx').on(t.tenantId, t.name).where(sql`${t.tenantId} is not null and ${t.deletedAt} is null`),
    // Seeding asks which shared names were ever used (deleted ones included); a shared name is
    // checked against every tenant's, so that a name means one runtime wherever it is used.
    index('runtimes_name_idx').on(t.name),
    // Lists: the shared rows and the tenant's, by name.
    index('runtimes_scope_list_idx').on(t.tenantId, t.name).where(sql`${t.deletedAt} is null`),
  ],
)

export type RuntimeRow = typeof runtimes.$inferSelect
export type NewRuntimeRow = typeof runtimes.$inferInsert

type Quota = ServingSettings['quota']

/** What a tenant says about serving on one of its clusters; no row means the defaults. */
export const clusterServingSettings = pgTable(
  'cluster_serving_settings',
  {
    tenantId: uuid('tenant_id').notNull(),
    clusterId: uuid('cluster_id').notNull(),
    registryPrefix: text('registry_prefix'),
    imagePullSecrets: jsonb('image_pull_secrets').$type<string[]>().notNull().default([]),
    objectStoreUrl: text('object_store_url'),
    ingressHostSuffix: text('ingress_host_suffix'),
    tlsSecretName: text('tls_secret_name'),
    ingressClassName: text('ingress_class_name'),
    ingressNamespace: text('ingress_namespace'),
    apiServerCidrs: jsonb('api_server_cidrs').$type<string[]>().notNull().default([]),
    prometheusUrl: text('prometheus_url'),
    quota: jsonb('quota').$type<Quota>(),
    version: integer('version').notNull().default(1),
    updatedBy: text('updated_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.clusterId] })],
)

export type ServingSettingsRow = typeof clusterServingSettings.$inferSelect
export type NewServingSettingsRow = typeof clusterServingSettings.$inferInsert
