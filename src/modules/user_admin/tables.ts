import { index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { users } from '../auth/tables.js'

/**
 * Embedded mode: a user created by an admin sets their own password through a one-time invite.
 * Only the token's sha256 is stored; the token itself is shown once, to the admin who created the user.
 */
export const userInvites = pgTable(
  'user_invites',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** sha256 of the token, hex. */
    tokenHash: text('token_hash').notNull().unique(),
    /** invite: first password of a user who never had one; reset: an admin's credential reset. */
    purpose: text('purpose').$type<'invite' | 'reset'>().notNull().default('invite'),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('user_invites_user_id_idx').on(t.userId)],
)

export type UserInviteRow = typeof userInvites.$inferSelect

/**
 * The ledger of bulk user imports: one row per batch, written in the same transaction as the
 * batch's users. A batch that runs again (a retried or re-delivered activity) finds its row and
 * answers the recorded outcome instead of inserting anything; the rows together are the import's
 * full per-row error report.
 */
export const userImportBatches = pgTable(
  'user_import_batches',
  {
    importId: uuid('import_id').notNull(),
    batch: integer('batch').notNull(),
    tenantId: uuid('tenant_id').notNull(),
    created: integer('created').notNull().default(0),
    /** [{ row, email, code, message }] of the batch's rows that were not created, in row order. */
    errors: jsonb('errors').notNull().default([]),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.importId, t.batch] })],
)

export type UserImportBatchRow = typeof userImportBatches.$inferSelect
