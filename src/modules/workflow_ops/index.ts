import type { FastifyInstance } from 'fastify'
import type { Platform } from '../../app.js'
import { createRunEventPublisher } from './events.js'
import type { HubTuning } from './hub/index.js'
import { registerWorkflowRoutes } from './routes.js'
import { engineRegistrations } from './runs.js'
import { startWorkflowEngine, type WorkflowEngine } from './runtime.js'
import { createWorkflowService } from './service.js'

export type { WorkflowService, StartRequest, Progress, RunView, RunDetail } from './service.js'
export type { WorkflowDefinition, CancelledRun, Compensation } from './runs.js'
export type { Workflow, Activity, ActivityRegistration } from './runtime.js'
export type { RunEvent } from './events.js'
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
}

/**
 * The workflow_ops module: declared workflows run on the engine (the embedded hub, or the Dapr
 * sidecar when DAPR_GRPC_PORT is set), each run is recorded and its progress published, and
 * /v1/workflows lists, streams, cancels, retries and purges runs. Modules declare their workflows
 * with `service.register` while the app is built; the engine starts when the app is ready.
 */
export function createWorkflowOps(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'cache' | 'events'>,
  options: WorkflowOpsOptions = {},
) {
  const { config, database, cache, events } = platform
  const log = platform.log.child({ module: 'workflow_ops' })
  const publisher = createRunEventPublisher({ events, cache, log })
  const service = createWorkflowService({ db: database.db, cache, log, publisher })
  let engine: WorkflowEngine | undefined

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
    },
    /** Finishes the work in flight and disconnects; before the event bus and the database close. */
    async stop(): Promise<void> {
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
