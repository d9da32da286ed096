import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, tempDir } from '../../helpers/app.js'
import { bearer, uniqueRealm } from '../../helpers/auth.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { type FileServer, startFileServer } from '../../helpers/file-server.js'
import { type ReplicaProcess, startReplicaProcess, stopReplicaProcess } from '../../helpers/replica-process.js'
import { makeCa, makeServerCert } from '../../helpers/tls.js'
import { waitFor } from '../../helpers/wait.js'
import { uniqueHub } from '../../helpers/workflow.js'

/**
 * The API process is killed with SIGKILL while a URL import is in the middle of its file (some
 * parts stored, not all), and started again on the same database, workflow hub and object store:
 * the import completes, and the server sent less than 1.3 × the file in all — the second process
 * asked with Range only for what the first had not stored.
 */
const MiB = 1024 * 1024
const SIZE = 40 * MiB
let files: FileServer
let sql: pg.Client
let caDir: string
const processes: ReplicaProcess[] = []
let env: Record<string, string>
let account: { email: string; password: string; realm: string }

async function login(on: ReplicaProcess): Promise<string> {
  const response = await fetch(`${on.base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: account.email, password: account.password, tenant: account.realm }),
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { accessToken: string }).accessToken
}

beforeAll(async () => {
  const ca = makeCa('url-crash-ca')
  caDir = mkdtempSync(join(tmpdir(), 'url-crash-ca-'))
  writeFileSync(join(caDir, 'ca.pem'), ca.certPem)
  files = await startFileServer(makeServerCert(ca, ['127.0.0.2']), '127.0.0.2')
  sql = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await sql.connect()
  const seeder = await buildTestApp({}, { workflows: { hub: uniqueHub('urlcrash-seed') } })
  try {
    const realm = uniqueRealm('urlcrash')
    const email = `admin-${randomUUID().slice(0, 8)}@example.test`
    const password = `pw-${randomUUID()}`
    await seeder.services.auth.createLocalUser({ realm, email, role: 'admin', password })
    account = { email, password, realm }
  } finally {
    await seeder.close()
  }
  env = {
    REPLICA_HUB: uniqueHub('urlcrash'),
    PUBLIC_URL: 'http://crash.example.test',
    BLOB_DIR: tempDir('modelplane-urlcrash-blobs-'),
    OUTBOUND_CA_FILE: join(caDir, 'ca.pem'),
    OUTBOUND_DENIED_CIDRS: '169.254.0.0/16',
    MODEL_IMPORT_PART_MB: '1',
  }
}, 60_000)

afterAll(async () => {
  for (const p of processes) await stopReplicaProcess(p, 'SIGKILL')
  await sql?.end()
  await files?.close()
  if (caDir) rmSync(caDir, { recursive: true, force: true })
})

describe('SIGKILL during a URL import', () => {
  it('completes after a restart, fetching the rest of the file with Range rather than all of it again', async () => {
    const body = randomBytes(SIZE)
    const path = '/crash/weights.bin'
    // Slow enough that the kill lands with some parts stored and not all.
    files.routes.set(path, { body, bytesPerSecond: 8 * MiB })

    const first = await startReplicaProcess('urlcrash-1', env)
    processes.push(first)
    const token = await login(first)
    const response = await fetch(`${first.base}/v1/models/import`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'url', url: `${files.base}${path}`, sha256: createHash('sha256').update(body).digest('hex') }),
    })
    expect(response.status).toBe(202)
    const { modelId, versionId, workflowId } = (await response.json()) as { modelId: string; versionId: string; workflowId: string }

    const done = async () =>
      Number((await sql.query<{ bytes_done: string }>("select bytes_done from model_version_files where version_id = $1 and path = 'weights.bin'", [versionId])).rows[0]?.bytes_done ?? 0)
    await waitFor(async () => (await done()) >= 5 * MiB, 60_000, 'the file did not start')
    await stopReplicaProcess(first, 'SIGKILL')
    const atKill = await done()
    expect(atKill).toBeLessThan(SIZE)

    const second = await startReplicaProcess('urlcrash-2', env)
    processes.push(second)
    const again = await login(second)
    let run: { status: string; error: unknown } = { status: 'running', error: null }
    await waitFor(
      async () => {
        run = (await (await fetch(`${second.base}/v1/workflows/${workflowId}`, { headers: bearer(again) })).json()) as typeof run
        return ['completed', 'failed', 'cancelled'].includes(run.status)
      },
      90_000,
      'the import did not finish after the restart',
    )
    expect(run.status, JSON.stringify(run)).toBe('completed')
    expect(files.served.get(path)!).toBeLessThan(1.3 * SIZE)
    // The second process asked for the rest, not from the start.
    expect(files.requests.some((r) => r.path === path && r.range === `bytes=${atKill}-${atKill + MiB - 1}`)).toBe(true)
    const model = (await (await fetch(`${second.base}/v1/models/${modelId}`, { headers: bearer(again) })).json()) as { status: string }
    expect(model.status).toBe('ready')
    const [version] = (await sql.query<{ status: string; size_bytes: string }>('select status, size_bytes from model_versions where id = $1', [versionId])).rows
    expect(version).toMatchObject({ status: 'ready', size_bytes: String(SIZE) })
  }, 150_000)
})
