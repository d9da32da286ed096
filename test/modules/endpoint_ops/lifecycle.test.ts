import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EndpointHarness, type SeededModel, startEndpointHarness } from '../../helpers/endpoints.js'
import type { StandInCluster } from '../../helpers/kube/index.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * The life of an endpoint on a stand-in cluster whose controllers behave as Kubernetes does:
 * deploy to running, drift repair, scale to zero and back, updates that succeed and fail, the
 * reasons of a failed deploy, and teardown that leaves nothing labelled behind.
 */

let h: EndpointHarness
let clusterId: string
let standIn: StandInCluster
let model: SeededModel

beforeAll(async () => {
  h = await startEndpointHarness()
  ;({ clusterId, standIn } = await h.addAvailableCluster({ nodes: ['a100-8x', 'cpu-small'] }))
  model = await h.seedModel()
}, 60_000)

afterAll(async () => {
  await h?.close()
})

const ENDPOINT_LABEL = 'modelplane.io/endpoint-id'

async function deploy(body: Record<string, unknown>) {
  const res = await h.call({ method: 'POST', url: '/v1/endpoints', payload: { modelId: model.modelId, clusterId, replicas: 1, ...body } })
  expect(res.statusCode, res.body).toBe(202)
  return res.json() as { endpointId: string; workflowId: string }
}

/** Objects in the cluster carrying the endpoint's id, read with the cluster's own credentials. */
async function labelled(endpointId: string): Promise<Array<{ kind: string; name: string; uid: string; resourceVersion: string; generation?: number }>> {
  const { listManaged } = await import('../../../src/platform/kube/index.js')
  const row = await h.app.services.endpoints.get({ tenantId: h.admin.tenantId } as never, endpointId)
  return h.app.services.clusters.withClient(clusterId, async (c) => {
    const objects = await listManaged(c, {
      selector: `app.kubernetes.io/managed-by=modelplane,${ENDPOINT_LABEL}=${endpointId}`,
      ...(row.endpoint.namespace ? { namespaces: [row.endpoint.namespace] } : {}),
    })
    const pods = row.endpoint.namespace
      ? (await c.core.listNamespacedPod({ namespace: row.endpoint.namespace, labelSelector: `${ENDPOINT_LABEL}=${endpointId}` })).items
      : []
    return [
      ...objects.map((o) => ({
        kind: String(o.kind),
        name: String(o.metadata?.name),
        uid: String(o.metadata?.uid),
        resourceVersion: String(o.metadata?.resourceVersion),
        generation: o.metadata?.generation as number | undefined,
      })),
      ...pods.map((p) => ({ kind: 'Pod', name: p.metadata!.name!, uid: p.metadata!.uid!, resourceVersion: p.metadata!.resourceVersion! })),
    ]
  })
}

