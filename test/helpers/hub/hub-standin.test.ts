import { gguf } from '@huggingface/gguf'
import { HubApiError, downloadFile, fileDownloadInfo, listFiles, modelInfo, parseSafetensorsMetadata } from '@huggingface/hub'
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type HubStandIn, configJson, ggufFile, modelCard, readAll, safetensorsFile, startHubStandIn, tinyModelRepo } from './index.js'

// The real @huggingface/hub and @huggingface/gguf, and plain fetch, against the stand-in.

const GENERATED = { size: 3 * 1024 * 1024 + 5, seed: 42 }

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex')

async function apiError(call: Promise<unknown>): Promise<HubApiError> {
  try {
    await call
  } catch (err) {
    if (err instanceof HubApiError) return err
    throw err
  }
  throw new Error('the call succeeded')
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

let hub: HubStandIn
let tiny: ReturnType<typeof tinyModelRepo>
let firstCommit: string
let secondCommit: string
const ggufBytes = ggufFile(
  {
    'general.architecture': 'llama',
    'general.name': 'Tiny GGUF',
    'llama.context_length': 4096,
    'llama.embedding_length': 64,
    'llama.rope.freq_base': 10000.5,
    'tokenizer.ggml.tokens': ['<s>', '</s>', 'hello'],
    'general.file_type': 7,
  },
  [{ name: 'token_embd.weight', type: 'Q8_0', shape: [64, 3] }],
)

beforeAll(async () => {
  hub = await startHubStandIn({ treePageSize: 2 })
  tiny = tinyModelRepo('acme/tiny-llama')
  firstCommit = hub.addRepo({ ...tiny, files: tiny.files.filter((f) => f.path !== 'tokenizer.json') }).commit
  secondCommit = hub.addRepo({
    ...tiny,
    files: [...tiny.files, { path: 'weights/big.bin', generated: GENERATED }, { path: 'gguf/tiny-Q8_0.gguf', content: ggufBytes }],
  }).commit
})

afterAll(async () => {
  await hub.close()
})

const fileOf = (path: string) => Buffer.from(tiny.files.find((f) => f.path === path)!.content as Buffer | string)

describe('listings', () => {
  it('model info names the commit a branch points at, its files and its card', async () => {
    const info = await modelInfo({ name: 'acme/tiny-llama', hubUrl: hub.url, additionalFields: ['sha', 'filePaths', 'cardData', 'config'] })
    expect(firstCommit).toMatch(/^[0-9a-f]{40}$/)
    expect(info.sha).toBe(secondCommit)
    expect(info.name).toBe('acme/tiny-llama')
    expect(info.task).toBe('text-generation')
    expect(info.gated).toBe(false)
    expect(info.filePaths).toEqual([
      'README.md',
      'config.json',
      'gguf/tiny-Q8_0.gguf',
      'model.safetensors',
      'tokenizer.json',
      'weights/big.bin',
    ])
    expect(info.cardData).toMatchObject({ license: 'apache-2.0', tags: ['llama', 'tiny'] })
    expect(info.config).toEqual({ architectures: ['LlamaForCausalLM'], model_type: 'llama' })
  })

  it('a commit id still shows what it held after the branch moved on', async () => {
    const info = await modelInfo({ name: 'acme/tiny-llama', hubUrl: hub.url, revision: firstCommit, additionalFields: ['sha', 'filePaths'] })
    expect(info.sha).toBe(firstCommit)
    expect(info.filePaths).not.toContain('tokenizer.json')
  })

  it('the recursive tree lists every file with its size, git oid and LFS sha256, across Link pages', async () => {
    const before = hub.stats.requests.length
    const entries = await collect(listFiles({ repo: 'acme/tiny-llama', hubUrl: hub.url, recursive: true }))
    const pages = hub.stats.requests.slice(before).filter((r) => r.url.includes('/tree/'))
    expect(pages.length).toBe(4) // 8 entries (6 files, 2 folders), 2 a page
    expect(pages.slice(1).every((r) => r.url.includes('cursor='))).toBe(true)

    const byPath = new Map(entries.map((e) => [e.path, e]))
    expect([...byPath.keys()].sort()).toEqual([...new Set(byPath.keys())].sort())
    expect(byPath.get('gguf')).toMatchObject({ type: 'directory', size: 0 })
    expect(byPath.get('weights')).toMatchObject({ type: 'directory' })

    const config = fileOf('config.json')
    expect(byPath.get('config.json')).toMatchObject({ type: 'file', size: config.length, oid: gitSha1(config) })
    expect(byPath.get('config.json')!.lfs).toBeUndefined()

    const weights = fileOf('model.safetensors')
    const st = byPath.get('model.safetensors')!
    expect(st.size).toBe(weights.length)
    expect(st.lfs).toMatchObject({ oid: sha256(weights), size: weights.length })
    // The git oid of an LFS file is that of its pointer.
    const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(weights)}\nsize ${weights.length}\n`)
    expect(st.oid).toBe(gitSha1(pointer))
    expect(st.lfs!.pointerSize).toBe(pointer.length)

    const big = await readAll({ kind: 'generated', ...GENERATED })
    expect(byPath.get('weights/big.bin')!.lfs).toMatchObject({ oid: sha256(big), size: GENERATED.size })
  })

  it('without recursion, the tree shows one level, folders included', async () => {
    const root = await collect(listFiles({ repo: 'acme/tiny-llama', hubUrl: hub.url }))
    expect(root.map((e) => `${e.type}:${e.path}`).sort()).toEqual(
      ['directory:gguf', 'directory:weights', 'file:README.md', 'file:config.json', 'file:model.safetensors', 'file:tokenizer.json'].sort(),
    )
    const inside = await collect(listFiles({ repo: 'acme/tiny-llama', hubUrl: hub.url, path: 'weights' }))
    expect(inside.map((e) => e.path)).toEqual(['weights/big.bin'])
  })
})

describe('downloads', () => {
  it('an LFS file redirects to the CDN with its size and sha256, and downloads whole', async () => {
    const weights = fileOf('model.safetensors')
    const info = await fileDownloadInfo({ repo: 'acme/tiny-llama', path: 'model.safetensors', hubUrl: hub.url })
    expect(info).toMatchObject({ size: weights.length, etag: `"${sha256(weights)}"` })
    expect(info!.url).toContain('/cdn-lfs/acme/tiny-llama/')

    const blob = await downloadFile({ repo: 'acme/tiny-llama', path: 'model.safetensors', hubUrl: hub.url, downloadInfo: info! })
    expect(Buffer.from(await blob!.arrayBuffer()).equals(weights)).toBe(true)
  })

  it('resolve answers as the hub does: 302 with X-Repo-Commit and X-Linked-*, 200 with ETag for small files', async () => {
    const weights = fileOf('model.safetensors')
    const head = await fetch(`${hub.url}/acme/tiny-llama/resolve/main/model.safetensors`, { method: 'HEAD', redirect: 'manual' })
    expect(head.status).toBe(302)
    expect(head.headers.get('x-repo-commit')).toBe(secondCommit)
    expect(head.headers.get('x-linked-size')).toBe(String(weights.length))
    expect(head.headers.get('x-linked-etag')).toBe(`"${sha256(weights)}"`)
    expect(head.headers.get('location')).toMatch(/\/cdn-lfs\//)

    const config = fileOf('config.json')
    const small = await fetch(`${hub.url}/acme/tiny-llama/resolve/${firstCommit}/config.json`)
    expect(small.status).toBe(200)
    expect(small.headers.get('etag')).toBe(`"${gitSha1(config)}"`)
    expect(small.headers.get('x-repo-commit')).toBe(firstCommit)
    expect(Buffer.from(await small.arrayBuffer()).equals(config)).toBe(true)

    const raw = await fetch(`${hub.url}/acme/tiny-llama/raw/main/model.safetensors`)
    expect(await raw.text()).toContain(`oid sha256:${sha256(weights)}`)
  })

  it('honours byte ranges on the CDN, for stored and generated files, and refuses one past the end', async () => {
    const big = await readAll({ kind: 'generated', ...GENERATED })
    const url = `${hub.url}/acme/tiny-llama/resolve/main/weights/big.bin`
    const mid = await fetch(url, { headers: { Range: 'bytes=1000003-1065539' } })
    expect(mid.status).toBe(206)
    expect(mid.headers.get('content-range')).toBe(`bytes 1000003-1065539/${GENERATED.size}`)
    expect(Buffer.from(await mid.arrayBuffer()).equals(big.subarray(1000003, 1065540))).toBe(true)

    const tail = await fetch(url, { headers: { Range: `bytes=${GENERATED.size - 7}-` } })
    expect(Buffer.from(await tail.arrayBuffer()).equals(big.subarray(-7))).toBe(true)

    const past = await fetch(url, { headers: { Range: `bytes=${GENERATED.size}-` } })
    expect(past.status).toBe(416)
    expect(past.headers.get('content-range')).toBe(`bytes */${GENERATED.size}`)

    const whole = await fetch(url)
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(big))
  })

  it('generated bytes depend on the seed only', async () => {
    const a = await readAll({ kind: 'generated', size: 100, seed: 1 })
    const b = await readAll({ kind: 'generated', size: 100, seed: 1 })
    const c = await readAll({ kind: 'generated', size: 100, seed: 2 })
    expect(a.equals(b)).toBe(true)
    expect(a.equals(c)).toBe(false)
  })

  it('the CDN refuses a URL whose signature does not match', async () => {
    const head = await fetch(`${hub.url}/acme/tiny-llama/resolve/main/model.safetensors`, { method: 'HEAD', redirect: 'manual' })
    const tampered = head.headers.get('location')!.replace(/path=[^&]+/, 'path=config.json')
    expect((await fetch(tampered)).status).toBe(403)
  })
})

describe('fixtures are what real readers accept', () => {
  it('parseSafetensorsMetadata reads the header and counts the parameters', async () => {
    const parsed = await parseSafetensorsMetadata({ repo: 'acme/tiny-llama', hubUrl: hub.url, computeParametersCount: true })
    expect(parsed.sharded).toBe(false)
    expect(parsed.parameterCount).toEqual({ F16: 4656 })
    if (!parsed.sharded) expect(parsed.header['lm_head.weight']).toMatchObject({ dtype: 'F16', shape: [64, 16] })
  })

  it('gguf() reads the metadata through the resolve URL', async () => {
    const { metadata, tensorInfos } = await gguf(`${hub.url}/acme/tiny-llama/resolve/main/gguf/tiny-Q8_0.gguf`)
    expect(metadata).toMatchObject({
      version: 3,
      'general.architecture': 'llama',
      'general.name': 'Tiny GGUF',
      'llama.context_length': 4096,
      'tokenizer.ggml.tokens': ['<s>', '</s>', 'hello'],
    })
    expect((metadata as Record<string, unknown>)['llama.rope.freq_base']).toBeCloseTo(10000.5)
    expect(tensorInfos).toEqual([{ name: 'token_embd.weight', n_dims: 2, shape: [64n, 3n], dtype: 8, offset: 0n }])
  })

  it('model cards and configs carry what the catalog reads', () => {
    expect(modelCard({ license: 'mit', tags: ['a'] }, 'body')).toBe('---\nlicense: mit\ntags:\n  - a\n---\n\nbody')
    expect(JSON.parse(configJson({ max_position_embeddings: 8192 }))).toMatchObject({ model_type: 'llama', max_position_embeddings: 8192 })
    const st = safetensorsFile([{ name: 'w', dtype: 'F32', shape: [2, 3] }])
    const headerLength = Number(st.readBigUInt64LE(0))
    expect(headerLength % 8).toBe(0)
    expect(st.length).toBe(8 + headerLength + 24)
  })
})

describe('failures', () => {
  it('tells a missing repository, revision and file apart', async () => {
    const anonymous = await apiError(modelInfo({ name: 'acme/nope', hubUrl: hub.url }))
    expect(anonymous.statusCode).toBe(401)
    const known = await apiError(modelInfo({ name: 'acme/nope', hubUrl: hub.url, accessToken: hub.tokens.valid }))
    expect(known.statusCode).toBe(404)
    expect(known.message).toContain('Repository not found')

    const repo = await fetch(`${hub.url}/acme/nope/resolve/main/config.json`, { headers: { Authorization: `Bearer ${hub.tokens.valid}` } })
    expect([repo.status, repo.headers.get('x-error-code')]).toEqual([404, 'RepoNotFound'])
    const rev = await fetch(`${hub.url}/acme/tiny-llama/resolve/v9/config.json`)
    expect([rev.status, rev.headers.get('x-error-code')]).toEqual([404, 'RevisionNotFound'])
    expect(await fileDownloadInfo({ repo: 'acme/tiny-llama', path: 'missing.bin', hubUrl: hub.url })).toBeNull()
  })

  it('a gated repository lists openly but serves files only to a token granted access', async () => {
    hub.addRepo({ ...tinyModelRepo('acme/gated'), gated: true, token: 'hf_granted_for_gated' })
    const info = await modelInfo({ name: 'acme/gated', hubUrl: hub.url })
    expect(info.gated).toBe('auto')

    const get = (token?: string) =>
      fetch(`${hub.url}/acme/gated/resolve/main/config.json`, { headers: token ? { Authorization: `Bearer ${token}` } : {} })
    const none = await get()
    expect([none.status, none.headers.get('x-error-code')]).toEqual([401, 'GatedRepo'])
    expect(await none.json()).toEqual({ error: expect.stringContaining('Access to model acme/gated is restricted') })
    expect((await get('hf_unknown')).status).toBe(401)
    const notGranted = await get(hub.tokens.valid)
    expect([notGranted.status, notGranted.headers.get('x-error-code')]).toEqual([403, 'GatedRepo'])
    const granted = await get('hf_granted_for_gated')
    expect(granted.status).toBe(200)
    expect(JSON.parse(await granted.text())).toMatchObject({ model_type: 'llama' })

    const err = await apiError(downloadFile({ repo: 'acme/gated', path: 'config.json', hubUrl: hub.url }))
    expect(err.statusCode).toBe(401)
  })

  it('a private repository is, to anyone without its token, a repository that does not exist', async () => {
    hub.addRepo({ ...tinyModelRepo('acme/private'), private: true })
    const url = `${hub.url}/api/models/acme/private`
    const anonymous = await fetch(url)
    expect([anonymous.status, anonymous.headers.get('x-error-code')]).toEqual([401, 'RepoNotFound'])
    const other = await fetch(url, { headers: { Authorization: 'Bearer hf_granted_for_gated' } })
    expect([other.status, other.headers.get('x-error-code')]).toEqual([404, 'RepoNotFound'])
    const info = await modelInfo({ name: 'acme/private', hubUrl: hub.url, accessToken: hub.tokens.valid })
    expect(info.private).toBe(true)
  })

  it('refuses an expand field it does not know, as the hub does', async () => {
    const res = await fetch(`${hub.url}/api/models/acme/tiny-llama?expand=weights`)
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({ error: expect.stringContaining('"expand[0]" must be one of') })
  })

  it('the CDN refuses a signed URL past its expiry', async () => {
    const stale = await startHubStandIn({ cdnUrlTtlSeconds: -1 })
    try {
      stale.addRepo(tinyModelRepo('acme/tiny-llama'))
      const res = await fetch(`${stale.url}/acme/tiny-llama/resolve/main/model.safetensors`)
      expect(res.status).toBe(403)
      expect(await res.text()).toContain('Request has expired')
    } finally {
      await stale.close()
    }
  })

  it('answers 429 with Retry-After the number of times asked, then serves again', async () => {
    hub.failures.tooManyRequests(2, 7)
    const url = `${hub.url}/api/models/acme/tiny-llama`
    const first = await fetch(url)
    expect([first.status, first.headers.get('retry-after')]).toEqual([429, '7'])
    expect((await fetch(url)).status).toBe(429)
    expect((await fetch(url)).status).toBe(200)
  })

  it('cuts the connection mid-file; a Range request picks up where it stopped', async () => {
    const url = `${hub.url}/acme/tiny-llama/resolve/main/weights/big.bin`
    const big = await readAll({ kind: 'generated', ...GENERATED })
    const before = hub.stats.bytesServed('weights/big.bin')
    hub.failures.dropAfterBytes('weights/big.bin', 1_000_000)

    const received: Buffer[] = []
    const res = await fetch(url)
    expect(res.status).toBe(200)
    await expect(
      (async () => {
        for await (const chunk of res.body!) received.push(Buffer.from(chunk))
      })(),
    ).rejects.toThrow()
    const got = Buffer.concat(received)
    expect(got.length).toBe(1_000_000)
    expect(hub.stats.bytesServed('weights/big.bin') - before).toBe(1_000_000)

    const rest = await fetch(url, { headers: { Range: `bytes=${got.length}-` } })
    expect(rest.status).toBe(206)
    expect(sha256(Buffer.concat([got, Buffer.from(await rest.arrayBuffer())]))).toBe(sha256(big))
    expect(hub.stats.bytesServed('weights/big.bin') - before).toBe(GENERATED.size)
  })

  it('serves one wrong byte when asked, and the right one after', async () => {
    const weights = fileOf('model.safetensors')
    hub.failures.corruptByte('model.safetensors', 100)
    const url = `${hub.url}/acme/tiny-llama/resolve/main/model.safetensors`
    const bad = Buffer.from(await (await fetch(url)).arrayBuffer())
    expect(bad.length).toBe(weights.length)
    expect(sha256(bad)).not.toBe(sha256(weights))
    expect([...bad.keys()].filter((i) => bad[i] !== weights[i])).toEqual([100])
    expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(weights))
  })
})
