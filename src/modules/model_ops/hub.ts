import { Readable } from 'node:stream'
import type { ReadableStream } from 'node:stream/web'
import { HubApiError, listFiles, modelInfo } from '@huggingface/hub'
import { WorkflowStepError } from '../workflow_ops/index.js'

/**
 * What an import asks the hub (Hugging Face's HTTP API at MODEL_HUB_URL, or a mirror of it): the
 * commit a revision points at, the files at that commit, and byte ranges of a file. The hub's
 * failures become the import's stable codes; a 429 becomes HubRateLimited so that the workflow,
 * not the activity, does the waiting (on a durable timer).
 */
export const HubErrorCode = {
  UNAUTHORIZED: 'HUB_UNAUTHORIZED',
  NOT_FOUND: 'HUB_NOT_FOUND',
  RATE_LIMITED: 'HUB_RATE_LIMITED',
  UNREACHABLE: 'HUB_UNREACHABLE',
  ERROR: 'HUB_ERROR',
} as const

/** Retry-After is believed up to this; a longer ask is cut to it (the workflow waits again if needed). */
const MAX_RETRY_AFTER_MS = 10 * 60_000
const DEFAULT_RETRY_AFTER_MS = 5_000
const MAX_REDIRECTS = 5
const MAX_ERROR_TEXT = 300

export class HubRateLimited extends WorkflowStepError {
  constructor(readonly retryAfterMs: number) {
    super(HubErrorCode.RATE_LIMITED, `the hub asked to wait ${Math.ceil(retryAfterMs / 1000)} s`)
  }
}

export interface HubFile {
  path: string
  size: number
  lfs: boolean
  /** The LFS object id (sha256 of the content), for LFS files. */
  sha256: string | null
  /** The git blob SHA-1, which is what the hub states of a small file. */
  gitOid: string | null
}

export interface HubAccess {
  hubUrl: string
  repo: string
  token?: string
  signal?: AbortSignal
}

function retryAfterMs(value: string | null): number {
  if (!value) return DEFAULT_RETRY_AFTER_MS
  const seconds = Number(value)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now()
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(1_000, Number.isFinite(ms) ? ms : DEFAULT_RETRY_AFTER_MS))
}

/** The hub's own words, bounded, with the token (if it ever echoed it) cut out. */
function said(message: string, token?: string): string {
  const text = token ? message.split(token).join('…') : message
  return text.slice(0, MAX_ERROR_TEXT)
}

/** Maps an answer the hub refused: 401/403 (gated or no access), 404, 429, anything else. */
export function hubFailure(status: number, headers: Headers | null, message: string, access: Pick<HubAccess, 'repo' | 'token'>): Error {
  const code = headers?.get('x-error-code') ?? ''
  const text = said(headers?.get('x-error-message') ?? message, access.token)
  if (status === 429) return new HubRateLimited(retryAfterMs(headers?.get('retry-after') ?? null))
  if (status === 401 || status === 403 || code === 'GatedRepo') {
    const hint = access.token ? 'the credential has no access to it' : 'it needs a hugging_face credential with access (credentialId)'
    return new WorkflowStepError(HubErrorCode.UNAUTHORIZED, `the hub refused ${access.repo} (${status}): ${hint}. ${text}`)
  }
  if (status === 404) {
    const what = code === 'RevisionNotFound' ? 'revision' : code === 'EntryNotFound' ? 'file' : 'repository'
    return new WorkflowStepError(HubErrorCode.NOT_FOUND, `the hub has no such ${what} in ${access.repo}: ${text}`)
  }
  return new WorkflowStepError(HubErrorCode.ERROR, `the hub answered ${status}: ${text}`)
}

function networkFailure(err: unknown): Error {
  if (err instanceof WorkflowStepError) return err
  const cause = (err as { cause?: { code?: string } })?.cause?.code ?? (err instanceof Error ? err.message : String(err))
  return new WorkflowStepError(HubErrorCode.UNREACHABLE, `the hub could not be reached: ${String(cause).slice(0, MAX_ERROR_TEXT)}`)
}

/**
 * Calls through @huggingface/hub, keeping the last refused answer's headers: its HubApiError keeps
 * the status and message but not X-Error-Code or Retry-After, which decide the mapping.
 */
