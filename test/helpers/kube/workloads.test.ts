import fs from 'node:fs'
import { AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { counterValue } from '../../../src/platform/kube/index.js'
import { type KubeStandIn, type StandInCluster, nodeFixture, startKubeStandIn } from './index.js'
import { schedule, usageByNode } from './scheduler.js'
import { type KubeObject } from './store.js'

// The stand-in's controllers, scheduler and simulated servers against what a real cluster does.

let standIn: KubeStandIn
let cluster: StandInCluster
let core: CoreV1Api
let apps: AppsV1Api

beforeAll(async () => {
  standIn = await startKubeStandIn()
  cluster = standIn.addCluster({ nodes: ['cpu-small', 'sapphire-rapids'], workloads: { readyAfterMs: 20 } })
  const kc = new KubeConfig()
  kc.loadFromString(cluster.kubeconfig())
  core = kc.makeApiClient(CoreV1Api)
  apps = kc.makeApiClient(AppsV1Api)
})

afterAll(async () => {
  await standIn?.close()
})

const recorded = JSON.parse(fs.readFileSync(new URL('../../fixtures/kube/deployment-rollout-status-sequence.json', import.meta.url), 'utf8')) as Array<{ status: Record<string, unknown> }>

function web(image: string) {
  return {
    metadata: { name: 'web' },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'server', image }] } },
    },
  }
}

/** The status without times and names, to compare with the recording. */
function shape(status: Record<string, unknown> | undefined) {
  const s = structuredClone(status ?? {}) as { conditions?: Array<Record<string, unknown>> }
  for (const c of s.conditions ?? []) {
    delete c.lastUpdateTime
    delete c.lastTransitionTime
    c.message = String(c.message).replace(/"web-\w+"/, '"web-<hash>"')
  }
  return s
}

describe('the deployment controller', () => {
  it('writes the status of each recorded rollout stage', async () => {
    await core.createNamespace({ body: { metadata: { name: 'sequence' } } })
    await apps.createNamespacedDeployment({ namespace: 'sequence', body: web('nginx:1.27') })
    const read = async () => shape((await apps.readNamespacedDeployment({ name: 'web', namespace: 'sequence' })).status as never)
    await expect.poll(read, { timeout: 5_000, interval: 10 }).toEqual(shape(recorded[1]!.status))

    // New pods take a while to be ready: the first stage of the update holds still for a look.
    cluster.behave({ image: 'nginx:1.28', readyAfterMs: 400 })
    const d = await apps.readNamespacedDeployment({ name: 'web', namespace: 'sequence' })
    d.spec!.template.spec!.containers[0]!.image = 'nginx:1.28'
    await apps.replaceNamespacedDeployment({ name: 'web', namespace: 'sequence', body: d })
    const updating = { ...shape(recorded[2]!.status), observedGeneration: 2 }
    await expect.poll(read, { timeout: 5_000, interval: 10 }).toEqual(updating)
    await expect.poll(read, { timeout: 5_000, interval: 10 }).toEqual(shape(recorded[5]!.status))

    const sets = (await apps.listNamespacedReplicaSet({ namespace: 'sequence' })).items
    const byRevision = Object.fromEntries(sets.map((rs) => [rs.metadata!.annotations!['deployment.kubernetes.io/revision'], rs]))
    expect(byRevision['1']?.spec?.replicas).toBe(0)
    expect(byRevision['1']?.status).toEqual({ replicas: 0, observedGeneration: 3 })
    expect(byRevision['2']?.status).toEqual({ replicas: 2, fullyLabeledReplicas: 2, readyReplicas: 2, availableReplicas: 2, observedGeneration: 2 })
    const scaling = (await core.listNamespacedEvent({ namespace: 'sequence' })).items
      .filter((e) => e.reason === 'ScalingReplicaSet').map((e) => e.message!.replace(/web-\w+/, (n) => (n === byRevision['1']!.metadata!.name ? 'OLD' : 'NEW')))
    expect(scaling).toEqual(['Scaled up replica set OLD to 2', 'Scaled up replica set NEW to 1', 'Scaled down replica set OLD to 1 from 2', 'Scaled up replica set NEW to 2 from 1', 'Scaled down replica set OLD to 0 from 1'])
  }, 30_000)

  it('keeps a deleted pod terminating with its deletionTimestamp, and replaces it', async () => {
    await core.createNamespace({ body: { metadata: { name: 'grace' } } })
    cluster.behave({ image: 'nginx:slow-stop', terminationMs: 300 })
    await apps.createNamespacedDeployment({ namespace: 'grace', body: { ...web('nginx:slow-stop'), spec: { ...web('nginx:slow-stop').spec, replicas: 1 } } })
    await expect.poll(async () => (await core.listNamespacedPod({ namespace: 'grace' })).items.filter((p) => p.status?.phase === 'Running').length, { timeout: 5_000 }).toBe(1)
    const [pod] = (await core.listNamespacedPod({ namespace: 'grace' })).items
    const answer = await core.deleteNamespacedPod({ name: pod!.metadata!.name!, namespace: 'grace' })
    expect(answer.metadata?.deletionTimestamp).toBeInstanceOf(Date)
    expect(answer.metadata?.deletionGracePeriodSeconds).toBe(30)
    const names = async () => (await core.listNamespacedPod({ namespace: 'grace' })).items.map((p) => p.metadata!.name)
    await expect.poll(names, { timeout: 2_000 }).toHaveLength(2)
    expect(await names()).toContain(pod!.metadata!.name)
    await expect.poll(names, { timeout: 5_000 }).not.toContain(pod!.metadata!.name)
    const killing = (await core.listNamespacedEvent({ namespace: 'grace' })).items.find((e) => e.reason === 'Killing')
    expect(killing?.message).toBe('Stopping container server')
  }, 30_000)
})

