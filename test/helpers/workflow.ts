import { randomUUID } from 'node:crypto'
import pino, { type Logger } from 'pino'
import type { DatabaseHandle } from '../../src/platform/db/client.js'
import type { HubTuning } from '../../src/modules/workflow_ops/hub/index.js'
import {
  type ActivityRegistration,
  startWorkflowEngine,
  type WorkflowEngine,
  type WorkflowRegistration,
} from '../../src/modules/workflow_ops/runtime.js'

/** Short poll and lease so timers, expiries and retries happen within a test's patience. */
export const FAST_HUB: Partial<HubTuning> = { pollIntervalMs: 100, leaseMs: 3_000, drainTimeoutMs: 2_000 }

/** A hub name of its own: engines of other tests (and files) on the same database never take its work. */
export function uniqueHub(prefix = 'test'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

export interface TestEngineOptions {
  database: DatabaseHandle
  workflows: WorkflowRegistration[]
  activities: ActivityRegistration[]
  hub?: string
  tuning?: Partial<HubTuning>
  log?: Logger
}

/** An embedded engine on the given database; stop it in afterAll / afterEach. */
export function startTestEngine(options: TestEngineOptions): Promise<WorkflowEngine> {
  return startWorkflowEngine({
    database: options.database,
    log: options.log ?? pino({ level: 'silent' }),
    workflows: options.workflows,
    activities: options.activities,
    hub: { name: options.hub ?? uniqueHub(), tuning: { ...FAST_HUB, ...options.tuning } },
  })
}
