import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLUSTER_SYNC_SWEEP } from '../../../src/modules/cluster_ops/index.js'
import { createClusterService } from '../../../src/modules/cluster_ops/service.js'
import type { Principal } from '../../../src/platform/auth/principal.js'
import { rawExecutor } from '../../../src/platform/db/raw.js'
import { buildTestApp, tempDir } from '../../helpers/app.js'
import { bearer, uniqueRealm } from '../../helpers/auth.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { type KubeStandIn, type StandInCluster, startKubeStandIn } from '../../helpers/kube/index.js'
import { type ReplicaProcess, startReplicaProcess, stopReplicaProcess } from '../../helpers/replica-process.js'
import { waitFor } from '../../helpers/wait.js'
import { uniqueHub } from '../../helpers/workflow.js'

/**
 * Two API processes on one database share the clusters' health sync: 50 clusters of one tenant,
 * synced every 2 s. Each cluster is read once per interval (its node list, as the stand-in saw it
 * asked), both replicas take part, and when one stops (SIGTERM: it hands back what it holds) the
 * other carries on with every cluster. Which replica runs a sync is seen in
 * `sweep_leases.leased_by` while it runs (the owner names the process id); the stand-in answers a
 * little slowly so that a sync lasts long enough to be seen. A replica that dies without handing
 * back its leases is test/platform/sweeps.test.ts's case (the lease lapses, 30 s here).
 */
const CLUSTERS = 50
const INTERVAL_MS = 2_000
/** Clock granularity between the stand-in's Date.now() and PostgreSQL's now(). */
const SLACK_MS = 100

let kube: KubeStandIn
let sql: pg.Client
let a: ReplicaProcess | undefined
let b: ReplicaProcess | undefined
let accessToken: string
/** The replicas' hub, which scopes their sweeps too. */
const HUB = uniqueHub('clrep')
const standIns = new Map<string, StandInCluster>()

/** Who held a sync lease, sampled while the test watches. */
const sightings: Array<{ at: number; pid: number; clusterId: string }> = []
let sampling = true
let sampler: Promise<void> | undefined

async function sample(ids: string[]): Promise<void> {
  while (sampling) {
    const { rows } = await sql.query<{ resource_id: string; leased_by: string }>(
      'select resource_id, leased_by from sweep_leases where sweep = $1 and resource_id = any($2::uuid[]) and lease_token is not null and due_at > now()',
      [`${HUB}/${CLUSTER_SYNC_SWEEP}`, ids],
    )
    const at = Date.now()
    for (const row of rows) sightings.push({ at, pid: Number(row.leased_by.split(':').at(-2)), clusterId: row.resource_id })
    await sleep(20)
  }
}

/** When each cluster was asked for its node list (a sync reads the nodes first), from `since` on. */
function nodeReads(clusterId: string, since: number): number[] {
  return standIns
    .get(clusterId)!
    .requests.filter((r) => r.method === 'GET' && r.path.startsWith('/api/v1/nodes') && !r.path.includes('continue=') && r.at >= since)
    .map((r) => r.at)
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!)
}

/** How many of the tenant's clusters a replica lists as available. */
async function availableOn(on: ReplicaProcess): Promise<number> {
  const response = await fetch(`${on.base}/v1/clusters?status=available&limit=1`, { headers: bearer(accessToken) })
  expect(response.status).toBe(200)
  return ((await response.json()) as { total: number }).total
}

beforeAll(async () => {
  kube = await startKubeStandIn()
  sql = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await sql.connect()

  const env = {
    REPLICA_HUB: HUB,
    // One address for both, as behind a load balancer: a token one replica issues, the other trusts.
    PUBLIC_URL: 'http://clusters.example.test',
    BLOB_DIR: tempDir('modelplane-clrep-blobs-'),
    CLUSTER_SYNC_INTERVAL_SECONDS: String(INTERVAL_MS / 1000),
    SWEEP_POLL_MS: '100',
    // A loaded CI machine answers slowly; a timeout here would read as a cluster going away.
    CLUSTER_REQUEST_TIMEOUT_MS: '30000',
  }
  const replicas = Promise.all([startReplicaProcess('clrep-a', env), startReplicaProcess('clrep-b', env)])
  // Avoid an unhandled rejection while the seeder works; awaited below.
  replicas.catch(() => {})

  // The fleet is registered while the replicas start, through the cluster service of an app of
  // the test's own: each registration step runs as the workflow would run it, without the engine
  // in between (50 workflows on this machine take longer than the whole test should). The app is
  // closed before the test watches: it would otherwise be a third replica. It is on the replicas'
  // hub so that the clusters it activates are scheduled in their sweep; it starts no workflow there.
  const seeder = await buildTestApp(
    { CLUSTER_SYNC_INTERVAL_SECONDS: String(INTERVAL_MS / 1000), SWEEP_POLL_MS: '100', PUBLIC_URL: env.PUBLIC_URL, CLUSTER_REQUEST_TIMEOUT_MS: '30000' },
    { workflows: { hub: HUB } },
  )
  try {
    const realm = uniqueRealm('clrep')
    const email = `admin-${randomUUID().slice(0, 8)}@example.test`
    const password = `pw-${randomUUID()}`
    const user = await seeder.services.auth.createLocalUser({ realm, email, role: 'admin', password })
    const login = await seeder.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password, tenant: realm } })
    expect(login.statusCode).toBe(200)
    accessToken = login.json().accessToken
    const principal: Principal = { kind: 'user', id: user.id, userId: user.id, tenantId: user.tenantId, realm, role: 'admin', permissions: new Set(), isSuperuser: false }
    const { platform } = seeder
    const clusters = createClusterService({
      db: platform.database.db,
      vault: platform.vault,
      events: platform.events,
      sweeps: platform.sweeps,
      // The run that would carry the steps: recorded by id only, the steps are called below.
      workflows: { start: async () => ({ workflowId: randomUUID(), deduplicated: false }), findIdempotentRun: async () => undefined },
      log: pino({ level: 'silent' }),
      settings: platform.config.clusters,
      raw: rawExecutor(platform.database),
    })
    const pending = Array.from({ length: CLUSTERS }, (_, i) => i)
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        for (let i = pending.shift(); i !== undefined; i = pending.shift()) {
          const standIn = kube.addCluster({ nodes: ['cpu-small'] })
          const { clusterId } = await clusters.register(principal, { name: `fleet-${i}`, kubeconfig: standIn.kubeconfig() })
          await clusters.verifyAccess(clusterId)
          await clusters.detect(clusterId)
          await clusters.discover(clusterId)
          expect(await clusters.activate(clusterId)).toEqual({ clusterId, status: 'available' })
          standIns.set(clusterId, standIn)
        }
      }),
    )
  } finally {
    await seeder.close()
  }
  ;[a, b] = await replicas
  for (const standIn of standIns.values()) standIn.setLatency(40)
  sampler = sample([...standIns.keys()])
}, 150_000)

