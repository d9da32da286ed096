import { type ResourceType } from './catalog.js'
import { type FieldMatcher, type LabelMatcher, type Labels, parseFieldSelector, parseLabelSelector, selectableValues } from './selectors.js'
import { KubeStatusError, badRequest } from './status.js'
import { type ObjectStore, type StoreChange } from './store.js'

/**
 * Watch streams (`?watch=true`) as kube-apiserver's watch cache serves them: a bounded history of
 * one cluster's changes, newline-delimited `{type, object}` events from a resourceVersion on
 * (without one, or with "0", the current objects first as ADDED), label and field selectors with
 * the API server's transitions (an object that stops matching is DELETED to that watcher, one that
 * starts matching is ADDED), bookmarks when asked for, and the stream's end after
 * `timeoutSeconds`. A resourceVersion older than the history answers an ERROR event carrying a
 * 410 `Expired` Status, after which a client lists again.
 */

/** Where a streamed answer writes; `destroy` drops the connection without an orderly end. */
export interface StreamSink {
  write(chunk: string): void
  end(): void
  destroy(): void
}

/** An answer that goes on after its head; `start` returns the function that stops it (the client went away). */
export interface ResponseStream {
  start(sink: StreamSink): () => void
}

export interface WatchHubOptions {
  /** Changes kept for watches that resume from a resourceVersion; default 1000. */
  historySize?: number
  /** How often a watch that allows bookmarks gets one; default 60 s. */
  bookmarkMs?: number
}

interface ChangeRecord {
  rv: number
  type: StoreChange['type']
  /** group/resource */
  resource: string
  namespace: string
  json: string
  labels: Labels
  fields: Record<string, string>
  /** For MODIFIED: what the object was, for selector transitions. */
  before?: { labels: Labels; fields: Record<string, string> }
}

interface Watcher {
  offer(record: ChangeRecord): void
  sink: StreamSink
  stop(): void
}

/** kube-apiserver picks a random timeout between the minimum request timeout and twice it; we take the minimum. */
const DEFAULT_TIMEOUT_SECONDS = 1800
const MAX_TIMEOUT_SECONDS = 24 * 3600

const resourceId = (type: ResourceType) => `${type.group}/${type.resource}`

function expired(from: number, oldest: number): KubeStatusError {
  return new KubeStatusError(410, 'Expired', `too old resource version: ${from} (${oldest})`)
}

function nonNegativeInteger(query: URLSearchParams, name: string): number | undefined {
  const text = query.get(name)
  if (text === null || text === '') return undefined
  if (!/^\d{1,12}$/.test(text)) throw badRequest(`${name}: Invalid value: ${JSON.stringify(text.slice(0, 32))}: must be a non-negative integer`)
  return Number(text)
}

