import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, tempDir } from '../../helpers/app.js'
import { bearer, uniqueRealm } from '../../helpers/auth.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { type KubeStandIn, startKubeStandIn } from '../../helpers/kube/index.js'
import { type ReplicaProcess, startReplicaProcess, stopReplicaProcess } from '../../helpers/replica-process.js'
import { waitFor } from '../../helpers/wait.js'
import { uniqueHub } from '../../helpers/workflow.js'

/**
 * The API process is killed with SIGKILL while a registration runs (the stand-in, in this process,
 * answers slowly so the run is caught mid-step), and started again on the same database and
 * workflow hub: the registration finishes, and what it leaves is what one uninterrupted
 * registration leaves — one cluster, one set of nodes, one history, one `cluster.registered`.
 */
let kube: KubeStandIn
let sql: pg.Client
const processes: ReplicaProcess[] = []
let env: Record<string, string>
let account: { email: string; password: string; realm: string; tenantId: string }

async function login(on: ReplicaProcess): Promise<string> {
  const response = await fetch(`${on.base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: account.email, password: account.password, tenant: account.realm }),
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { accessToken: string }).accessToken
}

async function run(on: ReplicaProcess, token: string, id: string): Promise<{ status: string; currentStep: number; error: unknown }> {
  const response = await fetch(`${on.base}/v1/workflows/${id}`, { headers: bearer(token) })
  expect(response.status).toBe(200)
  return (await response.json()) as { status: string; currentStep: number; error: unknown }
}

async function rows<T extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<T[]> {
  return (await sql.query<T>(text, values)).rows
}

beforeAll(async () => {
  kube = await startKubeStandIn()
  sql = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await sql.connect()
  const seeder = await buildTestApp({}, { workflows: { hub: uniqueHub('clcrash-seed') } })
  try {
    const realm = uniqueRealm('clcrash')
    const email = `admin-${randomUUID().slice(0, 8)}@example.test`
    const password = `pw-${randomUUID()}`
    const user = await seeder.services.auth.createLocalUser({ realm, email, role: 'admin', password })
    account = { email, password, realm, tenantId: user.tenantId }
  } finally {
    await seeder.close()
  }
  env = {
    REPLICA_HUB: uniqueHub('clcrash'),
    // The restarted process is the same deployment: same address (token issuer) and object store.
    PUBLIC_URL: 'http://crash.example.test',
    BLOB_DIR: tempDir('modelplane-clcrash-blobs-'),
    // Every line the processes log is captured and searched for the cluster's token.
    LOG_LEVEL: 'info',
  }
}, 60_000)

afterAll(async () => {
  for (const p of processes) await stopReplicaProcess(p, 'SIGKILL')
  await sql?.end()
  await kube?.close()
})

describe('SIGKILL during a cluster registration', () => {
  it('finishes the registration after a restart, leaving one cluster with one set of nodes', async () => {
    const cluster = kube.addCluster({ nodes: ['a100-8x', 'mi300x', 'cpu-small'] })
    // Each answer takes a while: verification alone is a dozen calls, four at a time.
    cluster.setLatency(250)

    const first = await startReplicaProcess('clcrash-1', env)
    processes.push(first)
    const token = await login(first)
    const response = await fetch(`${first.base}/v1/clusters`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'survivor', kubeconfig: cluster.kubeconfig() }),
    })
    expect(response.status).toBe(202)
    const { clusterId, workflowId } = (await response.json()) as { clusterId: string; workflowId: string }

    // Killed in the middle of the run: past the first step, before the cluster is marked available.
    await waitFor(async () => (await run(first, token, workflowId)).currentStep >= 2, 30_000, 'the registration did not reach its second step')
    await stopReplicaProcess(first, 'SIGKILL')
    const killedAt = Date.now()
    const [atKill] = await rows<{ status: string }>('select status from clusters where id = $1', [clusterId])
    expect(atKill!.status).toBe('registering')
    const [runAtKill] = await rows<{ status: string }>('select status from workflow_runs where id = $1', [workflowId])
    expect(runAtKill!.status).toBe('running')

    const second = await startReplicaProcess('clcrash-2', env)
    processes.push(second)
    const again = await login(second)
    let done = await run(second, again, workflowId)
    await waitFor(
      async () => {
        done = await run(second, again, workflowId)
        return ['completed', 'failed', 'cancelled'].includes(done.status)
      },
      45_000,
      'the registration did not finish after the restart',
    )
    expect(done.status, JSON.stringify(done)).toBe('completed')
    // The second process did the rest: the cluster was asked again after the kill.
    expect(cluster.requests.some((r) => r.at > killedAt)).toBe(true)

    const got = await fetch(`${second.base}/v1/clusters/${clusterId}`, { headers: bearer(again) })
    const view = (await got.json()) as { status: string; summary: { nodes: { total: number } } }
    expect(view.status).toBe('available')
    expect(view.summary.nodes.total).toBe(3)

    // What one registration leaves, once.
    const clusters = await rows<{ id: string; status: string }>('select id, status from clusters where tenant_id = $1', [account.tenantId])
    expect(clusters).toEqual([{ id: clusterId, status: 'available' }])
    const nodes = await rows<{ name: string }>('select name from cluster_nodes where cluster_id = $1 order by name', [clusterId])
    expect(nodes.map((n) => n.name)).toEqual(cluster.nodes.list().map((n) => (n as { metadata: { name: string } }).metadata.name).sort())
    const history = await rows<{ from_status: string | null; to_status: string }>(
      'select from_status, to_status from cluster_status_history where cluster_id = $1 order by id',
      [clusterId],
    )
    expect(history).toEqual([
      { from_status: null, to_status: 'registering' },
      { from_status: 'registering', to_status: 'available' },
    ])
    const events = await rows<{ topic: string }>(
      "select topic from outbox_events where tenant_id = $1 and payload->>'clusterId' = $2 order by created_at",
      [account.tenantId, clusterId],
    )
    expect(events.filter((e) => e.topic === 'cluster.registered')).toHaveLength(1)
    expect(events.filter((e) => e.topic === 'cluster.registration_failed')).toEqual([])
    const runs = await rows<{ id: string }>('select id from workflow_runs where resource_id = $1', [clusterId])
    expect(runs.map((r) => r.id)).toEqual([workflowId])
    const leases = await rows<{ sweep: string }>('select sweep from sweep_leases where resource_id = $1', [clusterId])
    expect(leases).toEqual([{ sweep: `${env.REPLICA_HUB}/cluster_ops.sync` }])

    // Neither process wrote the cluster's credentials into its log, the one killed mid-step included.
    const logged = first.process.output() + second.process.output()
    expect(logged).toContain(clusterId)
    expect(logged).not.toContain(cluster.adminToken)
  }, 120_000)
})
