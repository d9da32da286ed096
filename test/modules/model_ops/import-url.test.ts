import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import tar from 'tar-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import yazl from 'yazl'
import { buildApp } from '../../../src/app.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { tinyModelRepo } from '../../helpers/hub/index.js'
import { type FileServer, type Route, startFileServer } from '../../helpers/file-server.js'
import { startS3 } from '../../helpers/s3-store.js'
import { makeCa, makeServerCert } from '../../helpers/tls.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'

/**
 * `source: url` imports against a local HTTPS server on 127.0.0.2, with OUTBOUND_DENIED_CIDRS
 * denying 127.0.0.1: a second server ("the trap") listens there, and `localhost` resolves there.
 * The trap answers anyone who asks — the test itself checks that — so an import refused for
 * `localhost`, and a trap that never saw the app connect, show the rule did the refusing.
 */
const MiB = 1024 * 1024
const PART_MB = 1

const tinyFiles = () => tinyModelRepo('acme/tiny').files.map((f) => ({ path: f.path, body: typeof f.content === 'string' ? Buffer.from(f.content) : (f.content as Buffer) }))

async function tarOf(entries: Array<Partial<tar.Header> & { name: string; body?: Buffer }>, gzip: boolean): Promise<Buffer> {
  const pack = tar.pack()
  for (const { body, ...header } of entries) pack.entry(header, body ?? Buffer.alloc(0))
  pack.finalize()
  const chunks: Buffer[] = []
  for await (const chunk of pack) chunks.push(chunk as Buffer)
  return gzip ? gzipSync(Buffer.concat(chunks)) : Buffer.concat(chunks)
}

