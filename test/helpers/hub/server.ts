import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { modelInfo, treeEntries } from './api.js'
import { type Faults, sendBytes } from './bytes.js'
import { lfsPointer } from './content.js'
import {
  HubError,
  entryNotFound,
  gated,
  invalidCredentials,
  repoNotFound,
  revisionNotFound,
  sendHubError,
  tooManyRequests,
} from './errors.js'
import { type Commit, type Repo, type RepoSpec, type StoredFile, createRepoStore } from './repos.js'

/**
 * A stand-in for the Hugging Face hub's HTTP API, for tests: what `@huggingface/hub` and plain
 * fetch/HTTP clients call, answered in the hub's shapes. See docs/hub-standin.md for what it
 * models and what it does not.
 */

export interface HubStandIn {
  /** http://127.0.0.1:<port>, to use as `hubUrl` / MODEL_HUB_URL. */
  url: string
  /** Add a repository, or move one of its branches to a new commit with these files. */
  addRepo(repo: RepoSpec): { commit: string }
  tokens: { valid: string }
  failures: {
    /** The next `times` hub requests (API, resolve, raw; not the CDN) answer 429 with Retry-After. */
    tooManyRequests(times: number, retryAfterSeconds: number): void
    /** The next `times` responses carrying bytes of `path` are cut after `bytes` bytes of body. */
    dropAfterBytes(path: string, bytes: number, times?: number): void
    /** The next `times` responses carrying the byte at `offset` of `path` serve it wrong. */
    corruptByte(path: string, offset: number, times?: number): void
  }
  stats: {
    /** Body bytes of file content sent (resolve, raw and CDN), for one path or in all. */
    bytesServed(path?: string): number
    requests: Array<{ method: string; url: string; range?: string }>
  }
  close(): Promise<void>
}

export interface HubStandInOptions {
  /** Entries per page of a tree listing (the hub's is 1000); small values exercise `Link` paging. */
  treePageSize?: number
  /** Lifetime of the signed CDN URLs LFS files redirect to. */
  cdnUrlTtlSeconds?: number
}

const MAX_URL = 4096
const OWNER_NAME = '([A-Za-z0-9][A-Za-z0-9._-]{0,95})/([A-Za-z0-9][A-Za-z0-9._-]{0,95})'
const API_MODEL = new RegExp(`^/api/models/${OWNER_NAME}(?:/revision/([^/]+))?$`)
const API_TREE = new RegExp(`^/api/models/${OWNER_NAME}/tree/([^/]+)(?:/(.+))?$`)
const FILE = new RegExp(`^/${OWNER_NAME}/(resolve|raw)/([^/]+)/(.+)$`)
const CDN = new RegExp(`^/cdn-lfs/${OWNER_NAME}/([0-9a-f]{64})$`)

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw new HubError(400, 'Invalid URL encoding')
  }
}

function contentType(path: string): string {
  if (path.endsWith('.json')) return 'application/json'
  if (/\.(md|txt|py|yaml|yml)$/.test(path) || path === '.gitattributes') return 'text/plain; charset=utf-8'
  return 'application/octet-stream'
}

function disposition(path: string): string {
  const name = path.split('/').pop()!
  return `inline; filename*=UTF-8''${encodeURIComponent(name)}; filename="${name.replace(/[^\x20-\x7e]|"/g, '_')}";`
}

