import { and, eq, inArray, isNull, lte, or, sql } from 'drizzle-orm'
import type { Executor } from '../db/client.js'
import { sweepLeases } from './tables.js'

/** Due now unless `dueInMs` says later; an existing row is rescheduled and keeps its history. */
export async function upsertSweepLease(
  executor: Executor,
  row: { sweep: string; resourceId: string; dueInMs: number },
): Promise<void> {
  const dueAt = sql`now() + ${row.dueInMs} * interval '1 millisecond'`
  await executor
    .insert(sweepLeases)
    .values({ sweep: row.sweep, resourceId: row.resourceId, dueAt })
    .onConflictDoUpdate({ target: [sweepLeases.sweep, sweepLeases.resourceId], set: { dueAt } })
}

export async function deleteSweepLease(executor: Executor, sweep: string, resourceId: string): Promise<void> {
  await executor.delete(sweepLeases).where(and(eq(sweepLeases.sweep, sweep), eq(sweepLeases.resourceId, resourceId)))
}

/**
 * Leases up to `limit` due rows of one sweep in one statement. `SKIP LOCKED` lets replicas claim
 * side by side without waiting on each other's rows.
 */
export async function claimDueSweepLeases(
  executor: Executor,
  claim: { sweep: string; limit: number; leaseMs: number; owner: string; token: string; resourceId?: string },
): Promise<Array<{ resourceId: string; consecutiveFailures: number }>> {
  const due = executor
    .select({ resourceId: sweepLeases.resourceId })
    .from(sweepLeases)
    .where(
      and(
        eq(sweepLeases.sweep, claim.sweep),
        claim.resourceId === undefined
          ? lte(sweepLeases.dueAt, sql`now()`)
          : // Asked for by name (a refresh): due or not, unless another claim holds it now.
            and(
              eq(sweepLeases.resourceId, claim.resourceId),
              or(isNull(sweepLeases.leaseToken), lte(sweepLeases.dueAt, sql`now()`)),
            ),
      ),
    )
    .orderBy(sweepLeases.dueAt)
    .limit(claim.limit)
    .for('update', { skipLocked: true })
  return executor
    .update(sweepLeases)
    .set({
      dueAt: sql`now() + ${claim.leaseMs} * interval '1 millisecond'`,
      leaseToken: claim.token,
      leasedBy: claim.owner,
      runs: sql`${sweepLeases.runs} + 1`,
      lastStartedAt: sql`now()`,
    })
    .where(and(eq(sweepLeases.sweep, claim.sweep), inArray(sweepLeases.resourceId, due)))
    .returning({ resourceId: sweepLeases.resourceId, consecutiveFailures: sweepLeases.consecutiveFailures })
}

/** Keeps held leases alive; answers the resources whose lease is still this claim's. */
export async function renewSweepLeases(
  executor: Executor,
  renew: { sweep: string; token: string; resourceIds: string[]; leaseMs: number },
): Promise<string[]> {
  if (renew.resourceIds.length === 0) return []
  const rows = await executor
    .update(sweepLeases)
    .set({ dueAt: sql`now() + ${renew.leaseMs} * interval '1 millisecond'` })
    .where(
      and(
        eq(sweepLeases.sweep, renew.sweep),
        eq(sweepLeases.leaseToken, renew.token),
        inArray(sweepLeases.resourceId, renew.resourceIds),
      ),
    )
    .returning({ resourceId: sweepLeases.resourceId })
  return rows.map((r) => r.resourceId)
}

/** Settles a run: next due after `nextInMs`, lease released. A claim that lost its lease changes nothing. */
export async function finishSweepLease(
  executor: Executor,
  done: { sweep: string; resourceId: string; token: string; nextInMs: number; error: string | null },
): Promise<void> {
  await executor
    .update(sweepLeases)
    .set({
      dueAt: sql`now() + ${done.nextInMs} * interval '1 millisecond'`,
      leaseToken: null,
      leasedBy: null,
      lastFinishedAt: sql`now()`,
      lastError: done.error,
      consecutiveFailures: done.error === null ? 0 : sql`${sweepLeases.consecutiveFailures} + 1`,
    })
    .where(
      and(
        eq(sweepLeases.sweep, done.sweep),
        eq(sweepLeases.resourceId, done.resourceId),
        eq(sweepLeases.leaseToken, done.token),
      ),
    )
}

/** Whether some claim holds the row now (a refresh waits for it instead of running twice). */
export async function sweepLeaseHeld(executor: Executor, sweep: string, resourceId: string): Promise<boolean | null> {
  const [row] = await executor
    .select({ held: sql<boolean>`${sweepLeases.leaseToken} is not null and ${sweepLeases.dueAt} > now()` })
    .from(sweepLeases)
    .where(and(eq(sweepLeases.sweep, sweep), eq(sweepLeases.resourceId, resourceId)))
  return row ? row.held : null
}

/** Hands a held row back, due at once, without counting a run (the replica is stopping). */
export async function releaseSweepLease(executor: Executor, sweep: string, resourceId: string, token: string): Promise<void> {
  await executor
    .update(sweepLeases)
    .set({ dueAt: sql`now()`, leaseToken: null, leasedBy: null })
    .where(and(eq(sweepLeases.sweep, sweep), eq(sweepLeases.resourceId, resourceId), eq(sweepLeases.leaseToken, token)))
}
