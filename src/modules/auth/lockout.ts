import { createHash } from 'node:crypto'
import type { Config } from '../../config.js'
import type { Cache } from '../../platform/cache/types.js'
import { LoginLockedError } from './errors.js'

/**
 * Failed passwords counted per account, in the shared cache so every replica counts together.
 * The account is (tenant as given, lower-cased email) whether or not such a user exists: a locked
 * account and a locked nonexistent one answer alike, and counting never touches the database.
 *
 * After `threshold` failures within `windowSeconds` of the first, the account is locked for
 * `baseSeconds`, doubling with each failure after that up to `maxSeconds`. Attempts refused while
 * locked are not checked and not counted, so an attacker holding the lock open gains one guess
 * per lock period, and the owner is locked out at most `maxSeconds` after the attacker stops.
 * Parallel attempts that all pass the check before the first of them fails are each checked: the
 * per-address rate limit bounds that burst.
 */
const FAILURES_PREFIX = 'login:failures:'
const LOCK_PREFIX = 'login:locked:'

export type LoginLockoutSettings = Config['auth']['loginLockout']

function accountKey(tenant: string, email: string): string {
  // Hashed: cache keys are listed by operators and end up in Redis dumps; emails need not.
  return createHash('sha256').update(`${tenant}\n${email.toLowerCase()}`).digest('base64url')
}

export function createLoginLockout(cache: Cache, settings: LoginLockoutSettings) {
  const enabled = settings.threshold > 0

  /** Seconds a lock set after the `failures`-th failure lasts. */
  function lockSeconds(failures: number): number {
    const doublings = Math.min(failures - settings.threshold, 30)
    return Math.min(settings.baseSeconds * 2 ** doublings, settings.maxSeconds)
  }

  return {
    /** Throws LoginLockedError while the account is locked; call before any password is checked. */
    async assertOpen(tenant: string, email: string): Promise<void> {
      if (!enabled) return
      const until = Number(await cache.get(`${LOCK_PREFIX}${accountKey(tenant, email)}`))
      const left = until - Date.now()
      if (left > 0) throw new LoginLockedError(Math.ceil(left / 1000))
    },

    /** Counts a wrong password; from the threshold on, locks the account. */
    async recordFailure(tenant: string, email: string): Promise<void> {
      if (!enabled) return
      const key = accountKey(tenant, email)
      const failures = await cache.incr(`${FAILURES_PREFIX}${key}`, settings.windowSeconds)
      if (failures < settings.threshold) return
      const seconds = lockSeconds(failures)
      await cache.set(`${LOCK_PREFIX}${key}`, String(Date.now() + seconds * 1000), seconds)
    },

    /** A right password forgets the failures. */
    async reset(tenant: string, email: string): Promise<void> {
      if (!enabled) return
      const key = accountKey(tenant, email)
      await Promise.all([cache.del(`${FAILURES_PREFIX}${key}`), cache.del(`${LOCK_PREFIX}${key}`)])
    },
  }
}

export type LoginLockout = ReturnType<typeof createLoginLockout>
