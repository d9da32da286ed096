import { createHash, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { models, modelVersionFiles, modelVersions } from '../../../src/modules/model_ops/tables.js'
import { buildTestApp, tempDir } from '../../helpers/app.js'
import { bearer, uniqueRealm } from '../../helpers/auth.js'
import { type KubeStandIn, type StandInCluster, startKubeStandIn } from '../../helpers/kube/index.js'
import { type ReplicaProcess, startReplicaProcess, stopReplicaProcess } from '../../helpers/replica-process.js'
import { waitFor } from '../../helpers/wait.js'
import { uniqueHub } from '../../helpers/workflow.js'

/**
 * The API process is killed with SIGKILL in the middle of a deploy (its rollout waiting on pods
 * that are slow to become ready) and in the middle of a teardown (pods still terminating), and
 * started again on the same database, workflow hub and object store: each run completes, and
 * the cluster holds exactly one of each object — nothing applied twice, nothing left behind.
 */

let kube: KubeStandIn
let standIn: StandInCluster
const processes: ReplicaProcess[] = []
let env: Record<string, string>
let account: { email: string; password: string; realm: string; tenantId: string; userId: string }
let modelId: string

async function login(on: ReplicaProcess): Promise<Record<string, string>> {
  const response = await fetch(`${on.base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: account.email, password: account.password, tenant: account.realm }),
  })
  expect(response.status).toBe(200)
  return bearer(((await response.json()) as { accessToken: string }).accessToken)
}

async function api(on: ReplicaProcess, method: string, path: string, body?: unknown) {
  const headers = { ...(await login(on)), ...(body ? { 'content-type': 'application/json' } : {}) }
  const response = await fetch(`${on.base}${path}`, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) })
  return { status: response.status, json: (await response.json().catch(() => null)) as Record<string, any> } // eslint-disable-line @typescript-eslint/no-explicit-any
}

const ENDPOINT_LABEL = 'modelplane.io/endpoint-id'
const countOf = (kind: 'deployments' | 'replicasets' | 'services' | 'secrets', namespace: string, endpointId: string) =>
  standIn.list(kind, namespace).filter((o) => o.metadata.labels?.[ENDPOINT_LABEL] === endpointId).length

beforeAll(async () => {
  kube = await startKubeStandIn()
  // Pods take a few seconds to be ready and to stop: long enough to be killed in the middle.
  standIn = kube.addCluster({ nodes: ['a100-8x'], workloads: { readyAfterMs: 4_000, terminationMs: 3_000 } })
  env = {
    REPLICA_HUB: uniqueHub('epcrash'),
    PUBLIC_URL: 'http://crash.example.test',
    BLOB_DIR: tempDir('modelplane-epcrash-blobs-'),
    CLUSTER_DENIED_CIDRS: '169.254.0.0/16',
    ENDPOINT_ROLLOUT_POLL_SECONDS: '0.3',
    ENDPOINT_RECONCILE_INTERVAL_SECONDS: '3600',
  }
  const seeder = await buildTestApp({ BLOB_DIR: env.BLOB_DIR, PUBLIC_URL: env.PUBLIC_URL }, { workflows: { hub: uniqueHub('epcrash-seed') } })
  try {
    const realm = uniqueRealm('epcrash')
    const email = `admin-${randomUUID().slice(0, 8)}@example.test`
    const password = `pw-${randomUUID()}`
    const user = await seeder.services.auth.createLocalUser({ realm, email, role: 'admin', password })
    account = { email, password, realm, tenantId: user.tenantId, userId: user.id }
    modelId = randomUUID()
    const versionId = randomUUID()
    const bytes = Buffer.from('weights of a tiny test model')
    await seeder.platform.blob.put(`models/${modelId}/${versionId}/model.safetensors`, bytes)
    const db = seeder.platform.database.db
    await db.insert(models).values({
      id: modelId, tenantId: user.tenantId, name: 'crash-model', displayName: 'crash model', source: 'upload', tasks: ['text-generation'],
      modalities: ['text'], parameterCount: 1_000_000_000, dtype: 'bfloat16', format: 'safetensors', contextLength: 4096,
      metadata: { numAttentionHeads: 16, numKeyValueHeads: 8, numHiddenLayers: 16, hiddenSize: 2048 }, status: 'ready', defaultVersionId: versionId, createdBy: user.id,
    })
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    await db.insert(modelVersions).values({
      id: versionId, modelId, tenantId: user.tenantId, label: 'v1', status: 'ready', manifest: { files: [{ path: 'model.safetensors', size: bytes.length, sha256 }] },
      fileCount: 1, sizeBytes: bytes.length, createdBy: user.id, sealedAt: new Date(),
    })
    await db.insert(modelVersionFiles).values({
      versionId, path: 'model.safetensors', size: bytes.length, sha256, blobKey: `models/${modelId}/${versionId}/model.safetensors`, status: 'verified', bytesDone: bytes.length,
    })
  } finally {
    await seeder.close()
  }
}, 90_000)

afterAll(async () => {
  for (const p of processes) await stopReplicaProcess(p, 'SIGKILL')
  await kube?.close()
})

describe('SIGKILL during a deploy and during a teardown', () => {
  it('both complete after a restart, with exactly one of each object and nothing left after', async () => {
    const first = await startReplicaProcess('epcrash-1', env)
    processes.push(first)
    const registered = await api(first, 'POST', '/v1/clusters', { name: 'crash-cluster', kubeconfig: standIn.kubeconfig() })
    expect(registered.status).toBe(202)
    const clusterId = registered.json.clusterId as string
    await waitFor(async () => (await api(first, 'GET', `/v1/clusters/${clusterId}`)).json.status === 'available', 30_000)

    const deployed = await api(first, 'POST', '/v1/endpoints', { name: 'crashy', modelId, clusterId, replicas: 1 })
    expect(deployed.status).toBe(202)
    const { endpointId, workflowId } = deployed.json as { endpointId: string; workflowId: string }
    // Killed while the rollout waits for a pod that is not ready yet.
    await waitFor(async () => (await api(first, 'GET', `/v1/workflows/${workflowId}`)).json.currentStep === 3, 30_000)
    await stopReplicaProcess(first, 'SIGKILL')

    const second = await startReplicaProcess('epcrash-2', env)
    processes.push(second)
    await waitFor(async () => (await api(second, 'GET', `/v1/endpoints/${endpointId}`)).json.phase === 'running', 60_000, 'the deploy did not finish after the restart')
    const namespace = (await api(second, 'GET', `/v1/endpoints/${endpointId}`)).json.namespace as string
    expect(countOf('deployments', namespace, endpointId)).toBe(1)
    expect(countOf('replicasets', namespace, endpointId)).toBe(1)
    expect(countOf('services', namespace, endpointId)).toBe(1)
    expect((await api(second, 'GET', `/v1/workflows/${workflowId}`)).json.status).toBe('completed')

    // Killed while the teardown waits for the pod to stop.
    const removed = await api(second, 'DELETE', `/v1/endpoints/${endpointId}`)
    expect(removed.status).toBe(202)
    await waitFor(() => countOf('deployments', namespace, endpointId) === 0, 20_000)
    await stopReplicaProcess(second, 'SIGKILL')

    const third = await startReplicaProcess('epcrash-3', env)
    processes.push(third)
    await waitFor(async () => (await api(third, 'GET', `/v1/endpoints/${endpointId}`)).json.phase === 'deleted', 60_000, 'the teardown did not finish after the restart')
    expect((await api(third, 'GET', `/v1/workflows/${removed.json.workflowId}`)).json.status).toBe('completed')
    for (const kind of ['deployments', 'replicasets', 'services', 'secrets'] as const) expect(countOf(kind, namespace, endpointId)).toBe(0)
    expect(standIn.list('pods', namespace).filter((o) => o.metadata.labels?.[ENDPOINT_LABEL] === endpointId)).toEqual([])
  }, 180_000)
})
