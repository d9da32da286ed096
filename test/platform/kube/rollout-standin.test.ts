import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  counterValue,
  createKubeClient,
  judgeRollout,
  type KubeClient,
  type RolloutJudgement,
  requestDelta,
  workerView,
} from '../../../src/platform/kube/index.js'
import { type KubeStandIn, type StandInCluster, startKubeStandIn } from '../../helpers/kube/index.js'

// Rollout judgement through the real client against the stand-in's controllers, scheduler and
// kubelets: the same object shapes a cluster produces, with the failures users meet.

let standIn: KubeStandIn
let cluster: StandInCluster
let kube: KubeClient

beforeAll(async () => {
  standIn = await startKubeStandIn()
  cluster = standIn.addCluster({
    nodes: ['a100-8x', 'cpu-small'],
    workloads: { secondMs: 10, readyAfterMs: 30 },
  })
  kube = createKubeClient({ server: cluster.server, caData: standIn.caData, token: cluster.adminToken, insecureSkipTlsVerify: false, contextName: 'c', clusterName: 'k', userName: 'u' })
})

afterAll(async () => {
  kube?.close()
  await standIn?.close()
})

interface Workload {
  name: string
  image?: string
  args?: string[]
  replicas?: number
  labels?: Record<string, string>
  container?: Record<string, unknown>
  pod?: Record<string, unknown>
  strategy?: Record<string, unknown>
  progressDeadlineSeconds?: number
}

let namespaces = 0
async function namespace(): Promise<string> {
  const name = `rollout-${++namespaces}`
  await kube.core.createNamespace({ body: { metadata: { name } } })
  return name
}

function deployment(w: Workload) {
  const labels = { 'app.kubernetes.io/name': w.name, ...w.labels }
  return {
    metadata: { name: w.name, labels },
    spec: {
      replicas: w.replicas ?? 1,
      selector: { matchLabels: { 'app.kubernetes.io/name': w.name } },
      ...(w.strategy ? { strategy: w.strategy } : {}),
      ...(w.progressDeadlineSeconds ? { progressDeadlineSeconds: w.progressDeadlineSeconds } : {}),
      template: {
        metadata: { labels },
        spec: {
          containers: [{ name: 'server', image: w.image ?? 'vllm/vllm-openai:v0.6.3', args: w.args ?? ['--served-model-name', w.name], ports: [{ name: 'http', containerPort: 8000 }], ...w.container }],
          ...w.pod,
        },
      },
    },
  }
}

async function judge(ns: string, name: string, waitForOldPods = false): Promise<RolloutJudgement> {
  const d = await kube.apps.readNamespacedDeployment({ name, namespace: ns })
  const selector = `app.kubernetes.io/name=${name}`
  const replicaSets = (await kube.apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: selector })).items
  const pods = (await kube.core.listNamespacedPod({ namespace: ns, labelSelector: selector })).items
  return judgeRollout({ deployment: d, replicaSets, pods, waitForOldPods })
}

async function until(ns: string, name: string, accept: (j: RolloutJudgement) => boolean, timeout = 10_000): Promise<RolloutJudgement> {
  let last: RolloutJudgement | undefined
  await expect.poll(async () => accept((last = await judge(ns, name))), { timeout, interval: 20 }).toBe(true)
  return last!
}

async function podsOf(ns: string, name: string) {
  return (await kube.core.listNamespacedPod({ namespace: ns, labelSelector: `app.kubernetes.io/name=${name}` })).items
}

async function eventsOf(ns: string) {
  return (await kube.core.listNamespacedEvent({ namespace: ns })).items.map((e) => ({ reason: e.reason, message: e.message, kind: e.involvedObject.kind, type: e.type, count: e.count }))
}

