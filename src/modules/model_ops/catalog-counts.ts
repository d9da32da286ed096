import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import type { DatabaseHandle } from '../../platform/db/client.js'
import { listen, type Listener } from '../../platform/db/listen.js'

export interface CatalogCounts {
  /**
   * What `count` answers for a key of the tenant (a list's total, a filter's facets), counted again
   * only when the tenant's models changed since it was last counted. Concurrent callers of one key
   * share one count.
   */
  get<T>(tenantId: string, key: string, count: () => Promise<T>): Promise<T>
  /** This process changed the tenant's models: forget its counts now, before the notification arrives. */
  forget(tenantId: string): void
  start(): Promise<void>
  stop(): Promise<void>
}

/** The NOTIFY channel the `models` trigger (migration models_changed_notify) sends tenant ids on. */
export const MODELS_CHANGED_CHANNEL = 'models_changed'

interface Entry {
  stamp: string
  value: Promise<unknown>
}

/**
 * Totals and facet counts of the model catalog, kept in this process until a model of the tenant
 * changes.
 *
 * Counting every matching model is most of what a catalog page costs, and facets are seven grouped
 * scans; a dashboard asks for the same ones on every page it shows. A trigger on `models` NOTIFYs
 * the tenant id on commit of every change that could move a count (a model added or removed, a
 * filtered or searched column changed), whoever wrote it, and every process forgets that tenant's
 * counts when it hears it. A count is stamped with the tenant's generation read before it started,
 * so one that raced a change is never served after the change is heard. Writes through this
 * process forget at once (after their commit), so a caller reads its own change on the same
 * replica; another replica hears of it on commit. While the listening connection is down nothing is
 * kept, and everything is dropped when it comes back.
 */
export function createCatalogCounts(options: { database: DatabaseHandle; log: Logger; maxEntries?: number }): CatalogCounts {
  const { database, log } = options
  const entries = new LRUCache<string, Entry>({ max: options.maxEntries ?? 5_000 })
  const generations = new Map<string, number>()
  let epoch = 0
  let listening = false
  let listener: Listener | undefined

  const stampOf = (tenantId: string) => `${epoch}:${generations.get(tenantId) ?? 0}`

  function forget(tenantId: string): void {
    generations.set(tenantId, (generations.get(tenantId) ?? 0) + 1)
  }

  return {
    forget,
    async get<T>(tenantId: string, key: string, count: () => Promise<T>): Promise<T> {
      if (!listening) return count()
      const cacheKey = `${tenantId}\u0000${key}`
      const stamp = stampOf(tenantId)
      const known = entries.get(cacheKey)
      if (known && known.stamp === stamp) return known.value as Promise<T>
      const value = count()
      const entry: Entry = { stamp, value }
      entries.set(cacheKey, entry)
      // A failed count is not kept: the next caller counts again.
      value.catch(() => {
        if (entries.get(cacheKey) === entry) entries.delete(cacheKey)
      })
      return value
    },
    async start() {
      listener = await listen(database, {
        channel: MODELS_CHANGED_CHANNEL,
        name: 'model-counts',
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
      entries.clear()
      await listener?.close()
      listener = undefined
    },
  }
}
