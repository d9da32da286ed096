import { index, integer, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core'

/**
 * One row per (sweep, resource): when the resource is next due and who holds it now. Replicas
 * share the table; a claim pushes `due_at` forward by the lease, so while a replica works on a
 * resource `due_at` doubles as the lease's expiry and no other claim sees it. A replica that dies
 * mid-run leaves a row that becomes due again when its lease runs out; `lease_token` names the
 * claim, so a late finish from an expired claim cannot reschedule a newer one.
 */
export const sweepLeases = pgTable(
  'sweep_leases',
  {
    sweep: text('sweep').notNull(),
    resourceId: uuid('resource_id').notNull(),
    dueAt: timestamp('due_at', { withTimezone: true }).notNull().defaultNow(),
    leaseToken: uuid('lease_token'),
    /** The replica holding the lease (host:pid:random), for operators. */
    leasedBy: text('leased_by'),
    runs: integer('runs').notNull().default(0),
    /** Runs in a row that threw; reset by one that did not. */
    consecutiveFailures: integer('consecutive_failures').notNull().default(0),
    lastStartedAt: timestamp('last_started_at', { withTimezone: true }),
    lastFinishedAt: timestamp('last_finished_at', { withTimezone: true }),
    lastError: text('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.sweep, t.resourceId] }),
    // The only scan: a sweep's due rows, soonest first.
    index('sweep_leases_due_idx').on(t.sweep, t.dueAt),
  ],
)

export type SweepLeaseRow = typeof sweepLeases.$inferSelect
