import type { Logger } from 'pino'
import { createMemoryCache } from './memory.js'
import { createRedisCache } from './redis.js'
import type { Cache } from './types.js'

export type { Cache } from './types.js'

export function createCache(options: { url?: string; prefix?: string; log: Logger }): Cache {
  return options.url ? createRedisCache({ url: options.url, prefix: options.prefix, log: options.log }) : createMemoryCache()
}
