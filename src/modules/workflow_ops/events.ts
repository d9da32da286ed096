import type { Logger } from 'pino'
import type { Cache } from '../../platform/cache/types.js'
import type { Executor } from '../../platform/db/client.js'
import type { EventBus } from '../../platform/events/index.js'
import type { CompensationState, RunStatus, WorkflowRunRow } from './tables.js'

/** The pub/sub topic (outbox → in-process subscribers, or Dapr pub/sub) of every run change. */
export const WORKFLOW_TOPIC = 'workflow.events'

export type RunEventType =
  | 'workflow.created'
  | 'workflow.started'
  | 'workflow.progress'
  | 'workflow.completed'
  | 'workflow.failed'
  | 'workflow.cancelled'
  | 'workflow.compensated'
  | 'workflow.purged'

/** One change of a run, as published on the topic and sent on the progress stream. */
export interface RunEvent {
  type: RunEventType
  workflowId: string
  tenantId: string
  workflowType: string
  resource: { kind: string; id: string }
  status: RunStatus
  currentStep: number
  totalSteps: number | null
  percent: number
  message: string | null
  bytesDone: number | null
  bytesTotal: number | null
  error: { code: string; message: string } | null
  compensation: CompensationState | null
  /** Moves on every change of the run: a stream drops what it has already seen. */
  version: number
  at: string
}

export function runEvent(type: RunEventType, row: WorkflowRunRow): RunEvent {
  return {
    type,
    workflowId: row.id,
    tenantId: row.tenantId,
    workflowType: row.type,
    resource: { kind: row.resourceKind, id: row.resourceId },
    status: row.status,
    currentStep: row.currentStep,
    totalSteps: row.totalSteps,
    percent: row.percent,
    message: row.message,
    bytesDone: row.bytesDone,
    bytesTotal: row.bytesTotal,
    error: row.errorCode ? { code: row.errorCode, message: row.errorMessage ?? '' } : null,
    compensation: row.compensation,
    version: row.version,
    at: row.updatedAt.toISOString(),
  }
}

/** The cache channel a run's live changes are fanned out on, to the streams of every replica. */
export function runChannel(runId: string): string {
  return `workflow-run:${runId}`
}

/**
 * The cache channel every run change of a tenant is fanned out on, for the tenant-wide stream (a
 * browser opens about six streams per origin over HTTP/1.1: a dashboard of many runs uses this one).
 */
export function tenantChannel(tenantId: string): string {
  return `workflow-tenant:${tenantId}`
}

export interface RunEventPublisher {
  /** Records the event in the caller's transaction (the outbox delivers it after commit). */
  record(executor: Executor, event: RunEvent): Promise<void>
  /** After commit: tells the open progress streams, on every replica, at once. Never throws. */
  announce(event: RunEvent): Promise<void>
}

/**
 * Streams hear of a change straight from the process that committed it, not through the outbox:
 * the outbox may be delivering to Dapr instead of in-process subscribers, and a stream should not
 * wait for a dispatcher. A lost announcement (a crash right after commit) costs a stream nothing
 * but latency: streams re-read the record on every heartbeat.
 */
export function createRunEventPublisher(deps: { events: EventBus; cache: Cache; log: Logger }): RunEventPublisher {
  return {
    async record(executor, event) {
      // A run belongs to its tenant: the outbox shows its events to that tenant alone.
      await deps.events.publish(executor, WORKFLOW_TOPIC, event, { tenantId: event.tenantId })
    },
    async announce(event) {
      try {
        const message = JSON.stringify(event)
        await Promise.all([
          deps.cache.publish(runChannel(event.workflowId), message),
          deps.cache.publish(tenantChannel(event.tenantId), message),
        ])
      } catch (err) {
        deps.log.warn({ err, workflowId: event.workflowId }, 'announcing a workflow change failed')
      }
    },
  }
}