describe('a deployment that comes up', () => {
  it('is complete once its pods are ready, with the objects and events a cluster makes', async () => {
    const ns = await namespace()
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'web', replicas: 2 }) })
    const first = await judge(ns, 'web')
    expect(first.state).toBe('progressing')

    const done = await until(ns, 'web', (j) => j.state === 'complete')
    expect(done).toMatchObject({ reason: 'RolloutComplete', message: 'deployment "web" successfully rolled out', revision: '1', pods: [] })

    const d = await kube.apps.readNamespacedDeployment({ name: 'web', namespace: ns })
    const [rs] = (await kube.apps.listNamespacedReplicaSet({ namespace: ns })).items
    const hash = rs!.metadata!.labels!['pod-template-hash']!
    expect(rs!.metadata!.name).toBe(`web-${hash}`)
    expect(hash).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/)
    expect(rs!.metadata!.annotations).toEqual({ 'deployment.kubernetes.io/desired-replicas': '2', 'deployment.kubernetes.io/max-replicas': '3', 'deployment.kubernetes.io/revision': '1' })
    expect(rs!.metadata!.ownerReferences).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: d.metadata!.uid, controller: true, blockOwnerDeletion: true }])
    expect(d.status).toMatchObject({ observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2 })
    expect(d.status?.unavailableReplicas).toBeUndefined()
    expect(d.status?.conditions?.map((c) => [c.type, c.status, c.reason, c.message])).toEqual([
      ['Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.'],
      ['Progressing', 'True', 'NewReplicaSetAvailable', `ReplicaSet "web-${hash}" has successfully progressed.`],
    ])

    const pods = await podsOf(ns, 'web')
    expect(pods).toHaveLength(2)
    for (const pod of pods) {
      expect(pod.metadata!.name).toMatch(new RegExp(`^web-${hash}-[bcdfghjklmnpqrstvwxz2456789]{5}$`))
      expect(pod.metadata!.labels).toEqual({ 'app.kubernetes.io/name': 'web', 'pod-template-hash': hash })
      const view = workerView(pod)
      expect(view).toMatchObject({ phase: 'Running', ready: true, restarts: 0, reasons: [] })
      // cpu-small takes it: the A100 node's taint is not tolerated.
      expect(view.node).toBe('worker-small-1')
      expect(view.startedAt).toMatch(/^\d{4}-\d\d-\d\dT/)
    }
    const events = await eventsOf(ns)
    expect(events).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'Deployment', reason: 'ScalingReplicaSet', message: `Scaled up replica set web-${hash} to 2` }),
      expect.objectContaining({ kind: 'ReplicaSet', reason: 'SuccessfulCreate', message: `Created pod: ${pods[0]!.metadata!.name}` }),
      expect.objectContaining({ kind: 'Pod', reason: 'Scheduled', message: `Successfully assigned ${ns}/${pods[0]!.metadata!.name} to worker-small-1` }),
      expect.objectContaining({ kind: 'Pod', reason: 'Started', message: 'Started container server' }),
    ]))
  }, 30_000)

  it('deletes its ReplicaSets and pods when it is deleted', async () => {
    const ns = await namespace()
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'gone', replicas: 2 }) })
    await until(ns, 'gone', (j) => j.state === 'complete')
    await kube.apps.deleteNamespacedDeployment({ name: 'gone', namespace: ns })
    await expect.poll(async () => (await kube.apps.listNamespacedReplicaSet({ namespace: ns })).items.length, { timeout: 5_000 }).toBe(0)
    await expect.poll(async () => (await podsOf(ns, 'gone')).length, { timeout: 5_000 }).toBe(0)
  }, 30_000)
})

