import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import { type KubeStandIn, startKubeStandIn } from '../../helpers/kube/index.js'

/**
 * Each failure of the error taxonomy, produced for real against the stand-in, is what the user
 * reads on the run (`error.code`) and on the cluster (`statusReason`); a failed registration keeps
 * a record of why and nothing usable. Duplicates and repeated requests are caught.
 */

let h: ClusterHarness
let dead: KubeStandIn
/** Started first: its retries over a closed port take ~26 s and run while the other tests do. */
let unreachable: { clusterId: string; workflowId: string }

beforeAll(async () => {
  h = await startClusterHarness()
  dead = await startKubeStandIn()
  const gone = dead.addCluster({ nodes: ['cpu-small'] })
  const kubeconfig = gone.kubeconfig()
  await dead.stop()
  const res = await h.register({ name: 'closed-port', kubeconfig })
  expect(res.statusCode, res.body).toBe(202)
  unreachable = res.json()
})
afterAll(async () => {
  await h?.close()
  await dead?.close()
})

async function expectFailedAndEmpty(clusterId: string, code: string) {
  const cluster = await h.cluster(clusterId)
  expect(cluster).toMatchObject({ status: 'failed', statusReason: code, summary: null })
  const nodes = await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes` })
  expect(nodes.json().total).toBe(0)
  const row = await h.row(clusterId)
  expect(row?.kubeconfigSealed).toBeNull()
  expect(row?.pendingKubeconfigSealed).toBeNull()
  // Not offered as usable anywhere.
  const usable = await h.call({ method: 'GET', url: '/v1/clusters?status=available&limit=100' })
  expect(usable.json().items.map((c: { id: string }) => c.id)).not.toContain(clusterId)
  const history = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/history` })).json()
  expect(history.items[0]).toMatchObject({ fromStatus: 'registering', toStatus: 'failed', reason: code })
  const events = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.registration_failed&limit=100' })).json()
  expect(events.items.find((e: { data: { clusterId: string } }) => e.data.clusterId === clusterId)?.data).toMatchObject({ reason: code })
  return cluster
}

async function failedRegistration(name: string, kubeconfig: string) {
  const res = await h.register({ name, kubeconfig })
  expect(res.statusCode, res.body).toBe(202)
  const { clusterId, workflowId } = res.json()
  const run = await h.finished(workflowId)
  expect(run.status).toBe('failed')
  return { clusterId, run }
}

describe('the error taxonomy, from real failures', () => {
  it('a CA that did not sign the server certificate: CLUSTER_TLS_ERROR, not retried', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const started = Date.now()
    const { clusterId, run } = await failedRegistration('wrong-ca', cluster.kubeconfig({ ca: 'wrong' }))
    expect(run.error?.code).toBe('CLUSTER_TLS_ERROR')
    // A refusal does not change by waiting: no 2 s retry delay was spent on it.
    expect(Date.now() - started).toBeLessThan(2_000 + 3_000)
    const got = await expectFailedAndEmpty(clusterId, 'CLUSTER_TLS_ERROR')
    expect(got.statusMessage).toBeTruthy()
  })

  it('a token the cluster does not know: CLUSTER_UNAUTHORIZED', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const other = h.kube.addCluster({})
    // A real token, of another cluster: this one answers 401.
    const { clusterId, run } = await failedRegistration('bad-token', cluster.kubeconfig({ token: other.adminToken }))
    expect(run.error?.code).toBe('CLUSTER_UNAUTHORIZED')
    await expectFailedAndEmpty(clusterId, 'CLUSTER_UNAUTHORIZED')
    // The cluster itself was asked and said no.
    expect(cluster.requests.some((r) => r.user === '')).toBe(true)
  })

  it('a token with some rights but not all: CLUSTER_FORBIDDEN listing exactly what is missing', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const token = cluster.tokenWith([
      { verb: 'get', resource: '*' },
      { verb: 'list', resource: '*' },
      { verb: 'watch', resource: '*' },
      { verb: '*', group: 'apps', resource: 'deployments' },
    ])
    const { clusterId, run } = await failedRegistration('partial-rights', cluster.kubeconfig({ token }))
    expect(run.error?.code).toBe('CLUSTER_FORBIDDEN')
    expect(run.error?.message).toContain('create namespaces')
    expect(run.error?.message).not.toContain('deployments.apps')
    const got = await expectFailedAndEmpty(clusterId, 'CLUSTER_FORBIDDEN')
    expect(got.missingPermissions).toContain('create namespaces')
    expect(got.missingPermissions.join(' ')).not.toContain('deployments')
    expect(got.statusMessage).toContain('create namespaces')
  })

  it('a failed registration frees the name and the server: registering again with a good token works', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const { clusterId: failedId } = await failedRegistration('second-try', cluster.kubeconfig({ token: cluster.readOnlyToken }))
    const { clusterId } = await h.registerAvailable({ name: 'second-try', kubeconfig: cluster.kubeconfig() })
    expect(clusterId).not.toBe(failedId)
    expect((await h.cluster(failedId)).status).toBe('failed')
    expect((await h.cluster(clusterId)).status).toBe('available')
  })

})

