import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import type { DatabaseHandle } from '../../platform/db/client.js'
import { listen, type Listener } from '../../platform/db/listen.js'

/** What a count found: `n` matches, or (exact false) at least `n`, where counting stopped. */
export interface CountedTotal {
  n: number
  exact: boolean
}

interface Entry extends CountedTotal {
  stamp: string
}

export interface ListTotals {
  /**
   * The total for a filter of the tenant, counted by `count` (which stops past `cap`) unless a
   * count of the same filter is known since the tenant's users last changed. `total` is at most
   * `cap` when not exact, as a fresh count would say.
   */
  get(tenantId: string, filterKey: string, cap: number, count: () => Promise<number>): Promise<{ total: number; totalExact: boolean }>
  /** This process changed the tenant's users: forget its totals now, before the notification arrives. */
  forget(tenantId: string): void
  start(): Promise<void>
  stop(): Promise<void>
}

const CHANNEL = 'users_changed'

/**
 * Totals of user listings, kept in this process until a user of the tenant changes.
 *
 * Counting the matches of a filter is most of what a list page costs (a substring search reads
 * every matching row); a dashboard asks for the same total on every page it shows. A trigger on
 * `users` (migration 0008) NOTIFYs the tenant id on commit of every change to who is listed, by any
 * process or tool, and every process forgets that tenant's totals when it hears it. Each total is
 * stamped with the tenant's generation read before its count started, so a count that raced a
 * change is never served afterwards. While the listening connection is down (from the moment this
 * process sees it drop) nothing is cached, and everything is forgotten when it comes back. Writes through this process forget at once, so a
 * caller reads its own change on the same replica; another replica hears of it on commit.
 */
export function createListTotals(options: { database: DatabaseHandle; log: Logger; maxEntries?: number }): ListTotals {
  const { database, log } = options
  const entries = new LRUCache<string, Entry>({ max: options.maxEntries ?? 10_000 })
  const generations = new Map<string, number>()
  // Moves on every reconnect, so nothing stamped before a gap in notifications is served after it.
  let epoch = 0
  let listening = false
  let listener: Listener | undefined

  const stampOf = (tenantId: string) => `${epoch}:${generations.get(tenantId) ?? 0}`

  function forget(tenantId: string): void {
    generations.set(tenantId, (generations.get(tenantId) ?? 0) + 1)
  }

  return {
    forget,
    async get(tenantId, filterKey, cap, count) {
      const key = `${tenantId}\u0000${filterKey}`
      const stamp = stampOf(tenantId)
      const known = listening ? entries.get(key) : undefined
      if (known && known.stamp === stamp) {
        if (known.exact) return { total: known.n, totalExact: true }
        if (known.n > cap) return { total: cap, totalExact: false }
      }
      const counted = await count()
      const exact = counted <= cap
      if (listening) entries.set(key, { stamp, n: counted, exact })
      return exact ? { total: counted, totalExact: true } : { total: cap, totalExact: false }
    },
    async start() {
      listener = await listen(database, {
        channel: CHANNEL,
        name: 'user-totals',
        log,
        onNotify: (tenantId) => forget(tenantId),
        onConnect: () => {
          epoch++
          entries.clear()
          listening = true
        },
        onDisconnect: () => {
          listening = false
        },
      })
    },
    async stop() {
      listening = false
      await listener?.close()
      listener = undefined
    },
  }
}
