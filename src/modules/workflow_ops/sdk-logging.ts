import { createRequire } from 'node:module'
import type { Logger as SdkLoggerClass } from '@dapr/dapr/logger/Logger.js'
import type { Logger } from 'pino'

/**
 * The Dapr SDK's workflow worker, client and executor each build their own logger with no way to
 * pass options, and that logger writes every step to the console at INFO. The process logs only
 * through pino, so the workflow part of the SDK (component "DurableTask") is routed here: its
 * per-step INFO chatter becomes debug, its warnings and errors stay visible as warnings (an
 * activity that throws is reported there, and is an expected event when retries are in play).
 * Other SDK components, which this process does not use, are left as they are.
 *
 * The SDK's logger is one class per process, so the route is process-wide: the most recently
 * attached pino logger receives the messages; detaching restores the previous one.
 */
type SdkLevel = 'error' | 'warn' | 'info' | 'verbose' | 'debug'
const LEVELS: Record<SdkLevel, 'warn' | 'debug' | 'trace'> = {
  error: 'warn',
  warn: 'warn',
  info: 'debug',
  verbose: 'trace',
  debug: 'trace',
}

const require = createRequire(import.meta.url)
const SdkLogger: typeof SdkLoggerClass = require('@dapr/dapr/logger/Logger.js').Logger

const sinks: Logger[] = []
let installed = false

function install(): void {
  if (installed) return
  installed = true
  const proto = SdkLogger.prototype as unknown as Record<SdkLevel, (...args: unknown[]) => void>
  for (const level of Object.keys(LEVELS) as SdkLevel[]) {
    const original = proto[level]!
    proto[level] = function (this: { component?: string; area?: string }, message: unknown, ...params: unknown[]) {
      const sink = sinks.at(-1)
      if (this.component !== 'DurableTask') return original.call(this, message, ...params)
      if (!sink) return
      const err = params.find((p): p is Error => p instanceof Error)
      const text = message instanceof Error ? message.message : String(message)
      sink[LEVELS[level]]({ sdk: this.area, ...(err ? { err } : {}) }, text)
    }
  }
}

/** Sends the SDK's workflow logs to `log` until the returned function is called. */
export function routeSdkLogs(log: Logger): () => void {
  install()
  const sink = log.child({ component: 'dapr-sdk' })
  sinks.push(sink)
  return () => {
    const at = sinks.lastIndexOf(sink)
    if (at >= 0) sinks.splice(at, 1)
  }
}
