import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ImportResult } from '../../src/modules/user_admin/index.js'
import { endsWithin, openEventStream } from '../modules/workflow_ops/sse-client.js'
import { buildTestApp, tempDir } from '../helpers/app.js'
import { bearer, uniqueRealm } from '../helpers/auth.js'
import { TEST_DATABASE_URL, TEST_REDIS_URL, TEST_VAULT_KEYS } from '../helpers/env.js'
import { freePort, type Started, startCommand } from '../helpers/process.js'
import { type SigV4Gateway, startSigV4Gateway } from '../helpers/s3-gateway.js'
import { waitFor } from '../helpers/wait.js'
import { uniqueHub } from '../helpers/workflow.js'

/**
 * Two server processes on one PostgreSQL database, each with a data folder of its own (as a pod and
 * its replacement without the first one's disk), sharing what the shared-parts rule asks for:
 * Redis, and S3 (s3rver behind a SigV4 check) or a declared shared BLOB_DIR. They start without
 * SINGLE_REPLICA, so that they start at all is the rule at work. Clients reach them as a load
 * balancer would: one PUBLIC_URL for both, each request sent to whichever replica the test names.
 */

const PUBLIC_URL = 'http://replicas.example.test'
/** Every read from the object store waits this long in the replicas: an import's batches take a while. */
const BLOB_DELAY_MS = '300'
const S3 = { accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1' }

interface Replica {
  name: string
  base: string
  process: Started
}

const replicas: Replica[] = []
let seeder: FastifyInstance
let sql: pg.Client

async function startReplica(name: string, env: Record<string, string>): Promise<Replica> {
  const port = await freePort()
  const started = startCommand(process.execPath, ['--import', 'tsx', 'test/helpers/replica.ts'], {
    PORT: String(port),
    PUBLIC_URL,
    LOG_LEVEL: 'warn',
    DATA_DIR: tempDir(`modelplane-${name}-`),
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_POOL_MAX: '5',
    MIGRATE_ON_START: 'false',
    REDIS_URL: TEST_REDIS_URL,
    VAULT_KEYS: TEST_VAULT_KEYS,
    WORKFLOW_HUB_THREAD: 'false',
    WORKFLOW_RETENTION_DAYS: '0',
    RATE_LIMIT_MAX: '0',
    LOGIN_RATE_LIMIT_MAX: '0',
    REPLICA_BLOB_DELAY_MS: BLOB_DELAY_MS,
    ...env,
  })
  const replica = { name, base: `http://127.0.0.1:${port}`, process: started }
  replicas.push(replica)
  await waitFor(
    () => started.output().includes('replica ready') || started.child.exitCode !== null,
    60_000,
    `replica ${name} did not start`,
  )
  if (started.child.exitCode !== null) throw new Error(`replica ${name} exited: ${started.output()}`)
  return replica
}

async function stopReplica(replica: Replica, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (replica.process.child.exitCode === null && replica.process.child.signalCode === null) {
    replica.process.child.kill(signal)
    await replica.process.exited
  }
}

interface Account {
  email: string
  password: string
  realm: string
  tenantId: string
}

/** A user with a password, created through an in-process app on the same database. */
async function account(realm: string, role: string): Promise<Account> {
  const email = `${role}-${randomUUID().slice(0, 8)}@example.test`
  const password = `pw-${randomUUID()}`
  const user = await seeder.services.auth.createLocalUser({ realm, email, role, password })
  return { email, password, realm, tenantId: user.tenantId }
}

function login(on: Replica, who: Account, password = who.password): Promise<Response> {
  return fetch(`${on.base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: who.email, password, tenant: who.realm }),
  })
}

async function tokens(on: Replica, who: Account): Promise<{ accessToken: string; refreshToken: string }> {
  const response = await login(on, who)
  expect(response.status).toBe(200)
  return (await response.json()) as { accessToken: string; refreshToken: string }
}

async function startImport(on: Replica, accessToken: string, rows: number, domain: string): Promise<string> {
  const body = Array.from({ length: rows }, (_, i) => ({ email: `u${i}@${domain}`, role: 'viewer' }))
  const response = await fetch(`${on.base}/ai/admin/users/import`, {
    method: 'POST',
    headers: { ...bearer(accessToken), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const json = (await response.json()) as { workflowId: string }
  expect(response.status, JSON.stringify(json)).toBe(202)
  return json.workflowId
}

async function usersIn(tenantId: string, domain: string): Promise<number> {
  const { rows } = await sql.query<{ n: string }>(
    'select count(*) as n from users where tenant_id = $1 and email like $2',
    [tenantId, `%@${domain}`],
  )
  return Number(rows[0]!.n)
}

interface Run {
  status: string
  result: ImportResult | null
  error: { code: string; message: string } | null
}

async function run(on: Replica, accessToken: string, id: string): Promise<Run> {
  const response = await fetch(`${on.base}/v1/workflows/${id}`, { headers: bearer(accessToken) })
  return (await response.json()) as Run
}

beforeAll(async () => {
  // An app of the test's own, on a hub of its own: it seeds users and never runs the replicas' work.
  seeder = await buildTestApp({ PUBLIC_URL }, { workflows: { hub: uniqueHub('seeder') } })
  sql = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await sql.connect()
})

afterAll(async () => {
  for (const replica of replicas) await stopReplica(replica, 'SIGKILL')
  await sql?.end()
  await seeder?.close()
})

/** s3rver ships no type declarations; this is the part of its API the test uses. */
interface S3rverServer {
  run(): Promise<{ port: number }>
  close(): Promise<void>
}
type S3rverConstructor = new (options: { address: string; port: number; silent: boolean; directory: string }) => S3rverServer

describe('two replicas on PostgreSQL, Redis and S3', () => {
  let s3Dir: string
  let s3Server: S3rverServer
  let gateway: SigV4Gateway
  let a: Replica
  let b: Replica
  const hub = uniqueHub('replicas')

  beforeAll(async () => {
    s3Dir = mkdtempSync(join(tmpdir(), 'modelplane-s3rver-'))
    const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor
    s3Server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir })
    const { port } = await s3Server.run()
    gateway = await startSigV4Gateway({ upstream: `http://127.0.0.1:${port}`, ...S3 })
    const env = {
      S3_ENDPOINT: gateway.url,
      S3_ACCESS_KEY: S3.accessKey,
      S3_SECRET_KEY: S3.secretKey,
      S3_REGION: S3.region,
      S3_BUCKET: 'modelplane-replicas',
      REPLICA_HUB: hub,
    }
    ;[a, b] = await Promise.all([startReplica('a', env), startReplica('b', env)])
  }, 120_000)

  afterAll(async () => {
    await Promise.all([a, b].filter(Boolean).map((r) => stopReplica(r)))
    await gateway?.close()
    await s3Server?.close()
    if (s3Dir) rmSync(s3Dir, { recursive: true, force: true })
  })

  it('reads through B an object stored through A', async () => {
    const key = `test/${randomUUID()}/note.txt`
    const put = await fetch(`${a.base}/test/blobs/${key}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'stored by A' }),
    })
    expect(put.status).toBe(200)
    const read = await fetch(`${b.base}/test/blobs/${key}`)
    expect(read.status).toBe(200)
    expect(await read.json()).toEqual({ text: 'stored by A' })
  })

  it('refuses on B a session logged out on A, within the revocation interval', async () => {
    const admin = await account(uniqueRealm('rep'), 'admin')
    const { accessToken, refreshToken } = await tokens(a, admin)
    const me = () => fetch(`${b.base}/v1/auth/me`, { headers: bearer(accessToken) })
    // B knows the session, and has cached "not revoked" for it: the revocation must still reach it.
    expect((await me()).status).toBe(200)

    const logout = await fetch(`${a.base}/v1/auth/logout`, { method: 'POST', headers: bearer(accessToken) })
    expect(logout.status).toBe(204)
    // Documented: on every replica within a second. Polled with room to spare on a busy machine.
    await waitFor(async () => (await me()).status === 401, 10_000, 'B kept accepting a token logged out on A')
    const refresh = await fetch(`${b.base}/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken }),
    })
    expect(refresh.status).toBe(401)
  })

  it('counts wrong passwords on A and B together: 3 on A and 2 on B lock the account on both', async () => {
    const user = await account(uniqueRealm('rep'), 'viewer')
    for (const on of [a, a, a, b, b]) expect((await login(on, user, 'not-the-password')).status).toBe(401)
    for (const on of [a, b]) {
      const right = await login(on, user)
      expect(right.status).toBe(429)
      expect(((await right.json()) as { errorCode: string }).errorCode).toBe('LOGIN_LOCKED')
    }
  })

  it('streams on B the progress of an import running on A, and shows it to no other tenant', async () => {
    const realm = uniqueRealm('rep')
    const admin = await account(realm, 'admin')
    const outsider = await account(uniqueRealm('rep'), 'admin')
    const { accessToken } = await tokens(a, admin)
    const outsiderToken = (await tokens(b, outsider)).accessToken
    const domain = `${randomUUID().slice(0, 8)}.sse.test`
    const id = await startImport(a, accessToken, 3_000, domain)

    const stream = await openEventStream(`${b.base}/v1/workflows/${id}/events`, bearer(accessToken))
    expect(stream.status).toBe(200)
    const foreign = await fetch(`${b.base}/v1/workflows/${id}/events`, { headers: bearer(outsiderToken) })
    expect(foreign.status).toBe(404)
    await endsWithin(stream, 40_000)

    const events = stream.events.map((e) => ({ event: e.event, ...(JSON.parse(e.data) as { status: string; percent: number }) }))
    const live = events.filter((e) => e.event === 'progress')
    // The stream opened on a run in progress and heard at least one batch go by before the end.
    // Only an announcement does that: the heartbeat (15 s) re-reads the run too, but by then it is over.
    expect(live.some((e) => e.status === 'running' && e.percent > 0 && e.percent < 100), JSON.stringify(events)).toBe(true)
    expect(events.at(-1)).toMatchObject({ event: 'end', status: 'completed' })
    expect(await usersIn(admin.tenantId, domain)).toBe(3_000)
  }, 60_000)

  // Last: it kills A.
  it('finishes on B, with exactly its rows, an import whose replica A was killed mid-run', async () => {
    const realm = uniqueRealm('rep')
    const admin = await account(realm, 'admin')
    const { accessToken } = await tokens(a, admin)
    const domain = `${randomUUID().slice(0, 8)}.kill.test`
    const rows = 4_000
    const id = await startImport(a, accessToken, rows, domain)

    await waitFor(async () => (await usersIn(admin.tenantId, domain)) >= 1_000, 20_000, 'no batch was inserted')
    await stopReplica(a, 'SIGKILL')
    const atKill = await usersIn(admin.tenantId, domain)
    // Otherwise the test proves nothing about finishing elsewhere.
    expect(atKill).toBeLessThan(rows)

    let last: Run | undefined
    await waitFor(
      async () => {
        last = await run(b, accessToken, id)
        return last.status !== 'pending' && last.status !== 'running'
      },
      45_000,
      'the import did not finish on B',
    )
    expect(last!.status, JSON.stringify(last!.error)).toBe('completed')
    expect(last!.result).toMatchObject({ rows, created: rows, failed: 0 })
    expect(await usersIn(admin.tenantId, domain)).toBe(rows)
  }, 90_000)
})

