import { and, eq, gte, inArray, lte, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../../platform/db/client.js'
import {
  type InstanceStatus,
  type StoredFailure,
  TERMINAL_STATUSES,
  type WorkflowInstanceRow,
  workflowActivityTasks,
  workflowHistory,
  workflowInbox,
  workflowInstances,
} from '../tables.js'

const terminal = sql.join(
  TERMINAL_STATUSES.map((s) => sql`${s}`),
  sql`, `,
)

function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows
}

export async function getInstance(
  executor: Executor,
  hub: string,
  instanceId: string,
): Promise<WorkflowInstanceRow | undefined> {
  const [row] = await executor
    .select()
    .from(workflowInstances)
    .where(and(eq(workflowInstances.hub, hub), eq(workflowInstances.instanceId, instanceId)))
  return row
}

export interface NewInstance {
  hub: string
  instanceId: string
  executionId: string
  name: string
  input: string | null
  parent?: { instanceId: string; taskId: number }
  /** The serialized ExecutionStarted event, the instance's first inbox event. */
  startEvent: Uint8Array
  /** A scheduled start; now when absent. */
  startAt?: Date
}

/**
 * Creates an instance with its ExecutionStarted event waiting in the inbox. An instance id that is
 * in use by a running instance is refused ('exists'); the id of a finished one is reused, its old
 * history dropped (as Dapr does).
 */
export async function createInstance(executor: Executor, instance: NewInstance): Promise<'created' | 'exists'> {
  const [existing] = await executor
    .select({ status: workflowInstances.status })
    .from(workflowInstances)
    .where(and(eq(workflowInstances.hub, instance.hub), eq(workflowInstances.instanceId, instance.instanceId)))
    .for('update')
  if (existing) {
    if (!TERMINAL_STATUSES.includes(existing.status)) return 'exists'
    await executor
      .delete(workflowInstances)
      .where(and(eq(workflowInstances.hub, instance.hub), eq(workflowInstances.instanceId, instance.instanceId)))
  }
  const dueAt = instance.startAt ?? sql`now()`
  const inserted = await executor
    .insert(workflowInstances)
    .values({
      hub: instance.hub,
      instanceId: instance.instanceId,
      executionId: instance.executionId,
      name: instance.name,
      status: 'pending',
      input: instance.input,
      parentInstanceId: instance.parent?.instanceId ?? null,
      parentTaskId: instance.parent?.taskId ?? null,
      nextWorkAt: dueAt,
    })
    .onConflictDoNothing()
    .returning({ instanceId: workflowInstances.instanceId })
  // Two starts of one id raced past the lock (no row to lock yet): the loser is told it exists.
  if (inserted.length === 0) return 'exists'
  await executor.insert(workflowInbox).values({
    hub: instance.hub,
    instanceId: instance.instanceId,
    event: instance.startEvent,
    visibleAt: dueAt,
  })
  return 'created'
}

export interface InboxDelivery {
  hub: string
  instanceId: string
  event: Uint8Array
  /** Durable timers: the event stays invisible until then. */
  visibleAt?: Date
  /** Only deliver to this execution (activity results of an execution that continued as new are dropped). */
  executionId?: string
  /** Set the status in the same statement, from any of `from` (suspend and resume answer at once). */
  setStatus?: { from: InstanceStatus[]; to: InstanceStatus }
}

/**
 * Puts an event in the inbox of a live instance and makes the instance due, in one statement that
 * locks the instance row. A finished (or unknown) instance takes no more events: returns false.
 * While the instance is leased its due time is the lease expiry and is left alone; the holder
 * recomputes it from the inbox when it finishes (after this statement, as it waits for the lock).
 */
export async function deliverToInbox(executor: Executor, delivery: InboxDelivery): Promise<boolean> {
  const visibleAt = delivery.visibleAt ? sql`${delivery.visibleAt.toISOString()}::timestamptz` : sql`now()`
  const executionMatches = delivery.executionId ? sql`and execution_id = ${delivery.executionId}` : sql``
  const status = delivery.setStatus
    ? sql`case when status in (${sql.join(
        delivery.setStatus.from.map((s) => sql`${s}`),
        sql`, `,
      )}) then ${delivery.setStatus.to} else status end`
    : sql`status`
  const result = await executor.execute(sql`
    with target as (
      update workflow_instances
         set next_work_at = case when lease_token is null
                                 then least(coalesce(next_work_at, ${visibleAt}), ${visibleAt})
                                 else next_work_at end,
             status = ${status},
             updated_at = now()
       where hub = ${delivery.hub} and instance_id = ${delivery.instanceId}
         and status not in (${terminal}) ${executionMatches}
      returning hub, instance_id)
    insert into workflow_inbox (hub, instance_id, event, visible_at)
    select hub, instance_id, ${delivery.event}::bytea, ${visibleAt} from target
    returning id`)
  return rowsOf(result).length > 0
}