describe('the scheduler', () => {
  const node = (name: string) => nodeFixture(name) as KubeObject
  const pod = (spec: Record<string, unknown>): KubeObject => ({ metadata: { name: 'p', namespace: 'x' }, spec: { containers: [{ name: 'c', image: 'i', resources: { requests: {} } }], ...spec } })
  const gpu = (n: string) => ({ containers: [{ name: 'c', image: 'i', resources: { limits: { 'nvidia.com/gpu': n } } }] })
  const tolerateGpu = { tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] }

  it('places a GPU pod on the node whose taint it tolerates and whose GPUs are free', () => {
    const nodes = [node('a100-8x'), node('cpu-small'), node('cordoned')]
    expect(schedule(pod({ ...gpu('8'), ...tolerateGpu }), nodes, new Map())).toEqual({ node: 'gpu-a100-0' })
    const busy = usageByNode([{ metadata: { name: 'q' }, spec: { nodeName: 'gpu-a100-0', ...gpu('4') }, status: { phase: 'Running' } }])
    expect(schedule(pod({ ...gpu('8'), ...tolerateGpu }), nodes, busy)).toEqual({
      // Reasons are counted, then sorted as text with their counts, as kube-scheduler does.
      unschedulable: '0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient nvidia.com/gpu. ' +
        'preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod..',
    })
  })

  it('honours nodeSelector and required node affinity', () => {
    const nodes = [node('a100-8x'), node('mi300x'), node('gaudi2')]
    const affinity = (operator: string, values?: string[]) => ({
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'nvidia.com/gpu.product', operator, ...(values ? { values } : {}) }] }] } } },
      tolerations: [{ operator: 'Exists' }],
    })
    expect(schedule(pod(affinity('In', ['NVIDIA-A100-SXM4-80GB'])), nodes, new Map())).toEqual({ node: 'gpu-a100-0' })
    expect(schedule(pod(affinity('Exists')), nodes, new Map())).toEqual({ node: 'gpu-a100-0' })
    const notA100 = schedule(pod({ ...affinity('NotIn', ['NVIDIA-A100-SXM4-80GB']), containers: [{ name: 'c', image: 'i', resources: { limits: { 'habana.ai/gaudi': '2' } } }] }), nodes, new Map())
    expect(notA100).toEqual({ node: 'hpu-gaudi2-0' })
    expect(schedule(pod({ nodeSelector: { 'kubernetes.io/arch': 'arm64' } }), nodes, new Map())).toEqual({
      unschedulable: '0/3 nodes are available: 1 node(s) had untolerated taint {amd.com/gpu: present}, 1 node(s) had untolerated taint {habana.ai/gaudi: present}, 1 node(s) had untolerated taint {nvidia.com/gpu: true}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..',
    })
  })
})

describe('the simulated servers', () => {
  async function serving(name: string, container: Record<string, unknown>) {
    await apps.createNamespacedDeployment({
      namespace: 'engines',
      body: { metadata: { name }, spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'server', ...container }] } } } },
    })
    await expect.poll(async () => (await core.listNamespacedPod({ namespace: 'engines', labelSelector: `app=${name}` })).items[0]?.status?.containerStatuses?.[0]?.ready, { timeout: 5_000 }).toBe(true)
    return (await core.listNamespacedPod({ namespace: 'engines', labelSelector: `app=${name}` })).items[0]!.metadata!.name!
  }

  it('answers with each engine its own metric names, flags and ports', async () => {
    await core.createNamespace({ body: { metadata: { name: 'engines' } } })
    const llama = await serving('llama', { image: 'ghcr.io/ggml-org/llama.cpp:server', args: ['-m', '/models/q4.gguf', '-a', 'tiny', '--port', '8080'] })
    expect(cluster.callPod('engines', llama, 8080, { path: '/metrics' })).toMatchObject({ status: 501 })
    expect(JSON.parse(cluster.callPod('engines', llama, 8080, { path: '/v1/models' }).body).data[0].id).toBe('tiny')

    const sglang = await serving('sglang', { image: 'lmsysorg/sglang:v0.4.0', command: ['python3', '-m', 'sglang.launch_server'], args: ['--model-path', 'Qwen/Qwen2.5-7B', '--enable-metrics'] })
    cluster.sendRequests('engines', sglang, 3)
    expect(counterValue(cluster.callPod('engines', sglang, 30000, { path: '/metrics' }).body, 'sglang:num_requests_total')).toBe(3)

    const tei = await serving('tei', { image: 'ghcr.io/huggingface/text-embeddings-inference:cpu-1.5', args: ['--model-id', 'BAAI/bge-small-en-v1.5'] })
    const embedded = cluster.callPod('engines', tei, 80, { method: 'POST', path: '/v1/embeddings', body: JSON.stringify({ input: 'hello' }) })
    expect(JSON.parse(embedded.body).data[0].embedding).toHaveLength(8)
    expect(counterValue(cluster.callPod('engines', tei, 9000, { path: '/metrics' }).body, 'te_request_count')).toBe(1)

    const app = await serving('app', { image: 'registry.example.com/team/app:1', ports: [{ containerPort: 3000 }] })
    cluster.sendRequests('engines', app, 4)
    expect(counterValue(cluster.callPod('engines', app, 3000, { path: '/metrics' }).body, 'http_requests_total')).toBe(4)
    expect(() => cluster.callPod('engines', app, 8000, { path: '/health' })).toThrow(/connection refused/)
  }, 30_000)
})