describe('a deployment that does not come up says why', () => {
  it('an image that cannot be pulled: progressing with the pull error, failed past the progress deadline', async () => {
    const ns = await namespace()
    const image = 'registry.example.com/team/missing:1.0'
    cluster.behave({ image: 'registry.example.com/team/missing', imagePullError: true })
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'pull', image, progressDeadlineSeconds: 40 }) })
    const stuck = await until(ns, 'pull', (j) => j.pods.some((p) => p.reason === 'ImagePullBackOff'))
    expect(stuck.state).toBe('progressing')
    expect(stuck.pods[0]).toMatchObject({ container: 'server', reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"`, restarts: 0 })
    expect(stuck.message).toContain('ImagePullBackOff')

    const failed = await until(ns, 'pull', (j) => j.state === 'failed')
    expect(failed.reason).toBe('ProgressDeadlineExceeded')
    expect(failed.message).toMatch(/^deployment "pull" exceeded its progress deadline \(pod pull-\w+-\w{5}, container server: (ErrImagePull|ImagePullBackOff): /)
    const events = await eventsOf(ns)
    expect(events).toEqual(expect.arrayContaining([
      expect.objectContaining({ reason: 'Failed', type: 'Warning', message: expect.stringContaining(`Failed to pull image "${image}": rpc error: code = NotFound`) }),
      expect.objectContaining({ reason: 'BackOff', message: `Back-off pulling image "${image}"` }),
    ]))
  }, 30_000)

  it('a crash loop: the restarts grow, the exit code and the crash output are there', async () => {
    const ns = await namespace()
    cluster.behave({ labels: { 'app.kubernetes.io/name': 'crashy' }, crash: { afterMs: 10, exitCode: 3, lines: ['ValueError: bad model config'] } })
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'crashy' }) })
    const looping = await until(ns, 'crashy', (j) => j.pods.some((p) => p.reason === 'CrashLoopBackOff' && p.restarts >= 1))
    expect(looping.state).toBe('progressing')
    const problem = looping.pods[0]!
    expect(problem.message).toMatch(/^back-off \d+s restarting failed container=server pod=crashy-\w+-\w{5}_rollout-\d+\(.+\); last exit code 3 \(Error\)$/)
    const [pod] = await podsOf(ns, 'crashy')
    const status = pod!.status!.containerStatuses![0]!
    expect(status.lastState?.terminated).toMatchObject({ exitCode: 3, reason: 'Error' })
    const previous = await kube.request('GET', `/api/v1/namespaces/${ns}/pods/${pod!.metadata!.name}/log?previous=true`)
    expect(previous.body.toString()).toContain('ValueError: bad model config')
    expect(workerView(pod!).reasons).toContain('CrashLoopBackOff')
  }, 30_000)

  it('killed for memory: OOMKilled from the last state', async () => {
    const ns = await namespace()
    cluster.behave({ labels: { 'app.kubernetes.io/name': 'hungry' }, oomKill: { afterMs: 10 } })
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'hungry' }) })
    const j = await until(ns, 'hungry', (x) => x.pods.some((p) => p.reason === 'OOMKilled'))
    expect(j.pods[0]).toMatchObject({ reason: 'OOMKilled', container: 'server' })
    expect(j.pods[0]!.message).toContain('ran out of memory and was killed (exit code 137)')
  }, 30_000)

  it('too few GPUs: unschedulable with the scheduler message, and a FailedScheduling event', async () => {
    const ns = await namespace()
    await kube.apps.createNamespacedDeployment({
      namespace: ns,
      body: deployment({ name: 'big', container: { resources: { limits: { 'nvidia.com/gpu': '16' } } } }),
    })
    const j = await until(ns, 'big', (x) => x.pods.some((p) => p.reason === 'Unschedulable'))
    expect(j.state).toBe('progressing')
    expect(j.pods[0]!.message).toBe(
      '0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint {nvidia.com/gpu: true}. ' +
        'preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling..',
    )
    const events = await eventsOf(ns)
    expect(events).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'Pod', reason: 'FailedScheduling', type: 'Warning', message: j.pods[0]!.message })]))
    expect(workerView((await podsOf(ns, 'big'))[0]!)).toMatchObject({ node: null, phase: 'Pending', reasons: ['Unschedulable'] })
  }, 30_000)

  it('a missing Secret: CreateContainerConfigError until the Secret exists, then complete', async () => {
    const ns = await namespace()
    const env = [{ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf-token', key: 'token' } } }]
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'needs-secret', container: { env } }) })
    const j = await until(ns, 'needs-secret', (x) => x.pods.some((p) => p.reason === 'CreateContainerConfigError'))
    expect(j.pods[0]).toMatchObject({ reason: 'CreateContainerConfigError', message: 'secret "hf-token" not found' })
    await kube.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'hf-token' }, stringData: { token: 'hf_x' } } })
    await until(ns, 'needs-secret', (x) => x.state === 'complete')
  }, 30_000)

  it('a failing init container holds the pod in Pending with the init container named', async () => {
    const ns = await namespace()
    cluster.behave({ image: 'busybox:init-fails', crash: { afterMs: 5, exitCode: 1 } })
    await kube.apps.createNamespacedDeployment({
      namespace: ns,
      body: deployment({ name: 'init', pod: { initContainers: [{ name: 'fetch-weights', image: 'busybox:init-fails' }] } }),
    })
    const j = await until(ns, 'init', (x) => x.pods.some((p) => p.reason === 'CrashLoopBackOff'))
    expect(j.pods[0]).toMatchObject({ container: 'fetch-weights', init: true, reason: 'CrashLoopBackOff' })
    const [pod] = await podsOf(ns, 'init')
    expect(pod!.status?.phase).toBe('Pending')
    expect(pod!.status?.containerStatuses?.[0]?.state?.waiting?.reason).toBe('PodInitializing')
  }, 30_000)
})

