import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Cache } from './types.js'

export interface RedisCacheOptions {
  url: string
  /** Namespaces every key and channel, so several deployments (or test runs) can share a server. */
  prefix?: string
  log: Logger
}

// INCRBY and the first EXPIRE in one step: a crash between them must not leave a counter that never expires.
const INCR_WITH_TTL = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return v`

export function createRedisCache(options: RedisCacheOptions): Cache {
  const prefix = options.prefix ?? 'mp:'
  const connect = (name: string) => {
    const client = new Redis(options.url, {
      connectionName: `modelplane-${name}`,
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
      lazyConnect: false,
    })
    client.on('error', (err) => options.log.warn({ err: { message: err.message }, client: name }, 'redis error'))
    return client
  }
  const client = connect('cmd')
  let subscriber: Redis | undefined
  const handlers = new Map<string, Set<(message: string) => void>>()

  const getSubscriber = () => {
    if (subscriber) return subscriber
    subscriber = connect('sub')
    subscriber.on('message', (channel: string, message: string) => {
      for (const handler of handlers.get(channel) ?? []) handler(message)
    })
    return subscriber
  }

  return {
    kind: 'redis',
    async get(key) {
      return client.get(prefix + key)
    },
    async set(key, value, ttlSeconds) {
      if (ttlSeconds) await client.set(prefix + key, value, 'EX', ttlSeconds)
      else await client.set(prefix + key, value)
    },
    async setIfAbsent(key, value, ttlSeconds) {
      return (await client.set(prefix + key, value, 'EX', ttlSeconds, 'NX')) === 'OK'
    },
    async del(key) {
      await client.del(prefix + key)
    },
    async incr(key, ttlSeconds = 0, by = 1) {
      return Number(await client.eval(INCR_WITH_TTL, 1, prefix + key, by, ttlSeconds))
    },
    async publish(channel, message) {
      await client.publish(prefix + channel, message)
    },
    async subscribe(channel, handler) {
      const full = prefix + channel
      let set = handlers.get(full)
      if (!set) {
        set = new Set()
        handlers.set(full, set)
        await getSubscriber().subscribe(full)
      }
      set.add(handler)
      return async () => {
        const current = handlers.get(full)
        if (!current) return
        current.delete(handler)
        if (current.size === 0) {
          handlers.delete(full)
          await subscriber?.unsubscribe(full)
        }
      }
    },
    async ping() {
      await client.ping()
    },
    async close() {
      handlers.clear()
      await Promise.allSettled([client.quit(), subscriber?.quit()])
    },
  }
}