export async function startHubStandIn(options: HubStandInOptions = {}): Promise<HubStandIn> {
  const store = createRepoStore()
  const validToken = `hf_${randomBytes(17).toString('hex')}`
  const cdnKey = randomBytes(32)
  const pageSize = options.treePageSize ?? 1000
  const cdnTtl = options.cdnUrlTtlSeconds ?? 3600
  const requests: HubStandIn['stats']['requests'] = []
  const servedByPath = new Map<string, number>()
  let throttle = { times: 0, retryAfter: 0 }
  const drops: Array<{ path: string; bytes: number; times: number }> = []
  const corruptions: Array<{ path: string; offset: number; times: number }> = []
  let url = ''

  const faults: Faults = {
    cutAfter(path, bodyLength) {
      const drop = drops.find((d) => d.path === path && d.times > 0 && d.bytes < bodyLength)
      if (!drop) return undefined
      drop.times--
      return drop.bytes
    },
    corruptOffset(path, start, end) {
      const c = corruptions.find((x) => x.path === path && x.times > 0 && x.offset >= start && x.offset < end)
      if (!c) return undefined
      c.times--
      return c.offset
    },
    served(path, bytes) {
      servedByPath.set(path, (servedByPath.get(path) ?? 0) + bytes)
    },
  }

  /** Tokens the hub knows: the general one and each repository's own. */
  const knownTokens = new Set([validToken])

  /** The bearer token, checked: a token the hub does not know fails every request, even public ones. */
  function bearer(req: IncomingMessage): string | undefined {
    const header = req.headers.authorization
    if (!header) return undefined
    const m = /^Bearer (\S{1,512})$/.exec(header)
    if (!m || !knownTokens.has(m[1]!)) throw invalidCredentials()
    return m[1]
  }

  const granted = (repo: Repo, token: string | undefined) => token !== undefined && token === (repo.token ?? validToken)

  /** The repository and commit a request names, if the caller may see them. */
  function locate(owner: string, name: string, revision: string, token: string | undefined): { repo: Repo; commit: Commit } {
    const repo = store.get(`${owner}/${name}`)
    if (!repo || (repo.private && !granted(repo, token))) throw repoNotFound(token !== undefined)
    const commit = store.resolveRevision(repo, revision)
    if (!commit) throw revisionNotFound(revision)
    return { repo, commit }
  }

  function sendJson(res: ServerResponse, body: unknown, head: boolean, headers: Record<string, string> = {}) {
    const text = JSON.stringify(body)
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers })
    res.end(head ? undefined : text)
  }

  function signCdn(path: string): string {
    return createHmac('sha256', cdnKey).update(path).digest('base64url')
  }

  function cdnUrl(repo: Repo, commit: Commit, file: StoredFile, sha256: string): string {
    const query = new URLSearchParams({ commit: commit.sha, path: file.path, Expires: String(Math.floor(Date.now() / 1000) + cdnTtl) })
    const path = `/cdn-lfs/${repo.id}/${sha256}?${query.toString()}`
    return `${url}${path}&Signature=${signCdn(path)}`
  }

  async function serveFile(req: IncomingMessage, res: ServerResponse, m: RegExpExecArray) {
    const token = bearer(req)
    const [, owner, name, kind, rawRevision, rawPath] = m
    const revision = decode(rawRevision!)
    const path = rawPath!.split('/').map(decode).join('/')
    const { repo, commit } = locate(owner!, name!, revision, token)
    if (repo.gated && !granted(repo, token)) throw gated(repo, token !== undefined, url)
    const file = commit.files.get(path)
    if (!file) throw entryNotFound()
    const common = { 'X-Repo-Commit': commit.sha, 'Content-Disposition': disposition(path) }
    if (file.lfs) {
      const { sha256 } = await store.digestsOf(file)
      const pointer = lfsPointer(sha256, file.size)
      const pointerOid = await store.gitOid(file)
      if (kind === 'raw') {
        const bytes = Buffer.from(pointer)
        await sendBytes(req, res, { path, content: { kind: 'buffer', bytes }, size: bytes.length }, { ...common, 'Content-Type': 'text/plain; charset=utf-8', ETag: `"${pointerOid}"` }, faults)
        return
      }
      // LFS bytes live on the CDN: the hub answers with where, and what the bytes will hash to.
      const location = cdnUrl(repo, commit, file, sha256)
      const body = `Found. Redirecting to ${location}`
      res.writeHead(302, {
        ...common,
        Location: location,
        ETag: `"${pointerOid}"`,
        'X-Linked-Etag': `"${sha256}"`,
        'X-Linked-Size': String(file.size),
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
      })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    const oid = await store.gitOid(file)
    await sendBytes(req, res, file, { ...common, 'Content-Type': contentType(path), ETag: `"${oid}"` }, faults)
  }

  /** The CDN: no Authorization, a signed expiring URL instead; answers as S3/CloudFront would. */
  async function serveCdn(req: IncomingMessage, res: ServerResponse, m: RegExpExecArray, target: URL) {
    const deny = (message: string) => {
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${message}</Message></Error>`
      res.writeHead(403, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    const signature = target.searchParams.get('Signature') ?? ''
    const signed = `${target.pathname}?${target.search.slice(1).replace(/&Signature=[^&]*$/, '')}`
    const expected = signCdn(signed)
    if (signature.length !== expected.length || !timingSafeEqual(Buffer.from(signature), Buffer.from(expected))) {
      deny('Invalid signature')
      return
    }
    if (Number(target.searchParams.get('Expires')) * 1000 < Date.now()) {
      deny('Request has expired')
      return
    }
    const [, owner, name, sha256] = m
    const commit = store.get(`${owner}/${name}`)?.commits.get(target.searchParams.get('commit') ?? '')
    const file = commit?.files.get(target.searchParams.get('path') ?? '')
    if (!file || (await store.digestsOf(file)).sha256 !== sha256) {
      deny('Not found')
      return
    }
    await sendBytes(req, res, file, { 'Content-Type': 'application/octet-stream', ETag: `"${sha256}"`, 'Content-Disposition': disposition(file.path) }, faults)
  }

  async function serveApi(req: IncomingMessage, res: ServerResponse, target: URL) {
    const head = req.method === 'HEAD'
    const token = bearer(req)
    let m = API_MODEL.exec(target.pathname)
    if (m) {
      const { repo, commit } = locate(m[1]!, m[2]!, m[3] ? decode(m[3]) : 'HEAD', token)
      sendJson(res, await modelInfo(store, repo, commit, target.searchParams), head)
      return
    }
    m = API_TREE.exec(target.pathname)
    if (m) {
      const revision = decode(m[3]!)
      const dir = m[4] ? m[4].split('/').map(decode).join('/').replace(/\/$/, '') : ''
      const { commit } = locate(m[1]!, m[2]!, revision, token)
      const flag = (v: string | null) => v === 'true' || v === '1'
      const recursive = flag(target.searchParams.get('recursive'))
      const expand = flag(target.searchParams.get('expand'))
      const entries = await treeEntries(store, commit, dir, recursive, expand)
      const offset = Number(Buffer.from(target.searchParams.get('cursor') ?? '', 'base64url').toString() || '0')
      if (!Number.isSafeInteger(offset) || offset < 0) throw new HubError(400, 'Invalid cursor')
      const page = entries.slice(offset, offset + pageSize)
      const headers: Record<string, string> = {}
      if (offset + pageSize < entries.length) {
        const next = new URL(target.pathname, url)
        next.searchParams.set('recursive', String(recursive))
        next.searchParams.set('expand', String(expand))
        next.searchParams.set('cursor', Buffer.from(String(offset + pageSize)).toString('base64url'))
        headers.Link = `<${next.href}>; rel="next"`
      }
      sendJson(res, page, head, headers)
      return
    }
    throw new HubError(404, 'Sorry, we can\'t find the page you are looking for.')
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const head = req.method === 'HEAD'
    res.setHeader('X-Request-Id', `Root=1-${randomUUID()}`)
    try {
      const raw = req.url ?? '/'
      requests.push({ method: req.method ?? 'GET', url: raw.slice(0, 512), ...(req.headers.range ? { range: req.headers.range.slice(0, 200) } : {}) })
      if (raw.length > MAX_URL) throw new HubError(414, 'URI too long')
      if (req.method !== 'GET' && !head) throw new HubError(405, 'Method not allowed')
      const target = new URL(raw, url)
      const cdn = CDN.exec(target.pathname)
      if (cdn) {
        await serveCdn(req, res, cdn, target)
        return
      }
      if (throttle.times > 0) {
        throttle.times--
        throw tooManyRequests(throttle.retryAfter)
      }
      const file = FILE.exec(target.pathname)
      if (file) await serveFile(req, res, file)
      else await serveApi(req, res, target)
    } catch (err) {
      if (res.headersSent) {
        res.destroy()
        return
      }
      sendHubError(res, err instanceof HubError ? err : new HubError(500, 'Internal Error'), head)
    }
  }

  const server = http.createServer((req, res) => void handle(req, res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    url,
    addRepo(spec) {
      if (spec.token !== undefined) {
        if (!/^hf_\S{1,500}$/.test(spec.token)) throw new Error('a token must start with hf_ (as @huggingface/hub checks)')
        knownTokens.add(spec.token)
      }
      return store.add(spec)
    },
    tokens: { valid: validToken },
    failures: {
      tooManyRequests(times, retryAfterSeconds) {
        throttle = { times, retryAfter: retryAfterSeconds }
      },
      dropAfterBytes(path, bytes, times = 1) {
        drops.push({ path, bytes, times })
      },
      corruptByte(path, offset, times = 1) {
        corruptions.push({ path, offset, times })
      },
    },
    stats: {
      bytesServed: (path) => (path === undefined ? [...servedByPath.values()].reduce((a, b) => a + b, 0) : (servedByPath.get(path) ?? 0)),
      requests,
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
