import type { IncomingMessage, ServerResponse } from 'node:http'
import { type Content, readRange } from './content.js'

/**
 * Sending a file's bytes: whole, or the one range asked for (206 with Content-Range, 416 when it
 * starts past the end), through the faults a test planted: a connection cut after some bytes, a
 * byte served wrong. What goes out is counted per file path.
 */

export interface Faults {
  /** Bytes of this response's body after which the connection is cut, if a cut is due. */
  cutAfter(path: string, bodyLength: number): number | undefined
  /** The file offset to serve wrong in the range [start, end), if one is due there. */
  corruptOffset(path: string, start: number, end: number): number | undefined
  served(path: string, bytes: number): void
}

/**
 * `bytes=a-b`, `bytes=a-` or `bytes=-n` as [start, end); 'unsatisfiable' when it starts past the
 * end; undefined when there is no single range to honour (then the whole file is the answer).
 */
export function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  if (!header || header.length > 200) return undefined
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(header.trim())
  if (!m || (m[1] === '' && m[2] === '')) return undefined
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0) return 'unsatisfiable'
    return [Math.max(0, size - suffix), size]
  }
  const start = Number(m[1])
  const last = m[2] === '' ? size - 1 : Number(m[2])
  if (start >= size) return 'unsatisfiable'
  if (last < start) return undefined
  return [start, Math.min(last, size - 1) + 1]
}

/** Wait for room in the socket, or for the client to be gone, leaving no listener behind. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

export async function sendBytes(
  req: IncomingMessage,
  res: ServerResponse,
  file: { path: string; content: Content; size: number },
  headers: Record<string, string>,
  faults: Faults,
) {
  const range = parseRange(req.headers.range, file.size)
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${file.size}`, 'Content-Length': 0 })
    res.end()
    return
  }
  const [start, end] = range ?? [0, file.size]
  res.writeHead(range ? 206 : 200, {
    ...headers,
    'Accept-Ranges': 'bytes',
    'Content-Length': end - start,
    ...(range ? { 'Content-Range': `bytes ${start}-${end - 1}/${file.size}` } : {}),
  })
  if (req.method === 'HEAD' || start === end) {
    res.end()
    return
  }
  const cut = faults.cutAfter(file.path, end - start)
  const wrong = faults.corruptOffset(file.path, start, end)
  let at = start
  let sent = 0
  for await (let chunk of readRange(file.content, start, end)) {
    if (res.destroyed) return
    if (wrong !== undefined && wrong >= at && wrong < at + chunk.length) {
      chunk = Buffer.from(chunk)
      chunk[wrong - at] = chunk[wrong - at]! ^ 0xff
    }
    at += chunk.length
    if (cut !== undefined && sent + chunk.length >= cut) {
      const last = chunk.subarray(0, cut - sent)
      faults.served(file.path, last.length)
      // Cut once the bytes before the cut have left: the client sees them, then a dead connection.
      res.write(last, () => res.destroy())
      return
    }
    sent += chunk.length
    faults.served(file.path, chunk.length)
    if (!res.write(chunk)) await drainedOrClosed(res)
  }
  res.end()
}