/** Extends the leases this process holds; returns the instances and activity rows still held. */
export async function renewLeases(
  executor: Executor,
  renewal: { hub: string; tokens: string[]; leaseMs: number },
): Promise<{ instances: Set<string>; activities: Set<string> }> {
  if (renewal.tokens.length === 0) return { instances: new Set(), activities: new Set() }
  const until = sql`now() + ${renewal.leaseMs} * interval '1 millisecond'`
  const instances = await executor
    .update(workflowInstances)
    .set({ nextWorkAt: until })
    .where(and(eq(workflowInstances.hub, renewal.hub), inArray(workflowInstances.leaseToken, renewal.tokens)))
    .returning({ instanceId: workflowInstances.instanceId, leaseToken: workflowInstances.leaseToken })
  const activities = await executor
    .update(workflowActivityTasks)
    .set({ nextAttemptAt: until })
    .where(
      and(eq(workflowActivityTasks.hub, renewal.hub), inArray(workflowActivityTasks.leaseToken, renewal.tokens)),
    )
    .returning({ id: workflowActivityTasks.id })
  return {
    instances: new Set(instances.map((r) => `${r.leaseToken}/${r.instanceId}`)),
    activities: new Set(activities.map((r) => r.id)),
  }
}

/** Hands an instance back at once (its work item never reached a worker, or the worker went away). */
export async function releaseInstance(executor: Executor, hub: string, instanceId: string, leaseToken: string) {
  await executor
    .update(workflowInstances)
    .set({ leaseToken: null, nextWorkAt: sql`now()` })
    .where(
      and(
        eq(workflowInstances.hub, hub),
        eq(workflowInstances.instanceId, instanceId),
        eq(workflowInstances.leaseToken, leaseToken),
      ),
    )
}

/** Hands an activity back at once, without counting the attempt that never ran. */
export async function releaseActivity(executor: Executor, id: string, leaseToken: string) {
  await executor
    .update(workflowActivityTasks)
    .set({
      leaseToken: null,
      nextAttemptAt: sql`now()`,
      attempts: sql`greatest(${workflowActivityTasks.attempts} - 1, 0)`,
    })
    .where(and(eq(workflowActivityTasks.id, id), eq(workflowActivityTasks.leaseToken, leaseToken)))
}

/**
 * Locks a leased instance for applying its work item's result. Undefined when the lease was lost
 * (it expired and another process claimed the instance): the result must then be dropped.
 */
export async function lockLeasedInstance(
  executor: Executor,
  hub: string,
  instanceId: string,
  leaseToken: string,
): Promise<WorkflowInstanceRow | undefined> {
  const [row] = await executor
    .select()
    .from(workflowInstances)
    .where(
      and(
        eq(workflowInstances.hub, hub),
        eq(workflowInstances.instanceId, instanceId),
        eq(workflowInstances.leaseToken, leaseToken),
      ),
    )
    .for('update')
  return row
}

export async function appendHistory(
  executor: Executor,
  entry: { hub: string; instanceId: string; firstSeq: number; events: Uint8Array[] },
): Promise<void> {
  if (entry.events.length === 0) return
  await executor.insert(workflowHistory).values(
    entry.events.map((event, i) => ({
      hub: entry.hub,
      instanceId: entry.instanceId,
      seq: entry.firstSeq + i,
      event,
    })),
  )
}

export async function deleteHistory(executor: Executor, hub: string, instanceId: string): Promise<void> {
  await executor
    .delete(workflowHistory)
    .where(and(eq(workflowHistory.hub, hub), eq(workflowHistory.instanceId, instanceId)))
}

export async function deleteInboxEvents(executor: Executor, ids: number[]): Promise<void> {
  if (ids.length === 0) return
  await executor.delete(workflowInbox).where(inArray(workflowInbox.id, ids))
}

/** A finished instance takes no more events and runs no more activities. */
export async function deletePendingWork(executor: Executor, hub: string, instanceId: string): Promise<void> {
  await executor.delete(workflowInbox).where(and(eq(workflowInbox.hub, hub), eq(workflowInbox.instanceId, instanceId)))
  await executor
    .delete(workflowActivityTasks)
    .where(and(eq(workflowActivityTasks.hub, hub), eq(workflowActivityTasks.instanceId, instanceId)))
}

/** An execution that continues as new drops the activities its predecessor scheduled. */
export async function deletePendingActivities(executor: Executor, hub: string, instanceId: string): Promise<void> {
  await executor
    .delete(workflowActivityTasks)
    .where(and(eq(workflowActivityTasks.hub, hub), eq(workflowActivityTasks.instanceId, instanceId)))
}

