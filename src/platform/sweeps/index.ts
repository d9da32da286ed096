import { randomUUID } from 'node:crypto'
import os from 'node:os'
import type { Logger } from 'pino'
import type { DatabaseHandle, Executor } from '../db/client.js'
import {
  claimDueSweepLeases,
  deleteSweepLease,
  finishSweepLease,
  releaseSweepLease,
  renewSweepLeases,
  sweepLeaseHeld,
  upsertSweepLease,
} from './crud.js'

export interface SweepContext {
  /** Aborted when the replica stops or the lease was lost: stop calling out and return. */
  signal: AbortSignal
  /** Runs of this resource in a row that threw before this one. */
  consecutiveFailures: number
  /** `due` from the schedule, `asked` from runNow (a user's refresh). */
  reason: 'due' | 'asked'
}

/** What a run decides about the next one; the sweep's interval by default. */
export interface SweepOutcome {
  nextInMs?: number
}

export interface SweepDefinition {
  /** Unique; rows are keyed by it (`cluster.sync`). */
  name: string
  /** A resource is run again this long after its previous run finished. */
  intervalMs: number
  /** Resources one replica runs at once; memory and sockets are bounded by it, not by the resource count. */
  concurrency: number
  /**
   * How long a claim stays valid without renewal; renewed every third of it while the run lasts.
   * A replica that dies holds its resources this long at most. Default 30 s.
   */
  leaseMs?: number
  run(resourceId: string, ctx: SweepContext): Promise<SweepOutcome | void>
}

export interface SweepsOptions {
  database: DatabaseHandle
  log: Logger
  /** How often each sweep looks for due rows (default 1 s); in-process schedules wake it at once. */
  pollMs?: number
  /**
   * Keeps this app's rows apart from those of apps with another scope (the stored sweep name is
   * `<scope>/<name>`). Tests give each app, or each set of replicas, its own, as they do hubs:
   * an app of another test file must not run, and reschedule, this one's work. Unset in production.
   */
  scope?: string
}

