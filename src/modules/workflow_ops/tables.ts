import { sql } from 'drizzle-orm'
import {
  bigint,
  customType,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uuid,
} from 'drizzle-orm/pg-core'

/**
 * The embedded durable task hub's state (see hub/). Every row carries the hub's name, so several
 * hubs (tests, or two applications) can share one database without taking each other's work.
 *
 * Work is leased the way the outbox is: `next_work_at` / `next_attempt_at` is both "due at" and,
 * while `lease_token` is set, the lease expiry. A process that dies mid-item leaves a row that
 * becomes due again when its lease runs out; a late answer from an expired claim no longer matches
 * `lease_token` and is discarded, so a result is never applied twice.
 */

/** Serialized protobuf messages. node-postgres returns a Buffer, PGlite a Uint8Array: both are Uint8Arrays. */
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => 'bytea' })

export const INSTANCE_STATUSES = ['pending', 'running', 'suspended', 'completed', 'failed', 'terminated'] as const
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number]
export const TERMINAL_STATUSES: readonly InstanceStatus[] = ['completed', 'failed', 'terminated']

export interface StoredFailure {
  errorType: string
  errorMessage: string
  stackTrace?: string
}

export const workflowInstances = pgTable(
  'workflow_instances',
  {
    hub: text('hub').notNull(),
    instanceId: text('instance_id').notNull(),
    /** Changes when the instance continues as new; history belongs to one execution. */
    executionId: text('execution_id').notNull(),
    name: text('name').notNull(),
    status: text('status').$type<InstanceStatus>().notNull(),
    input: text('input'),
    output: text('output'),
    customStatus: text('custom_status'),
    failure: jsonb('failure').$type<StoredFailure>(),
    parentInstanceId: text('parent_instance_id'),
    /** The parent's action id for this child: the task its completion event answers. */
    parentTaskId: integer('parent_task_id'),
    /** Number of rows in workflow_history for the current execution; the next event's seq is this + 1. */
    historyLength: integer('history_length').notNull().default(0),
    /** Due for an orchestrator work item (an inbox event is visible), or the lease expiry while leased. */
    nextWorkAt: timestamp('next_work_at', { withTimezone: true }),
    leaseToken: uuid('lease_token'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [
    primaryKey({ columns: [t.hub, t.instanceId] }),
    // The dispatcher's scan: only instances with work waiting are in it.
    index('workflow_instances_due_idx').on(t.hub, t.nextWorkAt).where(sql`${t.nextWorkAt} is not null`),
    // Purge by creation time and status; listings.
    index('workflow_instances_created_at_idx').on(t.hub, t.createdAt),
    // Children of a terminated parent are terminated too.
    index('workflow_instances_parent_idx')
      .on(t.hub, t.parentInstanceId)
      .where(sql`${t.parentInstanceId} is not null`),
  ],
)

/** The committed history of an instance's current execution, in order; replayed by the SDK on every work item. */
export const workflowHistory = pgTable(
  'workflow_history',
  {
    hub: text('hub').notNull(),
    instanceId: text('instance_id').notNull(),
    seq: integer('seq').notNull(),
    /** A serialized HistoryEvent. */
    event: bytea('event').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.hub, t.instanceId, t.seq] }),
    foreignKey({
      columns: [t.hub, t.instanceId],
      foreignColumns: [workflowInstances.hub, workflowInstances.instanceId],
    }).onDelete('cascade'),
  ],
)

/**
 * Events that happened to an instance since its last orchestrator work item: start, activity
 * results, raised events, child completions, suspend/resume/terminate — and durable timers, which
 * are TimerFired events that become visible at their fire time.
 */
export const workflowInbox = pgTable(
  'workflow_inbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    hub: text('hub').notNull(),
    instanceId: text('instance_id').notNull(),
    /** A serialized HistoryEvent. */
    event: bytea('event').notNull(),
    visibleAt: timestamp('visible_at', { withTimezone: true }).notNull().defaultNow(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('workflow_inbox_instance_idx').on(t.hub, t.instanceId, t.visibleAt),
    foreignKey({
      columns: [t.hub, t.instanceId],
      foreignColumns: [workflowInstances.hub, workflowInstances.instanceId],
    }).onDelete('cascade'),
  ],
)

/** Activities scheduled by orchestrators and not yet completed. */
export const workflowActivityTasks = pgTable(
  'workflow_activity_tasks',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    hub: text('hub').notNull(),
    instanceId: text('instance_id').notNull(),
    executionId: text('execution_id').notNull(),
    /** The orchestrator's action id; the TaskCompleted event names it. */
    taskId: integer('task_id').notNull(),
    name: text('name').notNull(),
    input: text('input'),
    /** Due at, or the lease expiry while leased. */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    leaseToken: uuid('lease_token'),
    /** Times handed to a worker, including one in flight. */
    attempts: integer('attempts').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('workflow_activity_tasks_task_uq').on(t.hub, t.instanceId, t.executionId, t.taskId),
    index('workflow_activity_tasks_due_idx').on(t.hub, t.nextAttemptAt),
    foreignKey({
      columns: [t.hub, t.instanceId],
      foreignColumns: [workflowInstances.hub, workflowInstances.instanceId],
    }).onDelete('cascade'),
  ],
)

export type WorkflowInstanceRow = typeof workflowInstances.$inferSelect
export type WorkflowActivityTaskRow = typeof workflowActivityTasks.$inferSelect
