import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { createMemoryCache } from '../../src/platform/cache/memory.js'
import { createRedisCache } from '../../src/platform/cache/redis.js'
import type { Cache } from '../../src/platform/cache/types.js'
import { TEST_REDIS_URL } from '../helpers/env.js'
import { waitFor } from '../helpers/wait.js'

const log = pino({ level: 'silent' })

function cacheSuite(name: string, make: () => Cache) {
  describe(`${name} cache`, () => {
    const caches: Cache[] = []
    const open = () => {
      const c = make()
      caches.push(c)
      return c
    }
    afterAll(async () => {
      await Promise.all(caches.map((c) => c.close()))
    })
    const key = () => `test:${randomUUID()}`

    it('stores, reads and deletes values', async () => {
      const cache = open()
      const k = key()
      expect(await cache.get(k)).toBeNull()
      await cache.set(k, 'v1')
      expect(await cache.get(k)).toBe('v1')
      await cache.del(k)
      expect(await cache.get(k)).toBeNull()
    })

    it('expires values after their TTL, and not before', async () => {
      const cache = open()
      const [short, long] = [key(), key()]
      // A long TTL beside the short one: what a read right after set sees cannot depend on how busy
      // the machine is, and the long value shows expiry goes by each value's own TTL.
      const setAt = Date.now()
      await cache.set(short, 'v', 1)
      await cache.set(long, 'w', 600)
      await waitFor(async () => (await cache.get(short)) === null, 15_000, 'the 1 s value never expired')
      // At least 2 s after the set (waiting longer only lengthens the test): a TTL read as
      // milliseconds would have dropped the long value by now, seconds cannot have.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 2_000 - (Date.now() - setAt))))
      expect(await cache.get(long)).toBe('w')
    })

    it('stores only the first of several setIfAbsent calls', async () => {
      const cache = open()
      const k = key()
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => cache.setIfAbsent(k, String(i), 30)))
      expect(results.filter(Boolean)).toHaveLength(1)
    })

    it('counts atomically under concurrency', async () => {
      const cache = open()
      const k = key()
      await Promise.all(Array.from({ length: 200 }, () => cache.incr(k, 30)))
      expect(await cache.incr(k, 30, 0)).toBe(200)
      expect(await cache.incr(k, 30, 5)).toBe(205)
    })

    it('delivers published messages to subscribers until they unsubscribe', async () => {
      const publisher = open()
      const subscriber = name === 'memory' ? publisher : open()
      const channel = key()
      const seen: string[] = []
      const unsubscribe = await subscriber.subscribe(channel, (m) => seen.push(m))
      await publisher.publish(channel, 'one')
      await publisher.publish(channel, 'two')
      await waitFor(() => seen.length === 2)
      expect(seen).toEqual(['one', 'two'])
      await unsubscribe()
      // A marker on another channel of the same subscriber, published after 'three' by the same
      // publisher, arrives after 'three' would have: once it is in, 'three' had its chance.
      const marker = key()
      const markers: string[] = []
      await subscriber.subscribe(marker, (m) => markers.push(m))
      await publisher.publish(channel, 'three')
      await publisher.publish(marker, 'after three')
      await waitFor(() => markers.length === 1)
      expect(seen).toEqual(['one', 'two'])
    })

    it('answers ping', async () => {
      await expect(open().ping()).resolves.toBeUndefined()
    })
  })
}

cacheSuite('memory', () => createMemoryCache())
// One prefix for the suite: a publisher and a subscriber must share it to hear each other.
const redisPrefix = `mp-test-${randomUUID()}:`
cacheSuite('redis', () => createRedisCache({ url: TEST_REDIS_URL, prefix: redisPrefix, log }))