describe('deploy', () => {
  it('plans without side effects, then deploys to running with the runtime guarded by its key', { timeout: 90_000 }, async () => {
    const planned = await h.call({ method: 'POST', url: '/v1/endpoints/plan', payload: { name: 'planned-only', modelId: model.modelId, clusterId, replicas: 1 } })
    expect(planned.statusCode, planned.body).toBe(200)
    const plan = planned.json()
    expect(plan.runtime.name).toBe('vllm-cuda')
    expect(plan.deviceType).toBe('cuda')
    expect(plan.placement.nodes.length).toBeGreaterThan(0)
    const secrets = plan.manifests.filter((m: { kind: string }) => m.kind === 'Secret')
    expect(secrets.length).toBeGreaterThan(0)
    for (const s of secrets) for (const v of Object.values({ ...(s.data ?? {}), ...(s.stringData ?? {}) })) expect(v).toBe('<redacted>')
    const none = await h.call({ method: 'GET', url: '/v1/endpoints?q=planned-only' })
    expect(none.json().total).toBe(0)

    const { endpointId, workflowId } = await deploy({ name: 'chat' })
    expect((await h.endpoint(endpointId)).phase).toBe('deploying')
    const run = await h.finished(workflowId, 60_000)
    expect(run.status, JSON.stringify(run.error)).toBe('completed')
    const ep = await h.phase(endpointId, 'running')
    expect(ep.appliedRevision).toBe(1)
    expect(ep.runtime).toBe('vllm-cuda')
    expect(ep.conditions.find((c: { type: string }) => c.type === 'Ready')).toMatchObject({ status: 'True' })
    expect(ep.conditions.find((c: { type: string }) => c.type === 'ModelLoaded')).toMatchObject({ status: 'True' })

    const { apiKey } = (await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/api-key` })).json()
    expect(apiKey).toMatch(/^mp-/)
    const workers = (await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/workers` })).json().items
    expect(workers).toHaveLength(1)
    expect(workers[0]).toMatchObject({ ready: true, phase: 'Running' })
    // The runtime itself refuses a caller without the key and serves one with it.
    const without = standIn.callPod(ep.namespace, workers[0].name, 8000, { path: '/v1/models' })
    expect(without.status).toBe(401)
    const withKey = standIn.callPod(ep.namespace, workers[0].name, 8000, { path: '/v1/models', headers: { authorization: `Bearer ${apiKey}` } })
    expect(withKey.status).toBe(200)

    // The key is in no answer but its own.
    for (const url of [`/v1/endpoints/${endpointId}`, `/v1/endpoints/${endpointId}/manifests`, `/v1/endpoints/${endpointId}/events`, `/v1/endpoints/${endpointId}/workers`, '/v1/endpoints', `/v1/workflows/${workflowId}`]) {
      const res = await h.call({ method: 'GET', url })
      expect(res.statusCode, url).toBe(200)
      expect(res.body, url).not.toContain(apiKey)
    }
    const manifests = (await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/manifests` })).json().items
    expect(manifests.map((m: { kind: string }) => m.kind)).toEqual(expect.arrayContaining(['Deployment', 'Service', 'Secret', 'ServiceAccount']))
    for (const m of manifests) expect(m.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'modelplane', [ENDPOINT_LABEL]: endpointId })

    const logs = await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/workers/${workers[0].name}/logs?tailLines=5` })
    expect(logs.statusCode, logs.body).toBe(200)
    expect(logs.headers['content-type']).toMatch(/^text\/plain/)
    expect(logs.body.length).toBeGreaterThan(0)
    const stranger = await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/workers/not-a-pod-of-it/logs` })
    expect(stranger.statusCode).toBe(404)
  })

  it('re-applies the same state without a new resourceVersion, and brings back a Deployment deleted by hand', { timeout: 60_000 }, async () => {
    const { endpointId } = await deploy({ name: 'drift' })
    const ep = await h.phase(endpointId, 'running')
    const before = await labelled(endpointId)
    // Several reconcile passes (interval 1 s) apply the same desired state.
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    const after = await labelled(endpointId)
    const versions = (list: typeof before) => Object.fromEntries(list.filter((o) => o.kind !== 'Pod').map((o) => [`${o.kind}/${o.name}`, o.resourceVersion]))
    expect(versions(after)).toEqual(versions(before))

    const deployment = before.find((o) => o.kind === 'Deployment')!
    await h.app.services.clusters.withClient(clusterId, (c) => c.apps.deleteNamespacedDeployment({ name: deployment.name, namespace: ep.namespace }))
    await waitFor(async () => {
      const now = await labelled(endpointId)
      const back = now.find((o) => o.kind === 'Deployment')
      return back !== undefined && back.uid !== deployment.uid
    }, 20_000)
    await h.phase(endpointId, 'running', 30_000)
  })
})

describe('scale, update, teardown', () => {
  it('scales to zero and wakes back up', { timeout: 60_000 }, async () => {
    const { endpointId } = await deploy({ name: 'sleepy' })
    await h.phase(endpointId, 'running')
    const scaled = await h.call({ method: 'POST', url: `/v1/endpoints/${endpointId}/scale`, payload: { replicas: 0 } })
    expect(scaled.statusCode, scaled.body).toBe(202)
    await h.phase(endpointId, 'scaled_to_zero')
    await waitFor(async () => (await labelled(endpointId)).every((o) => o.kind !== 'Pod'), 15_000)
    const woken = await h.call({ method: 'POST', url: `/v1/endpoints/${endpointId}/wake` })
    expect(woken.statusCode, woken.body).toBe(202)
    await h.phase(endpointId, 'running')
    expect((await labelled(endpointId)).filter((o) => o.kind === 'Pod')).toHaveLength(1)
  })

  it('idle for its minutes: scaled to zero by the reconcile loop, counting real requests and surviving a counter reset', { timeout: 90_000 }, async () => {
    const { endpointId } = await deploy({ name: 'idle', idleScaleToZeroMinutes: 1 })
    const ep = await h.phase(endpointId, 'running')
    const pod = (await labelled(endpointId)).find((o) => o.kind === 'Pod')!.name
    const { sql } = await import('drizzle-orm')
    const db = h.app.platform.database.db
    const agoMinutes = async (minutes: number) =>
      db.execute(sql`update endpoints set last_activity_at = now() - make_interval(secs => ${minutes * 60}) where id = ${endpointId}`)
    const lastActivity = async () => new Date(((await h.endpoint(endpointId)) as { lastActivityAt: string }).lastActivityAt).getTime()

    // Traffic counts: the loop sees the counter move and the endpoint is active again.
    await waitFor(async () => Object.keys(((await h.app.services.endpoints.get({ tenantId: h.admin.tenantId } as never, endpointId)).endpoint.activity as { pods?: object }).pods ?? {}).length > 0, 15_000)
    await agoMinutes(0.5)
    standIn.sendRequests(ep.namespace, pod, 3)
    await waitFor(async () => Date.now() - (await lastActivity()) < 20_000, 15_000)
    // A restarted runtime starts its counter at zero: a lower reading is a reset, and new requests after it count.
    standIn.killContainer(ep.namespace, pod)
    await agoMinutes(0.5)
    // Once it serves again: one request, a counter of 1 after 3 (without reset handling, no activity).
    await waitFor(() => {
      try {
        standIn.sendRequests(ep.namespace, pod, 1)
        return true
      } catch {
        return false
      }
    }, 15_000)
    await waitFor(async () => Date.now() - (await lastActivity()) < 20_000, 20_000)
    await h.phase(endpointId, 'running')
    expect((await h.endpoint(endpointId)).phase).toBe('running')

    // No request for longer than its minutes: scaled to zero, and woken back to the replicas it had.
    await agoMinutes(2)
    const asleep = await h.phase(endpointId, 'scaled_to_zero', 30_000)
    expect(asleep.spec).toMatchObject({ replicas: 0, replicasBeforeIdle: 1 })
    const woken = await h.call({ method: 'POST', url: `/v1/endpoints/${endpointId}/wake` })
    expect(woken.statusCode, woken.body).toBe(202)
    const awake = await h.phase(endpointId, 'running')
    expect(awake.spec).toMatchObject({ replicas: 1 })
  })

  it('an update rolls out a new revision; a failing one goes back to the last good revision and is degraded', { timeout: 90_000 }, async () => {
    const { endpointId } = await deploy({ name: 'updated' })
    const first = await h.phase(endpointId, 'running')
    const etag = (await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}` })).headers.etag as string
    const patched = await h.call({ method: 'PATCH', url: `/v1/endpoints/${endpointId}`, headers: { 'if-match': etag }, payload: { args: ['--enable-prefix-caching'] } })
    expect(patched.statusCode, patched.body).toBe(202)
    expect((await h.finished(patched.json().workflowId, 60_000)).status).toBe('completed')
    const second = await h.phase(endpointId, 'running')
    expect(second.appliedRevision).toBe(2)
    const stale = await h.call({ method: 'PATCH', url: `/v1/endpoints/${endpointId}`, headers: { 'if-match': etag }, payload: { replicas: 1 } })
    expect(stale.statusCode).toBe(412)

    const servingBefore = (await labelled(endpointId)).filter((o) => o.kind === 'Pod').map((o) => o.name)
    const undo = standIn.behave({ image: 'sglang', imagePullError: 'manifest unknown' })
    try {
      const broken = await h.call({ method: 'PATCH', url: `/v1/endpoints/${endpointId}`, payload: { runtime: 'sglang-cuda' } })
      expect(broken.statusCode, broken.body).toBe(202)
      const run = await h.finished(broken.json().workflowId, 60_000)
      expect(run.status).toBe('failed')
      const degraded = await h.phase(endpointId, 'degraded')
      expect(degraded.appliedRevision).toBe(2)
      expect(degraded.statusMessage).toMatch(/ImagePullBackOff|ErrImagePull/)
      // The last good revision serves again.
      await waitFor(async () => {
        const workers = (await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/workers` })).json().items as Array<{ ready: boolean }>
        return workers.length === 1 && workers[0]!.ready
      }, 30_000)
      expect(first.namespace).toBe(degraded.namespace)
      expect(servingBefore.length).toBe(1)
    } finally {
      undo()
    }
  })

  it('a first deploy whose image cannot be pulled fails with the pod’s reason', { timeout: 90_000 }, async () => {
    const undo = standIn.behave({ image: 'sglang', imagePullError: 'manifest unknown' })
    try {
      const { endpointId, workflowId } = await deploy({ name: 'unpullable', runtime: 'sglang-cuda' })
      const run = await h.finished(workflowId, 60_000)
      expect(run.status).toBe('failed')
      const failed = await h.phase(endpointId, 'failed')
      expect(failed.failedStep).toBe('rollout')
      expect(failed.statusMessage).toMatch(/ImagePullBackOff|ErrImagePull/)
      // What was applied stays for inspection until teardown.
      expect((await labelled(endpointId)).some((o) => o.kind === 'Deployment')).toBe(true)
    } finally {
      undo()
    }
  })

  it('teardown deletes every labelled object and keeps a deleted record; the cluster and the model are in use until then', { timeout: 90_000 }, async () => {
    const { endpointId } = await deploy({ name: 'gone' })
    await h.phase(endpointId, 'running')
    const clusterDelete = await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })
    expect(clusterDelete.statusCode).toBe(409)
    expect(clusterDelete.json().errorCode).toBe('CLUSTER_IN_USE')
    const modelDelete = await h.call({ method: 'DELETE', url: `/v1/models/${model.modelId}` })
    expect(modelDelete.statusCode).toBe(409)
    expect(modelDelete.json().errorCode).toBe('MODEL_IN_USE')

    const res = await h.call({ method: 'DELETE', url: `/v1/endpoints/${endpointId}` })
    expect(res.statusCode, res.body).toBe(202)
    expect((await h.finished(res.json().workflowId, 60_000)).status).toBe('completed')
    const gone = await h.endpoint(endpointId)
    expect(gone.phase).toBe('deleted')
    expect(await labelled(endpointId)).toEqual([])
    expect((await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/api-key` })).statusCode).toBe(409)
  })
})