const owner = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`

/** A thrown run is retried sooner than the interval, doubling from 5 s. */
function retryDelay(intervalMs: number, failures: number): number {
  return Math.min(intervalMs, 5_000 * 2 ** Math.min(failures, 10))
}

/**
 * Periodic work over many resources, shared between replicas: a module defines a sweep (name,
 * interval, concurrency, what one run does), schedules a resource when it creates it (in the same
 * transaction) and unschedules it when it goes. Each replica claims due rows with a lease, so a
 * resource is run by exactly one replica per interval however many run; a replica that dies
 * releases its resources when the lease lapses.
 */
export function createSweeps(options: SweepsOptions) {
  const { database, log } = options
  const db = database.db
  const pollMs = options.pollMs ?? 1_000
  const stored = (name: string) => (options.scope ? `${options.scope}/${name}` : name)
  const definitions = new Map<string, ReturnType<typeof runner>>()
  let started = false

  function runner(def: SweepDefinition) {
    const leaseMs = def.leaseMs ?? 30_000
    const sweep = stored(def.name)
    // One claim token per replica and sweep: renewal is one statement for everything held.
    const token = randomUUID()
    const inFlight = new Map<string, { abort: AbortController; done: Promise<void> }>()
    let pollTimer: NodeJS.Timeout | undefined
    let renewTimer: NodeJS.Timeout | undefined
    let claiming: Promise<void> | undefined
    let again = false
    let stopping = false

    async function runOne(resourceId: string, consecutiveFailures: number, reason: SweepContext['reason']): Promise<void> {
      const abort = new AbortController()
      let settle!: () => void
      const done = new Promise<void>((resolve) => (settle = resolve))
      inFlight.set(resourceId, { abort, done })
      let nextInMs = def.intervalMs
      let error: string | null = null
      try {
        const outcome = await def.run(resourceId, { signal: abort.signal, consecutiveFailures, reason })
        if (outcome?.nextInMs !== undefined) nextInMs = Math.max(0, outcome.nextInMs)
      } catch (err) {
        error = (err as Error)?.message?.slice(0, 500) ?? 'failed'
        nextInMs = retryDelay(def.intervalMs, consecutiveFailures)
        if (!abort.signal.aborted) log.warn({ sweep: def.name, resourceId, err: { message: error } }, 'sweep run failed')
      }
      try {
        if (stopping) await releaseSweepLease(db, sweep, resourceId, token)
        else await finishSweepLease(db, { sweep, resourceId, token, nextInMs, error })
      } catch (err) {
        // The lease lapses on its own; the resource is run again then.
        log.warn({ sweep: def.name, resourceId, err: { message: (err as Error).message } }, 'settling a sweep run failed')
      } finally {
        inFlight.delete(resourceId)
        settle()
        if (!stopping) wake()
      }
    }

    async function claim(): Promise<void> {
      do {
        again = false
        const free = def.concurrency - inFlight.size
        if (free <= 0 || stopping) return
        let rows: Awaited<ReturnType<typeof claimDueSweepLeases>>
        try {
          rows = await claimDueSweepLeases(db, { sweep, limit: free, leaseMs, owner, token })
        } catch (err) {
          log.warn({ sweep: def.name, err: { message: (err as Error).message } }, 'claiming sweep work failed')
          return
        }
        for (const row of rows) void runOne(row.resourceId, row.consecutiveFailures, 'due')
        // A full claim may have left more due rows behind: look again once a slot frees.
      } while (again)
    }

    function wake(): void {
      if (!started || stopping) return
      if (claiming) {
        again = true
        return
      }
      claiming = claim().finally(() => (claiming = undefined))
    }

    async function renew(): Promise<void> {
      const held = [...inFlight.keys()]
      if (held.length === 0) return
      try {
        const kept = new Set(await renewSweepLeases(db, { sweep, token, resourceIds: held, leaseMs }))
        for (const id of held) {
          // Lost (this replica stalled past its lease): another may run it now, so this run stops.
          if (!kept.has(id)) inFlight.get(id)?.abort.abort(new Error('sweep lease lost'))
        }
      } catch (err) {
        log.warn({ sweep: def.name, err: { message: (err as Error).message } }, 'renewing sweep leases failed')
      }
    }

    return {
      def,
      start() {
        stopping = false
        pollTimer = setInterval(wake, Math.min(pollMs, def.intervalMs))
        renewTimer = setInterval(() => void renew(), Math.max(50, Math.floor(leaseMs / 3)))
        pollTimer.unref()
        renewTimer.unref()
        wake()
      },
      wake,
      async runNow(resourceId: string, waitMs: number): Promise<'ran' | 'waited' | 'unknown'> {
        const deadline = Date.now() + waitMs
        let waitedForLocal = false
        for (;;) {
          const running = inFlight.get(resourceId)
          if (running) {
            // A run already in flight here began before this ask and may have read the
            // resource as it was before (say, before a credential swap): let it finish, then run.
            if (waitedForLocal) return 'waited'
            await running.done
            waitedForLocal = true
            continue
          }
          const [row] = await claimDueSweepLeases(db, { sweep, limit: 1, leaseMs, owner, token, resourceId })
          if (row) {
            await runOne(row.resourceId, row.consecutiveFailures, 'asked')
            return 'ran'
          }
          const held = await sweepLeaseHeld(db, sweep, resourceId)
          if (held === null) return 'unknown'
          // Another replica is running it: its answer is as fresh as ours would be.
          if (Date.now() > deadline) return 'waited'
          await new Promise((resolve) => setTimeout(resolve, 200))
          if ((await sweepLeaseHeld(db, sweep, resourceId)) === false) return 'waited'
        }
      },
      async stop() {
        stopping = true
        clearInterval(pollTimer)
        clearInterval(renewTimer)
        for (const { abort } of inFlight.values()) abort.abort(new Error('replica stopping'))
        const pending = [...inFlight.values()].map((r) => r.done)
        await Promise.race([Promise.all(pending), new Promise((resolve) => setTimeout(resolve, 5_000).unref())])
        await claiming
      },
    }
  }

  return {
    /** Declares a sweep while the app is built; runs start with `start()`. */
    define(def: SweepDefinition): void {
      if (definitions.has(def.name)) throw new Error(`sweep ${def.name} defined twice`)
      if (!(def.intervalMs > 0) || !(def.concurrency >= 1)) throw new Error(`sweep ${def.name}: interval and concurrency must be positive`)
      const r = runner(def)
      definitions.set(def.name, r)
      if (started) r.start()
    },
    /** Makes a resource part of a sweep (due after `dueInMs`, now by default). Use the transaction that creates the resource. */
    async schedule(executor: Executor, sweep: string, resourceId: string, opts: { dueInMs?: number } = {}): Promise<void> {
      await upsertSweepLease(executor, { sweep: stored(sweep), resourceId, dueInMs: opts.dueInMs ?? 0 })
    },
    async unschedule(executor: Executor, sweep: string, resourceId: string): Promise<void> {
      await deleteSweepLease(executor, stored(sweep), resourceId)
    },
    /** Looks for due work now (after a commit that scheduled some); other replicas find it on their next poll. */
    wake(sweep: string): void {
      definitions.get(sweep)?.wake()
    },
    /**
     * Runs one resource now on this replica, or waits for the run another replica is doing
     * (up to `waitMs`, default 30 s). `unknown` when the resource is not part of the sweep.
     */
    runNow(sweep: string, resourceId: string, opts: { waitMs?: number } = {}): Promise<'ran' | 'waited' | 'unknown'> {
      const r = definitions.get(sweep)
      if (!r) throw new Error(`no sweep ${sweep}`)
      return r.runNow(resourceId, opts.waitMs ?? 30_000)
    },
    start(): void {
      started = true
      for (const r of definitions.values()) r.start()
    },
    async stop(): Promise<void> {
      started = false
      await Promise.all([...definitions.values()].map((r) => r.stop()))
    },
  }
}

export type Sweeps = ReturnType<typeof createSweeps>
