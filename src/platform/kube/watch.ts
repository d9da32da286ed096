import type { KubeClient, WatchEvent } from './client.js'
import { type KubeError, toKubeError } from './errors.js'

interface Meta {
  metadata?: { resourceVersion?: string }
}

/** Where a watch reads from: a list (the full state and its version) and a stream of changes from a version. */
export interface WatchSource<T> {
  list(signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string }>
  watch(resourceVersion: string, signal: AbortSignal): AsyncIterable<WatchEvent<T>>
}

export interface WatchHandlers<T> {
  /** The full state, at the start and again after every relist (the events in between were lost). */
  onSync(items: T[]): void | Promise<void>
  onEvent(event: WatchEvent<T> & { type: 'ADDED' | 'MODIFIED' | 'DELETED' }): void | Promise<void>
  /** A failed list or stream, before the pause and retry; the loop goes on. */
  onError?(err: KubeError): void
}

export interface WatchLoopOptions {
  /** pause after a failure, doubled up to maxBackoffMs; default 1000 */
  backoffMs?: number
  maxBackoffMs?: number
}

/**
 * Keeps a consumer in step with a collection until `signal` aborts: list, then watch from the
 * list's resourceVersion; a stream that ends (the server's timeout) resumes from the last version
 * seen (bookmarks move it too); a `410 Gone` — the version fell out of the server's history — means
 * events were missed, so it lists again. Resolves when the signal aborts.
 */
export async function runWatch<T extends Meta>(
  source: WatchSource<T>,
  handlers: WatchHandlers<T>,
  signal: AbortSignal,
  options: WatchLoopOptions = {},
): Promise<void> {
  const firstBackoff = options.backoffMs ?? 1_000
  const maxBackoff = options.maxBackoffMs ?? 30_000
  let backoff = firstBackoff
  let version: string | undefined

  while (!signal.aborted) {
    try {
      if (version === undefined) {
        const listed = await source.list(signal)
        await handlers.onSync(listed.items)
        version = listed.resourceVersion
      }
      for await (const event of source.watch(version, signal)) {
        if (event.type === 'ERROR') {
          if (statusCode(event.object) === 410) version = undefined
          else throw toKubeError({ code: statusCode(event.object) ?? 500, body: event.object })
          break
        }
        const seen = event.object?.metadata?.resourceVersion
        if (event.type !== 'BOOKMARK') await handlers.onEvent(event as Parameters<WatchHandlers<T>['onEvent']>[0])
        if (seen) version = seen
        backoff = firstBackoff
      }
    } catch (err) {
      if (signal.aborted) return
      const error = toKubeError(err)
      if (error.httpStatus === 410) {
        version = undefined
        continue
      }
      handlers.onError?.(error)
      await pause(backoff, signal)
      backoff = Math.min(backoff * 2, maxBackoff)
    }
  }
}

function statusCode(object: unknown): number | undefined {
  const code = (object as { code?: unknown } | null)?.code
  return typeof code === 'number' ? code : undefined
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

/**
 * A WatchSource over a collection path of a cluster (`/api/v1/namespaces/x/pods`), optionally
 * narrowed by a label selector. The list is read page by page; the stream asks for bookmarks and
 * ends after `timeoutSeconds` so that a dead connection is noticed.
 */
export function pathWatchSource<T>(
  client: Pick<KubeClient, 'getJson' | 'watchJson'>,
  collectionPath: string,
  options: { labelSelector?: string; pageSize?: number; timeoutSeconds?: number } = {},
): WatchSource<T> {
  const base = new URLSearchParams()
  if (options.labelSelector) base.set('labelSelector', options.labelSelector)
  return {
    async list(signal) {
      const items: T[] = []
      let token: string | undefined
      let resourceVersion = ''
      do {
        const q = new URLSearchParams(base)
        q.set('limit', String(options.pageSize ?? 500))
        if (token) q.set('continue', token)
        const page = await client.getJson<{ items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }>(
          `${collectionPath}?${q}`,
          signal,
        )
        items.push(...(page.items ?? []))
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion
        token = page.metadata?.continue || undefined
      } while (token)
      return { items, resourceVersion }
    },
    watch(resourceVersion, signal) {
      const q = new URLSearchParams(base)
      q.set('watch', 'true')
      q.set('allowWatchBookmarks', 'true')
      q.set('resourceVersion', resourceVersion)
      q.set('timeoutSeconds', String(options.timeoutSeconds ?? 300))
      return client.watchJson<T>(`${collectionPath}?${q}`, signal)
    },
  }
}
