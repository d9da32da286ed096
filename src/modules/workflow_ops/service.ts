import { createHash, randomUUID } from 'node:crypto'
import { WorkflowRuntimeStatus } from '@dapr/dapr/workflow/runtime/WorkflowRuntimeStatus.js'
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import type { Authenticator, Principal, SessionRef } from '../../platform/auth/principal.js'
import type { Cache } from '../../platform/cache/types.js'
import { type Database, transaction } from '../../platform/db/client.js'
import { AppError, ForbiddenError, ValidationError } from '../../platform/errors.js'
import { type PageResult, pageRequest, pageResult, parseSort } from '../../platform/http/pagination.js'
import * as crud from './crud.js'
import {
  engineUnavailable,
  idempotencyKeyReused,
  workflowAlreadyFinished,
  workflowAlreadyRetried,
  workflowNotFailed,
  workflowNotFinished,
  workflowNotFound,
  WorkflowErrorCode,
} from './errors.js'
import { type RunEvent, type RunEventPublisher, type RunEventType, runChannel, runEvent, tenantChannel } from './events.js'
import {
  cancellationInstanceId,
  type CancelledRun,
  INTERNAL,
  RESERVED_PREFIX,
  type RunTracker,
  type WorkflowDefinition,
} from './runs.js'
import { checkRegistrations, type WorkflowEngine } from './runtime.js'
import type { StreamTickets, TicketScope } from './tickets.js'
import type { CompensationState, RunStatus, StepStatus, WorkflowRunRow, WorkflowRunStepRow } from './tables.js'

const MAX_INPUT_BYTES = 1024 * 1024
/** Larger results keep only their summary. */
const MAX_RESULT_BYTES = 4 * 1024 * 1024
const MAX_SUMMARY = 500
const MAX_MESSAGE = 500
const MAX_STEPS = 100_000
/** An expired run that could not be purged is passed over this long, and at most this many are remembered. */
const UNPURGEABLE_RETRY_MS = 6 * 3_600_000
const MAX_UNPURGEABLE = 1_000
/** Runs whose last sent version one tenant stream remembers (older ones may be sent again, never lost). */
const TENANT_STREAM_MEMORY = 10_000
/** A reconnecting tenant stream gets at most this many runs changed while it was away, oldest change first. */
const TENANT_RESUME_LIMIT = 500
const TENANT_RESUME_OVERLAP_MS = 1_000
/** Fields never echoed into a summary. */
const SENSITIVE_KEY = /secret|password|passwd|token|credential|kubeconfig|private|(^|_)key$|apikey/i

/** Object keys in code-point order, so that equal JSON values fingerprint equally whatever order they came in. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )
}

/** Stored with an idempotency key and compared when the key comes again. */
function requestFingerprint(type: string, subject: unknown): string {
  return createHash('sha256').update(type).update('\n').update(canonicalJson(subject) ?? '').digest('hex')
}

/** Runs recorded before fingerprints existed have none: their key answers the first run, as it did. */
function sameRequest(first: WorkflowRunRow, fingerprint: string): boolean {
  return first.idempotencyFingerprint === null || first.idempotencyFingerprint === fingerprint
}

export interface RunView {
  id: string
  type: string
  tenantId: string
  resource: { kind: string; id: string }
  startedBy: string
  status: RunStatus
  currentStep: number
  totalSteps: number | null
  percent: number
  message: string | null
  bytesDone: number | null
  bytesTotal: number | null
  error: { code: string; message: string } | null
  inputSummary: string | null
  resultSummary: string | null
  parentId: string | null
  retryOf: string | null
  compensation: CompensationState | null
  createdAt: string
  updatedAt: string
  startedAt: string | null
  finishedAt: string | null
}

export interface StepView {
  step: number
  message: string | null
  status: StepStatus
  startedAt: string
  finishedAt: string | null
}

export interface RunDetail extends RunView {
  result: unknown
  steps: StepView[]
}

