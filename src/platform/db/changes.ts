import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import type { DatabaseHandle } from './client.js'
import { listen, type Listener } from './listen.js'

/**
 * The NOTIFY channel the `modelplane_notify_change` triggers (migration `changes_notify`) send
 * scopes on: `cluster:<id>`, `model:<id>`, `version:<id>`, `runtimes:<tenant id>|global`,
 * `clusters:<tenant id>`, `models:<tenant id>`.
 */
export const CHANGES_CHANNEL = 'modelplane_changes'

/** The scopes the triggers send, by the rows behind them. */
export const changeScope = {
  /** The cluster's row, its nodes and the serving settings of its tenant for it. */
  cluster: (clusterId: string) => `cluster:${clusterId}`,
  /** The model's row and its versions' rows. */
  model: (modelId: string) => `model:${modelId}`,
  /** A version's files. */
  version: (versionId: string) => `version:${versionId}`,
  /** A tenant's own runtimes, or (null) the shared ones. */
  runtimes: (tenantId: string | null) => `runtimes:${tenantId ?? 'global'}`,
  /**
   * What a tenant's cluster list counts: a cluster added or removed, or a column a list filters on
   * changed (status, platform, device types, labels, name). Syncs that change none of them are silent.
   */
  clusters: (tenantId: string) => `clusters:${tenantId}`,
  /** What a tenant's model catalog counts (totals, facets): a model added or removed, or a column the catalog filters or searches on written. */
  models: (tenantId: string) => `models:${tenantId}`,
}

/** How many changed scopes are remembered before the oldest are forgotten (and with them everything kept). */
const MAX_SCOPES = 100_000

/**
 * What changed in the database, as every process hears it: the triggers of migration
 * `changes_notify` NOTIFY a scope on commit of every write to the rows behind it, whoever wrote it.
 * A reader takes a `mark` before it reads, and later asks whether any scope its answer came from
 * changed since: if none did, the answer still holds. While the listening connection is down
 * nothing holds (`mark` is undefined), and nothing from before a reconnect holds after it.
 */
export interface ChangeFeed {
  /** Where the feed stands now; undefined while changes may go unheard (then keep nothing). */
  mark(): number | undefined
  /** True when no change of these scopes was heard since the mark (and the feed was listening throughout). */
  unchangedSince(mark: number, scopes: readonly string[]): boolean
  /** This process wrote to the scope: counted at once, before its notification comes back. */
  changed(scope: string): void
  start(): Promise<void>
  stop(): Promise<void>
}

export function createChangeFeed(options: { database: DatabaseHandle; log: Logger; maxScopes?: number }): ChangeFeed {
  const maxScopes = options.maxScopes ?? MAX_SCOPES
  /** The position of the last change heard, per scope. */
  const last = new Map<string, number>()
  let position = 0
  /** Nothing marked before this position holds: a reconnect or forgotten scopes. */
  let floor = 0
  let listening = false
  let listener: Listener | undefined

  function changed(scope: string): void {
    position++
    if (last.size >= maxScopes && !last.has(scope)) {
      last.clear()
      floor = position
    }
    last.delete(scope)
    last.set(scope, position)
  }

  return {
    mark: () => (listening ? position : undefined),
    unchangedSince(mark, scopes) {
      if (!listening || mark < floor) return false
      for (const scope of scopes) if ((last.get(scope) ?? 0) > mark) return false
      return true
    },
    changed,
    async start() {
      listener = await listen(options.database, {
        channel: CHANGES_CHANNEL,
        name: 'change-feed',
        log: options.log,
        onNotify: (scope) => changed(scope),
        onConnect: () => {
          position++
          floor = position
          last.clear()
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

/** What a computation answered and the scopes it read: it holds until one of them changes. */
export interface KeptAnswer<T> {
  value: T
  scopes: readonly string[]
}

export interface Kept<T> {
  /**
   * The value kept for key if none of the scopes it was computed from changed since, else computes
   * it again. Callers of one key while a computation runs share it, unless a change was heard after
   * it began. A failed computation is not kept.
   */
  get(key: string, compute: () => Promise<KeptAnswer<T>>): Promise<T>
}

interface Entry<T> {
  mark: number
  answer: Promise<KeptAnswer<T>>
  scopes?: readonly string[]
}

/** Answers of a pure computation over database rows, kept in this process while the rows stay as they were. */
export function createKept<T>(feed: ChangeFeed, options: { max: number }): Kept<T> {
  const entries = new LRUCache<string, Entry<T>>({ max: options.max })
  return {
    async get(key, compute) {
      const known = entries.get(key)
      if (known) {
        // Finished: valid while its scopes are unchanged. Running: joined only if nothing at all was heard since it began.
        const valid = known.scopes ? feed.unchangedSince(known.mark, known.scopes) : feed.mark() === known.mark
        if (valid) return (await known.answer).value
      }
      const mark = feed.mark()
      if (mark === undefined) return (await compute()).value
      const entry: Entry<T> = { mark, answer: compute() }
      entries.set(key, entry)
      try {
        const answer = await entry.answer
        entry.scopes = answer.scopes
        return answer.value
      } catch (err) {
        if (entries.get(key) === entry) entries.delete(key)
        throw err
      }
    },
  }
}
