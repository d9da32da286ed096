import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import https from 'node:https'
import { isIP } from 'node:net'
import {
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  NetworkingV1Api,
  type RequestContext,
  ResponseContext,
  ServerConfiguration,
  StorageV1Api,
  VersionApi,
  wrapHttpLibrary,
} from '@kubernetes/client-node'
import { AddressRefusedError, addressDenier, guardedLookup } from '../net/addresses.js'
import { KubeError, toKubeError } from './errors.js'
import { hostOf, type KubeTarget } from './kubeconfig.js'
import { createSemaphore } from './semaphore.js'

export interface KubeClientOptions {
  /** each call, from the moment it is made (a wait for a free slot counts); default 10000 */
  timeoutMs: number
  /** calls in flight to this cluster at once; default 4 */
  maxConcurrent: number
  deniedCidrs: readonly string[]
  /** the largest answer read into memory; default 64 MiB (page long lists with `limit`) */
  maxResponseBytes?: number
}

export const DEFAULT_KUBE_CLIENT_OPTIONS: KubeClientOptions = { timeoutMs: 10_000, maxConcurrent: 4, deniedCidrs: [] }

/** One event of a watch stream, as the API server sends it. */
export interface WatchEvent<T = unknown> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'
  object: T
}

export interface KubeClient {
  core: CoreV1Api
  apps: AppsV1Api
  authz: AuthorizationV1Api
  storage: StorageV1Api
  networking: NetworkingV1Api
  apiext: ApiextensionsV1Api
  custom: CustomObjectsApi
  version: VersionApi
  /** GET of a raw path (discovery: /api, /apis, /apis/<group>/<version>), JSON parsed, same timeout/limits/errors */
  getJson<T = unknown>(path: string, signal?: AbortSignal): Promise<T>
  /**
   * A watch stream (`path` carries `watch=true`, `resourceVersion`, …), one event per line. It is
   * outside the concurrency limit (it stays open for minutes); the connection must open within
   * timeoutMs and is dropped after WATCH_IDLE_MS without a byte. End it with the signal or `break`.
   */
  watchJson<T = unknown>(path: string, signal?: AbortSignal): AsyncGenerator<WatchEvent<T>>
  /**
   * Any verb on any API path, same timeout/limits/errors: server-side apply, raw proxies. A non-2xx
   * answer throws KubeError unless `passStatus` (a proxied pod's own 404 is an answer, not an error).
   */
  request(method: KubeMethod, path: string, init?: KubeRequestInit): Promise<KubeResponse>
  /**
   * A long-lived GET answered as a byte stream (pod logs with `follow=true`). Outside the
   * concurrency limit like a watch; the connection must open within timeoutMs and is dropped after
   * WATCH_IDLE_MS without a byte. End it with the signal or `break`.
   */
  stream(path: string, signal?: AbortSignal): AsyncGenerator<Buffer>
  /** destroys the agent's sockets */
  close(): void
}

export type KubeMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface KubeRequestInit {
  /** JSON is sent as is when a string, else serialized */
  body?: unknown
  /** default application/json when there is a body */
  contentType?: string
  accept?: string
  signal?: AbortSignal
  passStatus?: boolean
}

export interface KubeResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
  /** the body parsed as JSON; throws KubeError when it is not */
  json<T = unknown>(): T
}

const DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
const MAX_PATH = 4_096
const MAX_WATCH_LINE = 16 * 1024 * 1024
export const WATCH_IDLE_MS = 330_000

/**
 * Typed clients for one cluster. Every request goes through one transport of ours instead of
 * client-node's (which builds a new agent per request from a KubeConfig): it holds the cluster's
 * keep-alive agent (TLS material in memory, the address guard as its `lookup`), the per-request
 * deadline, the concurrency limit and the answer size limit. Errors of every API come out as
 * KubeError.
 */