export function createWatchHub(store: ObjectStore, options: WatchHubOptions = {}) {
  const historySize = Math.max(1, options.historySize ?? 1000)
  const bookmarkMs = options.bookmarkMs ?? 60_000
  const history: ChangeRecord[] = []
  /** Every change after this revision is in `history` (or pending). */
  let evictedUpTo = Number(store.revision())
  let flushedUpTo = evictedUpTo
  let pending: ChangeRecord[] = []
  const watchers = new Set<Watcher>()

  function record(change: StoreChange): ChangeRecord {
    const obj = change.object
    const rec: ChangeRecord = {
      rv: Number(obj.metadata.resourceVersion),
      type: change.type,
      resource: resourceId(change.resource),
      namespace: obj.metadata.namespace ?? '',
      json: JSON.stringify(obj),
      labels: obj.metadata.labels,
      fields: selectableValues(obj, change.resource.selectableFields),
    }
    if (change.previous) {
      rec.before = { labels: change.previous.metadata.labels, fields: selectableValues(change.previous, change.resource.selectableFields) }
    }
    return rec
  }

  // Changes are delivered in resourceVersion order once the current write (and whatever listeners
  // wrote in answer to it) is done, so a controller reacting inside a write cannot reorder them.
  function flush() {
    const batch = pending.sort((a, b) => a.rv - b.rv)
    pending = []
    for (const rec of batch) {
      history.push(rec)
      if (history.length > historySize) evictedUpTo = history.shift()!.rv
      flushedUpTo = Math.max(flushedUpTo, rec.rv)
      for (const w of watchers) w.offer(rec)
    }
  }

  store.subscribe((change) => {
    pending.push(record(change))
    if (pending.length === 1) queueMicrotask(flush)
  })

  function serve(type: ResourceType, namespace: string | undefined, query: URLSearchParams) {
    const labels: LabelMatcher | undefined = parseLabelSelector(query.get('labelSelector') ?? undefined)
    const fields: FieldMatcher | undefined = parseFieldSelector(query.get('fieldSelector') ?? undefined, type.selectableFields)
    const rvText = query.get('resourceVersion') ?? ''
    if (rvText !== '' && !/^\d{1,18}$/.test(rvText)) {
      throw badRequest(`resourceVersion: Invalid value: ${JSON.stringify(rvText.slice(0, 32))}: must be a resource version the server gave`)
    }
    const timeoutSeconds = Math.min(nonNegativeInteger(query, 'timeoutSeconds') ?? DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)
    const bookmarks = ['true', '1'].includes(query.get('allowWatchBookmarks') ?? '')
    const id = resourceId(type)
    const matches = (l: Labels, f: Record<string, string>) => (!labels || labels(l)) && (!fields || fields(f))

    const stream: ResponseStream = {
      start(sink) {
        const send = (eventType: string, json: string) => sink.write(`{"type":"${eventType}","object":${json}}\n`)
        let from: number
        if (rvText === '' || rvText === '0') {
          for (const obj of store.all(type, namespace)) {
            if (matches(obj.metadata.labels, selectableValues(obj, type.selectableFields))) send('ADDED', JSON.stringify(obj))
          }
          from = Number(store.revision())
        } else {
          from = Number(rvText)
          if (from < evictedUpTo) {
            send('ERROR', JSON.stringify(expired(from, evictedUpTo).status))
            sink.end()
            return () => {}
          }
        }

        const offer = (rec: ChangeRecord) => {
          if (rec.rv <= from || rec.resource !== id || (namespace !== undefined && type.namespaced && rec.namespace !== namespace)) return
          const now = matches(rec.labels, rec.fields)
          if (rec.type === 'MODIFIED' && rec.before && (labels || fields)) {
            const before = matches(rec.before.labels, rec.before.fields)
            if (now && !before) send('ADDED', rec.json)
            else if (!now && before) send('DELETED', rec.json)
            else if (now) send('MODIFIED', rec.json)
          } else if (now) send(rec.type, rec.json)
        }
        for (const rec of history) offer(rec)

        const timers: NodeJS.Timeout[] = []
        const watcher: Watcher = {
          offer,
          sink,
          stop() {
            for (const t of timers) clearTimeout(t)
            watchers.delete(watcher)
          },
        }
        watchers.add(watcher)
        const end = setTimeout(() => {
          watcher.stop()
          sink.end()
        }, timeoutSeconds * 1000)
        end.unref()
        timers.push(end)
        if (bookmarks) {
          const tick = setInterval(() => {
            const rv = String(Math.max(from, flushedUpTo))
            send('BOOKMARK', JSON.stringify({ kind: type.kind, apiVersion: type.apiVersion, metadata: { resourceVersion: rv, creationTimestamp: null } }))
          }, bookmarkMs)
          tick.unref()
          timers.push(tick)
        }
        return () => watcher.stop()
      },
    }
    return { code: 200, contentType: 'application/json', body: '', stream }
  }

  return {
    serve,
    /** Forgets the changes so far (a cluster's seed objects): watches from before now answer 410. */
    forget() {
      pending = []
      history.length = 0
      evictedUpTo = Number(store.revision())
      flushedUpTo = evictedUpTo
    },
    /** Drops every open stream's connection (the cluster became unreachable). */
    dropAll() {
      for (const w of [...watchers]) {
        w.stop()
        w.sink.destroy()
      }
    },
    /** Ends every open stream in order. */
    close() {
      for (const w of [...watchers]) {
        w.stop()
        w.sink.end()
      }
    },
    /** Open streams, for tests. */
    open: () => watchers.size,
  }
}

export type WatchHub = ReturnType<typeof createWatchHub>