export interface StartRequest {
  /** A registered workflow name. */
  type: string
  tenantId: string
  resource: { kind: string; id: string }
  /** The principal id that asked for it. */
  startedBy: string
  /** The workflow's input: a JSON object (the SDK drops falsy inputs), at most 1 MiB. */
  input?: Record<string, unknown>
  /** What the list shows of the input; derived from its plain fields when omitted. */
  inputSummary?: string
  /**
   * Same key, same tenant and the same request: the first run is the answer, nothing starts twice.
   * The same key with a different request is refused (IDEMPOTENCY_KEY_REUSED).
   */
  idempotencyKey?: string
  /**
   * What makes two requests with one idempotency key the same request, when the input does not
   * say it (an input that names freshly staged data differs every time); the input by default.
   */
  fingerprintOf?: unknown
  /** The run that starts this one. */
  parentId?: string
}

export interface Progress {
  /** 1-based number of the step now running; earlier steps count as done. */
  step: number
  totalSteps?: number
  /** 0-100; kept as it was when omitted. */
  percent?: number
  message?: string
  /** For runs that move bytes: done so far, and the total when known; kept as they were when omitted. */
  bytesDone?: number
  bytesTotal?: number | null
}

export interface ListQuery {
  page?: number
  limit?: number
  sort?: string
  type?: string
  status?: RunStatus
  resourceKind?: string
  resourceId?: string
  /** Who started the run (a principal id): the actor filter has one name on every list. */
  actor?: string
}

export type StreamEventName = 'state' | 'progress' | 'end'

/** Where a progress stream writes; the route turns it into server-sent events. */
export interface RunStreamSink {
  send(name: StreamEventName, event: RunEvent): void
  /** The run ended (or is gone): nothing more will be sent. */
  end(): void
}

export interface RunStream {
  /** Re-reads the record and sends what a lost announcement would have (called on every heartbeat). */
  refresh(): Promise<void>
  close(): Promise<void>
}

export interface WorkflowServiceDeps {
  db: Database
  cache: Cache
  log: Logger
  publisher: RunEventPublisher
  tickets: StreamTickets
  /** Re-resolves a stream ticket's holder on every use: a ticket dies with its session. */
  sessions: Pick<Authenticator, 'fromSession'>
}

const ENGINE_TERMINAL = new Set([
  WorkflowRuntimeStatus.COMPLETED,
  WorkflowRuntimeStatus.FAILED,
  WorkflowRuntimeStatus.TERMINATED,
])
const GRPC_NOT_FOUND = 5
const GRPC_ALREADY_EXISTS = 6

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null
}

export function runView(row: WorkflowRunRow): RunView {
  return {
    id: row.id,
    type: row.type,
    tenantId: row.tenantId,
    resource: { kind: row.resourceKind, id: row.resourceId },
    startedBy: row.startedBy,
    status: row.status,
    currentStep: row.currentStep,
    totalSteps: row.totalSteps,
    percent: row.percent,
    message: row.message,
    bytesDone: row.bytesDone,
    bytesTotal: row.bytesTotal,
    error: row.errorCode ? { code: row.errorCode, message: row.errorMessage ?? '' } : null,
    inputSummary: row.inputSummary,
    resultSummary: row.resultSummary,
    parentId: row.parentId,
    retryOf: row.retryOf,
    compensation: row.compensation,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
  }
}

function stepView(row: WorkflowRunStepRow): StepView {
  return {
    step: row.step,
    message: row.message,
    status: row.status,
    startedAt: row.startedAt.toISOString(),
    finishedAt: iso(row.finishedAt),
  }
}

/** The plain top-level fields of a value, short and without anything that looks like a secret. */
export function summarize(value: unknown): string | null {
  if (value === null || value === undefined) return null
  if (typeof value !== 'object') return String(value).slice(0, MAX_SUMMARY)
  if (Array.isArray(value)) return `${value.length} items`
  const parts: string[] = []
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
    if (SENSITIVE_KEY.test(key)) continue
    if (typeof field === 'string') parts.push(`${key}=${field.length > 64 ? `${field.slice(0, 61)}...` : field}`)
    else if (typeof field === 'number' || typeof field === 'boolean') parts.push(`${key}=${field}`)
    else if (Array.isArray(field)) parts.push(`${key}=[${field.length}]`)
  }
  return parts.join(', ').slice(0, MAX_SUMMARY) || null
}

function eventTypeOf(row: WorkflowRunRow): RunEventType {
  switch (row.status) {
    case 'pending':
      return 'workflow.created'
    case 'running':
      return 'workflow.progress'
    default:
      return row.status === 'cancelled' && row.compensation && row.compensation !== 'running'
        ? 'workflow.compensated'
        : `workflow.${row.status}`
  }
}

