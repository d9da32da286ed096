import http from 'node:http'
import https from 'node:https'
import { isIP } from 'node:net'
import type { Readable } from 'node:stream'
import tls from 'node:tls'
import { AddressRefusedError, addressDenier, guardedLookup } from './addresses.js'

/**
 * Calls to addresses a user named (a provider's base URL, a hub mirror): https only unless the
 * caller allows http, never redirected, every connection dialled through the denied-address check
 * (on the resolved address, so a name re-pointed later is still refused), a timeout on the whole
 * exchange, and a bound on the answer's size. Nothing here logs: headers carry credentials.
 */
export interface OutboundOptions {
  deniedCidrs: readonly string[]
  timeoutMs: number
  /** PEM roots trusted beside the system's. */
  extraCaPem?: string
  /** Answers longer than this fail (default 8 MiB). */
  maxResponseBytes?: number
}

export interface OutboundRequest {
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  body?: string
  allowHttp?: boolean
  signal?: AbortSignal
}

export interface OutboundResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** An answer whose body is read as it arrives; the caller reads it to the end or destroys it. */
export interface OutboundStream {
  status: number
  headers: http.IncomingHttpHeaders
  body: Readable
}

export type OutboundFailure = 'REFUSED' | 'UNREACHABLE' | 'TLS' | 'TIMEOUT' | 'TOO_LARGE' | 'INVALID_URL'

/** Why a call did not get an answer; the message names the host, never a header. */
export class OutboundError extends Error {
  constructor(
    readonly failure: OutboundFailure,
    message: string,
  ) {
    super(message)
    this.name = 'OutboundError'
  }
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_TLS_|ERR_SSL_|EPROTO)/

function failureOf(err: unknown, host: string, timedOut: boolean): OutboundError {
  if (err instanceof OutboundError) return err
  if (err instanceof AddressRefusedError) return new OutboundError('REFUSED', err.message)
  if (timedOut) return new OutboundError('TIMEOUT', `${host} did not answer in time`)
  const code = String((err as { code?: string }).code ?? '')
  if (TLS_CODES.test(code)) return new OutboundError('TLS', `TLS with ${host} failed (${code})`)
  return new OutboundError('UNREACHABLE', `${host} could not be reached (${code || (err as Error).message})`)
}

export type Outbound = ReturnType<typeof createOutbound>

export function createOutbound(options: OutboundOptions) {
  const denied = addressDenier(options.deniedCidrs)
  const lookup = guardedLookup(options.deniedCidrs)
  const ca = options.extraCaPem ? [...tls.rootCertificates, options.extraCaPem] : undefined
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 64, lookup, ...(ca ? { ca } : {}) })
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64, lookup })
  const maxBytes = options.maxResponseBytes ?? 8 * 1024 * 1024

  /** Refuses a URL before anything is dialled: its scheme, credentials in it, a denied literal address. */
  function check(raw: string | URL, allowHttp: boolean): URL {
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      throw new OutboundError('INVALID_URL', 'not a URL')
    }
    if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) {
      throw new OutboundError('INVALID_URL', allowHttp ? 'the URL must be http or https' : 'the URL must be https')
    }
    if (url.username || url.password) throw new OutboundError('INVALID_URL', 'the URL may not carry credentials')
    // A literal address is never looked up, so the lookup's check would not see it.
    const host = url.hostname.replace(/^\[|\]$/g, '')
    if (isIP(host) && denied(host)) throw new OutboundError('REFUSED', `${host} is in a denied network range`)
    return url
  }

  async function request(raw: string | URL, req: OutboundRequest = {}): Promise<OutboundResponse> {
    const url = check(raw, req.allowHttp === true)
    const timeout = AbortSignal.timeout(options.timeoutMs)
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout
    const client = url.protocol === 'https:' ? https : http
    return new Promise<OutboundResponse>((resolve, reject) => {
      const fail = (err: unknown) => reject(failureOf(err, url.host, timeout.aborted))
      const outgoing = client.request(
        url,
        {
          method: req.method ?? 'GET',
          headers: { accept: 'application/json', ...req.headers },
          agent: url.protocol === 'https:' ? httpsAgent : httpAgent,
          signal,
        },
        (res) => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (chunk: Buffer) => {
            size += chunk.length
            if (size > maxBytes) {
              res.destroy()
              reject(new OutboundError('TOO_LARGE', `${url.host} answered more than ${maxBytes} bytes`))
              return
            }
            chunks.push(chunk)
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', fail)
        },
      )
      outgoing.on('error', fail)
      outgoing.end(req.body)
    })
  }

  /**
   * One GET whose body streams (a model file): the timeout covers the wait for the headers and
   * then every silence in the body, not the whole transfer. Never redirected: a caller that
   * follows a Location calls again, so each hop goes through `check` and the address rule.
   */
  async function open(raw: string | URL, req: Pick<OutboundRequest, 'headers' | 'allowHttp' | 'signal'> = {}): Promise<OutboundStream> {
    const url = check(raw, req.allowHttp === true)
    const client = url.protocol === 'https:' ? https : http
    return new Promise<OutboundStream>((resolve, reject) => {
      let timedOut = false
      const fail = (err: unknown) => reject(failureOf(err, url.host, timedOut))
      const outgoing = client.request(
        url,
        { method: 'GET', headers: { ...req.headers }, agent: url.protocol === 'https:' ? httpsAgent : httpAgent, ...(req.signal ? { signal: req.signal } : {}) },
        (res) => {
          clearTimeout(waiting)
          res.setTimeout(options.timeoutMs, () => res.destroy(new OutboundError('TIMEOUT', `${url.host} stopped sending`)))
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res })
        },
      )
      const waiting = setTimeout(() => {
        timedOut = true
        outgoing.destroy()
      }, options.timeoutMs)
      outgoing.on('error', (err) => {
        clearTimeout(waiting)
        fail(err)
      })
      outgoing.end()
    })
  }

  return {
    check,
    request,
    open,
    close(): void {
      httpsAgent.destroy()
      httpAgent.destroy()
    },
  }
}
