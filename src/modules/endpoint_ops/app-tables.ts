import { sql } from 'drizzle-orm'
import { index, integer, jsonb, pgTable, text, timestamp, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

/** One file of an app or a template, as the validator takes it. */
export interface StoredAppFile {
  path: string
  content: string
}

/**
 * Starting points for apps. `tenant_id` null: a global template, seen by every tenant and changed
 * only by a superuser. Otherwise the template belongs to a tenant and, through `owner_id`, to the
 * user who made it: they and the tenant's admins see it.
 *
 * Seeded templates carry a `seed_key`: a start inserts what is missing by that key and never
 * writes over a row that has one, so an edit survives restarts; a deleted seeded template keeps its
 * row (`deleted_at` set), so the key stays taken and the template does not come back.
 */
export const appTemplates = pgTable(
  'app_templates',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id'),
    ownerId: text('owner_id'),
    seedKey: text('seed_key'),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    files: jsonb('files').$type<StoredAppFile[]>().notNull(),
    /** The file the runner would import (what the validator found). */
    entry: text('entry').notNull(),
    createdBy: text('created_by'),
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('app_templates_seed_key_idx').on(t.seedKey),
    index('app_templates_global_name_idx').on(t.name, t.id).where(sql`${t.tenantId} is null and ${t.deletedAt} is null`),
    index('app_templates_tenant_name_idx').on(t.tenantId, t.name, t.id).where(sql`${t.deletedAt} is null`),
    index('app_templates_tenant_owner_idx').on(t.tenantId, t.ownerId).where(sql`${t.deletedAt} is null`),
  ],
)

export type AppTemplateRow = typeof appTemplates.$inferSelect
export type NewAppTemplateRow = typeof appTemplates.$inferInsert

/**
 * The modules an app may import: one row per tenant that has its own list, and at most one global
 * row (`tenant_id` null) that tenants without their own inherit. Neither: DEFAULT_ALLOWED_IMPORTS.
 */
export const appImportAllowlist = pgTable(
  'app_import_allowlist',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id'),
    entries: text('entries').array().notNull(),
    version: integer('version').notNull().default(1),
    updatedBy: text('updated_by'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('app_import_allowlist_tenant_key').on(t.tenantId).nullsNotDistinct()],
)

export type AppImportAllowlistRow = typeof appImportAllowlist.$inferSelect