export function createKubeClient(target: KubeTarget, options: Partial<KubeClientOptions> = {}): KubeClient {
  const opts = { ...DEFAULT_KUBE_CLIENT_OPTIONS, ...options }
  const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE
  const url = new URL(target.server)
  const host = hostOf(url)
  const denied = addressDenier(opts.deniedCidrs)
  const agent = makeAgent(target, url, opts)
  const slots = createSemaphore(opts.maxConcurrent)

  function headersFor(ctx: RequestContext): Record<string, string> {
    const headers: Record<string, string> = { 'user-agent': 'modelplane', ...ctx.getHeaders() }
    if (target.token) headers.authorization = `Bearer ${target.token}`
    return headers
  }

  // The agent's lookup is skipped for IP literals, so those are checked here.
  function refuseDeniedLiteral() {
    if (isIP(host) && denied(host)) throw toKubeError(new AddressRefusedError(host, host))
  }

  function open(ctx: RequestContext, signal: AbortSignal): Promise<IncomingMessage> {
    const body = ctx.getBody()
    const payload = typeof body === 'string' ? body : body === undefined ? undefined : String(body)
    const headers = headersFor(ctx)
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload))
    const request = url.protocol === 'https:' ? https.request : http.request
    return new Promise((resolve, reject) => {
      const req = request(ctx.getUrl(), { method: ctx.getHttpMethod(), headers, agent, signal }, resolve)
      req.on('error', reject)
      req.end(payload)
    })
  }

  async function readAll(res: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res) {
      size += (chunk as Buffer).length
      if (size > maxResponseBytes) {
        res.destroy()
        throw new KubeError('CLUSTER_ERROR', `the cluster's answer is larger than ${maxResponseBytes} bytes`)
      }
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks)
  }

  /** One request, start to last byte, inside the deadline and a concurrency slot. */
  async function exchange(ctx: RequestContext, callerSignal?: AbortSignal): Promise<ResponseContext> {
    refuseDeniedLiteral()
    const timer = new AbortController()
    const timeout = setTimeout(() => timer.abort(), opts.timeoutMs)
    const signal = callerSignal ? AbortSignal.any([timer.signal, callerSignal]) : timer.signal
    let release: (() => void) | undefined
    try {
      release = await slots.acquire(signal)
      const res = await open(ctx, signal)
      const data = await readAll(res)
      return new ResponseContext(res.statusCode ?? 0, flatHeaders(res.headers), {
        text: async () => data.toString('utf8'),
        binary: async () => data,
      })
    } catch (err) {
      if (timer.signal.aborted) {
        throw new KubeError('CLUSTER_UNREACHABLE', `the cluster did not answer within ${opts.timeoutMs} ms`)
      }
      if (callerSignal?.aborted) throw callerSignal.reason
      throw toKubeError(err)
    } finally {
      clearTimeout(timeout)
      release?.()
    }
  }

  const configuration = createConfiguration({
    baseServer: new ServerConfiguration<Record<string, string>>(target.server, {}),
    httpApi: wrapHttpLibrary({ send: (ctx) => exchange(ctx) }),
    authMethods: {},
  })

  async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
    checkPath(path)
    const ctx = configuration.baseServer.makeRequestContext(path, 'GET' as never)
    ctx.setHeaderParam('Accept', 'application/json')
    const res = await exchange(ctx, signal)
    const text = await res.body.text()
    if (res.httpStatusCode < 200 || res.httpStatusCode > 299) {
      throw toKubeError(new ApiException(res.httpStatusCode, `GET ${path}`, text, res.headers))
    }
    try {
      return JSON.parse(text) as T
    } catch {
      throw new KubeError('CLUSTER_ERROR', `the cluster answered ${path} with something that is not JSON`)
    }
  }

  async function request(method: KubeMethod, path: string, init: KubeRequestInit = {}): Promise<KubeResponse> {
    checkPath(path)
    const ctx = configuration.baseServer.makeRequestContext(path, method as never)
    ctx.setHeaderParam('Accept', init.accept ?? 'application/json')
    if (init.body !== undefined) {
      ctx.setHeaderParam('Content-Type', init.contentType ?? 'application/json')
      ctx.setBody(typeof init.body === 'string' ? init.body : JSON.stringify(init.body))
    }
    const res = await exchange(ctx, init.signal)
    const body = await res.body.binary()
    if (!init.passStatus && (res.httpStatusCode < 200 || res.httpStatusCode > 299)) {
      throw toKubeError(new ApiException(res.httpStatusCode, `${method} ${path}`, body.toString('utf8'), res.headers))
    }
    return {
      status: res.httpStatusCode,
      headers: res.headers,
      body,
      json<T>(): T {
        try {
          return JSON.parse(body.toString('utf8')) as T
        } catch {
          throw new KubeError('CLUSTER_ERROR', `the cluster answered ${method} ${path.split('?')[0]} with something that is not JSON`)
        }
      },
    }
  }

  async function* stream(path: string, callerSignal?: AbortSignal): AsyncGenerator<Buffer> {
    checkPath(path)
    refuseDeniedLiteral()
    const ctx = configuration.baseServer.makeRequestContext(path, 'GET' as never)
    ctx.setHeaderParam('Accept', '*/*')
    const stop = new AbortController()
    const signal = callerSignal ? AbortSignal.any([stop.signal, callerSignal]) : stop.signal
    const opening = setTimeout(() => stop.abort(), opts.timeoutMs)
    let res: IncomingMessage
    try {
      res = await open(ctx, signal)
    } catch (err) {
      if (callerSignal?.aborted) throw callerSignal.reason
      if (stop.signal.aborted) throw new KubeError('CLUSTER_UNREACHABLE', `the cluster did not answer within ${opts.timeoutMs} ms`)
      throw toKubeError(err)
    } finally {
      clearTimeout(opening)
    }
    try {
      const status = res.statusCode ?? 0
      if (status < 200 || status > 299) {
        const text = (await readAll(res)).toString('utf8')
        throw toKubeError(new ApiException(status, `GET ${path}`, text, flatHeaders(res.headers)))
      }
      res.setTimeout(WATCH_IDLE_MS, () => res.destroy(Object.assign(new Error('stream idle'), { code: 'ETIMEDOUT' })))
      for await (const chunk of res) yield chunk as Buffer
    } catch (err) {
      if (callerSignal?.aborted) throw callerSignal.reason
      throw toKubeError(err)
    } finally {
      stop.abort()
    }
  }

  async function* watchJson<T>(path: string, callerSignal?: AbortSignal): AsyncGenerator<WatchEvent<T>> {
    checkPath(path)
    refuseDeniedLiteral()
    const ctx = configuration.baseServer.makeRequestContext(path, 'GET' as never)
    ctx.setHeaderParam('Accept', 'application/json')
    const stop = new AbortController()
    const signal = callerSignal ? AbortSignal.any([stop.signal, callerSignal]) : stop.signal
    const opening = setTimeout(() => stop.abort(), opts.timeoutMs)
    let res: IncomingMessage
    try {
      res = await open(ctx, signal)
    } catch (err) {
      if (callerSignal?.aborted) throw callerSignal.reason
      if (stop.signal.aborted) {
        throw new KubeError('CLUSTER_UNREACHABLE', `the cluster did not answer within ${opts.timeoutMs} ms`)
      }
      throw toKubeError(err)
    } finally {
      clearTimeout(opening)
    }
    try {
      const status = res.statusCode ?? 0
      if (status < 200 || status > 299) {
        const text = (await readAll(res)).toString('utf8')
        throw toKubeError(new ApiException(status, `watch ${path}`, text, flatHeaders(res.headers)))
      }
      res.setTimeout(WATCH_IDLE_MS, () => res.destroy(Object.assign(new Error('watch idle'), { code: 'ETIMEDOUT' })))
      let pending = ''
      for await (const chunk of res) {
        pending += (chunk as Buffer).toString('utf8')
        if (pending.length > MAX_WATCH_LINE) throw new KubeError('CLUSTER_ERROR', 'a watch event is too large')
        let newline: number
        while ((newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline).trim()
          pending = pending.slice(newline + 1)
          if (line) yield parseEvent<T>(line)
        }
      }
      if (pending.trim()) yield parseEvent<T>(pending.trim())
    } catch (err) {
      if (callerSignal?.aborted) throw callerSignal.reason
      throw toKubeError(err)
    } finally {
      stop.abort()
    }
  }

  return {
    core: mapErrors(new CoreV1Api(configuration)),
    apps: mapErrors(new AppsV1Api(configuration)),
    authz: mapErrors(new AuthorizationV1Api(configuration)),
    storage: mapErrors(new StorageV1Api(configuration)),
    networking: mapErrors(new NetworkingV1Api(configuration)),
    apiext: mapErrors(new ApiextensionsV1Api(configuration)),
    custom: mapErrors(new CustomObjectsApi(configuration)),
    version: mapErrors(new VersionApi(configuration)),
    getJson,
    watchJson,
    request,
    stream,
    close: () => agent.destroy(),
  }
}

