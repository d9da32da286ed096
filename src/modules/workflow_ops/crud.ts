import { and, asc, count, desc, eq, gte, inArray, lt, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import {
  FINISHED_RUN_STATUSES,
  type RunStatus,
  type StepStatus,
  type WorkflowRunRow,
  type WorkflowRunStepRow,
  workflowRunSteps,
  workflowRuns,
} from './tables.js'

/** Run records and their steps. Every function takes the database or an open transaction. */

export type NewRun = Pick<
  typeof workflowRuns.$inferInsert,
  | 'id'
  | 'tenantId'
  | 'type'
  | 'resourceKind'
  | 'resourceId'
  | 'startedBy'
  | 'input'
  | 'inputSummary'
  | 'parentId'
  | 'retryOf'
  | 'idempotencyKey'
  | 'idempotencyFingerprint'
>

/** Inserts the run, or nothing when its idempotency key (or the run it retries) is taken. */
export async function insertRun(executor: Executor, run: NewRun): Promise<WorkflowRunRow | undefined> {
  const [row] = await executor.insert(workflowRuns).values(run).onConflictDoNothing().returning()
  return row
}

export async function findRunByIdempotencyKey(
  executor: Executor,
  tenantId: string,
  key: string,
): Promise<WorkflowRunRow | undefined> {
  const [row] = await executor
    .select()
    .from(workflowRuns)
    .where(and(eq(workflowRuns.tenantId, tenantId), eq(workflowRuns.idempotencyKey, key)))
  return row
}

export async function findRetryOf(executor: Executor, runId: string): Promise<WorkflowRunRow | undefined> {
  const [row] = await executor.select().from(workflowRuns).where(eq(workflowRuns.retryOf, runId))
  return row
}

/** A run by id; with a tenant, only that tenant's. */
export async function getRun(executor: Executor, id: string, tenantId?: string): Promise<WorkflowRunRow | undefined> {
  const conditions = [eq(workflowRuns.id, id)]
  if (tenantId) conditions.push(eq(workflowRuns.tenantId, tenantId))
  const [row] = await executor
    .select()
    .from(workflowRuns)
    .where(and(...conditions))
  return row
}

/** The run, locked until the transaction ends. */
export async function lockRun(executor: Executor, id: string, tenantId: string): Promise<WorkflowRunRow | undefined> {
  const [row] = await executor
    .select()
    .from(workflowRuns)
    .where(and(eq(workflowRuns.id, id), eq(workflowRuns.tenantId, tenantId)))
    .for('update')
  return row
}

/**
 * Locks every run of this type on this resource (a run and its retries share one), in id order so
 * that two transactions doing so never wait on each other in a circle; answers them as locked.
 */
export async function lockRunsOfResource(
  executor: Executor,
  run: Pick<WorkflowRunRow, 'tenantId' | 'type' | 'resourceKind' | 'resourceId'>,
): Promise<WorkflowRunRow[]> {
  return executor
    .select()
    .from(workflowRuns)
    .where(
      and(
        eq(workflowRuns.tenantId, run.tenantId),
        eq(workflowRuns.resourceKind, run.resourceKind),
        eq(workflowRuns.resourceId, run.resourceId),
        eq(workflowRuns.type, run.type),
      ),
    )
    .orderBy(asc(workflowRuns.id))
    .for('update')
}

export type RunPatch = Partial<
  Pick<
    typeof workflowRuns.$inferInsert,
    | 'status'
    | 'currentStep'
    | 'totalSteps'
    | 'percent'
    | 'message'
    | 'bytesDone'
    | 'bytesTotal'
    | 'errorCode'
    | 'errorMessage'
    | 'result'
    | 'resultSummary'
    | 'compensation'
  >
> & { startedAt?: SQL; finishedAt?: SQL }

/**
 * Applies the patch when the run is in one of `from` (any status when omitted), moving its version
 * and updated_at; returns the new row, or undefined when the run is gone or in another status.
 */
export async function updateRun(
  executor: Executor,
  id: string,
  patch: RunPatch,
  from?: readonly RunStatus[],
): Promise<WorkflowRunRow | undefined> {
  const conditions = [eq(workflowRuns.id, id)]
  if (from) conditions.push(inArray(workflowRuns.status, [...from]))
  const [row] = await executor
    .update(workflowRuns)
    .set({ ...patch, version: sql`${workflowRuns.version} + 1`, updatedAt: sql`now()` })
    .where(and(...conditions))
    .returning()
  return row
}

export const NOW = sql`now()`
/** started_at as it was, or now for a run that had not started. */
export const STARTED_NOW = sql`coalesce(${workflowRuns.startedAt}, now())`

export async function deleteRun(executor: Executor, id: string): Promise<boolean> {
  const rows = await executor.delete(workflowRuns).where(eq(workflowRuns.id, id)).returning({ id: workflowRuns.id })
  return rows.length > 0
}

/**
 * Finished runs that ended before `before`, oldest first: the retention sweep's victims. A
 * cancelled run still compensating is not finished with.
 */
export async function listExpiredRuns(executor: Executor, before: Date, limit: number): Promise<WorkflowRunRow[]> {
  return executor
    .select()
    .from(workflowRuns)
    .where(
      and(
        lt(workflowRuns.finishedAt, before),
        inArray(workflowRuns.status, [...FINISHED_RUN_STATUSES]),
        sql`${workflowRuns.compensation} is distinct from 'running'`,
      ),
    )
    .orderBy(asc(workflowRuns.finishedAt))
    .limit(limit)
}

export interface RunFilter {
  tenantId: string
  type?: string
  status?: RunStatus
  resourceKind?: string
  resourceId?: string
  startedBy?: string
}

export type RunSortField = 'createdAt' | 'updatedAt'

export async function listRuns(
  executor: Executor,
  filter: RunFilter,
  page: { limit: number; offset: number; sort: { field: RunSortField; direction: 'asc' | 'desc' } },
): Promise<{ rows: WorkflowRunRow[]; total: number }> {
  const conditions: SQL[] = [eq(workflowRuns.tenantId, filter.tenantId)]
  if (filter.type) conditions.push(eq(workflowRuns.type, filter.type))
  if (filter.status) conditions.push(eq(workflowRuns.status, filter.status))
  if (filter.resourceKind) conditions.push(eq(workflowRuns.resourceKind, filter.resourceKind))
  if (filter.resourceId) conditions.push(eq(workflowRuns.resourceId, filter.resourceId))
  if (filter.startedBy) conditions.push(eq(workflowRuns.startedBy, filter.startedBy))
  const where = and(...conditions)
  const column = page.sort.field === 'updatedAt' ? workflowRuns.updatedAt : workflowRuns.createdAt
  const order = page.sort.direction === 'asc' ? asc : desc
  const [rows, [totals]] = await Promise.all([
    executor
      .select()
      .from(workflowRuns)
      .where(where)
      .orderBy(order(column), order(workflowRuns.id))
      .limit(page.limit)
      .offset(page.offset),
    executor.select({ total: count() }).from(workflowRuns).where(where),
  ])
  return { rows, total: totals?.total ?? 0 }
}

/** Records step `step` as the one running, and every earlier step still running as completed. */
export async function startStep(executor: Executor, runId: string, step: number, message: string | null): Promise<void> {
  await executor
    .insert(workflowRunSteps)
    .values({ runId, step, message, status: 'running' })
    .onConflictDoUpdate({
      target: [workflowRunSteps.runId, workflowRunSteps.step],
      set: { message, updatedAt: sql`now()` },
    })
  await executor
    .update(workflowRunSteps)
    .set({ status: 'completed', updatedAt: sql`now()`, finishedAt: sql`now()` })
    .where(
      and(eq(workflowRunSteps.runId, runId), lt(workflowRunSteps.step, step), eq(workflowRunSteps.status, 'running')),
    )
}

/** Settles every step still running when the run ends. */
export async function finishRunningSteps(executor: Executor, runId: string, status: StepStatus): Promise<void> {
  await executor
    .update(workflowRunSteps)
    .set({ status, updatedAt: sql`now()`, finishedAt: sql`now()` })
    .where(and(eq(workflowRunSteps.runId, runId), eq(workflowRunSteps.status, 'running')))
}

export async function listSteps(executor: Executor, runId: string): Promise<WorkflowRunStepRow[]> {
  return executor.select().from(workflowRunSteps).where(eq(workflowRunSteps.runId, runId)).orderBy(workflowRunSteps.step)
}

export function isFinished(status: RunStatus): boolean {
  return FINISHED_RUN_STATUSES.includes(status)
}

/**
 * The tenant's runs changed at or after `since`, oldest change first: what a reconnecting tenant
 * stream missed. Read through the (tenant_id, created_at) index and filtered: there is no index on
 * updated_at, and a reconnect is rare next to the list queries.
 */
export async function runsChangedSince(executor: Executor, tenantId: string, since: Date, limit: number): Promise<WorkflowRunRow[]> {
  return executor
    .select()
    .from(workflowRuns)
    .where(and(eq(workflowRuns.tenantId, tenantId), gte(workflowRuns.updatedAt, since)))
    .orderBy(asc(workflowRuns.updatedAt), asc(workflowRuns.id))
    .limit(limit)
}
