import { randomUUID } from 'node:crypto'
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { managedLabels } from '../../../src/platform/kube/labels.js'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import type { StandInCluster } from '../../helpers/kube/index.js'
import { waitFor } from '../../helpers/wait.js'

/** After registration: refresh, rename and relabel, a new kubeconfig, and deletion. */

let h: ClusterHarness
/** Clusters some other module says it runs workloads on, and what it was asked to tear down. */
const inUse = new Map<string, number>()
const tornDown: string[] = []
/** Deleted while its API server is gone: started first, its cleanup retries run while the rest do. */
let gone: { clusterId: string; workflowId: string }

beforeAll(async () => {
  h = await startClusterHarness()
  h.app.services.clusters.registerUser({
    kind: 'endpoints',
    countOn: async (_executor, clusterId) => inUse.get(clusterId) ?? 0,
    tearDownOn: async (clusterId) => {
      tornDown.push(clusterId)
      inUse.delete(clusterId)
    },
  })
  const standIn = h.kube.addCluster({ nodes: ['cpu-small'] })
  const { clusterId } = await h.registerAvailable({ name: 'vanishing', kubeconfig: standIn.kubeconfig() })
  standIn.setReachable(false)
  const res = await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })
  expect(res.statusCode, res.body).toBe(202)
  gone = res.json()
})
afterAll(async () => {
  await h?.close()
})

async function registered(name: string, nodes = ['cpu-small']) {
  const standIn = h.kube.addCluster({ nodes })
  const { clusterId } = await h.registerAvailable({ name, kubeconfig: standIn.kubeconfig() })
  return { standIn, clusterId }
}

/** The stand-in's own client, as a cluster admin would look with kubectl. */
function kubectl(standIn: StandInCluster): CoreV1Api {
  const config = new KubeConfig()
  config.loadFromString(standIn.kubeconfig())
  return config.makeApiClient(CoreV1Api)
}

describe('refresh', () => {
  it('syncs at once: a node added to the cluster shows in the answer', async () => {
    const { standIn, clusterId } = await registered('refreshed')
    standIn.nodes.put({ ...standIn.nodes.list()[0], metadata: { name: 'new-worker', labels: {} } })
    const res = await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json().summary.nodes.total).toBe(2)
    const nodes = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes` })).json()
    expect(nodes.items.map((n: { name: string }) => n.name).sort()).toEqual(['new-worker', 'worker-small-1'])
  })
})

describe('PATCH name and labels', () => {
  it('changes them, guarded by If-Match; a stale tag is 412 and a taken name 409', async () => {
    const { clusterId } = await registered('patch-me')
    await registered('already-there')
    const first = await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}` })
    const etag = first.headers.etag as string
    expect(etag).toBeTruthy()

    const renamed = await h.call({ method: 'PATCH', url: `/v1/clusters/${clusterId}`, headers: { 'if-match': etag }, payload: { name: 'patched', labels: { tier: 'gpu' } } })
    expect(renamed.statusCode, renamed.body).toBe(200)
    expect(renamed.json()).toMatchObject({ name: 'patched', labels: { tier: 'gpu' }, status: 'available' })
    expect(renamed.headers.etag).not.toBe(etag)

    const stale = await h.call({ method: 'PATCH', url: `/v1/clusters/${clusterId}`, headers: { 'if-match': etag }, payload: { labels: { tier: 'cpu' } } })
    expect(stale.statusCode).toBe(412)
    expect(stale.json().errorCode).toBe('PRECONDITION_FAILED')

    const taken = await h.call({ method: 'PATCH', url: `/v1/clusters/${clusterId}`, payload: { name: 'already-there' } })
    expect(taken.statusCode).toBe(409)
    expect(taken.json().errorCode).toBe('CLUSTER_NAME_TAKEN')

    expect(await h.cluster(clusterId)).toMatchObject({ name: 'patched', labels: { tier: 'gpu' } })
    const events = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.updated&limit=100' })).json()
    expect(events.items.filter((e: { data: { clusterId: string } }) => e.data.clusterId === clusterId)).toHaveLength(1)
  })
})

describe('PATCH kubeconfig', () => {
  it('202 with a workflow that verifies and swaps it: the new credentials are used after', async () => {
    const { standIn, clusterId } = await registered('rotated')
    const res = await h.call({ method: 'PATCH', url: `/v1/clusters/${clusterId}`, payload: { kubeconfig: standIn.kubeconfig({ cert: true }) } })
    expect(res.statusCode, res.body).toBe(202)
    const run = await h.finished(res.json().workflowId)
    expect(run.status, JSON.stringify(run.error)).toBe('completed')
    expect((await h.row(clusterId))?.pendingKubeconfigSealed).toBeNull()

    const before = standIn.requests.length
    expect((await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).statusCode).toBe(200)
    const users = new Set(standIn.requests.slice(before).map((r) => r.user))
    expect(users.size).toBe(1)
    expect(users.has('admin')).toBe(false)
    expect((await h.cluster(clusterId)).status).toBe('available')
  })

  it('a kubeconfig of another cluster: the run fails CLUSTER_MISMATCH and the old one stays', async () => {
    const { standIn, clusterId } = await registered('kept')
    const stranger = h.kube.addCluster({ nodes: ['cpu-small'] })
    const res = await h.call({ method: 'PATCH', url: `/v1/clusters/${clusterId}`, payload: { kubeconfig: stranger.kubeconfig() } })
    expect(res.statusCode, res.body).toBe(202)
    const run = await h.finished(res.json().workflowId)
    expect(run.status).toBe('failed')
    expect(run.error?.code).toBe('CLUSTER_MISMATCH')

    const row = await h.row(clusterId)
    expect(row?.pendingKubeconfigSealed).toBeNull()
    expect(row?.server).toBe(standIn.server)
    const strangerCalls = stranger.requests.length
    const before = standIn.requests.length
    expect((await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).json().status).toBe('available')
    expect(standIn.requests.length).toBeGreaterThan(before)
    expect(stranger.requests.length).toBe(strangerCalls)
  })
})

