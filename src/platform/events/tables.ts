import { sql } from 'drizzle-orm'
import { index, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core'

/**
 * The transactional outbox: an event is a row written in the same transaction as the change it
 * describes, so it exists exactly when that change does. The dispatcher delivers rows afterwards.
 *
 * While a dispatcher holds a row, `next_attempt_at` doubles as its lease expiry and `lease_token`
 * names the claim: a dispatcher that dies mid-delivery leaves a row that becomes due again when
 * its lease runs out, and a late answer from an expired claim cannot overwrite a newer one.
 */
export const outboxEvents = pgTable(
  'outbox_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    topic: text('topic').notNull(),
    payload: jsonb('payload').notNull(),
    /** The publishing application (CloudEvent `source`); a dispatcher only delivers its own source's rows. */
    source: text('source').notNull(),
    /** The tenant whose data the event describes; null for platform events (superusers alone see those). */
    tenantId: uuid('tenant_id'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    /** Delivery attempts started, including one in flight. */
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    lastError: text('last_error'),
    leaseToken: uuid('lease_token'),
  },
  (t) => [
    // The dispatcher's only scan: undelivered rows whose time has come. Stays small however large the table grows.
    index('outbox_events_due_idx').on(t.nextAttemptAt).where(sql`${t.deliveredAt} is null`),
    // Operator listing, newest first, and the retention sweep of old delivered rows.
    index('outbox_events_created_at_idx').on(t.createdAt),
    index('outbox_events_topic_created_at_idx').on(t.topic, t.createdAt),
    // A tenant admin's listing: their tenant's events, newest first.
    index('outbox_events_tenant_created_at_idx').on(t.tenantId, t.createdAt),
  ],
)

export type OutboxEventRow = typeof outboxEvents.$inferSelect