async function viaLibrary<T>(access: HubAccess, call: (fetchFn: typeof fetch) => Promise<T>): Promise<T> {
  let refused: Response | null = null
  const fetchFn: typeof fetch = async (input, init) => {
    const response = await fetch(input, { ...init, signal: access.signal ?? null })
    if (!response.ok) refused = response
    return response
  }
  try {
    return await call(fetchFn)
  } catch (err) {
    if (err instanceof HubApiError) throw hubFailure(err.statusCode, (refused as Response | null)?.headers ?? null, err.message, access)
    throw networkFailure(err)
  }
}

const credentials = (access: HubAccess) => (access.token ? { accessToken: access.token } : {})

/** The commit a branch, tag or commit id stands for now: the import is pinned to it. */
export async function resolveCommit(access: HubAccess, revision: string): Promise<string> {
  const info = await viaLibrary(access, (fetchFn) =>
    modelInfo({ name: access.repo, revision, hubUrl: access.hubUrl, additionalFields: ['sha'], fetch: fetchFn, ...credentials(access) }),
  )
  const sha = (info as { sha?: unknown }).sha
  if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) throw new WorkflowStepError(HubErrorCode.ERROR, 'the hub did not name the commit of the revision')
  return sha
}

/** Every file at the commit (folders walked), at most `limit` of them. */
export async function listHubFiles(access: HubAccess, commit: string, limit: number): Promise<HubFile[]> {
  return viaLibrary(access, async (fetchFn) => {
    const files: HubFile[] = []
    for await (const entry of listFiles({ repo: { type: 'model', name: access.repo }, revision: commit, recursive: true, hubUrl: access.hubUrl, fetch: fetchFn, ...credentials(access) })) {
      if (entry.type !== 'file') continue
      if (files.length >= limit) throw new WorkflowStepError('MODEL_IMPORT_TOO_MANY_FILES', `the repository holds more than ${limit} files: narrow it with include/exclude`)
      files.push({
        path: entry.path,
        size: entry.lfs?.size ?? entry.size,
        lfs: entry.lfs !== undefined,
        sha256: entry.lfs?.oid ?? null,
        gitOid: entry.lfs ? null : (entry.oid ?? null),
      })
    }
    return files
  })
}

/**
 * Bytes `start`..`end` (inclusive) of a file at a commit, as a stream. Redirects (LFS files go to
 * a CDN) are followed here rather than by fetch, so that the token is never sent to another origin.
 */
export async function fetchFileRange(access: HubAccess, commit: string, path: string, start: number, end: number): Promise<Readable> {
  let url = new URL(`${access.hubUrl}/${access.repo}/resolve/${commit}/${path.split('/').map(encodeURIComponent).join('/')}`)
  const origin = url.origin
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { range: `bytes=${start}-${end}` }
    if (access.token && url.origin === origin) headers.authorization = `Bearer ${access.token}`
    let response: Response
    try {
      response = await fetch(url, { headers, redirect: 'manual', signal: access.signal ?? null })
    } catch (err) {
      throw networkFailure(err)
    }
    if (response.status >= 300 && response.status < 400 && response.headers.has('location')) {
      await response.body?.cancel()
      if (hop >= MAX_REDIRECTS) throw new WorkflowStepError(HubErrorCode.ERROR, 'the hub redirected too many times')
      url = new URL(response.headers.get('location')!, url)
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WorkflowStepError(HubErrorCode.ERROR, 'the hub redirected to a non-HTTP address')
      continue
    }
    if (!response.ok) {
      const text = await response.text().catch(() => '')
      throw hubFailure(response.status, response.headers, text, access)
    }
    // A 200 to a ranged request is the whole file: only acceptable when the range starts at 0.
    const range = response.headers.get('content-range')
    const startsAt = response.status === 206 ? Number(/^bytes (\d+)-/.exec(range ?? '')?.[1] ?? Number.NaN) : 0
    if (startsAt !== start || !response.body) {
      await response.body?.cancel()
      throw new WorkflowStepError(HubErrorCode.ERROR, `the hub answered bytes from ${startsAt} when asked from ${start}`)
    }
    return Readable.fromWeb(response.body as ReadableStream<Uint8Array>)
  }
}
