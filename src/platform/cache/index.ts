import type { Logger } from 'pino'
import { createMemoryCache } from './memory.js'
import type { Cache } from './types.js'

export type { Cache } from './types.js'

export async function createCache(options: { url?: string; prefix?: string; log: Logger }): Promise<Cache> {
  if (!options.url) return createMemoryCache()
  // Loaded only when configured, to keep the embedded start fast.
  const { createRedisCache } = await import('./redis.js')
  return createRedisCache({ url: options.url, prefix: options.prefix, log: options.log })
}
