import fs from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createKubeClient,
  type KubeClient,
  type KubeClientOptions,
  KubeError,
  type KubeTarget,
} from '../../../src/platform/kube/index.js'
import { b64, type CertAndKey, makeCa, makeClientCert, makeServerCert } from '../../helpers/tls.js'

const fixture = (name: string) => fs.readFileSync(new URL(`../../fixtures/kube/${name}.json`, import.meta.url), 'utf8')
const VERSION = fixture('discovery-version')
const FORBIDDEN = JSON.parse(fixture('error-403-no-rights')) as { body: unknown }

let ca: CertAndKey
let serverCert: CertAndKey
let clientCert: CertAndKey
const cleanups: Array<() => void | Promise<void>> = []

beforeAll(() => {
  ca = makeCa()
  serverCert = makeServerCert(ca, ['localhost', '127.0.0.1'])
  clientCert = makeClientCert(ca, 'modelplane', ['operators'])
})

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

type Handler = (req: IncomingMessage, res: ServerResponse) => void

/** A tiny TLS server on a free port; it asks for (but does not require) a client certificate. */
async function serve(handler: Handler): Promise<{ port: number; sockets: Set<Socket> }> {
  const server = https.createServer(
    { key: serverCert.keyPem, cert: serverCert.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false },
    handler,
  )
  const sockets = new Set<Socket>()
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  return { port: (server.address() as AddressInfo).port, sockets }
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(typeof body === 'string' ? body : JSON.stringify(body))
}

function target(server: string, extra: Partial<KubeTarget> = {}): KubeTarget {
  return {
    server,
    caData: b64(ca.certPem),
    insecureSkipTlsVerify: false,
    token: 'tok-123',
    contextName: 'c',
    clusterName: 'k',
    userName: 'u',
    ...extra,
  }
}

function client(t: KubeTarget, options: Partial<KubeClientOptions> = {}): KubeClient {
  const c = createKubeClient(t, { timeoutMs: 5_000, maxConcurrent: 4, deniedCidrs: [], ...options })
  cleanups.push(() => c.close())
  return c
}

async function failure(promise: Promise<unknown>): Promise<KubeError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof KubeError) return err
    throw err
  }
  throw new Error('the call succeeded')
}