describe('an update', () => {
  it('with waitForOldPods is complete only once the old pods are gone, terminating ones included', async () => {
    const ns = await namespace()
    cluster.behave({ labels: { 'app.kubernetes.io/name': 'gpu' }, terminationMs: 600, readyAfterMs: 10 })
    const strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } }
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'gpu', strategy }) })
    await until(ns, 'gpu', (j) => j.state === 'complete')
    const d = await kube.apps.readNamespacedDeployment({ name: 'gpu', namespace: ns })
    d.spec!.template.spec!.containers[0]!.image = 'vllm/vllm-openai:v0.6.4'
    await kube.apps.replaceNamespacedDeployment({ name: 'gpu', namespace: ns, body: d })

    // kubectl's rules call it done while the old pod still terminates (status.replicas skips it).
    const early = await until(ns, 'gpu', (j) => j.state === 'complete' && j.revision === '2')
    const waiting = await judge(ns, 'gpu', true)
    const pods = await podsOf(ns, 'gpu')
    expect(pods.some((p) => p.metadata?.deletionTimestamp)).toBe(true)
    expect(early.reason).toBe('RolloutComplete')
    expect(waiting).toMatchObject({ state: 'progressing', reason: 'OldPodsTerminating', revision: '2' })
    expect(workerView(pods.find((p) => p.metadata?.deletionTimestamp)!).reasons).toContain('Terminating')

    await expect.poll(async () => (await judge(ns, 'gpu', true)).state, { timeout: 5_000, interval: 20 }).toBe('complete')
    expect(await podsOf(ns, 'gpu')).toHaveLength(1)
  }, 30_000)

  it('with Recreate scales the new ReplicaSet up only after the old pods are gone', async () => {
    const ns = await namespace()
    cluster.behave({ labels: { 'app.kubernetes.io/name': 'recreate' }, terminationMs: 200 })
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'recreate', strategy: { type: 'Recreate' } }) })
    await until(ns, 'recreate', (j) => j.state === 'complete')
    const d = await kube.apps.readNamespacedDeployment({ name: 'recreate', namespace: ns })
    d.spec!.template.spec!.containers[0]!.args = ['--served-model-name', 'recreate-2']
    await kube.apps.replaceNamespacedDeployment({ name: 'recreate', namespace: ns, body: d })
    await until(ns, 'recreate', (j) => j.state === 'complete' && j.revision === '2')
    const scaling = (await eventsOf(ns)).filter((e) => e.reason === 'ScalingReplicaSet').map((e) => e.message)
    expect(scaling).toHaveLength(3)
    expect(scaling[1]).toMatch(/^Scaled down replica set recreate-\w+ to 0 from 1$/)
    expect(scaling[2]).toMatch(/^Scaled up replica set recreate-\w+ to 1$/)
  }, 30_000)
})

