/**
 * The cache every module shares: short-lived values, atomic counters and publish/subscribe.
 * Redis when REDIS_URL is set, an in-process implementation otherwise; callers never know which.
 * Values are strings: callers serialize what they store.
 */
export interface Cache {
  readonly kind: 'memory' | 'redis'
  get(key: string): Promise<string | null>
  /** Stores value; it expires after ttlSeconds when given. */
  set(key: string, value: string, ttlSeconds?: number): Promise<void>
  /** Stores value only if the key is absent; true when it was stored. */
  setIfAbsent(key: string, value: string, ttlSeconds: number): Promise<boolean>
  del(key: string): Promise<void>
  /** Adds by to the counter (created at 0) and returns the new value; the TTL starts when the key is created. */
  incr(key: string, ttlSeconds?: number, by?: number): Promise<number>
  publish(channel: string, message: string): Promise<void>
  /** Delivers every message published on channel (by any process sharing the cache) until the returned function is called. */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>
  ping(): Promise<void>
  close(): Promise<void>
}
