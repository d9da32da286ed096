import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../platform/platform.js'
import { createRunEventPublisher } from './events.js'
import type { HubTuning } from './hub/index.js'
import { registerWorkflowRoutes } from './routes.js'
import { engineRegistrations } from './runs.js'
import { startWorkflowEngine, type WorkflowEngine } from './runtime.js'
import { createWorkflowService } from './service.js'
import { createStreamTickets } from './tickets.js'
import type { Authenticator } from '../../platform/auth/principal.js'

export type { WorkflowService, StartRequest, Progress, RunView, RunDetail } from './service.js'
export type { WorkflowDefinition, CancelledRun, Compensation } from './runs.js'
export type { Workflow, Activity, ActivityRegistration } from './runtime.js'
export type { RunEvent } from './events.js'
export { STREAM_TICKET_TTL_SECONDS } from './tickets.js'
export { WORKFLOW_TOPIC } from './events.js'
export { WorkflowStepError } from './errors.js'
export { callActivityWithRetry, type RetryPolicy } from './retry.js'

/** Every replica of one installation shares this hub: any of them may run any workflow. */
export const HUB_NAME = 'modelplane'

export interface WorkflowOpsOptions {
  /** The embedded hub's namespace; tests give theirs a unique one. */
  hub?: string
  tuning?: Partial<HubTuning>
  /** Heartbeat period of progress streams. */
  heartbeatMs?: number
  /** How long a stream ticket lives (STREAM_TICKET_TTL_SECONDS; tests shorten it). */
  streamTicketTtlSeconds?: number
  /** How often the retention sweep runs (tests shorten it). */
  retentionSweepMs?: number
}

/** The retention sweep runs this often on every replica, the first time soon after start. */
const RETENTION_SWEEP_MS = 15 * 60_000
const RETENTION_FIRST_SWEEP_MS = 60_000
/** Runs purged per batch, and batches per sweep at most (a backlog is worked off over several sweeps). */
const RETENTION_BATCH = 100
const RETENTION_BATCHES_PER_SWEEP = 20
const DAY_MS = 86_400_000

/**
 * The workflow_ops module: declared workflows run on the engine (the embedded hub, or the Dapr
 * sidecar when DAPR_GRPC_PORT is set), each run is recorded and its progress published, and
 * /v1/workflows lists, streams, cancels, retries and purges runs. Modules declare their workflows
 * with `service.register` while the app is built; the engine starts when the app is ready.
 */
export function createWorkflowOps(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'cache' | 'events' | 'vault'>,
  options: WorkflowOpsOptions = {},
  sessions: Pick<Authenticator, 'fromSession'>,
) {
  const { config, database, cache, events } = platform
  const log = platform.log.child({ module: 'workflow_ops' })
  const publisher = createRunEventPublisher({ events, cache, log })
  // A key of its own: a stream ticket's signature means nothing anywhere else (blob URLs have theirs).
  const tickets = createStreamTickets({
    key: platform.vault.deriveKey('workflow-stream-ticket'),
    ...(options.streamTicketTtlSeconds ? { ttlSeconds: options.streamTicketTtlSeconds } : {}),
  })
  const service = createWorkflowService({ db: database.db, cache, log, publisher, tickets, sessions })
  let engine: WorkflowEngine | undefined
  let sweepTimer: NodeJS.Timeout | undefined
  let sweeping: Promise<void> | undefined
  let sweepsOn = false

  /**
   * Deletes runs that ended more than WORKFLOW_RETENTION_DAYS ago, the engine's history included:
   * through the workflow client, so on the Dapr sidecar as on the embedded hub. (A sidecar of Dapr
   * 1.17 or later configured with its own, shorter `stateRetentionPolicy` drops the history first;
   * purging an instance the engine no longer has is no error.)
   */
  async function sweep(): Promise<void> {
    const before = new Date(Date.now() - config.workflowRetentionDays * DAY_MS)
    for (let batch = 0; batch < RETENTION_BATCHES_PER_SWEEP; batch++) {
      if (!sweepsOn) return
      if ((await service.purgeExpired(before, RETENTION_BATCH)) < RETENTION_BATCH) return
    }
  }

  function scheduleSweep(delayMs: number): void {
    sweepTimer = setTimeout(() => {
      sweeping = sweep()
        .catch((err: unknown) => log.warn({ err }, 'the workflow retention sweep failed; it runs again later'))
        .finally(() => {
          sweeping = undefined
          if (sweepsOn) scheduleSweep(options.retentionSweepMs ?? RETENTION_SWEEP_MS)
        })
    }, delayMs)
    sweepTimer.unref()
  }

  return {
    service,
    routes: (app: FastifyInstance) => registerWorkflowRoutes(app, service, { heartbeatMs: options.heartbeatMs ?? 15_000 }),
    /** Starts the engine with every declared workflow; work flows from here on. After migrations. */
    async start(): Promise<void> {
      if (engine) return
      const { workflows, activities } = engineRegistrations(service.engineDefinitions(), service.tracker)
      engine = await startWorkflowEngine({
        database,
        log: platform.log,
        workflows,
        activities,
        ...(config.parts.workflows === 'dapr' && config.dapr.grpcPort
          ? {
              dapr: {
                host: config.dapr.host,
                grpcPort: config.dapr.grpcPort,
                ...(config.dapr.apiToken ? { apiToken: config.dapr.apiToken } : {}),
              },
            }
          : {}),
        hub: {
          name: options.hub ?? HUB_NAME,
          thread: config.workflowHubThread,
          ...(options.tuning ? { tuning: options.tuning } : {}),
        },
      })
      service.attachEngine(engine)
      sweepsOn = config.workflowRetentionDays > 0
      if (sweepsOn) scheduleSweep(options.retentionSweepMs ?? RETENTION_FIRST_SWEEP_MS)
    },
    /** Finishes the work in flight and disconnects; before the event bus and the database close. */
    async stop(): Promise<void> {
      sweepsOn = false
      clearTimeout(sweepTimer)
      await sweeping
      const running = engine
      await running?.stop()
      service.attachEngine(undefined)
      engine = undefined
    },
    /** For /readyz. */
    async check(): Promise<void> {
      if (!engine) throw new Error('the workflow engine is not running')
    },
  }
}