describe('pod logs', () => {
  it('answers tailLines and follows new lines until the pod goes', async () => {
    const ns = await namespace()
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'logs', args: ['--model', 'Qwen/Qwen2.5-0.5B'] }) })
    await until(ns, 'logs', (j) => j.state === 'complete')
    const [pod] = await podsOf(ns, 'logs')
    const name = pod!.metadata!.name!
    for (let i = 1; i <= 3; i++) cluster.appendLog(ns, name, 'server', `request ${i}`)
    const tail = await kube.request('GET', `/api/v1/namespaces/${ns}/pods/${name}/log?tailLines=2`)
    expect(tail.body.toString()).toBe('request 2\nrequest 3\n')
    const all = (await kube.request('GET', `/api/v1/namespaces/${ns}/pods/${name}/log?timestamps=true`)).body.toString()
    expect(all).toContain("args: model='Qwen/Qwen2.5-0.5B'")
    expect(all.split('\n')[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z INFO /)

    const seen: string[] = []
    const following = (async () => {
      for await (const chunk of kube.stream(`/api/v1/namespaces/${ns}/pods/${name}/log?follow=true&tailLines=1`)) {
        seen.push(chunk.toString())
        if (seen.join('').includes('request 4')) void kube.core.deleteNamespacedPod({ name, namespace: ns })
      }
    })()
    await expect.poll(() => seen.join(''), { timeout: 5_000 }).toContain('request 3')
    cluster.appendLog(ns, name, 'server', 'request 4')
    await following
    expect(seen.join('')).toBe('request 3\nrequest 4\n')
  }, 30_000)

  it('refuses as the API server does', async () => {
    const ns = await namespace()
    await kube.apps.createNamespacedDeployment({
      namespace: ns,
      body: deployment({ name: 'two', pod: { containers: [{ name: 'server', image: 'vllm/vllm-openai:v0.6.3' }, { name: 'proxy', image: 'envoyproxy/envoy:v1.31.0' }] } }),
    })
    await until(ns, 'two', (j) => j.state === 'complete')
    const [pod] = await podsOf(ns, 'two')
    const name = pod!.metadata!.name!
    const base = `/api/v1/namespaces/${ns}/pods/${name}/log`
    const answer = async (path: string) => {
      const res = await kube.request('GET', path, { passStatus: true })
      return { status: res.status, message: (res.json() as { message: string }).message }
    }
    expect(await answer(base)).toEqual({ status: 400, message: `a container name must be specified for pod ${name}, choose one of: [server proxy]` })
    expect(await answer(`${base}?container=nope`)).toEqual({ status: 400, message: `container nope is not valid for pod ${name}` })
    expect(await answer(`${base}?container=server&previous=true`)).toEqual({ status: 400, message: `previous terminated container "server" in pod "${name}" not found` })
    expect(await answer(`/api/v1/namespaces/${ns}/pods/missing/log`)).toEqual({ status: 404, message: 'pods "missing" not found' })
  }, 30_000)
})

