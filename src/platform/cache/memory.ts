import { EventEmitter } from 'node:events'
import type { Cache } from './types.js'

interface Entry {
  value: string
  expiresAt: number
}

/** The embedded cache: one process, one Map. Expired keys are dropped on read and by a sweep. */
export function createMemoryCache(): Cache {
  const entries = new Map<string, Entry>()
  const bus = new EventEmitter()
  bus.setMaxListeners(0)
  const sweep = setInterval(() => {
    const now = Date.now()
    for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key)
  }, 30_000)
  sweep.unref()

  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key)
    if (entry && entry.expiresAt <= Date.now()) {
      entries.delete(key)
      return undefined
    }
    return entry
  }
  const expiry = (ttlSeconds?: number) => (ttlSeconds ? Date.now() + ttlSeconds * 1000 : Number.POSITIVE_INFINITY)

  return {
    kind: 'memory',
    async get(key) {
      return live(key)?.value ?? null
    },
    async set(key, value, ttlSeconds) {
      entries.set(key, { value, expiresAt: expiry(ttlSeconds) })
    },
    async setIfAbsent(key, value, ttlSeconds) {
      if (live(key)) return false
      entries.set(key, { value, expiresAt: expiry(ttlSeconds) })
      return true
    },
    async del(key) {
      entries.delete(key)
    },
    async incr(key, ttlSeconds, by = 1) {
      const entry = live(key)
      const next = (entry ? Number(entry.value) : 0) + by
      entries.set(key, { value: String(next), expiresAt: entry?.expiresAt ?? expiry(ttlSeconds) })
      return next
    },
    async publish(channel, message) {
      // Asynchronous like a real broker: a publisher never runs its subscribers' code inline.
      queueMicrotask(() => bus.emit(channel, message))
    },
    async subscribe(channel, handler) {
      bus.on(channel, handler)
      return async () => {
        bus.off(channel, handler)
      }
    },
    async ping() {},
    async close() {
      clearInterval(sweep)
      bus.removeAllListeners()
      entries.clear()
    },
  }
}