describe('DELETE', () => {
  it('deletes what modelplane created there (by its labels) and nothing else, then keeps a record without the kubeconfig', async () => {
    const { standIn, clusterId } = await registered('doomed')
    const core = kubectl(standIn)
    const ours = managedLabels({ name: 'llama', instance: 'llama-prod', tenantId: h.admin.tenantId, owner: { key: 'modelplane.io/endpoint-id', id: randomUUID() } })
    const othersTenant = managedLabels({ name: 'llama', instance: 'llama-prod', tenantId: randomUUID() })
    await core.createNamespace({ body: { metadata: { name: 'mp-llama', labels: ours } } })
    await core.createNamespace({ body: { metadata: { name: 'mp-app', labels: managedLabels({ name: 'app', instance: 'a', tenantId: h.admin.tenantId }) } } })
    await core.createNamespace({ body: { metadata: { name: 'mp-other-tenant', labels: othersTenant } } })
    await core.createNamespace({ body: { metadata: { name: 'team-data' } } })

    const res = await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })
    expect(res.statusCode, res.body).toBe(202)
    expect((await h.cluster(clusterId)).status).toBe('deleting')
    const run = await h.finished(res.json().workflowId)
    expect(run.status, JSON.stringify(run.error)).toBe('completed')
    expect(run.result).toMatchObject({ status: 'deleted', note: null })

    await waitFor(async () => {
      const names = (await core.listNamespace()).items.map((n) => n.metadata!.name)
      return !names.includes('mp-llama') && !names.includes('mp-app')
    }, 5_000, 'managed namespaces still there')
    const left = (await core.listNamespace()).items.map((n) => n.metadata!.name)
    expect(left).toEqual(expect.arrayContaining(['team-data', 'mp-other-tenant', 'kube-system', 'default']))

    const got = await h.cluster(clusterId)
    expect(got).toMatchObject({ status: 'deleted', statusReason: null })
    expect((await h.row(clusterId))?.kubeconfigSealed).toBeNull()
    const listed = (await h.call({ method: 'GET', url: '/v1/clusters?limit=100' })).json()
    expect(listed.items.map((c: { id: string }) => c.id)).not.toContain(clusterId)
    const deleted = (await h.call({ method: 'GET', url: '/v1/clusters?status=deleted&limit=100' })).json()
    expect(deleted.items.map((c: { id: string }) => c.id)).toContain(clusterId)
    expect((await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes` })).json().total).toBe(0)
    expect((await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })).json().errorCode).toBe('CLUSTER_DELETED')
    expect((await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).statusCode).toBe(409)
    const events = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.deleted&limit=100' })).json()
    expect(events.items.some((e: { data: { clusterId: string } }) => e.data.clusterId === clusterId)).toBe(true)
  })

  it('409 CLUSTER_IN_USE while endpoints run there; force=true tears them down first', async () => {
    const { clusterId } = await registered('busy')
    inUse.set(clusterId, 2)
    const refused = await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })
    expect(refused.statusCode).toBe(409)
    expect(refused.json()).toMatchObject({ errorCode: 'CLUSTER_IN_USE', details: { users: [{ kind: 'endpoints', count: 2 }] } })
    expect(refused.json().message).toContain('2 endpoints')
    expect((await h.cluster(clusterId)).status).toBe('available')
    expect(tornDown).not.toContain(clusterId)

    const forced = await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}?force=true` })
    expect(forced.statusCode, forced.body).toBe(202)
    expect((await h.finished(forced.json().workflowId)).status).toBe('completed')
    expect(tornDown).toContain(clusterId)
    expect((await h.cluster(clusterId)).status).toBe('deleted')
  })

  it('a cluster whose API server is gone is still deleted, with a note of what may remain', async () => {
    const run = await h.finished(gone.workflowId, 50_000)
    expect(run.status).toBe('completed')
    expect(run.result).toMatchObject({ status: 'deleted', note: expect.stringContaining('CLUSTER_UNREACHABLE') })
    const got = await h.cluster(gone.clusterId)
    expect(got).toMatchObject({ status: 'deleted', statusReason: 'CLEANUP_INCOMPLETE', statusMessage: expect.stringContaining('may remain') })
    expect((await h.row(gone.clusterId))?.kubeconfigSealed).toBeNull()
  }, 60_000)
})
