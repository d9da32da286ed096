/**
 * At most `max` holders at once; the rest wait in order. A waiter whose signal aborts leaves the
 * queue (its deadline also covers the wait), and each acquisition is released at most once.
 */
export function createSemaphore(max: number) {
  if (!Number.isInteger(max) || max < 1) throw new Error('the concurrency limit must be a positive integer')
  let active = 0
  const waiting: Array<() => void> = []

  function grant(): () => void {
    active++
    let released = false
    return () => {
      if (released) return
      released = true
      active--
      waiting.shift()?.()
    }
  }

  return {
    get active() {
      return active
    },
    acquire(signal?: AbortSignal): Promise<() => void> {
      signal?.throwIfAborted()
      if (active < max) return Promise.resolve(grant())
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          const i = waiting.indexOf(wake)
          if (i >= 0) waiting.splice(i, 1)
          reject(signal!.reason)
        }
        const wake = () => {
          signal?.removeEventListener('abort', onAbort)
          resolve(grant())
        }
        waiting.push(wake)
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    },
  }
}
