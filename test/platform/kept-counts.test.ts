import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ChangeFeed, CHANGES_CHANNEL, createChangeFeed } from '../../src/platform/db/changes.js'
import { type DatabaseHandle, openDatabase } from '../../src/platform/db/client.js'
import { createKeptCounts } from '../../src/platform/db/kept-counts.js'
import { TEST_DATABASE_URL } from '../helpers/env.js'
import { waitFor } from '../helpers/wait.js'

/** List totals kept per process until their scope changes, whoever changed it. */

const log = pino({ level: 'silent' })
let database: DatabaseHandle
let feed: ChangeFeed

beforeAll(async () => {
  database = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 2, log })
  feed = createChangeFeed({ database, log })
  await feed.start()
})
afterAll(async () => {
  await feed?.stop()
  await database?.close()
})

/** A count whose answer and progress the test controls. */
function counter() {
  let calls = 0
  const pending: Array<(n: number) => void> = []
  return {
    get calls() {
      return calls
    },
    count: () => {
      calls++
      return new Promise<number>((resolve) => pending.push(resolve))
    },
    answer: (n: number) => pending.shift()!(n),
  }
}

/** What another replica's commit sends: the scope, on the change feed's channel. */
async function notify(scope: string) {
  await database.pool!.query('select pg_notify($1, $2)', [CHANGES_CHANNEL, scope])
}

describe('kept counts', () => {
  it('callers of one key share one count, and later callers get it without counting', async () => {
    const counts = createKeptCounts(feed)
    const scope = `clusters:${randomUUID()}`
    const c = counter()
    const first = counts.get(scope, 'all', c.count)
    const second = counts.get(scope, 'all', c.count)
    await waitFor(() => c.calls === 1)
    c.answer(7)
    expect(await Promise.all([first, second])).toEqual([7, 7])
    expect(await counts.get(scope, 'all', c.count)).toBe(7)
    expect(c.calls).toBe(1)
  })

  it('a change heard from the database makes the next caller count again; other scopes keep theirs', async () => {
    const counts = createKeptCounts(feed)
    const scope = `clusters:${randomUUID()}`
    const other = `clusters:${randomUUID()}`
    let n = 3
    expect(await counts.get(scope, 'all', async () => n)).toBe(3)
    expect(await counts.get(other, 'all', async () => 10)).toBe(10)
    n = 4
    await notify(scope)
    await waitFor(async () => (await counts.get(scope, 'all', async () => n)) === 4)
    expect(await counts.get(other, 'all', async () => 11)).toBe(10)
  })

  it('a count that raced a change is not served once the change is heard', async () => {
    const counts = createKeptCounts(feed)
    const scope = `clusters:${randomUUID()}`
    const c = counter()
    const raced = counts.get(scope, 'all', c.count)
    await waitFor(() => c.calls === 1)
    // The change commits while the count runs (which may have read the rows before it).
    counts.forget(scope)
    c.answer(1)
    expect(await raced).toBe(1)
    const next = counts.get(scope, 'all', c.count)
    await waitFor(() => c.calls === 2)
    c.answer(2)
    expect(await next).toBe(2)
  })

  it('this process forgets at once on its own write; a failed count is not kept', async () => {
    const counts = createKeptCounts(feed)
    const scope = `clusters:${randomUUID()}`
    expect(await counts.get(scope, 'cuda', async () => 5)).toBe(5)
    counts.forget(scope)
    expect(await counts.get(scope, 'cuda', async () => 6)).toBe(6)
    await expect(counts.get(scope, 'rocm', async () => Promise.reject(new Error('connection lost')))).rejects.toThrow('connection lost')
    expect(await counts.get(scope, 'rocm', async () => 2)).toBe(2)
  })
})