/** Inbox events of the instance being completed (its own timers): it is locked, its due time is set at the end. */
export async function insertOwnInboxEvents(
  executor: Executor,
  events: { hub: string; instanceId: string; event: Uint8Array; visibleAt: Date }[],
): Promise<void> {
  if (events.length === 0) return
  await executor.insert(workflowInbox).values(events)
}

export async function insertActivityTasks(
  executor: Executor,
  tasks: { hub: string; instanceId: string; executionId: string; taskId: number; name: string; input: string | null }[],
): Promise<void> {
  if (tasks.length === 0) return
  // A repeated completion can never get here (the lease guards it); the constraint is the last line.
  await executor.insert(workflowActivityTasks).values(tasks).onConflictDoNothing()
}

export interface InstanceUpdate {
  status: InstanceStatus
  executionId?: string
  input?: string | null
  customStatus: string | null
  historyLength: number
  output?: string | null
  failure?: StoredFailure | null
  completed?: boolean
}

/**
 * Ends a work item: records the new state, drops the lease and makes the instance due again at
 * its earliest remaining inbox event (a timer, or events that arrived meanwhile), or never.
 */
export async function finishWorkItem(
  executor: Executor,
  hub: string,
  instanceId: string,
  update: InstanceUpdate,
): Promise<Date | null> {
  const [row] = await executor
    .update(workflowInstances)
    .set({
      status: update.status,
      ...(update.executionId === undefined ? {} : { executionId: update.executionId }),
      ...(update.input === undefined ? {} : { input: update.input }),
      ...(update.output === undefined ? {} : { output: update.output }),
      ...(update.failure === undefined ? {} : { failure: update.failure }),
      customStatus: update.customStatus,
      historyLength: update.historyLength,
      leaseToken: null,
      nextWorkAt: sql`(select min(visible_at) from workflow_inbox where hub = ${hub} and instance_id = ${instanceId})`,
      updatedAt: sql`now()`,
      ...(update.completed ? { completedAt: sql`now()` } : {}),
    })
    .where(and(eq(workflowInstances.hub, hub), eq(workflowInstances.instanceId, instanceId)))
    .returning({ nextWorkAt: workflowInstances.nextWorkAt })
  return row?.nextWorkAt ?? null
}

export async function liveChildren(executor: Executor, hub: string, parentInstanceId: string): Promise<string[]> {
  const rows = await executor
    .select({ instanceId: workflowInstances.instanceId })
    .from(workflowInstances)
    .where(
      and(
        eq(workflowInstances.hub, hub),
        eq(workflowInstances.parentInstanceId, parentInstanceId),
        sql`${workflowInstances.status} not in (${terminal})`,
      ),
    )
  return rows.map((r) => r.instanceId)
}

/** Deletes a finished instance and its finished descendants; returns how many instances went. */
export async function purgeInstanceTree(executor: Executor, hub: string, instanceId: string): Promise<number> {
  const result = await executor.execute(sql`
    with recursive tree(instance_id) as (
      select instance_id from workflow_instances
       where hub = ${hub} and instance_id = ${instanceId} and status in (${terminal})
      union
      select c.instance_id from workflow_instances c join tree t on c.parent_instance_id = t.instance_id
       where c.hub = ${hub} and c.status in (${terminal}))
    delete from workflow_instances
     where hub = ${hub} and instance_id in (select instance_id from tree)
    returning instance_id`)
  return rowsOf(result).length
}

export interface PurgeFilter {
  createdFrom?: Date
  createdTo?: Date
  statuses: InstanceStatus[]
  limit: number
}

/** Deletes finished instances by creation time and status (never live ones); returns how many. */
export async function purgeInstances(executor: Executor, hub: string, filter: PurgeFilter): Promise<number> {
  const statuses = filter.statuses.filter((s) => TERMINAL_STATUSES.includes(s))
  const conditions: SQL[] = [
    eq(workflowInstances.hub, hub),
    inArray(workflowInstances.status, statuses.length > 0 ? statuses : [...TERMINAL_STATUSES]),
  ]
  if (filter.createdFrom) conditions.push(gte(workflowInstances.createdAt, filter.createdFrom))
  if (filter.createdTo) conditions.push(lte(workflowInstances.createdAt, filter.createdTo))
  const victims = executor
    .select({ instanceId: workflowInstances.instanceId })
    .from(workflowInstances)
    .where(and(...conditions))
    .limit(filter.limit)
  const deleted = await executor
    .delete(workflowInstances)
    .where(and(eq(workflowInstances.hub, hub), inArray(workflowInstances.instanceId, victims)))
    .returning({ instanceId: workflowInstances.instanceId })
  return deleted.length
}


