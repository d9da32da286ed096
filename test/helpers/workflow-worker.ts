import type { WorkflowActivityContext, WorkflowContext } from '@dapr/dapr'
import pino from 'pino'
import { startWorkflowEngine } from '../../src/modules/workflow_ops/runtime.js'
import { openDatabase } from '../../src/platform/db/client.js'

/**
 * A worker process for the crash and two-process tests: an engine on the shared database under the
 * hub name it is given, running `crashy` runs of three steps. Each step records that it started
 * (`wf_step_runs`) and, after its work, that it finished (`wf_step_effects`): one row per execution
 * in each, with this process's pid, and no key that would fold a repeat into the first. So the
 * tests see every repeat of a step and can tell one that followed a killed process (expected of
 * at-least-once activities) from one a live process was handed again (a bug).
 */
const url = process.env.DATABASE_URL!
const hub = process.env.WORKFLOW_HUB!
const leaseMs = Number(process.env.LEASE_MS ?? 1_500)
const stepMs = Number(process.env.STEP_MS ?? 40)
/** Work items the hub hands this process's worker at once (the hub's default when unset). */
const maxInFlight = process.env.MAX_IN_FLIGHT ? { maxInFlightPerStream: Number(process.env.MAX_IN_FLIGHT) } : {}
const log = pino({ level: process.env.LOG_LEVEL ?? 'warn' })

const database = await openDatabase({ url, dataDir: '/tmp', poolMax: 5, log })
const engine = await startWorkflowEngine({
  database,
  log,
  hub: { name: hub, tuning: { leaseMs, pollIntervalMs: 100, drainTimeoutMs: 1_000, ...maxInFlight } },
  workflows: [
    {
      name: 'crashy',
      workflow: async function* (ctx: WorkflowContext, runId: string) {
        for (let step = 1; step <= 3; step++) yield ctx.callActivity('step', { runId, step })
        return 'done'
      },
    },
  ],
  activities: [
    {
      name: 'step',
      activity: async (_ctx: WorkflowActivityContext, input: { runId: string; step: number }) => {
        await database.pool!.query('insert into wf_step_runs (run_id, step, pid) values ($1, $2, $3)', [
          input.runId,
          input.step,
          process.pid,
        ])
        await new Promise((resolve) => setTimeout(resolve, stepMs))
        await database.pool!.query(
          'insert into wf_step_effects (run_id, step, pid) values ($1, $2, $3)',
          [input.runId, input.step, process.pid],
        )
        return input.step
      },
    },
  ],
})
process.stdout.write('worker ready\n')
process.once('SIGTERM', () => {
  void engine.stop().then(() => database.close()).then(() => process.exit(0))
})