describe('a kube client, happy paths', () => {
  it('honours a server path prefix for typed APIs and getJson, and sends the bearer token', async () => {
    const seen: Array<{ url?: string; auth?: string }> = []
    const { port } = await serve((req, res) => {
      seen.push({ url: req.url, auth: req.headers.authorization })
      if (req.url === '/c/abc/version') return json(res, 200, VERSION)
      if (req.url === '/c/abc/api/v1/namespaces/serving') {
        return json(res, 200, { kind: 'Namespace', apiVersion: 'v1', metadata: { name: 'serving' }, status: { phase: 'Active' } })
      }
      json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: `${req.url} not found` })
    })
    const kube = client(target(`https://127.0.0.1:${port}/c/abc`))

    const ns = await kube.core.readNamespace({ name: 'serving' })
    const version = await kube.getJson<{ gitVersion: string }>('/version')
    const typedVersion = await kube.version.getCode()

    expect(ns.status?.phase).toBe('Active')
    expect(version.gitVersion).toBe('v1.26.5')
    expect(typedVersion.minor).toBe('26')
    expect(seen.map((s) => s.url)).toEqual(['/c/abc/api/v1/namespaces/serving', '/c/abc/version', '/c/abc/version'])
    expect(seen.every((s) => s.auth === 'Bearer tok-123')).toBe(true)
  })

  it('sends any verb with its content type through request, and streams a long answer chunk by chunk', async () => {
    const seen: Array<{ method?: string; url?: string; type?: string; body: string }> = []
    const { port } = await serve((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, type: req.headers['content-type'], body })
        if (req.url?.startsWith('/c/abc/api/v1/namespaces/a/pods/p/log')) {
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.write('line 1\n')
          setTimeout(() => res.end('line 2\n'), 50)
          return
        }
        if (req.url?.includes('/proxy/')) return json(res, 404, { detail: 'no such route in the pod' })
        if (req.method === 'PATCH') return json(res, 200, { kind: 'ConfigMap', metadata: { name: 'x', resourceVersion: '7' } })
        json(res, 404, { kind: 'Status', code: 404, reason: 'NotFound', message: 'configmaps "y" not found' })
      })
    })
    const kube = client(target(`https://127.0.0.1:${port}/c/abc`))

    const applied = await kube.request('PATCH', '/api/v1/namespaces/a/configmaps/x?fieldManager=modelplane', {
      body: 'kind: ConfigMap',
      contentType: 'application/apply-patch+yaml',
    })
    expect(applied.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion).toBe('7')
    expect(seen[0]).toMatchObject({ method: 'PATCH', type: 'application/apply-patch+yaml', body: 'kind: ConfigMap' })

    const missing = await failure(kube.request('GET', '/api/v1/namespaces/a/configmaps/y'))
    expect(missing.code).toBe('CLUSTER_NOT_FOUND')
    const proxied = await kube.request('GET', '/api/v1/namespaces/a/pods/p:8000/proxy/v1/models', { passStatus: true })
    expect(proxied.status).toBe(404)
    expect(proxied.json()).toEqual({ detail: 'no such route in the pod' })

    const chunks: string[] = []
    for await (const chunk of kube.stream('/api/v1/namespaces/a/pods/p/log?follow=true')) chunks.push(chunk.toString())
    expect(chunks.join('')).toBe('line 1\nline 2\n')
    expect(chunks.length).toBeGreaterThanOrEqual(2)
  })

  it('presents the client certificate to the server', async () => {
    const { port } = await serve((req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate()
      json(res, 200, { authorized: (req.socket as TLSSocket).authorized, cn: peer.subject?.CN, o: peer.subject?.O })
    })
    const kube = client(
      target(`https://localhost:${port}`, {
        token: undefined,
        clientCertData: b64(clientCert.certPem),
        clientKeyData: b64(clientCert.keyPem),
      }),
    )
    expect(await kube.getJson('/whoami')).toEqual({ authorized: true, cn: 'modelplane', o: 'operators' })
  })

  it("turns a typed API's refusal into CLUSTER_FORBIDDEN with the server's words", async () => {
    const { port } = await serve((_req, res) => json(res, 403, FORBIDDEN.body))
    const err = await failure(client(target(`https://127.0.0.1:${port}`)).core.listNode())
    expect(err.code).toBe('CLUSTER_FORBIDDEN')
    expect(err.message).toContain('cannot list resource "nodes"')
  })

  it('sends a server-side apply as client-node is told to (content type, field manager), under the prefix', async () => {
    let seen: { url?: string; type?: string; body?: string } = {}
    const { port } = await serve((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        seen = { url: req.url, type: req.headers['content-type'], body }
        json(res, 200, JSON.parse(body))
      })
    })
    const kube = client(target(`https://127.0.0.1:${port}/c/abc`))
    const desired = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'x' }, data: { a: '1' } }
    const applied = await kube.core.patchNamespacedConfigMap(
      { name: 'cfg', namespace: 'x', body: desired, fieldManager: 'modelplane', force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    )
    expect(applied.data).toEqual({ a: '1' })
    expect(seen.url).toBe('/c/abc/api/v1/namespaces/x/configmaps/cfg?fieldManager=modelplane&force=true')
    expect(seen.type).toBe('application/apply-patch+yaml')
    expect(JSON.parse(seen.body!)).toEqual(desired)
  })

  it('reads a watch stream event by event', async () => {
    const { port } = await serve((req, res) => {
      expect(req.url).toContain('watch=true')
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}\n{"type":"MOD')
      setTimeout(() => res.end('IFIED","object":{"metadata":{"name":"a","resourceVersion":"6"}}}\n'), 20)
    })
    const events = []
    for await (const e of client(target(`https://127.0.0.1:${port}`)).watchJson('/api/v1/pods?watch=true')) events.push(e)
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED'])
  })

  it('close() drops its kept-alive connections', async () => {
    const { port, sockets } = await serve((_req, res) => json(res, 200, VERSION))
    const kube = createKubeClient(target(`https://127.0.0.1:${port}`), { timeoutMs: 5_000, maxConcurrent: 4, deniedCidrs: [] })
    await kube.getJson('/version')
    expect(sockets.size).toBe(1)
    kube.close()
    await expect.poll(() => sockets.size).toBe(0)
  })
})