afterAll(async () => {
  sampling = false
  await sampler
  await stopReplicaProcess(a, 'SIGKILL')
  await stopReplicaProcess(b, 'SIGKILL')
  await sql?.end()
  await kube?.close()
})

describe('cluster sync shared by two replicas', () => {
  it('syncs each of 50 clusters once per interval, with both replicas doing part of the work', async () => {
    // From the first sync after registration on, a few intervals are watched.
    const ids = [...standIns.keys()]
    const since = Date.now()
    await waitFor(() => ids.every((id) => nodeReads(id, since).length > 0), INTERVAL_MS * 3, 'not every cluster was synced')
    const from = Date.now()
    await sleep(INTERVAL_MS * 3)
    const to = Date.now()

    for (const id of ids) {
      const reads = nodeReads(id, since).filter((t) => t <= to)
      // Never twice within an interval: the next run is due an interval after the last one finished.
      expect(Math.min(...gaps(reads)), `cluster ${id} was synced twice within an interval`).toBeGreaterThanOrEqual(INTERVAL_MS - SLACK_MS)
      // And never an interval skipped.
      expect(Math.max(...gaps(reads)), `cluster ${id} missed an interval`).toBeLessThan(INTERVAL_MS * 2)
      const inWindow = reads.filter((t) => t >= from).length
      expect(inWindow, `cluster ${id}: ${inWindow} syncs in three intervals`).toBeGreaterThanOrEqual(2)
      expect(inWindow).toBeLessThanOrEqual(3)
    }
    const workers = new Set(sightings.filter((s) => s.at >= since).map((s) => s.pid))
    expect(workers.has(a!.pid), 'replica A ran no sync').toBe(true)
    expect(workers.has(b!.pid), 'replica B ran no sync').toBe(true)
    // Each replica ran syncs of many clusters, not one cluster each.
    for (const pid of [a!.pid, b!.pid]) {
      expect(new Set(sightings.filter((s) => s.pid === pid).map((s) => s.clusterId)).size).toBeGreaterThan(5)
    }
  })

  it('hands every cluster to the other replica when one stops, well within the lease', async () => {
    const ids = [...standIns.keys()]
    await stopReplicaProcess(a, 'SIGTERM')
    const stopped = Date.now()
    // The stopping replica handed back what it held: within an interval every cluster is read by B.
    await waitFor(() => ids.every((id) => nodeReads(id, stopped).length > 0), INTERVAL_MS + 3_000, 'not every cluster was synced after A stopped')
    const takenOverIn = Date.now() - stopped
    await sleep(INTERVAL_MS * 2)

    for (const id of ids) {
      // A sync A was running when it stopped is abandoned and handed back due at once: B's runs are counted from the stop.
      const reads = nodeReads(id, stopped)
      expect(reads.length).toBeGreaterThanOrEqual(2)
      expect(Math.min(...gaps(reads)), `cluster ${id} was synced twice within an interval by B`).toBeGreaterThanOrEqual(INTERVAL_MS - SLACK_MS)
    }
    const after = sightings.filter((s) => s.at > stopped)
    expect(after.some((s) => s.pid === a!.pid), 'the stopped replica still held a lease').toBe(false)
    expect(new Set(after.filter((s) => s.pid === b!.pid).map((s) => s.clusterId)).size).toBeGreaterThan(5)
    expect(takenOverIn).toBeLessThan(INTERVAL_MS + 3_000)

    // The clusters stayed available throughout, and B answers for them.
    expect(await availableOn(b!)).toBe(CLUSTERS)
  })
})
