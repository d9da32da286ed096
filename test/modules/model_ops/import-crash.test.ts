import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, tempDir } from '../../helpers/app.js'
import { bearer, uniqueRealm } from '../../helpers/auth.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { type HubStandIn, startHubStandIn, tinyModelRepo } from '../../helpers/hub/index.js'
import { type ReplicaProcess, startReplicaProcess, stopReplicaProcess } from '../../helpers/replica-process.js'
import { waitFor } from '../../helpers/wait.js'
import { uniqueHub } from '../../helpers/workflow.js'

/**
 * The API process is killed with SIGKILL while an import is in the middle of its large file (some
 * parts stored, not all), and started again on the same database, workflow hub and object store:
 * the import completes, and the hub served less than 1.3 × the model's size in all — the second
 * process asked only for the parts the first had not stored.
 */
const MiB = 1024 * 1024
const BIG = 48 * MiB
let hub: HubStandIn
let sql: pg.Client
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
  hub = await startHubStandIn()
  sql = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await sql.connect()
  const seeder = await buildTestApp({}, { workflows: { hub: uniqueHub('impcrash-seed') } })
  try {
    const realm = uniqueRealm('impcrash')
    const email = `admin-${randomUUID().slice(0, 8)}@example.test`
    const password = `pw-${randomUUID()}`
    await seeder.services.auth.createLocalUser({ realm, email, role: 'admin', password })
    account = { email, password, realm }
  } finally {
    await seeder.close()
  }
  env = {
    REPLICA_HUB: uniqueHub('impcrash'),
    PUBLIC_URL: 'http://crash.example.test',
    BLOB_DIR: tempDir('modelplane-impcrash-blobs-'),
    MODEL_HUB_URL: hub.url,
    MODEL_IMPORT_PART_MB: '1',
  }
}, 60_000)

afterAll(async () => {
  for (const p of processes) await stopReplicaProcess(p, 'SIGKILL')
  await sql?.end()
  await hub?.close()
})

describe('SIGKILL during a hub import', () => {
  it('completes after a restart, fetching the rest of the file with Range rather than all of it again', async () => {
    const spec = tinyModelRepo('acme/crash-model')
    spec.files.push({ path: '0-weights.bin', generated: { size: BIG, seed: 7 }, lfs: true })
    hub.addRepo(spec)
    const modelSize = BIG + 20_000 // the tiny files are a few kilobytes

    const first = await startReplicaProcess('impcrash-1', env)
    processes.push(first)
    const token = await login(first)
    const response = await fetch(`${first.base}/v1/models/import`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'hub', repo: 'acme/crash-model' }),
    })
    expect(response.status).toBe(202)
    const { versionId, workflowId } = (await response.json()) as { modelId: string; versionId: string; workflowId: string }

    // Killed with part of the large file stored.
    const done = async () =>
      Number((await sql.query<{ bytes_done: string }>("select bytes_done from model_version_files where version_id = $1 and path = '0-weights.bin'", [versionId])).rows[0]?.bytes_done ?? 0)
    await waitFor(async () => (await done()) >= 4 * MiB, 60_000, 'the large file did not start')
    await stopReplicaProcess(first, 'SIGKILL')
    const atKill = await done()
    expect(atKill).toBeLessThan(BIG)

    const second = await startReplicaProcess('impcrash-2', env)
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
    expect(hub.stats.bytesServed()).toBeLessThan(1.3 * modelSize)
    // The second process asked for the rest, not from the start.
    expect(hub.stats.requests.some((r) => r.url.includes('0-weights.bin') && r.range === `bytes=${atKill}-${atKill + MiB - 1}`)).toBe(true)
    const [version] = (await sql.query<{ status: string; size_bytes: string }>('select status, size_bytes from model_versions where id = $1', [versionId])).rows
    expect(version).toMatchObject({ status: 'ready' })
  }, 120_000)
})