describe('a kube client, failures', () => {
  it('a closed port is CLUSTER_UNREACHABLE', async () => {
    const { port } = await serve(() => {})
    await cleanups.pop()!() // close the server, keep the port number
    const err = await failure(client(target(`https://127.0.0.1:${port}`)).getJson('/version'))
    expect(err).toMatchObject({ code: 'CLUSTER_UNREACHABLE', retryable: true })
  })

  it('a server certificate from another CA is CLUSTER_TLS_ERROR', async () => {
    const { port } = await serve((_req, res) => json(res, 200, VERSION))
    const stranger = makeCa('stranger')
    const err = await failure(client(target(`https://127.0.0.1:${port}`, { caData: b64(stranger.certPem) })).getJson('/version'))
    expect(err).toMatchObject({ code: 'CLUSTER_TLS_ERROR', retryable: false })
  })

  it('a server that never answers is CLUSTER_UNREACHABLE within timeoutMs', async () => {
    const { port } = await serve(() => {})
    const started = Date.now()
    const err = await failure(client(target(`https://127.0.0.1:${port}`), { timeoutMs: 300 }).core.listNode())
    expect(err.code).toBe('CLUSTER_UNREACHABLE')
    expect(err.message).toMatch(/within 300 ms/)
    expect(Date.now() - started).toBeLessThan(3_000)
  })

  it('keeps at most maxConcurrent requests in flight to one cluster', async () => {
    let inFlight = 0
    let most = 0
    const { port } = await serve((_req, res) => {
      inFlight++
      most = Math.max(most, inFlight)
      setTimeout(() => {
        inFlight--
        json(res, 200, VERSION)
      }, 50)
    })
    const kube = client(target(`https://127.0.0.1:${port}`), { maxConcurrent: 2 })
    const answers = await Promise.all(Array.from({ length: 8 }, () => kube.getJson<{ major: string }>('/version')))
    expect(answers.every((a) => a.major === '1')).toBe(true)
    expect(most).toBe(2)
  })

  it('a slow cluster does not hold up another', async () => {
    const slow = await serve(() => {})
    const fast = await serve((_req, res) => json(res, 200, VERSION))
    const slowClient = client(target(`https://127.0.0.1:${slow.port}`), { maxConcurrent: 1, timeoutMs: 600 })
    const fastClient = client(target(`https://127.0.0.1:${fast.port}`), { maxConcurrent: 1 })
    const stuck = Promise.allSettled([slowClient.getJson('/version'), slowClient.getJson('/version')])
    const started = Date.now()
    await fastClient.getJson('/version')
    expect(Date.now() - started).toBeLessThan(1_000)
    await stuck
  })

  it('refuses at connect time a name that resolves into a denied range', async () => {
    let requests = 0
    const { port } = await serve((_req, res) => {
      requests++
      json(res, 200, VERSION)
    })
    const kube = client(target(`https://localhost:${port}`), { deniedCidrs: ['127.0.0.0/8', '::1/128'] })
    const err = await failure(kube.getJson('/version'))
    expect(err.code).toBe('CLUSTER_UNREACHABLE')
    expect(err.message).toMatch(/localhost resolves to .* denied network range/)
    expect(requests).toBe(0)
  })

  it('refuses an IP literal in a denied range, which no lookup would see', async () => {
    const { port } = await serve((_req, res) => json(res, 200, VERSION))
    const kube = client(target(`https://127.0.0.1:${port}`), { deniedCidrs: ['127.0.0.0/8'] })
    const err = await failure(kube.core.listNode())
    expect(err.message).toMatch(/denied network range/)
  })

  it('a caller can cancel a call; the cancel is not reported as the cluster being down', async () => {
    const { port } = await serve(() => {})
    const kube = client(target(`https://127.0.0.1:${port}`))
    const controller = new AbortController()
    const call = kube.getJson('/version', controller.signal)
    setTimeout(() => controller.abort(new Error('user went away')), 50)
    await expect(call).rejects.toThrow('user went away')
  })
})

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
