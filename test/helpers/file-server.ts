import https from 'node:https'
import type { AddressInfo } from 'node:net'

/**
 * A small HTTPS file server for URL imports: fixed bodies by path, with or without Range and
 * Content-Length, redirects, connections cut after some bytes, and a throttle to make a download
 * last long enough to cancel or kill it half way. It counts what it served per path.
 */
export interface Route {
  body: Buffer
  /** false: a 200 with the whole body to every request, no Range. */
  ranges?: boolean
  /** No Content-Length: the body is sent chunked. */
  noLength?: boolean
  redirect?: string
  /** Cut the connection after this many body bytes, for the next `times` answers. */
  drop?: { after: number; times: number }
  /** Send at about this many bytes a second (in 64 KiB writes), so a download lasts a while. */
  bytesPerSecond?: number
}

export interface FileServer {
  base: string
  port: number
  routes: Map<string, Route>
  requests: Array<{ path: string; range: string | undefined }>
  served: Map<string, number>
  connections: number
  close(): Promise<void>
}

export async function startFileServer(cert: { certPem: string; keyPem: string }, host: string): Promise<FileServer> {
  const routes = new Map<string, Route>()
  const requests: FileServer['requests'] = []
  const served = new Map<string, number>()
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    const path = new URL(req.url ?? '/', 'https://x').pathname
    requests.push({ path, range: req.headers.range })
    const route = routes.get(path)
    if (!route) return res.writeHead(404).end('no such file')
    if (route.redirect) return res.writeHead(302, { location: route.redirect }).end()
    let start = 0
    let end = route.body.length - 1
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
    const ranged = route.ranges !== false && range !== null
    if (ranged) {
      start = Number(range[1])
      end = range[2] ? Math.min(end, Number(range[2])) : end
    }
    const slice = route.body.subarray(start, end + 1)
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
    if (!route.noLength) headers['content-length'] = String(slice.length)
    if (ranged) headers['content-range'] = `bytes ${start}-${end}/${route.body.length}`
    res.writeHead(ranged ? 206 : 200, headers)
    const drop = route.drop && route.drop.times > 0 && slice.length > route.drop.after ? route.drop : undefined
    if (drop) {
      drop.times -= 1
      served.set(path, (served.get(path) ?? 0) + drop.after)
      res.write(slice.subarray(0, drop.after), () => res.socket?.destroy())
      return
    }
    if (route.bytesPerSecond) {
      const chunk = 64 * 1024
      const pause = (chunk / route.bytesPerSecond) * 1000
      let at = 0
      const next = () => {
        if (res.destroyed) return
        const piece = slice.subarray(at, at + chunk)
        at += piece.length
        served.set(path, (served.get(path) ?? 0) + piece.length)
        if (at >= slice.length) return void res.end(piece)
        res.write(piece)
        setTimeout(next, pause)
      }
      return next()
    }
    served.set(path, (served.get(path) ?? 0) + slice.length)
    res.end(slice)
  })
  const state = { connections: 0 }
  server.on('secureConnection', () => (state.connections += 1))
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const { port } = server.address() as AddressInfo
  return {
    base: `https://${host}:${port}`,
    port,
    routes,
    requests,
    served,
    get connections() {
      return state.connections
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

