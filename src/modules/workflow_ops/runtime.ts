import { createRequire } from 'node:module'
import * as grpc from '@grpc/grpc-js'
import type {
  DaprWorkflowClient,
  Task,
  WorkflowActivityContext,
  WorkflowContext,
  WorkflowRuntime as SdkWorkflowRuntime,
} from '@dapr/dapr'
import type { Logger } from 'pino'
import type { DatabaseHandle } from '../../platform/db/client.js'
import { type HubTuning, startTaskHub, type TaskHub } from './hub/index.js'
import { startTaskHubThread } from './hub/thread.js'
import { Empty, TaskHubSidecarServiceClient } from './hub/proto.js'
import { routeSdkLogs } from './sdk-logging.js'

// Deep requires: loading only the workflow part of the SDK costs a sixth of loading all of it.
// require() rather than import: these are CommonJS modules with an `exports.default`, which Node's
// and Vite's ESM interop resolve differently.
const require = createRequire(import.meta.url)
const WorkflowRuntime: typeof SdkWorkflowRuntime = require('@dapr/dapr/workflow/runtime/WorkflowRuntime.js').default
const WorkflowClient: typeof DaprWorkflowClient = require('@dapr/dapr/workflow/client/DaprWorkflowClient.js').default

/**
 * A workflow: an `async function*` that yields SDK tasks (`ctx.callActivity`, `ctx.createTimer`,
 * `ctx.waitForExternalEvent`, `ctx.whenAll`/`whenAny`, `ctx.callChildWorkflow`). The SDK replays it
 * from the start on every step, so the code between yields must be deterministic; side effects
 * belong in activities.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the SDK types inputs and results as any
export type Workflow<TInput = any, TResult = any> = (
  ctx: WorkflowContext,
  input: TInput,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
) => AsyncGenerator<Task<any>, TResult, any>
/** An activity: ordinary async code. It may run more than once (at-least-once), so it must be idempotent. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Activity<TInput = any, TResult = any> = (ctx: WorkflowActivityContext, input: TInput) => TResult | Promise<TResult>

export interface WorkflowRegistration {
  /** The name clients schedule it by; stays stable across deployments (stored in every instance). */
  name: string
  workflow: Workflow
}

export interface ActivityRegistration {
  name: string
  activity: Activity
}

export interface WorkflowEngineOptions {
  database: DatabaseHandle
  log: Logger
  /** Set (from DAPR_GRPC_PORT) to run on the Dapr sidecar; the embedded hub then does not start. */
  dapr?: { host: string; grpcPort: number; apiToken?: string }
  workflows: WorkflowRegistration[]
  activities: ActivityRegistration[]
  /**
   * The embedded hub's namespace and tuning (tests use a unique name per engine). With `thread`
   * (PostgreSQL only) it runs in a worker thread with a pool of its own of `poolMax` connections.
   */
  hub?: { name?: string; tuning?: Partial<HubTuning>; thread?: boolean; poolMax?: number }
  /** How long start waits for the Dapr sidecar to answer. */
  sidecarTimeoutMs?: number
}

export interface WorkflowEngine {
  mode: 'embedded' | 'dapr'
  /** Schedules, queries, raises events to, suspends, resumes, terminates and purges workflows. */
  client: DaprWorkflowClient
  /** The embedded hub, when it runs. */
  hub?: TaskHub
  /** Finishes the work items in flight, then disconnects the SDK and stops the hub. Safe to call twice. */
  stop(): Promise<void>
}

/** Connections of the hub thread's own pool: its statements are short, most runs need one at a time. */
const HUB_POOL_MAX = 10

const NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/

function isAsyncGenerator(fn: unknown): boolean {
  return Object.prototype.toString.call(fn) === '[object AsyncGeneratorFunction]'
}

/**
 * Refuses what the SDK would accept silently: a plain `function*` (or any non-async-generator)
 * runs as "a workflow that schedules nothing" and completes at once with `{}` as its output.
 */
export function checkRegistrations(workflows: WorkflowRegistration[], activities: ActivityRegistration[]): void {
  const seen = new Set<string>()
  for (const { name, workflow } of workflows) {
    if (!NAME.test(name)) throw new Error(`workflow name "${name.slice(0, 140)}" is not valid (${NAME.source})`)
    if (seen.has(`w:${name}`)) throw new Error(`workflow ${name} is registered twice`)
    seen.add(`w:${name}`)
    if (!isAsyncGenerator(workflow)) {
      throw new Error(
        `workflow ${name} must be an async generator function (async function*); ` +
          'the SDK would run anything else as a workflow that completes at once without doing its work',
      )
    }
  }
  for (const { name, activity } of activities) {
    if (!NAME.test(name)) throw new Error(`activity name "${name.slice(0, 140)}" is not valid (${NAME.source})`)
    if (seen.has(`a:${name}`)) throw new Error(`activity ${name} is registered twice`)
    seen.add(`a:${name}`)
    if (typeof activity !== 'function') throw new Error(`activity ${name} is not a function`)
  }
}

