import { randomUUID } from 'node:crypto'
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { standInCerts } from './certs.js'
import { type ClusterOptions, type HostedCluster, type StandInCluster, createCluster } from './cluster.js'
import { handleKubeRequest } from './router.js'
import { KubeStatusError, pathNotFound, tooLarge, unauthorized } from './status.js'
import { type ResponseStream } from './watch.js'

/**
 * The HTTPS server in front of the stand-in clusters: one port, each cluster under `/c/<id>`.
 * TLS asks for a client certificate but does not insist (a bearer token is as good), and whether
 * a certificate is trusted is judged per request, as kube-apiserver's x509 authenticator does.
 */

export interface KubeStandIn {
  /** https://127.0.0.1:<port> */
  url: string
  port: number
  /** base64 PEM of the CA that signed the server certificate (certificate-authority-data). */
  caData: string
  /** base64 PEM of an unrelated CA. */
  wrongCaData: string
  addCluster(opts?: ClusterOptions): StandInCluster
  /** Stop listening (connections are refused) but keep every cluster's state. */
  stop(): Promise<void>
  /** Listen again on the same port. */
  start(): Promise<void>
  close(): Promise<void>
}

/** kube-apiserver refuses request bodies over 3 MiB. */
const MAX_BODY_BYTES = 3 * 1024 * 1024
const PREFIX = /^\/c\/([a-z0-9-]{1,63})(\/[^?]*)?(\?.*)?$/

function send(res: ServerResponse, code: number, contentType: string, body: string, head: boolean) {
  res.writeHead(code, {
    'Content-Type': contentType,
    'Cache-Control': 'no-cache, private',
    'Audit-Id': randomUUID(),
    'Content-Length': Buffer.byteLength(body),
  })
  res.end(head ? undefined : body)
}

/** A chunked answer that goes on until the stream ends it or the client leaves. */
function openStream(res: ServerResponse, code: number, contentType: string, stream: ResponseStream) {
  res.writeHead(code, { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID() })
  res.flushHeaders()
  let open = true
  const stop = stream.start({
    write: (chunk) => void (open && res.write(chunk)),
    end: () => {
      if (open) res.end()
      open = false
    },
    destroy: () => {
      open = false
      res.destroy()
    },
  })
  res.on('close', () => {
    open = false
    stop()
  })
}

function sendStatus(res: ServerResponse, err: KubeStatusError, head = false) {
  send(res, err.status.code, 'application/json', JSON.stringify(err.status), head)
}

async function readBody(req: IncomingMessage): Promise<string | KubeStatusError> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) return tooLarge(MAX_BODY_BYTES)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export async function startKubeStandIn(opts: { port?: number } = {}): Promise<KubeStandIn> {
  const certs = standInCerts()
  const clusters = new Map<string, HostedCluster>()
  const server = https.createServer({
    key: certs.serverKey,
    cert: certs.serverCert,
    ca: certs.caCert,
    requestCert: true,
    rejectUnauthorized: false,
  })

  async function serve(req: IncomingMessage, res: ServerResponse) {
    const head = req.method === 'HEAD'
    const m = PREFIX.exec(req.url ?? '')
    const cluster = m && clusters.get(m[1]!)
    if (!cluster) return sendStatus(res, pathNotFound(), head)
    // An unreachable cluster: the connection drops without a word, as with a reset or a dead load balancer.
    if (!cluster.reachable()) return void req.socket.destroy()
    const body = await readBody(req)
    if (body instanceof KubeStatusError) return sendStatus(res, body, head)
    const identity = cluster.authority.identify(req.headers.authorization, req.socket as TLSSocket)
    const path = m[2] ?? '/'
    const query = new URLSearchParams(m[3]?.slice(1) ?? '')
    cluster.record({ method: req.method ?? 'GET', path: `${path}${m[3] ?? ''}`, user: identity?.user ?? '', at: Date.now() })
    const latency = cluster.latencyMs()
    if (latency > 0) await sleep(latency)
    if (!cluster.reachable()) return void req.socket.destroy()
    if (!identity) return sendStatus(res, unauthorized(), head)
    const answer = handleKubeRequest(cluster.context, {
      method: req.method ?? 'GET',
      path,
      query,
      identity,
      contentType: req.headers['content-type'],
      body,
      userAgent: req.headers['user-agent'],
    })
    if (answer.stream && !head) return openStream(res, answer.code, answer.contentType, answer.stream)
    send(res, answer.code, answer.contentType, answer.body, head)
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    serve(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy()
      const message = err instanceof Error ? err.message : String(err)
      sendStatus(res, new KubeStatusError(500, 'InternalError', `Internal error occurred: ${message.slice(0, 500)}`))
    })
  })
  // A client that fails our certificate, or sends garbage, must not take the server down.
  server.on('tlsClientError', () => {})

  async function listen(port: number) {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  }

  await listen(opts.port ?? 0)
  const port = (server.address() as AddressInfo).port
  const url = `https://127.0.0.1:${port}`
  let listening = true

  async function stop() {
    if (!listening) return
    listening = false
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await closed
  }

  return {
    url,
    port,
    caData: Buffer.from(certs.caCert).toString('base64'),
    wrongCaData: Buffer.from(certs.wrongCaCert).toString('base64'),
    addCluster(clusterOpts) {
      const cluster = createCluster({ url, hostPort: `127.0.0.1:${port}`, certs }, clusterOpts)
      if (clusters.has(cluster.api.id)) throw new Error(`a stand-in cluster with id ${cluster.api.id} already exists`)
      clusters.set(cluster.api.id, cluster)
      return cluster.api
    },
    stop,
    async start() {
      if (listening) return
      await listen(port)
      listening = true
    },
    async close() {
      await stop()
      for (const cluster of clusters.values()) cluster.close()
    },
  }
}