async function zipOf(entries: Array<{ path: string; body: Buffer }>): Promise<Buffer> {
  const zip = new yazl.ZipFile()
  for (const e of entries) zip.addBuffer(e.body, e.path)
  zip.end()
  const chunks: Buffer[] = []
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** The keys the filesystem store holds (it names files by hash; the key is in each sidecar). */
function filesystemKeys(root: string, prefix: string): string[] {
  const keys: string[] = []
  for (const dir of readdirSync(root)) {
    if (dir === 'tmp') continue
    for (const name of readdirSync(join(root, dir))) {
      if (!name.endsWith('.json')) continue
      const key = (JSON.parse(readFileSync(join(root, dir, name), 'utf8')) as { key: string }).key
      if (key.startsWith(prefix)) keys.push(key)
    }
  }
  return keys
}

/**
 * The app, servers and helpers of one store's tests; `part` picks the tests registered with them
 * (the error cases need no second store, and a test registered but skipped would hide nothing).
 */
function urlImportSuite(store: 'filesystem' | 's3', part: 'both stores' | 'filesystem only'): void {
  let app: FastifyInstance
  let files: FileServer
  let trap: FileServer
  let s3: Awaited<ReturnType<typeof startS3>> | undefined
  let admin: SeededUser
  let caDir: string
  let seq = 0

  beforeAll(async () => {
    const ca = makeCa('url-import-ca')
    const cert = makeServerCert(ca, ['localhost', '127.0.0.2', '127.0.0.1'])
    caDir = mkdtempSync(join(tmpdir(), 'url-import-ca-'))
    writeFileSync(join(caDir, 'ca.pem'), ca.certPem)
    files = await startFileServer(cert, '127.0.0.2')
    trap = await startFileServer(cert, '127.0.0.1')
    if (store === 's3') s3 = await startS3('modelplane-url-import')
    app = await buildApp(
      testConfig({
        OUTBOUND_DENIED_CIDRS: '127.0.0.1/32',
        OUTBOUND_CA_FILE: join(caDir, 'ca.pem'),
        MODEL_IMPORT_PART_MB: String(PART_MB),
        MODEL_IMPORT_MAX_DOWNLOAD_BYTES: String(16 * MiB),
        MODEL_IMPORT_MAX_EXPANSION_RATIO: '10',
        LOG_LEVEL: 'silent',
        ...(s3?.env ?? {}),
      }),
      { workflows: { hub: uniqueHub('urlimport'), tuning: FAST_HUB } },
    )
    await app.ready()
    admin = await seedUser(app, { realm: uniqueRealm('urlimport'), role: 'admin' })
  }, 60_000)
  afterAll(async () => {
    await app?.close()
    await files?.close()
    await trap?.close()
    await s3?.close()
    if (caDir) rmSync(caDir, { recursive: true, force: true })
  })

  const as = () => bearer(admin.accessToken)
  const keysUnder = (prefix: string) => (s3 ? s3.list(prefix) : Promise.resolve(filesystemKeys(app.platform.config.blobDir, prefix)))
  const serve = (name: string, route: Route) => {
    const path = `/m${++seq}/${name}`
    files.routes.set(path, route)
    return { path, url: `${files.base}${path}` }
  }
  const startImport = (payload: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/v1/models/import', headers: as(), payload: { source: 'url', name: `url-${store}-${++seq}`, ...payload } })

  async function finished(workflowId: string): Promise<{ status: string; error: { code: string; message: string } | null; inputSummary: string | null }> {
    let run: { status: string; error: { code: string; message: string } | null; inputSummary: string | null } | undefined
    await waitFor(
      async () => {
        run = (await app.inject({ method: 'GET', url: `/v1/workflows/${workflowId}`, headers: as() })).json()
        return ['completed', 'failed', 'cancelled'].includes(run!.status)
      },
      60_000,
      'the import did not finish',
    )
    return run!
  }
  const modelOf = async (modelId: string) => (await app.inject({ method: 'GET', url: `/v1/models/${modelId}`, headers: as() })).json()
  const versionOf = async (modelId: string) => (await app.inject({ method: 'GET', url: `/v1/models/${modelId}/versions`, headers: as() })).json().items[0]

  async function importFails(url: string, code: string): Promise<{ modelId: string; versionId: string; message: string }> {
    const res = await startImport({ url })
    expect(res.statusCode, res.body).toBe(202)
    const { modelId, versionId, workflowId } = res.json()
    const run = await finished(workflowId)
    expect(run.status).toBe('failed')
    expect(run.error?.code, run.error?.message).toBe(code)
    expect(await keysUnder(`models/${modelId}/${versionId}`)).toEqual([])
    expect((await modelOf(modelId)).status).toBe('failed')
    return { modelId, versionId, message: run.error!.message }
  }

  if (part === 'both stores') describe('happy', () => {
    it('imports one safetensors file: stored whole, metadata read, sealed; the signed query string is never shown', async () => {
      const weights = tinyFiles().find((f) => f.path === 'model.safetensors')!.body
      const { url } = serve('model.safetensors', { body: weights })
      const res = await startImport({ url: `${url}?X-Signature=s3cr3t-query`, sha256: sha256(weights) })
      expect(res.statusCode, res.body).toBe(202)
      const { modelId, versionId, workflowId } = res.json()
      const run = await finished(workflowId)
      expect(run.status, run.error?.message).toBe('completed')
      expect(JSON.stringify(run)).not.toContain('s3cr3t')
      // Nor in what the engine keeps of the run (its history and the run record's input).
      const { rows } = await app.platform.database.pool!.query(
        `select (select count(*) from workflow_runs where id = $1::uuid and input::text like '%s3cr3t%') as in_runs,
                (select count(*) from workflow_history where instance_id = $1::text) as history,
                (select count(*) from workflow_history where instance_id = $1::text and position('s3cr3t'::bytea in event) > 0) as in_history`,
        [workflowId],
      )
      // The history is there to search (the search can fail), and holds no trace of the query string.
      expect(Number(rows[0].history)).toBeGreaterThan(0)
      expect([Number(rows[0].in_runs), Number(rows[0].in_history)]).toEqual([0, 0])
      const model = await modelOf(modelId)
      expect(model).toMatchObject({ status: 'ready', source: 'url', uri: `${url}?…`, format: 'safetensors', parameterCount: 4656, dtype: 'float16', defaultVersionId: versionId })
      expect(JSON.stringify(model)).not.toContain('s3cr3t')
      expect((await versionOf(modelId)).files).toEqual([{ path: 'model.safetensors', size: weights.length, sha256: sha256(weights) }])
    })

    it('unpacks a .tar.gz of a model into the version and reads its metadata', async () => {
      const entries = tinyFiles()
      const { url } = serve('tiny.tar.gz', { body: await tarOf([{ name: './', type: 'directory' }, ...entries.map((e) => ({ name: `./${e.path}`, body: e.body }))], true) })
      const { modelId, versionId, workflowId } = (await startImport({ url })).json()
      const run = await finished(workflowId)
      expect(run.status, run.error?.message).toBe('completed')
      expect(await modelOf(modelId)).toMatchObject({ status: 'ready', architecture: 'LlamaForCausalLM', parameterCount: 4656, license: 'apache-2.0', tasks: ['text-generation'] })
      const version = await versionOf(modelId)
      expect(version.files).toEqual(entries.map((e) => ({ path: e.path, size: e.body.length, sha256: sha256(e.body) })).sort((a, b) => (a.path < b.path ? -1 : 1)))
      expect((await keysUnder(`models/${modelId}/${versionId}`)).sort()).toEqual(entries.map((e) => `models/${modelId}/${versionId}/${e.path}`).sort())
    })

    it('unpacks a .zip of a model, byte for byte', async () => {
      const entries = tinyFiles()
      const { url } = serve('tiny.zip', { body: await zipOf(entries) })
      const { modelId, versionId, workflowId } = (await startImport({ url })).json()
      const run = await finished(workflowId)
      expect(run.status, run.error?.message).toBe('completed')
      expect(await modelOf(modelId)).toMatchObject({ status: 'ready', architecture: 'LlamaForCausalLM', parameterCount: 4656 })
      const stored = createHash('sha256')
      for await (const chunk of await app.platform.blob.get(`models/${modelId}/${versionId}/config.json`)) stored.update(chunk as Buffer)
      expect(stored.digest('hex')).toBe(sha256(entries.find((e) => e.path === 'config.json')!.body))
    })

    it('drops the one folder every file of a .tar.gz or .zip sits in: config.json lands at the root and its metadata is read', async () => {
      const entries = tinyFiles()
      const expected = entries.map((e) => ({ path: e.path, size: e.body.length, sha256: sha256(e.body) })).sort((a, b) => (a.path < b.path ? -1 : 1))
      const tgz = await tarOf([{ name: 'my-model/', type: 'directory' }, ...entries.map((e) => ({ name: `my-model/${e.path}`, body: e.body }))], true)
      const zip = await zipOf(entries.map((e) => ({ path: `my-model/${e.path}`, body: e.body })))
      for (const [name, body] of [['foldered.tar.gz', tgz], ['foldered.zip', zip]] as const) {
        const { modelId, versionId, workflowId } = (await startImport({ url: serve(name, { body }).url })).json()
        const run = await finished(workflowId)
        expect(run.status, `${name}: ${run.error?.message}`).toBe('completed')
        expect(await modelOf(modelId), name).toMatchObject({ status: 'ready', architecture: 'LlamaForCausalLM', contextLength: expect.any(Number), license: 'apache-2.0' })
        expect((await versionOf(modelId)).files, name).toEqual(expected)
        expect((await keysUnder(`models/${modelId}/${versionId}`)).sort(), name).toEqual(entries.map((e) => `models/${modelId}/${versionId}/${e.path}`).sort())
      }
    })

    it('keeps the paths of a tar whose files are not all in one folder, even when the first ones are', async () => {
      const config = Buffer.from('{"architectures":["BertModel"],"max_position_embeddings":512}')
      const notes = randomBytes(1500)
      const readme = Buffer.from('# not at the root\n')
      const body = await tarOf(
        [
          { name: 'weights/notes.bin', body: notes },
          { name: 'weights/README.md', body: readme },
          { name: 'config.json', body: config },
        ],
        false,
      )
      const { modelId, versionId, workflowId } = (await startImport({ url: serve('mixed.tar', { body }).url })).json()
      const run = await finished(workflowId)
      expect(run.status, run.error?.message).toBe('completed')
      expect((await versionOf(modelId)).files).toEqual([
        { path: 'config.json', size: config.length, sha256: sha256(config) },
        { path: 'weights/README.md', size: readme.length, sha256: sha256(readme) },
        { path: 'weights/notes.bin', size: notes.length, sha256: sha256(notes) },
      ])
      expect((await keysUnder(`models/${modelId}/${versionId}`)).sort()).toEqual(
        ['config.json', 'weights/README.md', 'weights/notes.bin'].map((p) => `models/${modelId}/${versionId}/${p}`),
      )
      const moved = createHash('sha256')
      for await (const chunk of await app.platform.blob.get(`models/${modelId}/${versionId}/weights/notes.bin`)) moved.update(chunk as Buffer)
      expect(moved.digest('hex')).toBe(sha256(notes))
      expect(await modelOf(modelId)).toMatchObject({ architecture: 'BertModel', contextLength: 512 })
    })

    it('leaves no object (nor open upload) under the version when cancelled mid-download; the model fails', { timeout: 60_000 }, async () => {
      const body = randomBytes(6 * MiB)
      const { url, path } = serve('slow.bin', { body, bytesPerSecond: 2 * MiB })
      const { modelId, versionId, workflowId } = (await startImport({ url })).json()
      const done = async () => (await app.platform.database.pool!.query<{ n: string }>('select coalesce(sum(bytes_done), 0) as n from model_version_files where version_id = $1', [versionId])).rows[0]!.n
      await waitFor(async () => Number(await done()) >= MiB, 30_000, 'no part was stored')
      const cancel = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/cancel`, headers: as() })
      expect(cancel.statusCode, cancel.body).toBe(202)
      expect((await finished(workflowId)).status).toBe('cancelled')
      await waitFor(async () => (await keysUnder(`models/${modelId}/${versionId}`)).length === 0, 20_000, 'objects of the cancelled version remain')
      // The part in flight when the run was cancelled ends with its upload aborted.
      const open = async () => {
        const found: string[] = []
        for await (const upload of app.platform.blob.listMultipartUploads(`models/${modelId}/${versionId}/`)) found.push(upload.uploadId)
        return found
      }
      await waitFor(async () => (await open()).length === 0, 20_000, 'a multipart upload of the cancelled version is still open')
      expect(files.served.get(path)!).toBeLessThan(body.length)
      expect(await modelOf(modelId)).toMatchObject({ status: 'failed' })
      expect((await versionOf(modelId)).statusReason).toContain('CANCELLED')
    })
  })

  if (part === 'filesystem only') describe('errors', () => {
    it('resumes a cut connection with Range, fetching little more than the file', async () => {
      const body = randomBytes(3 * MiB + 777)
      const route: Route = { body, drop: { after: 300_000, times: 2 } }
      const { url, path } = serve('weights.bin', route)
      const { modelId, workflowId } = (await startImport({ url })).json()
      const run = await finished(workflowId)
      expect(run.status, run.error?.message).toBe('completed')
      expect(route.drop!.times).toBe(0)
      expect(files.served.get(path)!).toBeLessThan(1.3 * body.length)
      expect(files.requests.some((r) => r.path === path && r.range !== undefined && !r.range.startsWith('bytes=0-'))).toBe(true)
      expect((await versionOf(modelId)).files).toEqual([{ path: 'weights.bin', size: body.length, sha256: sha256(body) }])
    })

    it('stores a file served without Range or length, and still bounds what it reads (URL_TOO_LARGE)', async () => {
      const small = randomBytes(200_000)
      const ok = serve('plain.bin', { body: small, ranges: false, noLength: true })
      const { modelId, workflowId } = (await startImport({ url: ok.url })).json()
      expect((await finished(workflowId)).status).toBe('completed')
      expect((await versionOf(modelId)).files).toEqual([{ path: 'plain.bin', size: small.length, sha256: sha256(small) }])

      const endless = serve('endless.bin', { body: Buffer.alloc(17 * MiB, 7), ranges: false, noLength: true })
      await importFails(endless.url, 'URL_TOO_LARGE')
    })

    it('refuses a tar with ../evil (ARCHIVE_UNSAFE) and stores nothing', async () => {
      const { url } = serve('evil.tar', { body: await tarOf([{ name: 'config.json', body: Buffer.from('{}') }, { name: '../evil', body: Buffer.from('x') }], false) })
      const { message } = await importFails(url, 'ARCHIVE_UNSAFE')
      expect(message).toContain('../evil')
    })

    it('refuses a tar holding a symlink (ARCHIVE_UNSAFE)', async () => {
      const { url } = serve('link.tar.gz', { body: await tarOf([{ name: 'config.json', body: Buffer.from('{}') }, { name: 'passwd', type: 'symlink', linkname: '/etc/passwd' }], true) })
      const { message } = await importFails(url, 'ARCHIVE_UNSAFE')
      expect(message).toContain('symlink')
    })

    it('refuses a zip bomb before inflating it, and a gzip bomb while inflating (ARCHIVE_TOO_LARGE)', async () => {
      const bomb = await zipOf([{ path: 'zeros.bin', body: Buffer.alloc(24 * MiB) }])
      expect(bomb.length).toBeLessThan(MiB)
      const zipped = await importFails(serve('bomb.zip', { body: bomb }).url, 'ARCHIVE_TOO_LARGE')
      expect(zipped.message).toContain('compression bomb')
      const gz = await tarOf([{ name: 'zeros.bin', body: Buffer.alloc(24 * MiB) }], true)
      const gzipped = await importFails(serve('bomb.tgz', { body: gz }).url, 'ARCHIVE_TOO_LARGE')
      expect(gzipped.message).toContain('compression bomb')
    })

    it('refuses a name resolving to a denied address at connect time (URL_REFUSED_ADDRESS); the trap there never sees the app', async () => {
      const body = tinyFiles()[1]!.body
      trap.routes.set('/model.safetensors', { body })
      // The trap does answer: only the rule keeps the app away from it.
      const direct = await new Promise<number>((resolve, reject) => {
        https.get(`https://127.0.0.1:${trap.port}/model.safetensors`, { ca: readFileSync(join(caDir, 'ca.pem')) }, (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        }).on('error', reject)
      })
      expect(direct).toBe(200)
      const before = trap.connections
      const { message } = await importFails(`https://localhost:${trap.port}/model.safetensors`, 'URL_REFUSED_ADDRESS')
      expect(message).toContain('127.0.0.1')
      // A redirect there from an allowed server is refused the same way, at the hop.
      const hop = serve('hop.safetensors', { body, redirect: `https://localhost:${trap.port}/model.safetensors` })
      await importFails(hop.url, 'URL_REFUSED_ADDRESS')
      expect(files.requests.some((r) => r.path === hop.path)).toBe(true)
      expect(trap.connections).toBe(before)
    })

    it('refuses at once what is refused before dialling: http, a denied literal address, no file name', async () => {
      for (const url of ['http://127.0.0.2/model.safetensors', 'https://127.0.0.1/model.safetensors', `${files.base}/`, 'https://user:pw@127.0.0.2/a.bin']) {
        const res = await startImport({ url })
        expect(res.statusCode, url).toBe(400)
        expect(res.body).not.toContain('pw@')
      }
    })

    it('fails a missing file with URL_NOT_FOUND', async () => {
      await importFails(`${files.base}/nothing-here/model.safetensors`, 'URL_NOT_FOUND')
    })
  })
}

describe.each(['filesystem', 's3'] as const)('url import into the %s store', (store) => urlImportSuite(store, 'both stores'))
describe('url import errors (filesystem store)', () => urlImportSuite('filesystem', 'filesystem only'))
