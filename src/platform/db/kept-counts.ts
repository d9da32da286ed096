import { type ChangeFeed, createKept } from './changes.js'

/**
 * List totals and facet counts kept in this process until their scope changes (a tenant's
 * clusters, say): counting every matching row is most of what a list page costs, and a dashboard
 * asks for the same counts page after page.
 *
 * Built on the change feed (changes.ts): a count is marked before it starts, so one that raced a
 * change is never served once the change is heard; callers of one key while it is counted share
 * that count; a failed count is not kept; while the feed is not listening nothing is kept. A write
 * through this process calls `forget` after its commit, so the writer reads its own change at once;
 * other processes hear of it on commit through the scope's trigger.
 */
export interface KeptCounts {
  /** What `count` answers for `key` within `scope`, counted again only when the scope changed since. */
  get<T>(scope: string, key: string, count: () => Promise<T>): Promise<T>
  /** This process changed rows of the scope (and committed): nothing counted before is served again. */
  forget(scope: string): void
}

export function createKeptCounts(feed: ChangeFeed, options: { max?: number } = {}): KeptCounts {
  const kept = createKept<unknown>(feed, { max: options.max ?? 5_000 })
  return {
    get: async <T>(scope: string, key: string, count: () => Promise<T>) =>
      (await kept.get(`${scope}\u0000${key}`, async () => ({ value: await count(), scopes: [scope] }))) as T,
    forget: (scope) => feed.changed(scope),
  }
}
