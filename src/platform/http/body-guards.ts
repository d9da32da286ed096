import type { IncomingMessage } from 'node:http'
import { type Readable, Transform } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.js'
import { type AppError, RequestTimeoutError, ValidationError } from '../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * A long upload (signed blob PUT): its body has no deadline, but must keep arriving at the
     * configured minimum rate. Its bytes are binary, so they are not searched for NUL either.
     */
    upload?: boolean
  }
}

/** Bodies that are text (JSON, CSV, …): a NUL byte in them is never valid and PostgreSQL text cannot store it. */
const TEXT_BODY = /^\s*(text\/|application\/([\w.-]+\+)?json\b)/i
/** Bodies that @fastify/multipart parses straight from the request, not from what preParsing hands on. */
const MULTIPART_BODY = /^\s*multipart\//i

export const nulRefused = (where: string) =>
  new ValidationError(`the ${where} may not contain the NUL character`, [{ field: where, message: 'contains NUL' }])

function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length']
  return (length !== undefined && length !== '0') || raw.headers['transfer-encoding'] !== undefined
}

interface BodyChecks {
  /** The body must have arrived within this many milliseconds. */
  deadlineMs?: number
  /** At least `bytes` must arrive in every window of `windowMs`. */
  minimumRate?: { bytes: number; windowMs: number }
  refuseNul: boolean
  /**
   * Another reader takes the body from the request itself (multipart: busboy reads `request.raw`):
   * the guard only watches. Its own output is dropped as it comes, so that it never holds the
   * request stream back from that reader, and a breach fails the request stream for it.
   */
  watchOnly?: boolean
}

/**
 * The request body, passed through unchanged while it arrives in time. On a breach the stream
 * fails with the error (Fastify's body reader, or the upload handler, answers it) and the rest of
 * the body is drained. The request itself is never destroyed: that would take the socket, and the
 * answer, with it.
 */
function guardBody(source: Readable, checks: BodyChecks): Readable {
  let bytesThisWindow = 0
  const timers: NodeJS.Timeout[] = []
  const guarded = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (checks.refuseNul && chunk.indexOf(0) !== -1) return callback(nulRefused('body'))
      bytesThisWindow += chunk.length
      callback(null, chunk)
    },
  })
  const fail = (err: AppError) => {
    if (guarded.destroyed) return
    guarded.destroy(err)
    if (checks.watchOnly) source.emit('error', err)
  }
  if (checks.deadlineMs !== undefined) {
    timers.push(setTimeout(() => fail(new RequestTimeoutError()), checks.deadlineMs))
  }
  const rate = checks.minimumRate
  if (rate) {
    timers.push(
      setInterval(() => {
        if (bytesThisWindow < rate.bytes) {
          const perSecond = Math.round(rate.bytes / (rate.windowMs / 1000))
          fail(new RequestTimeoutError(`the upload is slower than the minimum of ${perSecond} bytes per second`))
        }
        bytesThisWindow = 0
      }, rate.windowMs),
    )
  }
  for (const timer of timers) timer.unref()
  // A handler may answer without reading the body (a refused signature): a breach found later
  // must not become an unhandled 'error' event.
  guarded.on('error', () => {})
  guarded.once('close', () => {
    for (const timer of timers) clearTimeout(timer)
    source.unpipe(guarded)
    // What is left of a refused body is read and dropped, so the connection can still be answered.
    source.resume()
  })
  // A client that aborts fails the body for whoever reads it (the upload store keeps nothing then).
  source.once('error', (err) => guarded.destroy(err))
  source.pipe(guarded)
  if (checks.watchOnly) guarded.resume()
  return guarded
}

/**
 * Every request body is watched as it arrives: ordinary requests must be complete within
 * REQUEST_TIMEOUT_SECONDS of their headers, and text bodies are refused at the first NUL byte
 * (JSON's `\u0000` escapes are the JSON parser's, see input-guards.ts). Routes marked `upload`
 * get the minimum transfer rate instead of the deadline.
 */
export function registerBodyGuards(app: FastifyInstance, limits: Config['http']): void {
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (!hasBody(request.raw)) return done(null, payload)
    if (request.routeOptions.config.upload) {
      const windowMs = limits.uploadRateWindowMs
      const bytes = Math.ceil((limits.uploadMinBytesPerSecond * windowMs) / 1000)
      return done(null, guardBody(payload, { minimumRate: { bytes, windowMs }, refuseNul: false }))
    }
    const contentType = request.headers['content-type']
    done(
      null,
      guardBody(payload, {
        // Time spent on this request before its body is read (authentication) counts too.
        deadlineMs: Math.max(0, limits.requestTimeoutMs - reply.elapsedTime),
        refuseNul: typeof contentType === 'string' && TEXT_BODY.test(contentType),
        watchOnly: typeof contentType === 'string' && MULTIPART_BODY.test(contentType),
      }),
    )
  })
}
