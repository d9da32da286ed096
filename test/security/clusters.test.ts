import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { testConfig } from '../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { type KubeStandIn, type StandInCluster, startKubeStandIn } from '../helpers/kube/index.js'
import { waitFor } from '../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../helpers/workflow.js'
import { type EventStreamReader, openEventStream } from '../modules/workflow_ops/sse-client.js'

/**
 * Who may do what to a cluster, and what another tenant learns of it. Within tenant A a viewer
 * (cluster:view) reads and a developer (no cluster:manage) is refused every write; tenant B, whose
 * admin holds every permission of its own tenant, hears nothing of A's cluster: not in the outbox,
 * not in the workflow streams, not in the runs.
 */
let app: FastifyInstance
let base: string
let kube: KubeStandIn
let standIn: StandInCluster
let adminA: SeededUser
let viewerA: SeededUser
let developerA: SeededUser
let adminB: SeededUser
let streamA: EventStreamReader
let streamB: EventStreamReader
let cluster: { id: string; name: string; workflowId: string }

/** Everything about A's cluster a write could change, straight from the database. */
async function clusterState(id: string) {
  const { rows } = await app.platform.database.db.execute(sql`
    select
      (select row_to_json(c) from clusters c where c.id = ${id}) as cluster,
      (select json_agg(n order by n.name) from cluster_nodes n where n.cluster_id = ${id}) as nodes,
      (select json_agg(h order by h.id) from cluster_status_history h where h.cluster_id = ${id}) as history,
      (select row_to_json(l) from sweep_leases l where l.resource_id = ${id}) as lease,
      (select count(*)::int from workflow_runs r where r.resource_id = ${id}) as runs`)
  return rows[0] as Record<string, unknown>
}

function call(who: SeededUser, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  return app.inject({ method, url, headers: bearer(who.accessToken), ...(payload ? { payload } : {}) })
}

/** A data line of a stream that names the value (a run, a cluster). */
const mentions = (stream: EventStreamReader, value: string) => stream.events.filter((e) => e.data.includes(value))

beforeAll(async () => {
  kube = await startKubeStandIn()
  app = await buildApp(testConfig(), { workflows: { hub: uniqueHub('clsec'), tuning: FAST_HUB } })
  await app.ready()
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const realmA = uniqueRealm('clseca')
  adminA = await seedUser(app, { realm: realmA, role: 'admin' })
  viewerA = await seedUser(app, { realm: realmA, role: 'viewer' })
  developerA = await seedUser(app, { realm: realmA, role: 'developer' })
  adminB = await seedUser(app, { realm: uniqueRealm('clsecb'), role: 'admin' })

  // Both tenants' dashboards are open while A registers.
  streamA = await openEventStream(`${base}/v1/workflows/events`, bearer(adminA.accessToken))
  streamB = await openEventStream(`${base}/v1/workflows/events`, bearer(adminB.accessToken))
  expect([streamA.status, streamB.status]).toEqual([200, 200])

  standIn = kube.addCluster({ nodes: ['a100-8x', 'cpu-small'] })
  const name = `a-gpu-${randomUUID().slice(0, 8)}`
  const registered = await call(adminA, 'POST', '/v1/clusters', { name, kubeconfig: standIn.kubeconfig() })
  expect(registered.statusCode, registered.body).toBe(202)
  cluster = { id: registered.json().clusterId, name, workflowId: registered.json().workflowId }
  await waitFor(async () => (await call(adminA, 'GET', `/v1/clusters/${cluster.id}`)).json().status === 'available', 20_000, "A's cluster did not become available")
  await app.platform.events.drain()
  // A's own stream heard the run end: by then B's would have heard it too, had it leaked.
  await waitFor(() => mentions(streamA, cluster.workflowId).some((e) => e.data.includes('completed')), 10_000, "A's stream did not show the run")
}, 60_000)

afterAll(async () => {
  streamA?.abort()
  streamB?.abort()
  await app?.close()
  await kube?.close()
})

/** Every cluster write, with a body that would be accepted from someone allowed to send it. */
function writes(): Array<{ method: 'POST' | 'PATCH' | 'DELETE'; url: string; payload?: object }> {
  return [
    { method: 'POST', url: '/v1/clusters', payload: { name: `other-${randomUUID().slice(0, 8)}`, kubeconfig: kube.addCluster().kubeconfig() } },
    { method: 'PATCH', url: `/v1/clusters/${cluster.id}`, payload: { name: 'renamed', labels: { owner: 'someone-else' } } },
    { method: 'DELETE', url: `/v1/clusters/${cluster.id}?force=true` },
    { method: 'POST', url: `/v1/clusters/${cluster.id}/refresh` },
  ]
}

