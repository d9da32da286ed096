import { sql } from 'drizzle-orm'
import {
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core'

/** A tenant is a realm: in Keycloak mode a Keycloak realm, in embedded mode a realm of the embedded issuer. */
export const tenants = pgTable('tenants', {
  id: uuid('id').primaryKey().defaultRandom(),
  realm: text('realm').notNull().unique(),
  displayName: text('display_name').notNull(),
  /** active | disabled */
  status: text('status').notNull().default('active'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
})

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id),
    /** The token's `sub`: Keycloak's user id, or the embedded issuer's. */
    authId: text('auth_id').notNull(),
    email: text('email').notNull(),
    name: text('name').notNull().default(''),
    role: text('role').notNull(),
    /** active | invited | disabled | deleted */
    status: text('status').notNull().default('active'),
    isSuperuser: boolean('is_superuser').notNull().default(false),
    /** Embedded mode only; scrypt with its parameters and salt in the string. */
    passwordHash: text('password_hash'),
    tag: text('tag'),
    attributes: jsonb('attributes').notNull().default({}),
    /** name → vault ciphertext; never returned by the API. */
    secrets: jsonb('secrets').notNull().default({}),
    /**
     * Tokens issued before this instant are refused (every session of the user ends at once): set by
     * a password change, a credential reset, a disable or a delete. Null: no cut-off.
     */
    sessionsValidAfter: timestamp('sessions_valid_after', { withTimezone: true }),
    /** Moves on every write through user administration; part of the ETag (updated_at alone has millisecond ties). */
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('users_tenant_auth_id_key').on(t.tenantId, t.authId),
    // A deleted user frees their email and tag for a new account.
    uniqueIndex('users_tenant_email_key')
      .on(t.tenantId, sql`lower(${t.email})`)
      .where(sql`${t.status} <> 'deleted'`),
    uniqueIndex('users_tenant_tag_key')
      .on(t.tenantId, t.tag)
      .where(sql`${t.status} <> 'deleted' and ${t.tag} is not null`),
    // User listings per tenant by creation time, with and without a status filter. Ascending on
    // purpose: scanned backward they give `created_at DESC, id DESC` exactly, which a drizzle
    // `.desc()` column (NULLS LAST) does not, so `ORDER BY created_at DESC` sorted every match.
    // Live users (the default listing) have a partial index of their own, so counting them reads
    // the index alone.
    index('users_tenant_live_created_at_idx')
      .on(t.tenantId, t.createdAt, t.id)
      .where(sql`${t.status} <> 'deleted'`),
    index('users_tenant_status_created_at_idx').on(t.tenantId, t.status, t.createdAt, t.id),
    // User administration (user_admin): sorting by name or email, filtering by role, and substring
    // search (`q`, ILIKE '%…%') through pg_trgm (migration 0003_pg_trgm creates the extension).
    index('users_tenant_name_idx').on(t.tenantId, t.name, t.id),
    index('users_tenant_email_idx').on(t.tenantId, t.email, t.id),
    index('users_tenant_role_created_at_idx').on(t.tenantId, t.role, t.createdAt, t.id),
    index('users_name_trgm_idx').using('gin', t.name.op('gin_trgm_ops')),
    index('users_email_trgm_idx').using('gin', t.email.op('gin_trgm_ops')),
  ],
)

export const roles = pgTable('roles', {
  name: text('name').primaryKey(),
  description: text('description').notNull().default(''),
})

export const rolePermissions = pgTable(
  'role_permissions',
  {
    role: text('role')
      .notNull()
      .references(() => roles.name, { onDelete: 'cascade' }),
    permission: text('permission').notNull(),
  },
  (t) => [primaryKey({ columns: [t.role, t.permission] })],
)

/** Permissions granted to one user on top of their role's. */
export const userGrants = pgTable(
  'user_grants',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    permission: text('permission').notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.permission] })],
)

export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id),
    name: text('name').notNull(),
    /** The public part of the key (`mp_<prefix>_…`): how a presented key finds its row. */
    prefix: text('prefix').notNull().unique(),
    /** sha256 of the secret part, hex. The secret itself is never stored. */
    keyHash: text('key_hash').notNull(),
    scopes: text('scopes').array().notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('api_keys_user_created_at_idx').on(t.userId, t.createdAt)],
)

/** Token ids refused until they expire anyway (logout, refresh rotation). */
export const revokedTokens = pgTable(
  'revoked_tokens',
  {
    jti: text('jti').primaryKey(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [index('revoked_tokens_expires_at_idx').on(t.expiresAt)],
)

/** The embedded issuer's keys, one active per realm; the private half sealed by the vault. */
export const signingKeys = pgTable(
  'signing_keys',
  {
    kid: text('kid').primaryKey(),
    realm: text('realm').notNull(),
    alg: text('alg').notNull(),
    publicJwk: jsonb('public_jwk').notNull(),
    /** vault ciphertext, context `signing-key:<kid>` */
    privateJwkCiphertext: text('private_jwk_ciphertext').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    retiredAt: timestamp('retired_at', { withTimezone: true }),
  },
  (t) => [
    index('signing_keys_realm_idx').on(t.realm, t.createdAt),
    // At most one active key per realm, so two replicas creating one at once settle on one.
    uniqueIndex('signing_keys_realm_active_key').on(t.realm).where(sql`${t.retiredAt} is null`),
  ],
)

export const auditLog = pgTable(
  'audit_log',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id'),
    /** user | api_key | service */
    actorKind: text('actor_kind').notNull(),
    actorId: text('actor_id').notNull(),
    /** The route's operationId. */
    action: text('action').notNull(),
    resourceKind: text('resource_kind'),
    resourceId: text('resource_id'),
    /** The server's own request id; never the client's. */
    requestId: text('request_id').notNull(),
    /** What the client sent as X-Request-Id, kept apart: a client can say anything there. */
    clientRequestId: text('client_request_id'),
    /** The actor's own tenant when it differs from the tenant acted on (a superuser across tenants). */
    actorTenantId: uuid('actor_tenant_id'),
    /** The HTTP status of the answer. */
    outcome: integer('outcome').notNull(),
    method: text('method').notNull(),
    /** The route template, never the raw URL (which may carry identifiers in query strings). */
    path: text('path').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // Ascending, scanned backward for newest first (see the users indexes).
    index('audit_log_tenant_created_at_idx').on(t.tenantId, t.createdAt, t.id),
    index('audit_log_created_at_idx').on(t.createdAt, t.id),
  ],
)

export type TenantRow = typeof tenants.$inferSelect
export type UserRow = typeof users.$inferSelect
export type ApiKeyRow = typeof apiKeys.$inferSelect
export type SigningKeyRow = typeof signingKeys.$inferSelect
export type AuditRow = typeof auditLog.$inferSelect
