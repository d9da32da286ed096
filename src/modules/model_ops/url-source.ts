import type { Readable } from 'node:stream'
import { type Outbound, OutboundError } from '../../platform/net/outbound.js'
import { WorkflowStepError } from '../workflow_ops/index.js'
import { filePathProblem } from './paths.js'

/**
 * What a `url` import asks the server holding the file: how long it is and whether it answers
 * `Range`, then the bytes. Every hop (redirects are followed here, at most MAX_REDIRECTS) goes
 * through the outbound client, so each one is https, carries no credentials in the URL, and is
 * dialled only after its resolved address passed OUTBOUND_DENIED_CIDRS. Nothing of ours is sent
 * (no Authorization, no cookie), so nothing can be forwarded to another host.
 */
export const UrlErrorCode = {
  UNREACHABLE: 'URL_UNREACHABLE',
  REFUSED_ADDRESS: 'URL_REFUSED_ADDRESS',
  NOT_FOUND: 'URL_NOT_FOUND',
  FORBIDDEN: 'URL_FORBIDDEN',
  INVALID: 'URL_INVALID',
  TOO_LARGE: 'URL_TOO_LARGE',
  ERROR: 'URL_ERROR',
} as const

const MAX_REDIRECTS = 5

export type UrlKind = 'file' | 'tar' | 'tgz' | 'zip'

/** How the file is read: `ranged` in parts that resume; `stream` in one pass (archives, or no Range). */
export interface UrlProbe {
  size: number | null
  ranges: boolean
}

/** The URL as it may be shown (model uri, logs, events): a query string may be a signature. */
export function shownUrl(raw: string): string {
  try {
    const url = new URL(raw)
    return `${url.origin}${url.pathname}${url.search ? '?…' : ''}`
  } catch {
    return '(not a URL)'
  }
}

/** The file name the URL names (its last path segment), or null when it names none a version may hold. */
export function fileNameOf(raw: string): string | null {
  let name: string
  try {
    name = decodeURIComponent(new URL(raw).pathname.split('/').at(-1) ?? '')
  } catch {
    return null
  }
  return name.includes('/') || filePathProblem(name) !== null ? null : name
}

export function kindOf(name: string): UrlKind {
  const lower = name.toLowerCase()
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tgz'
  if (lower.endsWith('.tar')) return 'tar'
  if (lower.endsWith('.zip')) return 'zip'
  return 'file'
}

function networkFailure(err: unknown, shown: string): WorkflowStepError {
  if (err instanceof WorkflowStepError) return err
  if (err instanceof OutboundError) {
    if (err.failure === 'REFUSED') return new WorkflowStepError(UrlErrorCode.REFUSED_ADDRESS, `${shown} is refused: ${err.message}`)
    if (err.failure === 'INVALID_URL') return new WorkflowStepError(UrlErrorCode.INVALID, `${shown}: ${err.message}`)
    return new WorkflowStepError(UrlErrorCode.UNREACHABLE, err.message)
  }
  return new WorkflowStepError(UrlErrorCode.UNREACHABLE, `${shown} could not be read: ${err instanceof Error ? err.message.slice(0, 200) : 'error'}`)
}

function refusal(status: number, shown: string): WorkflowStepError {
  if (status === 404 || status === 410) return new WorkflowStepError(UrlErrorCode.NOT_FOUND, `${shown} answered ${status}: there is no such file`)
  if (status === 401 || status === 403) return new WorkflowStepError(UrlErrorCode.FORBIDDEN, `${shown} answered ${status}: the file is not public (a signed URL works)`)
  return new WorkflowStepError(UrlErrorCode.ERROR, `${shown} answered ${status}`)
}

/** Follows redirects by hand, each hop checked; answers the first non-redirect answer that is a success. */
async function get(outbound: Pick<Outbound, 'open'>, raw: string, headers: Record<string, string>, signal?: AbortSignal) {
  let url = new URL(raw)
  const shown = shownUrl(raw)
  for (let hop = 0; ; hop++) {
    let answer: Awaited<ReturnType<Outbound['open']>>
    try {
      answer = await outbound.open(url, { headers: { 'accept-encoding': 'identity', 'user-agent': 'modelplane', ...headers }, ...(signal ? { signal } : {}) })
    } catch (err) {
      throw networkFailure(err, shown)
    }
    const location = answer.headers.location
    if (answer.status >= 300 && answer.status < 400 && location) {
      answer.body.destroy()
      if (hop >= MAX_REDIRECTS) throw new WorkflowStepError(UrlErrorCode.ERROR, `${shown} redirected more than ${MAX_REDIRECTS} times`)
      try {
        url = new URL(location, url)
      } catch {
        throw new WorkflowStepError(UrlErrorCode.ERROR, `${shown} redirected to something that is not a URL`)
      }
      continue
    }
    if (answer.status < 200 || answer.status >= 300) {
      answer.body.destroy()
      throw refusal(answer.status, shown)
    }
    return answer
  }
}

/** Asks for the first byte: a 206 says the server answers Range and (usually) the length. */
export async function probeUrl(outbound: Pick<Outbound, 'open'>, raw: string): Promise<UrlProbe> {
  const answer = await get(outbound, raw, { range: 'bytes=0-0' })
  answer.body.destroy()
  if (answer.status === 206) {
    const total = /^bytes \d+-\d+\/(\d+)$/.exec(answer.headers['content-range'] ?? '')?.[1]
    return total === undefined ? { size: null, ranges: false } : { size: Number(total), ranges: true }
  }
  const length = answer.headers['content-length']
  return { size: length !== undefined && /^\d+$/.test(length) ? Number(length) : null, ranges: false }
}

/** Bytes `start`..`end` (inclusive) of the file; a 200 is accepted only for a range from 0. */
export async function fetchUrlRange(outbound: Pick<Outbound, 'open'>, raw: string, start: number, end: number): Promise<Readable> {
  const answer = await get(outbound, raw, { range: `bytes=${start}-${end}` })
  const startsAt = answer.status === 206 ? Number(/^bytes (\d+)-/.exec(answer.headers['content-range'] ?? '')?.[1] ?? Number.NaN) : 0
  if (startsAt !== start) {
    answer.body.destroy()
    throw new WorkflowStepError(UrlErrorCode.ERROR, `${shownUrl(raw)} answered bytes from ${startsAt} when asked from ${start}`)
  }
  return answer.body
}

/** The whole file, from the start, with its stated length (null when the server states none). */
export async function fetchUrl(outbound: Pick<Outbound, 'open'>, raw: string, signal?: AbortSignal): Promise<{ body: Readable; size: number | null }> {
  const answer = await get(outbound, raw, {}, signal)
  const length = answer.headers['content-length']
  return { body: answer.body, size: length !== undefined && /^\d+$/.test(length) ? Number(length) : null }
}
