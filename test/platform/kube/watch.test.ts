import { describe, expect, it } from 'vitest'
import {
  KubeError,
  pathWatchSource,
  runWatch,
  type WatchEvent,
  type WatchSource,
} from '../../../src/platform/kube/index.js'

interface Pod {
  metadata: { name?: string; resourceVersion?: string }
}

const pod = (name: string, rv: string): Pod => ({ metadata: { name, resourceVersion: rv } })
const ev = (type: WatchEvent['type'], object: unknown) => ({ type, object }) as WatchEvent<Pod>

/**
 * A scripted cluster: each list answers the next listing, each watch plays the next script (events,
 * then an optional error); the loop is stopped once the scripts run out.
 */
function scripted(listings: Array<{ items: Pod[]; resourceVersion: string }>, streams: Array<{ events: WatchEvent<Pod>[]; fail?: Error }>) {
  const controller = new AbortController()
  const calls: string[] = []
  const source: WatchSource<Pod> = {
    async list() {
      calls.push('list')
      return listings.shift() ?? { items: [], resourceVersion: '0' }
    },
    watch(rv) {
      calls.push(`watch@${rv}`)
      const script = streams.shift()
      return (async function* () {
        if (!script) {
          controller.abort()
          return
        }
        yield* script.events
        if (script.fail) throw script.fail
      })()
    },
  }
  return { source, calls, signal: controller.signal }
}

function recorder() {
  const seen: string[] = []
  return {
    seen,
    handlers: {
      onSync: (items: Pod[]) => void seen.push(`sync:${items.map((p) => p.metadata.name).join(',')}`),
      onEvent: (e: WatchEvent<Pod>) => void seen.push(`${e.type}:${e.object.metadata.name}`),
      onError: (e: KubeError) => void seen.push(`error:${e.code}`),
    },
  }
}

describe('runWatch', () => {
  it('lists, then resumes the watch from the last version seen when a stream ends', async () => {
    const { source, calls, signal } = scripted(
      [{ items: [pod('a', '3')], resourceVersion: '4' }],
      [{ events: [ev('ADDED', pod('b', '5')), ev('MODIFIED', pod('a', '6'))] }, { events: [ev('DELETED', pod('b', '7'))] }],
    )
    const { seen, handlers } = recorder()
    await runWatch(source, handlers, signal)
    expect(seen).toEqual(['sync:a', 'ADDED:b', 'MODIFIED:a', 'DELETED:b'])
    expect(calls).toEqual(['list', 'watch@4', 'watch@6', 'watch@7'])
  })

  it('moves its version on bookmarks without reporting them as changes', async () => {
    const { source, calls, signal } = scripted(
      [{ items: [], resourceVersion: '10' }],
      [{ events: [ev('BOOKMARK', { metadata: { resourceVersion: '42' } })] }],
    )
    const { seen, handlers } = recorder()
    await runWatch(source, handlers, signal)
    expect(seen).toEqual(['sync:'])
    expect(calls).toEqual(['list', 'watch@10', 'watch@42'])
  })

  it('lists again after a 410 Gone sent in the stream', async () => {
    const gone = { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version: 4 (90)' }
    const { source, calls, signal } = scripted(
      [
        { items: [pod('a', '3')], resourceVersion: '4' },
        { items: [pod('a', '3'), pod('c', '95')], resourceVersion: '100' },
      ],
      [{ events: [ev('ERROR', gone), ev('ADDED', pod('never', '1'))] }],
    )
    const { seen, handlers } = recorder()
    await runWatch(source, handlers, signal)
    expect(seen).toEqual(['sync:a', 'sync:a,c'])
    expect(calls).toEqual(['list', 'watch@4', 'list', 'watch@100'])
  })

  it('lists again when opening the watch answers 410 Gone', async () => {
    const { source, calls, signal } = scripted(
      [
        { items: [], resourceVersion: '4' },
        { items: [], resourceVersion: '200' },
      ],
      [{ events: [], fail: new KubeError('CLUSTER_ERROR', 'gone', { httpStatus: 410, reason: 'Expired' }) }],
    )
    const { handlers } = recorder()
    await runWatch(source, handlers, signal)
    expect(calls).toEqual(['list', 'watch@4', 'list', 'watch@200'])
  })

  it('reports a broken stream, pauses and resumes from where it was', async () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    const { source, calls, signal } = scripted(
      [{ items: [], resourceVersion: '4' }],
      [{ events: [ev('ADDED', pod('b', '5'))], fail: reset }, { events: [] }],
    )
    const { seen, handlers } = recorder()
    await runWatch(source, handlers, signal, { backoffMs: 1 })
    expect(seen).toEqual(['sync:', 'ADDED:b', 'error:CLUSTER_UNREACHABLE'])
    expect(calls).toEqual(['list', 'watch@4', 'watch@5', 'watch@5'])
  })
})

describe('pathWatchSource', () => {
  it('reads a list page by page and watches from its version with bookmarks', async () => {
    const asked: string[] = []
    const pages = [
      { items: [pod('a', '1')], metadata: { resourceVersion: '9', continue: 'tok' } },
      { items: [pod('b', '2')], metadata: { resourceVersion: '9' } },
    ]
    const client = {
      getJson: async <T,>(path: string) => {
        asked.push(path)
        return pages.shift() as T
      },
      watchJson: <T,>(path: string) => {
        asked.push(path)
        return (async function* () {})() as AsyncGenerator<WatchEvent<T>>
      },
    }
    const source = pathWatchSource<Pod>(client, '/api/v1/namespaces/x/pods', { labelSelector: 'a=b', pageSize: 1 })
    const listed = await source.list(new AbortController().signal)
    for await (const _ of source.watch(listed.resourceVersion, new AbortController().signal)) void _
    expect(listed).toEqual({ items: [pod('a', '1'), pod('b', '2')], resourceVersion: '9' })
    expect(asked).toEqual([
      '/api/v1/namespaces/x/pods?labelSelector=a%3Db&limit=1',
      '/api/v1/namespaces/x/pods?labelSelector=a%3Db&limit=1&continue=tok',
      '/api/v1/namespaces/x/pods?labelSelector=a%3Db&watch=true&allowWatchBookmarks=true&resourceVersion=9&timeoutSeconds=300',
    ])
  })
})