describe('refusals', () => {
  it('more than the cluster holds: 409 INSUFFICIENT_CAPACITY saying what is missing, and nothing is created', async () => {
    const big = await h.seedModel({ parameterCount: 70_553_706_496, metadata: { numAttentionHeads: 64, numKeyValueHeads: 8, numHiddenLayers: 80, hiddenSize: 8192 } })
    const res = await h.call({ method: 'POST', url: '/v1/endpoints', payload: { name: 'too-big', modelId: big.modelId, clusterId, replicas: 5 } })
    expect(res.statusCode, res.body).toBe(409)
    expect(res.json().errorCode).toBe('INSUFFICIENT_CAPACITY')
    expect(res.json().message).toMatch(/needs/)
    expect((await h.call({ method: 'GET', url: '/v1/endpoints?q=too-big' })).json().total).toBe(0)
  })

  it('another tenant sees none of it, a viewer cannot deploy or read the key, and bad input is a 400', async () => {
    const { endpointId } = await deploy({ name: 'private' })
    const viewer = await h.seed('viewer')
    expect((await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}` }, viewer)).statusCode).toBe(200)
    expect((await h.call({ method: 'GET', url: `/v1/endpoints/${endpointId}/api-key` }, viewer)).statusCode).toBe(403)
    expect((await h.call({ method: 'POST', url: '/v1/endpoints', payload: { name: 'x', modelId: model.modelId, clusterId, replicas: 1 } }, viewer)).statusCode).toBe(403)

    const { seedUser, uniqueRealm } = await import('../../helpers/auth.js')
    const other = await seedUser(h.app, { realm: uniqueRealm('other'), role: 'admin' })
    for (const [method, url] of [
      ['GET', `/v1/endpoints/${endpointId}`],
      ['GET', `/v1/endpoints/${endpointId}/workers`],
      ['GET', `/v1/endpoints/${endpointId}/manifests`],
      ['GET', `/v1/endpoints/${endpointId}/api-key`],
      ['DELETE', `/v1/endpoints/${endpointId}`],
    ] as const) {
      expect((await h.call({ method, url }, other)).statusCode, `${method} ${url}`).toBe(404)
    }
    expect((await h.call({ method: 'GET', url: '/v1/endpoints' }, other)).json().total).toBe(0)
    const planOnTheirs = await h.call({ method: 'POST', url: '/v1/endpoints/plan', payload: { name: 'x', modelId: model.modelId, clusterId, replicas: 1 } }, other)
    expect(planOnTheirs.statusCode).toBe(404)

    for (const payload of [
      { name: 'Bad Name', modelId: model.modelId, clusterId, replicas: 1 },
      { name: 'ok', modelId: 'not-a-uuid', clusterId, replicas: 1 },
      { name: 'ok', modelId: model.modelId, clusterId, replicas: -1 },
      { name: 'ok', modelId: model.modelId, clusterId, replicas: 1, args: ['--api-key', 'mine'] },
    ]) {
      const res = await h.call({ method: 'POST', url: '/v1/endpoints', payload })
      expect(res.statusCode, JSON.stringify(payload)).toBe(400)
    }
  })
})

describe('a cluster deleted with force', () => {
  it('tears its endpoints down first; nothing of theirs is left and their records say why', { timeout: 90_000 }, async () => {
    const other = await h.addAvailableCluster({ nodes: ['a100-8x'] })
    const res = await h.call({ method: 'POST', url: '/v1/endpoints', payload: { name: 'on-doomed', modelId: model.modelId, clusterId: other.clusterId, replicas: 1 } })
    expect(res.statusCode, res.body).toBe(202)
    const { endpointId } = res.json()
    await h.phase(endpointId, 'running')
    const refused = await h.call({ method: 'DELETE', url: `/v1/clusters/${other.clusterId}` })
    expect(refused.json().errorCode).toBe('CLUSTER_IN_USE')

    const forced = await h.call({ method: 'DELETE', url: `/v1/clusters/${other.clusterId}?force=true` })
    expect(forced.statusCode, forced.body).toBe(202)
    expect((await h.finished(forced.json().workflowId, 60_000)).status).toBe('completed')
    const gone = await h.endpoint(endpointId)
    expect(gone.phase).toBe('deleted')
    expect(gone.statusMessage).toMatch(/cluster/)
    expect((await h.cluster(other.clusterId)).status).toBe('deleted')
    // The tenant's namespace there, and everything in it, is gone with the cluster's cleanup.
    await waitFor(() => other.standIn.read('namespaces', undefined, gone.namespace) === undefined, 10_000)
    expect(other.standIn.read('namespaces', undefined, gone.namespace)).toBeUndefined()
  })
})