/** The run is over for a watcher: finished, and not compensating any more. */
function isOver(event: Pick<RunEvent, 'status' | 'compensation' | 'type'>): boolean {
  return event.type === 'workflow.purged' || (crud.isFinished(event.status) && event.compensation !== 'running')
}

function grpcCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'number' ? code : undefined
}

export function createWorkflowService(deps: WorkflowServiceDeps) {
  const { db, cache, publisher } = deps
  const log = deps.log
  const definitions = new Map<string, WorkflowDefinition>()
  /** Expired runs whose purge failed, and when the sweep may try them again. */
  const unpurgeable = new Map<string, number>()
  let engine: WorkflowEngine | undefined
  let sealed = false

  function client() {
    if (!engine) throw engineUnavailable()
    return engine.client
  }

  /** Commits fn's change and its outbox event together, then tells the streams. */
  async function change(
    type: RunEventType | ((row: WorkflowRunRow) => RunEventType),
    fn: (tx: Parameters<Parameters<typeof transaction>[1]>[0]) => Promise<WorkflowRunRow | undefined>,
  ): Promise<WorkflowRunRow | undefined> {
    const row = await transaction(db, async (tx) => {
      const updated = await fn(tx)
      if (updated) await publisher.record(tx, runEvent(typeof type === 'function' ? type(updated) : type, updated))
      return updated
    })
    if (row) await publisher.announce(runEvent(typeof type === 'function' ? type(row) : type, row))
    return row
  }

  async function visibleRun(principal: Principal, id: string): Promise<WorkflowRunRow> {
    const row = await crud.getRun(db, id, principal.tenantId)
    if (!row) throw workflowNotFound()
    return row
  }

  async function schedule(row: WorkflowRunRow): Promise<void> {
    try {
      await client().scheduleNewWorkflow(row.type, row.input ?? {}, row.id)
    } catch (err) {
      if (grpcCode(err) === GRPC_ALREADY_EXISTS) return
      log.error({ err, workflowId: row.id, type: row.type }, 'scheduling a workflow failed')
      await tracker.markFailed(row.id, {
        code: WorkflowErrorCode.SCHEDULE_FAILED,
        message: 'the workflow engine did not accept the run',
      })
      throw new AppError(WorkflowErrorCode.SCHEDULE_FAILED, 503, 'the workflow engine did not accept the run; retry later')
    }
  }

  /** A run recorded by an earlier attempt that may have died before scheduling it. */
  async function ensureScheduled(row: WorkflowRunRow): Promise<void> {
    if (row.status !== 'pending') return
    const state = await client().getWorkflowState(row.id, false)
    if (!state) await schedule(row)
  }

  async function startRun(request: StartRequest & { retryOf?: string }): Promise<{ workflowId: string; deduplicated: boolean }> {
    const definition = definitions.get(request.type)
    if (!definition) throw new Error(`workflow type ${request.type} is not registered`)
    client()
    const input = request.input ?? {}
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw new ValidationError('workflow input must be a JSON object')
    }
    if (Buffer.byteLength(JSON.stringify(input)) > MAX_INPUT_BYTES) {
      throw new ValidationError(`workflow input is larger than ${MAX_INPUT_BYTES} bytes`)
    }
    const fingerprint = request.idempotencyKey ? requestFingerprint(request.type, request.fingerprintOf ?? input) : null
    const outcome = await transaction(db, async (tx) => {
      const row = await crud.insertRun(tx, {
        id: randomUUID(),
        tenantId: request.tenantId,
        type: request.type,
        resourceKind: request.resource.kind,
        resourceId: request.resource.id,
        startedBy: request.startedBy,
        input,
        inputSummary: (request.inputSummary ?? summarize(input))?.slice(0, MAX_SUMMARY) ?? null,
        parentId: request.parentId ?? null,
        retryOf: request.retryOf ?? null,
        idempotencyKey: request.idempotencyKey ?? null,
        idempotencyFingerprint: fingerprint,
      })
      if (row) {
        await publisher.record(tx, runEvent('workflow.created', row))
        return { row, created: true }
      }
      if (request.idempotencyKey) {
        const first = await crud.findRunByIdempotencyKey(tx, request.tenantId, request.idempotencyKey)
        if (first && !sameRequest(first, fingerprint!)) throw idempotencyKeyReused()
        if (first) return { row: first, created: false }
      }
      if (request.retryOf) {
        const retry = await crud.findRetryOf(tx, request.retryOf)
        if (retry) throw workflowAlreadyRetried(retry.id)
      }
      throw new Error('the workflow run could not be recorded')
    })
    if (outcome.created) {
      await publisher.announce(runEvent('workflow.created', outcome.row))
      await schedule(outcome.row)
    } else {
      await ensureScheduled(outcome.row)
    }
    log.info({ workflowId: outcome.row.id, type: request.type, deduplicated: !outcome.created }, 'workflow run started')
    return { workflowId: outcome.row.id, deduplicated: !outcome.created }
  }

  /**
   * The engine's instances of a finished run (its own and its cancellation's, each with its child
   * workflows), then the record, its steps and whatever the run's type declares it left behind, in
   * one transaction with the `workflow.purged` event. False when the record was already gone.
   */
  async function purgeRun(row: WorkflowRunRow, options: { waitSeconds: number }): Promise<boolean> {
    const engineClient = client()
    for (const instanceId of [row.id, cancellationInstanceId(row.id)]) {
      // The record may finish a moment before the engine's instance does (its last step records it).
      const state = await engineClient.getWorkflowState(instanceId, false)
      if (!state) continue
      if (!ENGINE_TERMINAL.has(state.runtimeStatus)) {
        if (options.waitSeconds <= 0) throw new Error(`the engine still runs instance ${instanceId} of a finished run`)
        await engineClient.waitForWorkflowCompletion(instanceId, false, options.waitSeconds)
      }
      await engineClient.purgeWorkflow(instanceId)
    }
    const purged = await change('workflow.purged', async (tx) => {
      // The run is locked with the others of its resource: a purge of its retry waits its turn.
      const siblings = await crud.lockRunsOfResource(tx, row)
      const current = siblings.find((run) => run.id === row.id)
      if (!current) return undefined
      await definitions.get(current.type)?.purged?.(tx, {
        id: current.id,
        tenantId: current.tenantId,
        resource: { kind: current.resourceKind, id: current.resourceId },
        input: current.input,
        sharedWithOtherRuns: siblings.length > 1,
      })
      await crud.deleteRun(tx, row.id)
      return { ...current, version: current.version + 1, updatedAt: new Date() }
    })
    return purged !== undefined
  }

  const tracker: RunTracker = {
    async markStarted(runId) {
      await change('workflow.started', (tx) =>
        crud.updateRun(tx, runId, { status: 'running', startedAt: crud.STARTED_NOW }, ['pending']),
      )
    },
    async markCompleted(runId, result) {
      const json = JSON.stringify(result ?? null)
      const keep = Buffer.byteLength(json) <= MAX_RESULT_BYTES
      await change('workflow.completed', async (tx) => {
        const row = await crud.updateRun(
          tx,
          runId,
          {
            status: 'completed',
            percent: 100,
            startedAt: crud.STARTED_NOW,
            finishedAt: crud.NOW,
            result: keep ? (result ?? null) : null,
            resultSummary: summarize(result),
          },
          ['pending', 'running'],
        )
        if (row) await crud.finishRunningSteps(tx, runId, 'completed')
        return row
      })
    },
    async markFailed(runId, error) {
      await change('workflow.failed', async (tx) => {
        const row = await crud.updateRun(
          tx,
          runId,
          {
            status: 'failed',
            errorCode: error.code.slice(0, 64),
            errorMessage: error.message.slice(0, 1_000),
            finishedAt: crud.NOW,
          },
          ['pending', 'running'],
        )
        if (row) await crud.finishRunningSteps(tx, runId, 'failed')
        return row
      })
    },
    async terminate(runId) {
      try {
        await client().terminateWorkflow(runId, { cancelled: true })
      } catch (err) {
        // Never scheduled (it failed to schedule, or was cancelled first): nothing to stop.
        if (grpcCode(err) !== GRPC_NOT_FOUND) throw err
      }
    },
    async awaitTermination(runId) {
      const state = await client().getWorkflowState(runId, false)
      if (!state || ENGINE_TERMINAL.has(state.runtimeStatus)) return
      const after = await client().waitForWorkflowCompletion(runId, false, 30)
      if (after && !ENGINE_TERMINAL.has(after.runtimeStatus)) throw new Error(`workflow ${runId} is still running`)
    },
    async cancelledRun(runId): Promise<CancelledRun | undefined> {
      const row = await crud.getRun(db, runId)
      if (!row || row.status !== 'cancelled') return undefined
      return {
        runId,
        tenantId: row.tenantId,
        resource: { kind: row.resourceKind, id: row.resourceId },
        input: row.input,
      }
    },
    async finishCompensation(runId, error, result) {
      // What the compensation reports of the cancelled run (an import's counts) is its result.
      const reported =
        result !== undefined && result !== null && Buffer.byteLength(JSON.stringify(result)) <= MAX_RESULT_BYTES
          ? { result, resultSummary: summarize(result) }
          : {}
      await change('workflow.compensated', (tx) =>
        crud.updateRun(
          tx,
          runId,
          error
            ? { compensation: 'failed', message: `cancelled; compensation failed: ${error.message}`.slice(0, MAX_MESSAGE) }
            : { compensation: 'completed', message: 'cancelled; compensated', ...reported },
          ['cancelled'],
        ),
      )
    },
  }

  return {
    /**
     * Declares a workflow type with its activities (and, optionally, what undoes a cancelled run).
     * Every replica must declare the same ones, before the engine starts.
     */
    register(definition: WorkflowDefinition): void {
      if (sealed) throw new Error(`workflow ${definition.name} registered after the workflow engine started`)
      if (definition.name.startsWith(RESERVED_PREFIX)) throw new Error(`workflow names starting ${RESERVED_PREFIX} are reserved`)
      if (definitions.has(definition.name)) throw new Error(`workflow ${definition.name} is registered twice`)
      checkRegistrations([{ name: definition.name, workflow: definition.workflow }], definition.activities ?? [])
      definitions.set(definition.name, definition)
    },

    /**
     * The run an idempotency key already started, for a module that must answer a repeated request
     * before it creates anything of its own (a cluster row): `undefined` when the key is new, 422
     * IDEMPOTENCY_KEY_REUSED when it started a different request. The fingerprint is compared as
     * `start` compares it, so the same `type` and `fingerprintOf` must be passed to both.
     */
    async findIdempotentRun(
      tenantId: string,
      idempotencyKey: string,
      type: string,
      fingerprintOf: unknown,
    ): Promise<{ workflowId: string; resource: { kind: string; id: string } } | undefined> {
      const first = await crud.findRunByIdempotencyKey(db, tenantId, idempotencyKey)
      if (!first) return undefined
      if (!sameRequest(first, requestFingerprint(type, fingerprintOf))) throw idempotencyKeyReused()
      await ensureScheduled(first)
      return { workflowId: first.id, resource: { kind: first.resourceKind, id: first.resourceId } }
    },

    /** Records the run and schedules it; answers the workflow id (the first run's, for a repeated idempotency key). */
    start(request: StartRequest): Promise<{ workflowId: string; deduplicated: boolean }> {
      return startRun(request)
    },

    /**
     * Called by activities: records the step now running (earlier ones are done), updates the run
     * and publishes the change. A run that is no longer running (cancelled meanwhile) is left as
     * it is; answers whether the record changed. Safe to repeat when an activity runs twice.
     */
    async reportProgress(ctx: { getWorkflowInstanceId(): string } | string, progress: Progress): Promise<boolean> {
      const runId = typeof ctx === 'string' ? ctx : ctx.getWorkflowInstanceId()
      const step = Math.trunc(progress.step)
      if (!(step >= 1 && step <= MAX_STEPS)) throw new Error(`progress step must be 1-${MAX_STEPS}`)
      const message = progress.message?.slice(0, MAX_MESSAGE) ?? null
      const row = await change('workflow.progress', async (tx) => {
        const updated = await crud.updateRun(
          tx,
          runId,
          {
            status: 'running',
            startedAt: crud.STARTED_NOW,
            currentStep: step,
            ...(progress.totalSteps !== undefined
              ? { totalSteps: Math.max(step, Math.trunc(progress.totalSteps)) }
              : {}),
            ...(progress.percent !== undefined
              ? { percent: Math.max(0, Math.min(100, Math.round(progress.percent))) }
              : {}),
            message,
            ...(progress.bytesDone !== undefined ? { bytesDone: Math.max(0, Math.trunc(progress.bytesDone)) } : {}),
            ...(progress.bytesTotal !== undefined
              ? { bytesTotal: progress.bytesTotal === null ? null : Math.max(0, Math.trunc(progress.bytesTotal)) }
              : {}),
          },
          ['pending', 'running'],
        )
        if (updated) await crud.startStep(tx, runId, step, message)
        return updated
      })
      return row !== undefined
    },

    async list(principal: Principal, query: ListQuery): Promise<PageResult<RunView>> {
      const page = pageRequest(query)
      const sort = parseSort(query.sort, ['createdAt', 'updatedAt'] as const, { field: 'createdAt', direction: 'desc' })
      const { rows, total } = await crud.listRuns(
        db,
        {
          tenantId: principal.tenantId,
          type: query.type,
          status: query.status,
          resourceKind: query.resourceKind,
          resourceId: query.resourceId,
          startedBy: query.actor,
        },
        { limit: page.limit, offset: page.offset, sort },
      )
      return pageResult(rows.map(runView), total, page)
    },

    async get(principal: Principal, id: string): Promise<{ run: RunDetail; version: number; updatedAt: Date }> {
      const row = await visibleRun(principal, id)
      const steps = await crud.listSteps(db, id)
      return {
        run: { ...runView(row), result: row.result ?? null, steps: steps.map(stepView) },
        version: row.version,
        updatedAt: row.updatedAt,
      }
    },

    /**
     * Stops a pending or running run: the record says cancelled at once, the engine is told to
     * terminate, and a durable cancellation workflow makes sure it stopped and then runs the
     * type's compensation, if it declares one.
     */
    async cancel(principal: Principal, id: string): Promise<RunView> {
      client()
      const row = await change('workflow.cancelled', async (tx) => {
        const current = await crud.lockRun(tx, id, principal.tenantId)
        if (!current) throw workflowNotFound()
        if (crud.isFinished(current.status)) throw workflowAlreadyFinished(current.status)
        const compensates = definitions.get(current.type)?.compensation !== undefined
        const updated = await crud.updateRun(tx, id, {
          status: 'cancelled',
          finishedAt: crud.NOW,
          message: compensates ? 'cancelled; compensating' : 'cancelled',
          compensation: compensates ? 'running' : null,
        })
        await crud.finishRunningSteps(tx, id, 'cancelled')
        return updated
      })
      if (!row) throw workflowNotFound()
      try {
        await tracker.terminate(id)
      } catch (err) {
        // The cancellation workflow terminates it again until the engine answers.
        log.warn({ err, workflowId: id }, 'terminating a cancelled workflow failed; the cancellation workflow will retry')
      }
      await client().scheduleNewWorkflow(
        INTERNAL.cancelWorkflow,
        { runId: id, type: row.type, compensate: row.compensation === 'running' },
        cancellationInstanceId(id),
      )
      log.info({ workflowId: id, compensation: row.compensation }, 'workflow run cancelled')
      return runView(row)
    },

    /** Starts a failed run again with the same input, as a new run linked to the old one. */
    async retry(principal: Principal, id: string, idempotencyKey?: string): Promise<{ workflowId: string }> {
      // Before any replay: another tenant's run (or none) is 404 whatever the headers say.
      const row = await visibleRun(principal, id)
      // A retry is the same request when it retries the same run: its fingerprint is that run's id.
      const subject = { retryOf: id }
      if (idempotencyKey) {
        const first = await crud.findRunByIdempotencyKey(db, principal.tenantId, idempotencyKey)
        if (first) {
          if (!sameRequest(first, requestFingerprint(first.type, subject))) throw idempotencyKeyReused()
          await ensureScheduled(first)
          return { workflowId: first.id }
        }
      }
      if (row.status !== 'failed') throw workflowNotFailed(row.status)
      const existing = await crud.findRetryOf(db, id)
      if (existing) throw workflowAlreadyRetried(existing.id)
      const { workflowId } = await startRun({
        type: row.type,
        tenantId: row.tenantId,
        resource: { kind: row.resourceKind, id: row.resourceId },
        startedBy: principal.id,
        input: (row.input ?? {}) as Record<string, unknown>,
        ...(row.inputSummary ? { inputSummary: row.inputSummary } : {}),
        ...(row.parentId ? { parentId: row.parentId } : {}),
        ...(idempotencyKey ? { idempotencyKey, fingerprintOf: subject } : {}),
        retryOf: id,
      })
      return { workflowId }
    },

    /** Deletes a finished run: its engine history (and its cancellation's), then its record and steps. */
    async purge(principal: Principal, id: string): Promise<void> {
      const row = await visibleRun(principal, id)
      if (!crud.isFinished(row.status) || row.compensation === 'running') throw workflowNotFinished(row.status)
      await purgeRun(row, { waitSeconds: 10 })
      log.info({ workflowId: id }, 'workflow run purged')
    },

    /**
     * Retention: purges up to `limit` runs that finished before `before`, oldest first, as
     * DELETE /v1/workflows/{id} would. Answers how many went; a run that cannot be purged now is
     * logged and left for the next sweep. Several replicas may sweep at once: a run another one
     * purged meanwhile is skipped.
     */
    async purgeExpired(before: Date, limit: number): Promise<number> {
      if (!engine) return 0
      let purged = 0
      const now = Date.now()
      for (const [id, until] of unpurgeable) if (until <= now) unpurgeable.delete(id)
      // Runs that failed to go lately are passed over, so that a few of them cannot stall the sweep.
      const rows = (await crud.listExpiredRuns(db, before, limit + unpurgeable.size)).filter((r) => !unpurgeable.has(r.id))
      for (const row of rows.slice(0, limit)) {
        try {
          // A run whose instance the engine still runs (it should not, long after the record
          // finished) is not waited for: it would hold up the sweep. It is logged and tried again.
          if (await purgeRun(row, { waitSeconds: 0 })) purged++
        } catch (err) {
          if (unpurgeable.size < MAX_UNPURGEABLE) unpurgeable.set(row.id, now + UNPURGEABLE_RETRY_MS)
          log.warn({ err, workflowId: row.id }, 'an expired workflow run could not be purged; a later sweep tries again')
        }
      }
      if (purged > 0) log.info({ purged, finishedBefore: before.toISOString() }, 'expired workflow runs purged')
      return purged
    },

    /**
     * Opens a progress stream: the current state first, then every change as it is announced (from
     * any replica, through the cache), until the run is over. Throws 404 before sending anything.
     */
    async watch(principal: Principal, id: string, sink: RunStreamSink, options: { afterVersion?: number } = {}): Promise<RunStream> {
      await visibleRun(principal, id)
      const after = options.afterVersion ?? -1
      let last = 0
      let ready = false
      let closed = false
      const early: RunEvent[] = []
      let unsubscribe: (() => Promise<void>) | undefined

      const close = async () => {
        if (closed) return
        closed = true
        const stop = unsubscribe
        unsubscribe = undefined
        await stop?.().catch((err: unknown) => log.warn({ err, workflowId: id }, 'leaving a run channel failed'))
      }
      const finish = () => {
        sink.end()
        void close()
      }
      const accept = (event: RunEvent) => {
        if (closed || event.version <= last) return
        last = event.version
        const over = isOver(event)
        sink.send(over ? 'end' : 'progress', event)
        if (over) finish()
      }
      const current = async (): Promise<RunEvent | undefined> => {
        const row = await crud.getRun(db, id)
        return row ? runEvent(eventTypeOf(row), row) : undefined
      }

      const subscribed = await cache.subscribe(runChannel(id), (message) => {
        let event: RunEvent
        try {
          event = JSON.parse(message) as RunEvent
        } catch {
          return
        }
        if (ready) accept(event)
        else early.push(event)
      })
      unsubscribe = subscribed
      try {
        const first = await current()
        if (!first) {
          finish()
          return { refresh: async () => undefined, close }
        }
        // A reconnect (Last-Event-ID) gets what it has not seen: nothing when the record has not moved.
        last = Math.max(first.version, after)
        if (first.version > after) sink.send('state', first)
        if (isOver(first)) {
          if (first.version > after) sink.send('end', first)
          finish()
        }
        ready = true
        for (const event of early.splice(0)) accept(event)
      } catch (err) {
        await close()
        throw err
      }
      return {
        async refresh() {
          if (closed) return
          const latest = await current()
          if (closed) return
          if (!latest) return finish()
          accept(latest)
        },
        close,
      }
    },

    /**
     * Opens the tenant-wide stream: every change of every run of the principal's tenant, as it is
     * announced (from any replica, through the cache), until closed. With `since` (a reconnect),
     * the runs changed since then come first, each at its latest state; a change may come twice
     * then (a client keys them by workflowId and version), none is skipped.
     */
    async watchTenant(principal: Principal, sink: RunStreamSink, options: { since?: Date } = {}): Promise<RunStream> {
      const tenantId = principal.tenantId
      // The latest version sent of each run, so a run's change is never sent twice or out of order.
      const sent = new LRUCache<string, number>({ max: TENANT_STREAM_MEMORY })
      let ready = false
      let closed = false
      const early: RunEvent[] = []
      const accept = (event: RunEvent) => {
        if (closed || event.tenantId !== tenantId) return
        if ((sent.get(event.workflowId) ?? -1) >= event.version) return
        sent.set(event.workflowId, event.version)
        sink.send(isOver(event) ? 'end' : 'progress', event)
      }
      let unsubscribe: (() => Promise<void>) | undefined = await cache.subscribe(tenantChannel(tenantId), (message) => {
        let event: RunEvent
        try {
          event = JSON.parse(message) as RunEvent
        } catch {
          return
        }
        if (ready) accept(event)
        else early.push(event)
      })
      const close = async () => {
        if (closed) return
        closed = true
        const stop = unsubscribe
        unsubscribe = undefined
        await stop?.().catch((err: unknown) => log.warn({ err, tenantId }, 'leaving a tenant run channel failed'))
      }
      try {
        if (options.since) {
          // Commits land a little after their timestamp: look back a moment further than asked.
          const from = new Date(options.since.getTime() - TENANT_RESUME_OVERLAP_MS)
          for (const row of await crud.runsChangedSince(db, tenantId, from, TENANT_RESUME_LIMIT)) accept(runEvent(eventTypeOf(row), row))
        }
        ready = true
        for (const event of early.splice(0)) accept(event)
      } catch (err) {
        await close()
        throw err
      }
      return { refresh: async () => undefined, close }
    },

    /**
     * A short-lived ticket that opens one stream (a run's, checked to be the tenant's, or the
     * tenant's own) without headers. Only a user session gets one: what the ticket remembers of it
     * is what ends the ticket again (logout, a revoked session, a disabled user, a cut-off).
     */
    async streamTicket(principal: Principal, scope: TicketScope): Promise<{ ticket: string; expiresAt: Date }> {
      if (scope.kind === 'run') await visibleRun(principal, scope.runId)
      if (principal.kind !== 'user' || !principal.userId || !principal.expiresAt) {
        throw new ForbiddenError('a stream ticket is for a signed-in user; API keys and services send their credential as a header')
      }
      const holder: SessionRef = {
        userId: principal.userId,
        tenantId: principal.tenantId,
        ...(principal.tokenId ? { tokenId: principal.tokenId } : {}),
        ...(principal.sessionId ? { sessionId: principal.sessionId } : {}),
        tokenExpiresAt: principal.expiresAt,
        // The access token's own iat, not now: a token minted at a cut-off (after a password change)
        // is compared as itself, and one from before a cut-off stays refused.
        issuedAt: principal.tokenIssuedAt ?? new Date(),
      }
      return deps.tickets.issue(holder, scope)
    },

    /**
     * Whoever a stream ticket stands for, resolved again now; `expired` for a ticket of ours past
     * its time. Throws UnauthenticatedError for anything else, and for a holder whose session ended.
     */
    async ticketHolder(ticket: string, scope: TicketScope): Promise<{ principal: Principal; ref: SessionRef; expiresAt: Date } | 'expired'> {
      const checked = deps.tickets.check(ticket, scope)
      if (checked.status === 'expired') return 'expired'
      const principal = await deps.sessions.fromSession(checked.holder)
      return { principal, ref: checked.holder, expiresAt: checked.expiresAt }
    },

    /** Whether the ticket's holder may still read (asked again while a ticketed stream is open). */
    async holderStillValid(ref: SessionRef, permission: string): Promise<boolean> {
      try {
        return (await deps.sessions.fromSession(ref)).permissions.has(permission)
      } catch (err) {
        if (err instanceof AppError && err.status === 401) return false
        throw err
      }
    },

    /** For the module: what the engine runs. Seals the registry. */
    engineDefinitions(): WorkflowDefinition[] {
      sealed = true
      return [...definitions.values()]
    },
    tracker,
    attachEngine(started: WorkflowEngine | undefined): void {
      engine = started
    },
  }
}

export type WorkflowService = ReturnType<typeof createWorkflowService>
