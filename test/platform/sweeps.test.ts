import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DatabaseHandle, openDatabase } from '../../src/platform/db/client.js'
import { createSweeps, type SweepDefinition } from '../../src/platform/sweeps/index.js'
import { tempDir } from '../helpers/app.js'
import { TEST_DATABASE_URL } from '../helpers/env.js'
import { waitFor } from '../helpers/wait.js'

const log = pino({ level: 'silent' })
let databases: DatabaseHandle[] = []

async function replica(def: Omit<SweepDefinition, 'name'> & { name: string }, pollMs = 100) {
  const database = await openDatabase({ url: TEST_DATABASE_URL, dataDir: tempDir(), poolMax: 3, log })
  databases.push(database)
  const sweeps = createSweeps({ database, log, pollMs })
  sweeps.define(def)
  return { database, sweeps }
}

beforeAll(() => {
  databases = []
})
afterAll(async () => {
  for (const d of databases) await d.close()
})

describe('sweeps shared by replicas', () => {
  it('runs each resource once per interval however many replicas share the sweep', async () => {
    const name = `test.sync.${randomUUID().slice(0, 8)}`
    const runs = new Map<string, number[]>()
    const byReplica = [0, 0]
    const def = (index: number): SweepDefinition => ({
      name,
      intervalMs: 1_500,
      concurrency: 4,
      async run(id) {
        byReplica[index]!++
        const list = runs.get(id) ?? []
        list.push(Date.now())
        runs.set(id, list)
        await new Promise((resolve) => setTimeout(resolve, 10))
      },
    })
    const a = await replica(def(0))
    const b = await replica(def(1))
    const ids = Array.from({ length: 50 }, () => randomUUID())
    for (const id of ids) await a.sweeps.schedule(a.database.db, name, id)
    a.sweeps.start()
    b.sweeps.start()
    // Every resource is run once straight away, then again an interval after its run finished.
    await waitFor(() => ids.every((id) => (runs.get(id)?.length ?? 0) >= 2), 20_000)
    await Promise.all([a.sweeps.stop(), b.sweeps.stop()])

    for (const id of ids) {
      const times = runs.get(id)!
      for (let i = 1; i < times.length; i++) {
        // Never twice within an interval: no replica ran it while another held it or before it was due.
        expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(1_400)
      }
    }
    // Both replicas took a share of the work.
    expect(byReplica[0]).toBeGreaterThan(0)
    expect(byReplica[1]).toBeGreaterThan(0)
  })

  it('hands a dead replica’s resources to another when its lease lapses', async () => {
    const name = `test.lease.${randomUUID().slice(0, 8)}`
    const ranOn: string[] = []
    let hang!: () => void
    const stuck = new Promise<void>((resolve) => (hang = resolve))
    const a = await replica({
      name,
      intervalMs: 60_000,
      concurrency: 1,
      leaseMs: 600,
      async run() {
        ranOn.push('a')
        // Stands for a replica that froze: it never renews nor finishes (renewal is stopped below).
        await stuck
      },
    })
    const id = randomUUID()
    await a.sweeps.schedule(a.database.db, name, id)
    a.sweeps.start()
    await waitFor(() => ranOn.length === 1)
    // Freeze a: its renewal stops with the database gone from under it.
    await a.database.close()
    databases = databases.filter((d) => d !== a.database)
    const b = await replica({ name, intervalMs: 60_000, concurrency: 1, leaseMs: 600, run: async () => void ranOn.push('b') })
    b.sweeps.start()
    await waitFor(() => ranOn.includes('b'), 10_000)
    expect(ranOn).toEqual(['a', 'b'])
    hang()
    await Promise.all([a.sweeps.stop(), b.sweeps.stop()])
  })

  it('never runs more resources at once than its concurrency, and still runs them all', async () => {
    const name = `test.bounded.${randomUUID().slice(0, 8)}`
    const started: string[] = []
    const waiting: Array<() => void> = []
    let inFlight = 0
    let most = 0
    const { database, sweeps } = await replica({
      name,
      intervalMs: 3_600_000,
      concurrency: 3,
      async run(id) {
        started.push(id)
        most = Math.max(most, ++inFlight)
        // Held until the test lets it go: slow clusters, each holding a slot.
        await new Promise<void>((resolve) => waiting.push(resolve))
        inFlight--
      },
    })
    const ids = Array.from({ length: 10 }, () => randomUUID())
    for (const id of ids) await sweeps.schedule(database.db, name, id)
    sweeps.start()
    // Let the runs finish one at a time; each freed slot goes to the next due resource, never more.
    for (let finished = 0; finished < ids.length; finished++) {
      await waitFor(() => waiting.length > 0 && started.length >= Math.min(ids.length, finished + 3), 10_000, `run ${finished + 1} did not start`)
      expect(inFlight).toBeLessThanOrEqual(3)
      waiting.shift()!()
    }
    await waitFor(() => inFlight === 0)
    await sweeps.stop()
    expect(new Set(started)).toEqual(new Set(ids))
    expect(started).toHaveLength(ids.length)
    expect(most).toBe(3)
  })

  it('runs a resource at once when asked, and retries a failed run before the interval', async () => {
    const name = `test.now.${randomUUID().slice(0, 8)}`
    let calls = 0
    const { database, sweeps } = await replica({
      name,
      intervalMs: 3_600_000,
      concurrency: 2,
      async run(_id, ctx) {
        calls++
        if (ctx.reason === 'asked') return
        throw new Error('cluster unreachable')
      },
    })
    const id = randomUUID()
    await sweeps.schedule(database.db, name, id, { dueInMs: 3_600_000 })
    sweeps.start()
    expect(await sweeps.runNow(name, id)).toBe('ran')
    expect(calls).toBe(1)
    expect(await sweeps.runNow(name, randomUUID())).toBe('unknown')
    // A run that throws comes back within seconds, not after the hour-long interval.
    await sweeps.schedule(database.db, name, id)
    sweeps.wake(name)
    await waitFor(() => calls === 2)
    await waitFor(async () => {
      const { rows } = await database.pool!.query(
        `select extract(epoch from due_at - now()) as due_in, consecutive_failures, last_error from sweep_leases where sweep = $1`,
        [name],
      )
      return rows[0]?.consecutive_failures === 1
    })
    const { rows } = await database.pool!.query(`select extract(epoch from due_at - now())::float as due_in, last_error from sweep_leases where sweep = $1`, [name])
    expect(rows[0].due_in).toBeLessThan(10)
    expect(rows[0].last_error).toBe('cluster unreachable')
    // Unscheduled: a later due time never runs it.
    await sweeps.unschedule(database.db, name, id)
    expect(await sweeps.runNow(name, id)).toBe('unknown')
    await sweeps.stop()
  })
  it('a refresh asked while a run is in flight waits for it, then runs again with what is true now', async () => {
    const name = `test.inflight.${randomUUID().slice(0, 8)}`
    const seen: string[] = []
    let state = 'old credentials'
    let inFlight = false
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const { database, sweeps } = await replica({
      name,
      intervalMs: 3_600_000,
      concurrency: 1,
      async run(_id, ctx) {
        const read = state
        if (ctx.reason === 'due') {
          inFlight = true
          await gate
        }
        seen.push(`${ctx.reason}: ${read}`)
      },
    })
    const id = randomUUID()
    await sweeps.schedule(database.db, name, id)
    sweeps.start()
    await waitFor(() => inFlight)
    state = 'new credentials'
    const asked = sweeps.runNow(name, id)
    release()
    expect(await asked).toBe('ran')
    expect(seen).toEqual(['due: old credentials', 'asked: new credentials'])
    await sweeps.stop()
  })
})