/** The SDK's worker gives up for good if its very first connection fails, so the sidecar is awaited first. */
async function waitForSidecar(address: string, apiToken: string | undefined, timeoutMs: number, log: Logger) {
  const client = new TaskHubSidecarServiceClient(address, grpc.credentials.createInsecure())
  const deadline = Date.now() + timeoutMs
  const metadata = new grpc.Metadata()
  if (apiToken) metadata.set('dapr-api-token', apiToken)
  try {
    for (let attempt = 1; ; attempt++) {
      const error = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.hello(new Empty(), metadata, { deadline: Date.now() + 2_000 }, (err) => resolve(err)),
      )
      if (!error) return
      if (Date.now() > deadline) {
        throw new Error(`the Dapr sidecar at ${address} did not answer within ${timeoutMs} ms: ${error.message}`)
      }
      if (attempt === 1) log.info({ address }, 'waiting for the Dapr sidecar')
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * attempt, 2_000)))
    }
  } finally {
    client.close()
  }
}

/**
 * Work items the SDK worker runs at once. It holds each until the hub has committed its answer
 * (a database round trip), so its fixed 10 left the process idle under load while work waited in
 * its queue. As many as the hub hands one stream (HubTuning.maxInFlightPerStream, at most 100).
 */
const WORKER_CONCURRENCY = 100

/**
 * 3.18 has no option for it: `_maxConcurrentWorkItems` is a plain field of its TaskHubGrpcWorker
 * (the version is pinned exactly; the hub tests fail if this stops working, by running slowly at
 * worst). Left alone, with a warning, if the field is not where 3.18 keeps it.
 */
function raiseWorkerConcurrency(runtime: SdkWorkflowRuntime, log: Logger): void {
  const worker = (runtime as unknown as { worker?: { _maxConcurrentWorkItems?: unknown } }).worker
  if (worker && typeof worker._maxConcurrentWorkItems === 'number') {
    worker._maxConcurrentWorkItems = Math.max(worker._maxConcurrentWorkItems, WORKER_CONCURRENCY)
  } else {
    log.warn('the workflow SDK worker has no _maxConcurrentWorkItems field; it runs work items at its own pace')
  }
}

export async function startWorkflowEngine(options: WorkflowEngineOptions): Promise<WorkflowEngine> {
  const log = options.log.child({ component: 'workflows' })
  checkRegistrations(options.workflows, options.activities)
  const detachLogs = routeSdkLogs(options.log)

  let hub: TaskHub | undefined
  let connection: { daprHost: string; daprPort: string; daprApiToken: string }
  try {
    if (options.dapr) {
      connection = {
        daprHost: options.dapr.host,
        daprPort: String(options.dapr.grpcPort),
        // An empty token stops the SDK from falling back to the DAPR_API_TOKEN variable on its own.
        daprApiToken: options.dapr.apiToken ?? '',
      }
      await waitForSidecar(
        `${options.dapr.host}:${options.dapr.grpcPort}`,
        options.dapr.apiToken,
        options.sidecarTimeoutMs ?? 60_000,
        log,
      )
    } else {
      const common = {
        log: options.log,
        ...(options.hub?.name ? { name: options.hub.name } : {}),
        ...(options.hub?.tuning ? { tuning: options.hub.tuning } : {}),
      }
      // On PostgreSQL the hub takes a core of its own (see hub/thread.ts); PGlite's one in-process
      // connection cannot be shared with a thread.
      hub =
        options.database.url && options.hub?.thread
          ? await startTaskHubThread({
              ...common,
              url: options.database.url,
              poolMax: options.hub?.poolMax ?? HUB_POOL_MAX,
              onRestarted: () => restartWorker(),
            })
          : await startTaskHub({ ...common, database: options.database })
      connection = { daprHost: hub.host, daprPort: String(hub.port), daprApiToken: hub.token }
    }
  } catch (err) {
    detachLogs()
    throw err
  }

  async function startWorker(): Promise<SdkWorkflowRuntime> {
    const worker = new WorkflowRuntime(connection)
    raiseWorkerConcurrency(worker, log)
    for (const { name, workflow } of options.workflows) worker.registerWorkflowWithName(name, workflow)
    for (const { name, activity } of options.activities) worker.registerActivityWithName(name, activity)
    await worker.start()
    return worker
  }
  let runtime = await startWorker()
  // The SDK's worker gives up for good when its first stream fails (a hub thread that died): once
  // the thread is back, a new worker takes its place.
  let replacing: Promise<void> | undefined
  function restartWorker(): void {
    replacing = (async () => {
      const old = runtime
      runtime = await startWorker()
      await old.stop().catch(() => undefined)
      log.info('workflow worker reconnected to the restarted hub')
    })().catch((err: unknown) => log.error({ err }, 'the workflow worker could not reconnect to the restarted hub'))
  }
  const client = new WorkflowClient(connection)
  log.info(
    { mode: hub ? 'embedded' : 'dapr', workflows: options.workflows.length, activities: options.activities.length },
    'workflow engine started',
  )

  let stopped: Promise<void> | undefined
  async function shutDown(): Promise<void> {
    // Work in flight is answered first; then the SDK disconnects (each of its stop()s sleeps a second).
    await hub?.quiesce()
    await replacing
    await Promise.all([
      runtime.stop().catch((err: unknown) => log.warn({ err }, 'stopping the workflow worker failed')),
      client.stop().catch((err: unknown) => log.warn({ err }, 'stopping the workflow client failed')),
    ])
    await hub?.stop()
    detachLogs()
    log.info('workflow engine stopped')
  }

  return {
    mode: hub ? 'embedded' : 'dapr',
    client,
    ...(hub ? { hub } : {}),
    stop: () => (stopped ??= shutDown()),
  }
}
