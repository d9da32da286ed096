import { createHash } from 'node:crypto'
import { type Content, type Digests, computeDigests, contentSize, gitBlobSha1, lfsPointer } from './content.js'

/**
 * The stand-in's repositories: branches pointing at immutable commits, each commit a set of files.
 * Adding a repository again moves its branch to a new commit; the old commit stays reachable by
 * its id, as on the hub, so a download pinned to a commit keeps getting the same bytes.
 */

export interface FileSpec {
  /** Path in the repository, '/'-separated: 'model.safetensors', 'onnx/model.onnx'. */
  path: string
  content?: Buffer | string
  /** Bytes produced on the fly from the seed; any size, never held in memory. */
  generated?: { size: number; seed: number }
  /** Stored with LFS; by default as the hub's .gitattributes and its 10 MB rule decide. */
  lfs?: boolean
}

export interface RepoSpec {
  /** 'owner/name' */
  id: string
  /** Branch name, 'main' by default. */
  revision?: string
  files: FileSpec[]
  /** Downloads need a token that was granted access (listings stay public, as on the hub). */
  gated?: boolean
  /** Everything needs a token; without one the repository answers as if it did not exist. */
  private?: boolean
  /** The token granted access to this gated or private repository (default: tokens.valid). */
  token?: string
}

export interface StoredFile {
  path: string
  content: Content
  size: number
  lfs: boolean
}

export interface Commit {
  sha: string
  date: string
  files: Map<string, StoredFile>
}

export interface Repo {
  id: string
  /** 24 hex, as the hub's `_id`. */
  objectId: string
  createdAt: string
  gated: boolean
  private: boolean
  token?: string
  branches: Map<string, string>
  commits: Map<string, Commit>
}

export const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/
const MAX_PATH = 1024
/** The hub refuses plain git files above 10 MB: anything larger is LFS. */
const LFS_ABOVE_BYTES = 10 * 1024 * 1024
/** Extensions in the .gitattributes the hub writes into every new model repository (and GGUF). */
const LFS_PATTERNS = [
  /\.(7z|arrow|bin|bz2|ckpt|ftz|gz|h5|joblib|lfs|mlmodel|model|msgpack|npy|npz|onnx|ot|parquet|pb|pickle|pkl|pt|pth|rar|safetensors|tar|tflite|tgz|wasm|xz|zip|zst|gguf)$/,
  /\.tar\.[^/]+$/,
  /tfevents/,
  /(^|\/)saved_model\//,
]

function isLfs(path: string, size: number): boolean {
  return size > LFS_ABOVE_BYTES || LFS_PATTERNS.some((re) => re.test(path))
}

function toContent(file: FileSpec): Content {
  if (file.generated) {
    const { size, seed } = file.generated
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`generated size of ${file.path} must be a non-negative integer`)
    return { kind: 'generated', size, seed }
  }
  const bytes = typeof file.content === 'string' ? Buffer.from(file.content) : (file.content ?? Buffer.alloc(0))
  return { kind: 'buffer', bytes }
}

function checkPath(path: string) {
  const parts = path.split('/')
  if (!path || path.length > MAX_PATH || path.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`invalid file path: ${JSON.stringify(path)}`)
  }
}

/** What identifies a file's bytes cheaply (a generated file by its seed, not by hashing a GB). */
function fingerprint(file: StoredFile): string {
  const c = file.content
  return c.kind === 'buffer' ? gitBlobSha1(c.bytes) : `generated:${c.seed}:${c.size}`
}

export function createRepoStore() {
  const repos = new Map<string, Repo>()
  const digests = new Map<Content, Promise<Digests>>()
  let commitCounter = 0

  function add(spec: RepoSpec): { commit: string } {
    if (!REPO_ID.test(spec.id)) throw new Error(`invalid repo id: ${JSON.stringify(spec.id)} (expected owner/name)`)
    const revision = spec.revision ?? 'main'
    if (!/^[A-Za-z0-9._/-]{1,200}$/.test(revision) || /^[0-9a-f]{40}$/.test(revision)) {
      throw new Error(`invalid branch name: ${JSON.stringify(revision)}`)
    }
    const files = new Map<string, StoredFile>()
    for (const f of spec.files) {
      checkPath(f.path)
      if (files.has(f.path)) throw new Error(`duplicate file path: ${f.path}`)
      const content = toContent(f)
      const size = contentSize(content)
      files.set(f.path, { path: f.path, content, size, lfs: f.lfs ?? isLfs(f.path, size) })
    }
    const now = new Date().toISOString()
    let repo = repos.get(spec.id)
    if (!repo) {
      const objectId = createHash('sha1').update(`repo:${spec.id}`).digest('hex').slice(0, 24)
      repo = { id: spec.id, objectId, createdAt: now, gated: false, private: false, branches: new Map(), commits: new Map() }
      repos.set(spec.id, repo)
    }
    repo.gated = spec.gated ?? false
    repo.private = spec.private ?? false
    repo.token = spec.token
    // Not a real git commit object: a stable id from what the commit holds, plus a counter so that
    // re-adding the same files still makes a new commit (as a push of an empty commit would).
    const h = createHash('sha1').update(`commit\0${spec.id}\0${revision}\0${++commitCounter}\0`)
    for (const f of [...files.values()].sort((a, b) => (a.path < b.path ? -1 : 1))) h.update(`${f.path}\0${fingerprint(f)}\0`)
    const sha = h.digest('hex')
    repo.commits.set(sha, { sha, date: now, files })
    repo.branches.set(revision, sha)
    return { commit: sha }
  }

  /** A branch name, 'HEAD' (the default branch) or a full commit id. */
  function resolveRevision(repo: Repo, revision: string): Commit | undefined {
    const branch = revision === 'HEAD' ? 'main' : revision
    const sha = repo.branches.get(branch) ?? (/^[0-9a-f]{40}$/.test(revision) ? revision : undefined)
    return sha ? repo.commits.get(sha) : undefined
  }

  /** Hashes of a file's bytes, computed once (streamed for generated files) and kept. */
  function digestsOf(file: StoredFile): Promise<Digests> {
    let d = digests.get(file.content)
    if (!d) {
      d = computeDigests(file.content)
      digests.set(file.content, d)
    }
    return d
  }

  /** The git blob id the tree lists: of the bytes, or of the LFS pointer standing in for them. */
  async function gitOid(file: StoredFile): Promise<string> {
    const d = await digestsOf(file)
    return file.lfs ? gitBlobSha1(lfsPointer(d.sha256, file.size)) : d.gitSha1
  }

  return {
    add,
    get: (id: string) => repos.get(id),
    resolveRevision,
    digestsOf,
    gitOid,
  }
}

export type RepoStore = ReturnType<typeof createRepoStore>