describe('duplicates', () => {
  it('the same server URL and CA in the tenant: 409 at once, and nothing started', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const { clusterId } = await h.registerAvailable({ name: 'original', kubeconfig: cluster.kubeconfig() })
    const runsBefore = (await h.call({ method: 'GET', url: '/v1/workflows?limit=1' })).json().total
    const clustersBefore = (await h.call({ method: 'GET', url: '/v1/clusters?limit=1' })).json().total

    // Another name, another token, even a trailing slash on the server: the same API server.
    const again = await h.register({ name: 'copy', kubeconfig: cluster.kubeconfig({ token: cluster.tokenWith([{ verb: '*', resource: '*' }]), server: `${cluster.server}/` }) })
    expect(again.statusCode, again.body).toBe(409)
    expect(again.json()).toMatchObject({ errorCode: 'CLUSTER_ALREADY_REGISTERED', details: { clusterId } })

    expect((await h.call({ method: 'GET', url: '/v1/workflows?limit=1' })).json().total).toBe(runsBefore)
    expect((await h.call({ method: 'GET', url: '/v1/clusters?limit=1' })).json().total).toBe(clustersBefore)
  })

  it('the same cluster through another URL (localhost instead of 127.0.0.1): the run fails CLUSTER_ALREADY_REGISTERED', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const { clusterId } = await h.registerAvailable({ name: 'by-ip', kubeconfig: cluster.kubeconfig() })
    const byName = cluster.server.replace('://127.0.0.1:', '://localhost:')
    const { clusterId: copyId, run } = await failedRegistration('by-name', cluster.kubeconfig({ server: byName }))
    expect(run.error?.code).toBe('CLUSTER_ALREADY_REGISTERED')
    expect(run.error?.message).toContain(clusterId)
    await expectFailedAndEmpty(copyId, 'CLUSTER_ALREADY_REGISTERED')
    expect((await h.cluster(clusterId)).status).toBe('available')
  })

  it('two API server addresses of one cluster (the same kube-system uid): the second run fails', async () => {
    const uid = randomUUID()
    const first = h.kube.addCluster({ nodes: ['cpu-small'], kubeSystemUid: uid })
    const second = h.kube.addCluster({ nodes: ['cpu-small'], kubeSystemUid: uid })
    await h.registerAvailable({ name: 'lb-a', kubeconfig: first.kubeconfig() })
    const { clusterId, run } = await failedRegistration('lb-b', second.kubeconfig())
    expect(run.error?.code).toBe('CLUSTER_ALREADY_REGISTERED')
    await expectFailedAndEmpty(clusterId, 'CLUSTER_ALREADY_REGISTERED')
  })

  it('a name taken by a live cluster: 409 CLUSTER_NAME_TAKEN', async () => {
    const a = h.kube.addCluster({ nodes: ['cpu-small'] })
    const b = h.kube.addCluster({ nodes: ['cpu-small'] })
    await h.registerAvailable({ name: 'taken', kubeconfig: a.kubeconfig() })
    const res = await h.register({ name: 'taken', kubeconfig: b.kubeconfig() })
    expect(res.statusCode).toBe(409)
    expect(res.json().errorCode).toBe('CLUSTER_NAME_TAKEN')
  })
})

describe('Idempotency-Key', () => {
  it('the same key and body answer the first registration; another body under the key is 422', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const key = `reg-${randomUUID()}`
    const body = { name: 'idem', kubeconfig: cluster.kubeconfig(), labels: { a: 'b' } }
    const first = await h.register(body, { 'idempotency-key': key })
    expect(first.statusCode, first.body).toBe(202)
    const second = await h.register(body, { 'idempotency-key': key })
    expect(second.statusCode).toBe(202)
    expect(second.json()).toEqual(first.json())
    expect((await h.finished(first.json().workflowId)).status).toBe('completed')
    // After the run finished too: still the same answer, not a 409 duplicate.
    const third = await h.register(body, { 'idempotency-key': key })
    expect(third.json()).toEqual(first.json())
    const named = (await h.call({ method: 'GET', url: '/v1/clusters?q=idem&limit=100' })).json()
    expect(named.total).toBe(1)

    const other = await h.register({ ...body, labels: { a: 'c' } }, { 'idempotency-key': key })
    expect(other.statusCode, other.body).toBe(422)
    expect((await h.call({ method: 'GET', url: '/v1/clusters?q=idem&limit=100' })).json().total).toBe(1)
  })
})

// Last: by now its retries have mostly run out while the tests above ran.
describe('an API server that is not there', () => {
  it('a closed port: CLUSTER_UNREACHABLE after a few tries with backoff', async () => {
    const run = await h.finished(unreachable.workflowId, 50_000)
    expect(run.status).toBe('failed')
    expect(run.error?.code).toBe('CLUSTER_UNREACHABLE')
    expect(run.error?.message).toMatch(/ECONNREFUSED|refused|connect/i)
    await expectFailedAndEmpty(unreachable.clusterId, 'CLUSTER_UNREACHABLE')
  }, 60_000)
})