function makeAgent(target: KubeTarget, url: URL, opts: KubeClientOptions): http.Agent {
  const common = { keepAlive: true, maxSockets: opts.maxConcurrent, lookup: guardedLookup(opts.deniedCidrs) }
  if (url.protocol === 'http:') return new http.Agent(common)
  return new https.Agent({
    ...common,
    ...(target.caData ? { ca: Buffer.from(target.caData, 'base64') } : {}),
    ...(target.clientCertData ? { cert: Buffer.from(target.clientCertData, 'base64') } : {}),
    ...(target.clientKeyData ? { key: Buffer.from(target.clientKeyData, 'base64') } : {}),
    ...(target.tlsServerName ? { servername: target.tlsServerName } : {}),
    rejectUnauthorized: !target.insecureSkipTlsVerify,
  })
}

function checkPath(path: string) {
  if (!path.startsWith('/') || path.startsWith('//') || path.length > MAX_PATH) {
    throw new Error(`not an API path: ${path.slice(0, 100)}`)
  }
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

function parseEvent<T>(line: string): WatchEvent<T> {
  let event: unknown
  try {
    event = JSON.parse(line)
  } catch {
    throw new KubeError('CLUSTER_ERROR', 'the watch stream carried a line that is not JSON')
  }
  if (typeof event !== 'object' || event === null || typeof (event as { type?: unknown }).type !== 'string') {
    throw new KubeError('CLUSTER_ERROR', 'the watch stream carried something that is not an event')
  }
  return event as WatchEvent<T>
}

/** Every method of a generated API, with its rejections turned into KubeError. */
function mapErrors<T extends object>(api: T): T {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        try {
          const result: unknown = value.apply(target, args)
          return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(toKubeError(err))) : result
        } catch (err) {
          throw toKubeError(err)
        }
      }
    },
  })
}