describe('two replicas on a declared shared BLOB_DIR', () => {
  let a: Replica
  let b: Replica

  beforeAll(async () => {
    const env = { BLOB_DIR: tempDir('modelplane-shared-blobs-'), REPLICA_HUB: uniqueHub('replicas-dir') }
    ;[a, b] = await Promise.all([startReplica('dir-a', env), startReplica('dir-b', env)])
  }, 120_000)

  afterAll(async () => {
    await Promise.all([a, b].filter(Boolean).map((r) => stopReplica(r)))
  })

  it('serves on B the object stored through A, and the URL A signed for it', async () => {
    const key = `test/${randomUUID()}/note.txt`
    const put = await fetch(`${a.base}/test/blobs/${key}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'stored by A' }),
    })
    expect(put.status).toBe(200)
    const signed = new URL(((await put.json()) as { url: string }).url)
    expect(signed.origin).toBe(PUBLIC_URL)

    const read = await fetch(`${b.base}/test/blobs/${key}`)
    expect(await read.json()).toEqual({ text: 'stored by A' })
    // The load balancer sends the signed URL to B.
    const download = await fetch(`${b.base}${signed.pathname}${signed.search}`)
    expect(download.status).toBe(200)
    expect(await download.text()).toBe('stored by A')
    // Still a credential: the same URL for another key is refused on B.
    const other = await fetch(`${b.base}${signed.pathname.replace('note.txt', 'other.txt')}${signed.search}`)
    expect(other.status).toBe(403)
  })
})
