import { createHash } from 'node:crypto'
import { parse as parseYaml } from 'yaml'
import { lfsPointer } from './content.js'
import { badRequest, entryNotFound } from './errors.js'
import type { Commit, Repo, RepoStore, StoredFile } from './repos.js'

/**
 * The JSON API: model info (`/api/models/{id}[/revision/{rev}]`) and the tree listing
 * (`/api/models/{id}/tree/{rev}[/{path}]`), in the hub's shapes.
 */

/** Fields `expand` may ask for; the hub answers 400 for any other. */
const EXPANDABLE = [
  'author',
  'cardData',
  'config',
  'createdAt',
  'disabled',
  'downloads',
  'gated',
  'lastModified',
  'library_name',
  'likes',
  'model-index',
  'pipeline_tag',
  'private',
  'safetensors',
  'sha',
  'siblings',
  'spaces',
  'tags',
  'usedStorage',
] as const

function textOf(file: StoredFile | undefined): string | undefined {
  return file?.content.kind === 'buffer' ? file.content.bytes.toString('utf8') : undefined
}

/** The README's YAML front matter, as the hub shows it in `cardData`. */
function cardData(commit: Commit): Record<string, unknown> | undefined {
  const m = /^---\r?\n([\s\S]*?)\r?\n---(\r?\n|$)/.exec(textOf(commit.files.get('README.md')) ?? '')
  if (!m) return undefined
  try {
    const data: unknown = parseYaml(m[1]!)
    return data && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** The hub shows a digest of config.json, not all of it. */
function configDigest(commit: Commit): Record<string, unknown> | undefined {
  try {
    const c = JSON.parse(textOf(commit.files.get('config.json')) ?? 'null') as Record<string, unknown> | null
    if (!c || typeof c !== 'object') return undefined
    return { architectures: c.architectures, model_type: c.model_type }
  } catch {
    return undefined
  }
}

/** Parameters per dtype from the headers of the safetensors files held in memory. */
function safetensorsSummary(commit: Commit): { parameters: Record<string, number>; total: number } | undefined {
  const parameters: Record<string, number> = {}
  let seen = false
  for (const f of commit.files.values()) {
    if (!f.path.endsWith('.safetensors') || f.content.kind !== 'buffer' || f.size < 8) continue
    const bytes = f.content.bytes
    const length = Number(bytes.readBigUInt64LE(0))
    let header: Record<string, { dtype?: string; shape?: number[] }>
    try {
      header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as typeof header
    } catch {
      continue
    }
    seen = true
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__' || !t.dtype || !Array.isArray(t.shape)) continue
      parameters[t.dtype] = (parameters[t.dtype] ?? 0) + t.shape.reduce((a, b) => a * b, 1)
    }
  }
  return seen ? { parameters, total: Object.values(parameters).reduce((a, b) => a + b, 0) } : undefined
}

export async function modelInfo(store: RepoStore, repo: Repo, commit: Commit, query: URLSearchParams) {
  const card = cardData(commit)
  const files = [...commit.files.values()].sort((a, b) => (a.path < b.path ? -1 : 1))
  const withBlobs = query.get('blobs') === 'true' || query.get('blobs') === '1'
  const siblings = await Promise.all(
    files.map(async (f) => {
      if (!withBlobs) return { rfilename: f.path }
      const d = await store.digestsOf(f)
      const blobId = await store.gitOid(f)
      return f.lfs
        ? { rfilename: f.path, blobId, size: f.size, lfs: { sha256: d.sha256, size: f.size, pointerSize: lfsPointer(d.sha256, f.size).length } }
        : { rfilename: f.path, blobId, size: f.size }
    }),
  )
  const library = typeof card?.library_name === 'string' ? card.library_name : undefined
  const cardTags = Array.isArray(card?.tags) ? card.tags.filter((t): t is string => typeof t === 'string') : []
  const config = configDigest(commit)
  const tags = [
    ...new Set([
      ...(library ? [library] : []),
      ...(files.some((f) => f.path.endsWith('.safetensors')) ? ['safetensors'] : []),
      ...(files.some((f) => f.path.endsWith('.gguf')) ? ['gguf'] : []),
      ...(typeof config?.model_type === 'string' ? [config.model_type] : []),
      ...cardTags,
      ...(typeof card?.pipeline_tag === 'string' ? [card.pipeline_tag] : []),
      ...(typeof card?.license === 'string' ? [`license:${card.license}`] : []),
      'region:us',
    ]),
  ]
  const full: Record<string, unknown> = {
    _id: repo.objectId,
    id: repo.id,
    modelId: repo.id,
    author: repo.id.split('/')[0],
    sha: commit.sha,
    lastModified: commit.date,
    private: repo.private,
    disabled: false,
    gated: repo.gated ? 'auto' : false,
    pipeline_tag: card?.pipeline_tag,
    tags,
    downloads: 0,
    library_name: library,
    likes: 0,
    'model-index': card?.['model-index'],
    config,
    cardData: card,
    siblings,
    spaces: [],
    createdAt: repo.createdAt,
    safetensors: safetensorsSummary(commit),
    usedStorage: files.reduce((sum, f) => sum + f.size, 0),
  }
  const expand = [...query.getAll('expand'), ...query.getAll('expand[]')]
  if (!expand.length) return full
  for (const [i, key] of expand.entries()) {
    if (!(EXPANDABLE as readonly string[]).includes(key)) {
      throw badRequest(`"expand[${i}]" must be one of [${EXPANDABLE.map((k) => `"${k}"`).join(', ')}]`)
    }
  }
  // With `expand`, the hub answers only the fields asked for, beside the two ids.
  return Object.fromEntries([['_id', full._id], ['id', full.id], ...expand.map((k) => [k, full[k]])])
}

export interface TreeEntry {
  type: 'file' | 'directory'
  oid: string
  size: number
  path: string
  lfs?: { oid: string; size: number; pointerSize: number }
  lastCommit?: { id: string; title: string; date: string }
}

/**
 * Every entry under `dir` ('' for the root): its direct children, or with `recursive` every file
 * and folder below it. A folder's `oid` is derived from what it holds, not git's tree hash.
 */
export async function treeEntries(store: RepoStore, commit: Commit, dir: string, recursive: boolean, expand: boolean): Promise<TreeEntry[]> {
  const prefix = dir ? `${dir}/` : ''
  if (dir && commit.files.has(dir)) throw entryNotFound()
  const under = [...commit.files.values()].filter((f) => f.path.startsWith(prefix))
  if (dir && !under.length) throw entryNotFound()
  const lastCommit = expand ? { lastCommit: { id: commit.sha, title: 'Upload folder using huggingface_hub', date: commit.date } } : {}
  const dirs = new Map<string, StoredFile[]>()
  const files: StoredFile[] = []
  for (const f of under) {
    const rest = f.path.slice(prefix.length).split('/')
    // Folders on the way to the file: only the first level without `recursive`.
    for (let depth = 1; depth < rest.length && (recursive || depth === 1); depth++) {
      const folder = prefix + rest.slice(0, depth).join('/')
      dirs.set(folder, [...(dirs.get(folder) ?? []), f])
    }
    if (recursive || rest.length === 1) files.push(f)
  }
  const entries: TreeEntry[] = []
  for (const [path, inside] of dirs) {
    const h = createHash('sha1').update(`tree\0${path}\0`)
    for (const f of inside) h.update(`${f.path}\0${await store.gitOid(f)}\0`)
    entries.push({ type: 'directory', oid: h.digest('hex'), size: 0, path, ...lastCommit })
  }
  for (const f of files) {
    const oid = await store.gitOid(f)
    const entry: TreeEntry = { type: 'file', oid, size: f.size, path: f.path, ...lastCommit }
    if (f.lfs) {
      const { sha256 } = await store.digestsOf(f)
      entry.lfs = { oid: sha256, size: f.size, pointerSize: lfsPointer(sha256, f.size).length }
    }
    entries.push(entry)
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}
