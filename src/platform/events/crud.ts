import { and, count, desc, eq, inArray, isNotNull, isNull, lt, lte, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { type OutboxEventRow, outboxEvents } from './tables.js'

/** The LISTEN/NOTIFY channel that wakes dispatchers when an outbox row commits. */
export const OUTBOX_CHANNEL = 'modelplane_outbox'

export type OutboxStatus = 'pending' | 'failed' | 'delivered'

export interface NewOutboxEvent {
  topic: string
  /** Already serialized (and size-checked) by the caller. */
  payloadJson: string
  source: string
  /** The tenant whose data the event describes; null for a platform event. */
  tenantId: string | null
}

/**
 * Inserts the row and queues a notification on the caller's executor: both belong to the caller's
 * transaction, so a rollback discards the row and PostgreSQL never sends the notification.
 * The payload of the notification is empty on purpose: PostgreSQL folds identical notifications of
 * one transaction into one, so a transaction publishing a hundred events wakes dispatchers once.
 */
export async function insertOutboxEvent(executor: Executor, event: NewOutboxEvent): Promise<string> {
  const [row] = await executor
    .insert(outboxEvents)
    .values({ topic: event.topic, payload: sql`${event.payloadJson}::jsonb`, source: event.source, tenantId: event.tenantId })
    .returning({ id: outboxEvents.id })
  await executor.execute(sql`select pg_notify(${OUTBOX_CHANNEL}, '')`)
  return row!.id
}

/**
 * Leases up to `limit` due rows of one source in a single statement. `SKIP LOCKED` lets several
 * dispatchers share the table without waiting on each other; pushing `next_attempt_at` forward by
 * the lease keeps the rows out of every other claim until they are settled or the lease lapses.
 */
export async function claimDueOutboxEvents(
  executor: Executor,
  claim: { source: string; limit: number; leaseMs: number; leaseToken: string },
): Promise<OutboxEventRow[]> {
  const due = executor
    .select({ id: outboxEvents.id })
    .from(outboxEvents)
    .where(
      and(
        isNull(outboxEvents.deliveredAt),
        lte(outboxEvents.nextAttemptAt, sql`now()`),
        eq(outboxEvents.source, claim.source),
      ),
    )
    .orderBy(outboxEvents.nextAttemptAt)
    .limit(claim.limit)
    .for('update', { skipLocked: true })
  const rows = await executor
    .update(outboxEvents)
    .set({
      attempts: sql`${outboxEvents.attempts} + 1`,
      nextAttemptAt: sql`now() + ${claim.leaseMs} * interval '1 millisecond'`,
      leaseToken: claim.leaseToken,
    })
    .where(inArray(outboxEvents.id, due))
    .returning()
  // UPDATE … RETURNING gives no order; deliver oldest first.
  return rows.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
}

export async function markOutboxEventDelivered(executor: Executor, id: string): Promise<void> {
  // Not guarded by the lease: delivered is delivered, whichever claim got there.
  await executor
    .update(outboxEvents)
    .set({ deliveredAt: sql`now()`, leaseToken: null })
    .where(and(eq(outboxEvents.id, id), isNull(outboxEvents.deliveredAt)))
}

/** Reschedules a failed delivery, unless the lease has since passed to another claim. */
export async function markOutboxEventFailed(
  executor: Executor,
  failure: { id: string; leaseToken: string; retryInMs: number; error: string },
): Promise<void> {
  await executor
    .update(outboxEvents)
    .set({
      nextAttemptAt: sql`now() + ${failure.retryInMs} * interval '1 millisecond'`,
      lastError: failure.error,
      leaseToken: null,
    })
    .where(
      and(
        eq(outboxEvents.id, failure.id),
        eq(outboxEvents.leaseToken, failure.leaseToken),
        isNull(outboxEvents.deliveredAt),
      ),
    )
}

/** Hands claimed rows that were never attempted back at once (on shutdown), without counting an attempt. */
export async function releaseOutboxEvents(
  executor: Executor,
  ids: string[],
  leaseToken: string,
): Promise<void> {
  if (ids.length === 0) return
  await executor
    .update(outboxEvents)
    .set({
      attempts: sql`greatest(${outboxEvents.attempts} - 1, 0)`,
      nextAttemptAt: sql`now()`,
      leaseToken: null,
    })
    .where(
      and(
        inArray(outboxEvents.id, ids),
        eq(outboxEvents.leaseToken, leaseToken),
        isNull(outboxEvents.deliveredAt),
      ),
    )
}

/**
 * Deletes up to `limit` delivered rows of one source created before the retention window; returns
 * how many. Undelivered rows are never deleted: they are what an operator needs to see.
 */
export async function deleteDeliveredOutboxEvents(
  executor: Executor,
  options: { source: string; olderThanMs: number; limit: number },
): Promise<number> {
  const expired = executor
    .select({ id: outboxEvents.id })
    .from(outboxEvents)
    .where(
      and(
        lt(outboxEvents.createdAt, sql`now() - ${options.olderThanMs} * interval '1 millisecond'`),
        isNotNull(outboxEvents.deliveredAt),
        eq(outboxEvents.source, options.source),
      ),
    )
    .limit(options.limit)
  const deleted = await executor
    .delete(outboxEvents)
    .where(inArray(outboxEvents.id, expired))
    .returning({ id: outboxEvents.id })
  return deleted.length
}

export interface OutboxListFilter {
  /** Only this tenant's events (platform events have none, so never match); undefined: every event. */
  tenantId?: string
  status?: OutboxStatus
  topic?: string
  limit: number
  offset: number
}

function statusCondition(status: OutboxStatus | undefined): SQL | undefined {
  switch (status) {
    case 'delivered':
      return isNotNull(outboxEvents.deliveredAt)
    case 'failed':
      return and(isNull(outboxEvents.deliveredAt), isNotNull(outboxEvents.lastError))
    case 'pending':
      return and(isNull(outboxEvents.deliveredAt), isNull(outboxEvents.lastError))
    default:
      return undefined
  }
}

/** Newest first, served by the created_at (or topic, created_at, or tenant_id, created_at) index. */
export async function listOutboxEvents(
  executor: Executor,
  filter: OutboxListFilter,
): Promise<{ rows: OutboxEventRow[]; total: number }> {
  const where = and(
    filter.tenantId === undefined ? undefined : eq(outboxEvents.tenantId, filter.tenantId),
    statusCondition(filter.status),
    filter.topic === undefined ? undefined : eq(outboxEvents.topic, filter.topic),
  )
  const [rows, totals] = await Promise.all([
    executor
      .select()
      .from(outboxEvents)
      .where(where)
      .orderBy(desc(outboxEvents.createdAt), desc(outboxEvents.id))
      .limit(filter.limit)
      .offset(filter.offset),
    executor.select({ total: count() }).from(outboxEvents).where(where),
  ])
  return { rows, total: totals[0]?.total ?? 0 }
}