describe('security: cluster permissions within a tenant', () => {
  it('lets a viewer read the cluster, its nodes and history, and refuses every write with 403, changing nothing', async () => {
    for (const url of [`/v1/clusters`, `/v1/clusters/${cluster.id}`, `/v1/clusters/${cluster.id}/nodes`, `/v1/clusters/${cluster.id}/history`]) {
      const read = await call(viewerA, 'GET', url)
      expect(read.statusCode, `${url}: ${read.body}`).toBe(200)
    }
    expect((await call(viewerA, 'GET', `/v1/clusters/${cluster.id}/nodes`)).json().total).toBe(2)
    expect((await call(viewerA, 'GET', '/v1/clusters')).json().items.map((c: { id: string }) => c.id)).toContain(cluster.id)

    const before = await clusterState(cluster.id)
    const asked = standIn.requests.length
    for (const write of writes()) {
      const refused = await call(viewerA, write.method, write.url, write.payload)
      expect(refused.statusCode, `${write.method} ${write.url}: ${refused.body}`).toBe(403)
      expect(refused.json().errorCode).toBe('FORBIDDEN')
    }
    expect(await clusterState(cluster.id)).toEqual(before)
    expect(standIn.requests.length, 'a refused refresh still called the cluster').toBe(asked)
  })

  it('refuses a developer (cluster:view, no cluster:manage) every write with 403, and registers nothing', async () => {
    const before = await clusterState(cluster.id)
    for (const write of writes()) {
      const refused = await call(developerA, write.method, write.url, write.payload)
      expect(refused.statusCode, `${write.method} ${write.url}: ${refused.body}`).toBe(403)
      expect(refused.json().errorCode).toBe('FORBIDDEN')
    }
    expect(await clusterState(cluster.id)).toEqual(before)
    const listed = (await call(adminA, 'GET', '/v1/clusters?limit=100')).json()
    expect(listed.items.map((c: { name: string }) => c.name)).toEqual([cluster.name])
  })

  it('lets the admin (cluster:manage) do what the others were refused: the refusals were about permission', async () => {
    const renamed = await call(adminA, 'PATCH', `/v1/clusters/${cluster.id}`, { labels: { team: 'ml' } })
    expect(renamed.statusCode, renamed.body).toBe(200)
    expect(renamed.json().labels).toEqual({ team: 'ml' })
    const refreshed = await call(adminA, 'POST', `/v1/clusters/${cluster.id}/refresh`)
    expect(refreshed.statusCode, refreshed.body).toBe(200)
    expect(refreshed.json().status).toBe('available')
  })
})

describe("security: another tenant hears nothing of A's cluster", () => {
  it("keeps A's cluster events out of B's outbox, and in A's", async () => {
    const ofB = await call(adminB, 'GET', '/v1/events/outbox?limit=100')
    expect(ofB.statusCode, ofB.body).toBe(200)
    expect(ofB.body).not.toContain(cluster.id)
    expect(ofB.json().items.filter((e: { topic: string }) => e.topic.startsWith('cluster.'))).toEqual([])
    const byTopic = await call(adminB, 'GET', '/v1/events/outbox?topic=cluster.registered&limit=100')
    expect(byTopic.statusCode).toBe(200)
    expect(byTopic.json().items).toEqual([])

    const ofA = (await call(adminA, 'GET', '/v1/events/outbox?limit=100')).json()
    const topics = ofA.items.filter((e: { data: { clusterId?: string } }) => e.data?.clusterId === cluster.id).map((e: { topic: string }) => e.topic)
    expect(topics).toEqual(expect.arrayContaining(['cluster.registered', 'cluster.status_changed']))
  })

  it("keeps A's registration run out of B's tenant stream, run list and run routes", async () => {
    expect(mentions(streamA, cluster.workflowId).length).toBeGreaterThan(0)
    expect(mentions(streamB, cluster.workflowId)).toEqual([])
    expect(mentions(streamB, cluster.id)).toEqual([])

    const runs = await call(adminB, 'GET', '/v1/workflows?type=cluster_ops.register&limit=100')
    expect(runs.statusCode).toBe(200)
    expect(runs.json().items).toEqual([])
    const byResource = await call(adminB, 'GET', `/v1/workflows?resourceId=${cluster.id}&limit=100`)
    expect(byResource.json().items).toEqual([])
    expect((await call(adminB, 'GET', `/v1/workflows/${cluster.workflowId}`)).statusCode).toBe(404)
    const stream = await fetch(`${base}/v1/workflows/${cluster.workflowId}/events`, { headers: bearer(adminB.accessToken) })
    expect(stream.status).toBe(404)
    await stream.body?.cancel()

    // A sees its own run in the same places.
    const own = (await call(adminA, 'GET', `/v1/workflows?resourceId=${cluster.id}&limit=100`)).json()
    expect(own.items.map((r: { id: string }) => r.id)).toContain(cluster.workflowId)
  })

  it("answers B 404 for A's cluster on every cluster route, as for one that does not exist", async () => {
    const before = await clusterState(cluster.id)
    for (const id of [cluster.id, randomUUID()]) {
      for (const [method, url, payload] of [
        ['GET', `/v1/clusters/${id}`],
        ['GET', `/v1/clusters/${id}/nodes`],
        ['GET', `/v1/clusters/${id}/history`],
        ['PATCH', `/v1/clusters/${id}`, { name: 'taken-by-b' }],
        // A kubeconfig of B's own that parses: the cluster is still not found, nothing starts.
        ['PATCH', `/v1/clusters/${id}`, { kubeconfig: kube.addCluster().kubeconfig() }],
        ['POST', `/v1/clusters/${id}/refresh`],
        ['DELETE', `/v1/clusters/${id}`],
        ['DELETE', `/v1/clusters/${id}?force=true`],
      ] as const) {
        const answer = await call(adminB, method, url, payload)
        expect(answer.statusCode, `${method} ${url}: ${answer.body}`).toBe(404)
        expect(answer.json().errorCode).toBe('CLUSTER_NOT_FOUND')
      }
    }
    expect((await call(adminB, 'GET', '/v1/clusters?limit=100')).json().items).toEqual([])
    expect(await clusterState(cluster.id)).toEqual(before)
  })
})