describe('the proxy to the model server', () => {
  it('answers 503 through a Service before a pod is ready and the model list after', async () => {
    const ns = await namespace()
    cluster.behave({ labels: { 'app.kubernetes.io/name': 'slow' }, readyAfterMs: 400 })
    await kube.core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: 'slow' }, spec: { selector: { 'app.kubernetes.io/name': 'slow' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
    })
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'slow', args: ['--model', 'meta-llama/Llama-3.1-8B-Instruct', '--served-model-name', 'llama-8b'] }) })
    const path = `/api/v1/namespaces/${ns}/services/slow:http/proxy/v1/models`
    const before = await kube.request('GET', path, { passStatus: true })
    expect(before.status).toBe(503)
    expect(before.json()).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable', message: 'no endpoints available for service "slow"', code: 503 })
    await until(ns, 'slow', (j) => j.state === 'complete')
    const after = await kube.request('GET', path, { passStatus: true })
    expect(after.status).toBe(200)
    expect((after.json() as { data: Array<{ id: string; owned_by: string }> }).data).toEqual([expect.objectContaining({ id: 'llama-8b', owned_by: 'vllm' })])
  }, 30_000)

  it('needs the services/proxy right', async () => {
    const ns = await namespace()
    await kube.core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'svc' }, spec: { selector: { a: 'b' }, ports: [{ port: 80 }] } } })
    const token = cluster.tokenWith([{ verb: 'get', resource: 'services' }, { verb: 'get', resource: 'pods' }])
    const reader = createKubeClient({ server: cluster.server, caData: standIn.caData, token, insecureSkipTlsVerify: false, contextName: 'c', clusterName: 'k', userName: 'u' })
    try {
      const refused = await reader.request('GET', `/api/v1/namespaces/${ns}/services/svc/proxy/health`, { passStatus: true })
      expect(refused.status).toBe(403)
      expect((refused.json() as { message: string }).message).toBe(`services "svc" is forbidden: User "limited-1" cannot get resource "services/proxy" in API group "" in the namespace "${ns}"`)
    } finally {
      reader.close()
    }
  })

  it('enforces the API key on /v1 and keeps /health and /metrics open', async () => {
    const ns = await namespace()
    await kube.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'api-key' }, stringData: { key: 'sk-local-123' } } })
    const env = [{ name: 'VLLM_API_KEY', valueFrom: { secretKeyRef: { name: 'api-key', key: 'key' } } }]
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'keyed', container: { env } }) })
    await until(ns, 'keyed', (j) => j.state === 'complete')
    const [pod] = await podsOf(ns, 'keyed')
    const name = pod!.metadata!.name!
    const via = (path: string) => kube.request('GET', `/api/v1/namespaces/${ns}/pods/${name}:8000/proxy${path}`, { passStatus: true })
    // The API server consumes the caller's Authorization header: a key cannot ride through its proxy.
    const models = await via('/v1/models')
    expect(models.status).toBe(401)
    expect(models.json()).toEqual({ error: 'Unauthorized' })
    expect((await via('/health')).status).toBe(200)
    expect((await via('/metrics')).status).toBe(200)
    expect(cluster.callPod(ns, name, 8000, { path: '/v1/models' }).status).toBe(401)
    const inside = cluster.callPod(ns, name, 8000, { path: '/v1/models', headers: { authorization: 'Bearer sk-local-123' } })
    expect(inside.status).toBe(200)
    expect(JSON.parse(inside.body).data[0].id).toBe('keyed')
  }, 30_000)

  it('counts requests in the engine metrics and starts again from zero after a restart', async () => {
    const ns = await namespace()
    await kube.apps.createNamespacedDeployment({ namespace: ns, body: deployment({ name: 'busy' }) })
    await until(ns, 'busy', (j) => j.state === 'complete')
    const [pod] = await podsOf(ns, 'busy')
    const name = pod!.metadata!.name!
    const scrape = async () => {
      const res = await kube.request('GET', `/api/v1/namespaces/${ns}/pods/${name}:8000/proxy/metrics`, { passStatus: true })
      expect(res.status).toBe(200)
      return counterValue(res.body.toString(), 'vllm:request_success_total')!
    }
    expect(await scrape()).toBe(0)
    cluster.sendRequests(ns, name, 5)
    const chat = await kube.request('POST', `/api/v1/namespaces/${ns}/pods/${name}:http/proxy/v1/chat/completions`, {
      body: { model: 'busy', messages: [{ role: 'user', content: 'hi there' }] },
      passStatus: true,
    })
    expect(chat.status).toBe(200)
    expect((chat.json() as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe('Hello from busy.')
    const before = await scrape()
    expect(before).toBe(6)

    cluster.killContainer(ns, name)
    await expect.poll(async () => (await podsOf(ns, 'busy'))[0]!.status!.containerStatuses![0]!.restartCount, { timeout: 5_000 }).toBe(1)
    await until(ns, 'busy', (j) => j.state === 'complete')
    await expect.poll(async () => (await kube.request('GET', `/api/v1/namespaces/${ns}/pods/${name}:8000/proxy/health`, { passStatus: true })).status, { timeout: 5_000 }).toBe(200)
    const after = await scrape()
    expect(after).toBe(0)
    cluster.sendRequests(ns, name, 2)
    expect(requestDelta(before, await scrape())).toBe(2)
  }, 30_000)
})
