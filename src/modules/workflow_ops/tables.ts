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
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core'
import { tenants } from '../auth/tables.js'

/**
 * The embedded durable task hub's state (see hub/). Every row carries the hub's name, so several
 * hubs (tests, or two applications) can share one database without taking each other's work.
 *
 * Work is leased the way the outbox is: `next_work_at` / `next_attempt_at` is both "due at" and,
 * while `lease_token` is set, the lease expiry. A process that dies mid-item leaves a row that
 * becomes due again when its lease runs out; a late answer from an expired claim no longer matches
 * `lease_token` and is discarded, so a result is never applied twice.
 *
 * Index shapes. The hub's statements are prepared once per connection and PostgreSQL keeps a
 * generic plan for them, and for the foreign-key checks and cascades on these tables, made while
 * the tables were new and never analysed. Every row estimate is then one, so any index that starts
 * with `hub` costs the same as the one that finds the instance, and the planner took
 * `(hub, created_at)` for lookups by instance: each step scanned every instance of the hub (measured:
 * ~1,400 rows read per lookup after 3,000 runs, PostgreSQL's CPU per run ×4). So the only indexes
 * a lookup by `(hub, instance_id)` can use are those that find the instance: others put `hub`
 * after a column the lookup does not bound, or are partial on a predicate only their own scan implies.
 * test/modules/workflow_ops/plans.test.ts checks the generic plans of every hub statement.
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
    // Purge by creation time and status; listings. `hub` second: see "Index shapes" above.
    index('workflow_instances_created_at_idx').on(t.createdAt, t.hub),
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
    // Instance first: see "Index shapes" above.
    index('workflow_inbox_instance_idx').on(t.instanceId, t.hub, t.visibleAt),
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
    // Partial on a column that is never null: only the due scan (whose `<=` implies the predicate)
    // can use it; see "Index shapes" above.
    index('workflow_activity_tasks_due_idx')
      .on(t.hub, t.nextAttemptAt)
      .where(sql`${t.nextAttemptAt} is not null`),
    foreignKey({
      columns: [t.hub, t.instanceId],
      foreignColumns: [workflowInstances.hub, workflowInstances.instanceId],
    }).onDelete('cascade'),
  ],
)

export type WorkflowInstanceRow = typeof workflowInstances.$inferSelect
export type WorkflowActivityTaskRow = typeof workflowActivityTasks.$inferSelect

// ---- run records: what users see of each workflow run -------------------------------------------

export const RUN_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const
export type RunStatus = (typeof RUN_STATUSES)[number]
export const FINISHED_RUN_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled']

export const COMPENSATION_STATES = ['running', 'completed', 'failed'] as const
export type CompensationState = (typeof COMPENSATION_STATES)[number]

/**
 * One row per workflow run, keyed by the engine's instance id. The engine keeps the history; this
 * record is what the dashboard lists and the progress stream reports. `version` moves on every
 * change, so stream events can be ordered and stale ones dropped.
 */
export const workflowRuns = pgTable(
  'workflow_runs',
  {
    /** The workflow instance id, in the embedded hub or in Dapr. */
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id),
    /** The registered workflow name. */
    type: text('type').notNull(),
    resourceKind: text('resource_kind').notNull(),
    resourceId: text('resource_id').notNull(),
    /** The principal id that asked for the run (a user, API key or `dapr:<app>`). */
    startedBy: text('started_by').notNull(),
    status: text('status').$type<RunStatus>().notNull().default('pending'),
    currentStep: integer('current_step').notNull().default(0),
    totalSteps: integer('total_steps'),
    percent: integer('percent').notNull().default(0),
    message: text('message'),
    /** Of runs that move bytes (model imports, upload checks): how many so far, and of how many (null when unknown). */
    bytesDone: bigint('bytes_done', { mode: 'number' }),
    bytesTotal: bigint('bytes_total', { mode: 'number' }),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    /** The workflow's input as scheduled; a retry starts from it again. Never returned by the API. */
    input: jsonb('input'),
    inputSummary: text('input_summary'),
    /** The workflow's output when small enough, else null (the summary remains). */
    result: jsonb('result'),
    resultSummary: text('result_summary'),
    /** The run that started this one, when a workflow starts another. */
    parentId: uuid('parent_id'),
    /** The failed run this one retries. */
    retryOf: uuid('retry_of'),
    idempotencyKey: text('idempotency_key'),
    /** sha256 of what the request asked for: the same key with a different request is refused (422). */
    idempotencyFingerprint: text('idempotency_fingerprint'),
    compensation: text('compensation').$type<CompensationState>(),
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [
    foreignKey({ columns: [t.parentId], foreignColumns: [t.id] }).onDelete('set null'),
    foreignKey({ columns: [t.retryOf], foreignColumns: [t.id] }).onDelete('set null'),
    // The list's default order and each of its filters, newest first within a tenant.
    index('workflow_runs_tenant_created_idx').on(t.tenantId, t.createdAt),
    // The retention sweep: finished runs, oldest end first (runs in progress are not in it).
    index('workflow_runs_finished_idx').on(t.finishedAt).where(sql`${t.finishedAt} is not null`),
    index('workflow_runs_tenant_type_created_idx').on(t.tenantId, t.type, t.createdAt),
    index('workflow_runs_tenant_status_created_idx').on(t.tenantId, t.status, t.createdAt),
    index('workflow_runs_tenant_resource_created_idx').on(t.tenantId, t.resourceKind, t.resourceId, t.createdAt),
    index('workflow_runs_tenant_started_by_created_idx').on(t.tenantId, t.startedBy, t.createdAt),
    // Same key, same tenant: the first run is the answer.
    uniqueIndex('workflow_runs_idempotency_uq')
      .on(t.tenantId, t.idempotencyKey)
      .where(sql`${t.idempotencyKey} is not null`),
    // A failed run is retried once; a failed retry is retried in its turn.
    uniqueIndex('workflow_runs_retry_of_uq').on(t.retryOf).where(sql`${t.retryOf} is not null`),
  ],
)

export const STEP_STATUSES = ['running', 'completed', 'failed', 'cancelled'] as const
export type StepStatus = (typeof STEP_STATUSES)[number]

/** The steps a run has reported through progress, one row per step number. */
export const workflowRunSteps = pgTable(
  'workflow_run_steps',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => workflowRuns.id, { onDelete: 'cascade' }),
    step: integer('step').notNull(),
    message: text('message'),
    status: text('status').$type<StepStatus>().notNull(),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.runId, t.step] })],
)

export type WorkflowRunRow = typeof workflowRuns.$inferSelect
export type WorkflowRunStepRow = typeof workflowRunSteps.$inferSelect
