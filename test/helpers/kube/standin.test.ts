import {
  ApiException,
  ApisApi,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  NetworkingV1Api,
  StorageV1Api,
  VersionApi,
  type V1Pod,
} from '@kubernetes/client-node'
import https from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type KubeStandIn, type StandInCluster, nodeFixture, startKubeStandIn } from './index.js'

// The real client-node against the stand-in, over HTTPS, as the control plane will use it.

function client<T>(kubeconfig: string, api: new (...args: never[]) => T): T {
  const kc = new KubeConfig()
  kc.loadFromString(kubeconfig)
  return kc.makeApiClient(api as never) as T
}

/** The Status body of a failed call, or the error itself when the call never got an answer. */
async function failure(call: Promise<unknown>): Promise<{ code: number; body: Record<string, unknown> }> {
  try {
    await call
  } catch (err) {
    if (err instanceof ApiException) {
      const body = typeof err.body === 'string' ? (JSON.parse(err.body) as Record<string, unknown>) : (err.body as Record<string, unknown>)
      return { code: err.code, body }
    }
    throw err
  }
  throw new Error('the call succeeded')
}

function node(name: string, labels: Record<string, string> = {}) {
  return { metadata: { name, labels }, spec: {}, status: { capacity: { cpu: '8' } } }
}

function pod(ns: string, name: string, nodeName: string, phase: string, gpus = '1'): V1Pod {
  return {
    metadata: { name, namespace: ns, labels: { app: name.split('-')[0]! } },
    spec: { nodeName, containers: [{ name: 'main', image: 'vllm', resources: { requests: { 'nvidia.com/gpu': gpus } } }] },
    status: { phase },
  }
}

let standIn: KubeStandIn
let cluster: StandInCluster

beforeAll(async () => {
  standIn = await startKubeStandIn()
  cluster = standIn.addCluster({
    nodes: ['node-a100-as-stored', ...Array.from({ length: 4 }, (_, i) => node(`cpu-${i}`, { pool: i % 2 ? 'odd' : 'even' }))],
    pods: [
      pod('serving', 'llama-0', 'gpu-a100-0', 'Running', '4'),
      pod('serving', 'llama-1', 'gpu-a100-0', 'Succeeded', '4'),
      pod('batch', 'embed-0', 'gpu-a100-0', 'Pending'),
      pod('batch', 'embed-1', 'cpu-1', 'Running'),
    ],
    offers: { ingressClass: 'nginx', defaultStorageClass: { name: 'fast', provisioner: 'ebs.csi.aws.com' } },
    // These tests are about the API server's own answers: no controller writes Deployment status between them.
    workloads: false,
  })
})

afterAll(async () => {
  await standIn?.close()
})

describe('reading a cluster', () => {
  it('pages through nodes with limit and continue', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    const first = await core.listNode({ limit: 2 })
    expect(first.items.map((n) => n.metadata?.name)).toEqual(['cpu-0', 'cpu-1'])
    expect(first.metadata?.remainingItemCount).toBe(3)
    expect(first.metadata?._continue).toBeTruthy()
    const names = first.items.map((n) => n.metadata!.name)
    let token = first.metadata?._continue
    while (token) {
      const page = await core.listNode({ limit: 2, _continue: token })
      names.push(...page.items.map((n) => n.metadata!.name))
      token = page.metadata?._continue
    }
    expect(names).toEqual(['cpu-0', 'cpu-1', 'cpu-2', 'cpu-3', 'gpu-a100-0'])
  })

  it('serves a recorded fixture node with its labels and GPU capacity', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    const a100 = await core.readNode({ name: 'gpu-a100-0' })
    expect(a100.metadata?.labels?.['nvidia.com/gpu.product']).toBe('NVIDIA-A100-SXM4-80GB')
    expect(a100.status?.allocatable?.['nvidia.com/gpu']).toBe('8')
    expect(a100.metadata?.uid).not.toBe('19cf1ad6-1da0-462b-8e41-d3ec2abbbf62') // each cluster gets its own
    expect(nodeFixture('node-a100-as-stored').metadata.uid).toBeUndefined()
  })

  it('narrows pods across namespaces by node and phase', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    const onA100 = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=gpu-a100-0,status.phase!=Succeeded' })
    expect(onA100.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`)).toEqual(['batch/embed-0', 'serving/llama-0'])
    const inBatch = await core.listNamespacedPod({ namespace: 'batch', labelSelector: 'app in (embed),app!=llama' })
    expect(inBatch.items.map((p) => p.metadata?.name)).toEqual(['embed-0', 'embed-1'])
  })

  it('refuses a field the API server cannot select on', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    const { code, body } = await failure(core.listPodForAllNamespaces({ fieldSelector: 'spec.containers=x' }))
    expect(code).toBe(400)
    expect(body).toMatchObject({ kind: 'Status', reason: 'BadRequest', message: 'field label not supported: spec.containers' })
  })

  it('selects nodes by label with exists, notin and !', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    const names = async (labelSelector: string) => (await core.listNode({ labelSelector })).items.map((n) => n.metadata?.name)
    expect(await names('pool')).toEqual(['cpu-0', 'cpu-1', 'cpu-2', 'cpu-3'])
    expect(await names('pool notin (odd)')).toEqual(['cpu-0', 'cpu-2', 'gpu-a100-0'])
    expect(await names('!pool')).toEqual(['gpu-a100-0'])
  })

  it('answers /version and the offered ingress and storage classes', async () => {
    const k3s = standIn.addCluster({ gitVersion: 'v1.29.4+k3s1' })
    const version = await client(k3s.kubeconfig(), VersionApi).getCode()
    expect(version).toMatchObject({ major: '1', minor: '29', gitVersion: 'v1.29.4+k3s1' })
    const eks = standIn.addCluster({ gitVersion: 'v1.28.9-eks-036c24b' })
    expect((await client(eks.kubeconfig(), VersionApi).getCode()).minor).toBe('28+')

    const classes = await client(cluster.kubeconfig(), StorageV1Api).listStorageClass()
    expect(classes.items.map((c) => [c.metadata?.name, c.provisioner, c.metadata?.annotations?.['storageclass.kubernetes.io/is-default-class']]))
      .toEqual([['fast', 'ebs.csi.aws.com', 'true']])
    const ingress = await client(cluster.kubeconfig(), NetworkingV1Api).listIngressClass()
    expect(ingress.items.map((c) => c.spec?.controller)).toEqual(['k8s.io/ingress-nginx'])
  })
})

describe('credentials', () => {
  it('answers 401 Unauthorized to an unknown token, and to another cluster\'s token', async () => {
    const other = standIn.addCluster()
    for (const token of ['not-a-token', other.adminToken]) {
      expect((await failure(client(cluster.kubeconfig({ token }), CoreV1Api).listNode())).code).toBe(401)
      // client-node drops 401 bodies; the recorded one is what a raw request gets.
      const raw = await rawGet(cluster, '/api/v1/nodes', token)
      expect(raw.code).toBe(401)
      expect(JSON.parse(raw.body)).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 })
    }
  })

  it('lets the read-only token read but answers 403 naming verb, resource and namespace on create', async () => {
    const core = client(cluster.kubeconfig({ token: cluster.readOnlyToken }), CoreV1Api)
    expect((await core.listNamespacedPod({ namespace: 'serving' })).items).toHaveLength(2)
    const { code, body } = await failure(core.createNamespacedConfigMap({ namespace: 'serving', body: { metadata: { name: 'x' } } }))
    expect(code).toBe(403)
    expect(body).toMatchObject({
      reason: 'Forbidden',
      message: 'configmaps is forbidden: User "reader" cannot create resource "configmaps" in API group "" in the namespace "serving"',
      details: { kind: 'configmaps' },
    })
  })

  it('answers 403 at the cluster scope for a token without node rights', async () => {
    const token = cluster.tokenWith([{ verb: 'list', group: '', resource: 'pods' }])
    const core = client(cluster.kubeconfig({ token }), CoreV1Api)
    expect((await core.listPodForAllNamespaces()).items.length).toBeGreaterThan(0)
    const { code, body } = await failure(core.listNode())
    expect(code).toBe(403)
    expect(body.message).toMatch(/^nodes is forbidden: User "limited-\d+" cannot list resource "nodes" in API group "" at the cluster scope$/)
  })

  it('answers SelfSubjectAccessReviews from the token\'s rights', async () => {
    const review = { spec: { resourceAttributes: { namespace: 'serving', verb: 'create', group: 'apps', resource: 'deployments' } } }
    const asAdmin = await client(cluster.kubeconfig(), AuthorizationV1Api).createSelfSubjectAccessReview({ body: review })
    expect(asAdmin.status?.allowed).toBe(true)
    expect(asAdmin.spec.resourceAttributes).toEqual(review.spec.resourceAttributes)
    const asReader = client(cluster.kubeconfig({ token: cluster.readOnlyToken }), AuthorizationV1Api)
    expect((await asReader.createSelfSubjectAccessReview({ body: review })).status?.allowed).toBe(false)
    const get = { spec: { resourceAttributes: { verb: 'get', group: 'apps', resource: 'deployments', namespace: 'serving' } } }
    expect((await asReader.createSelfSubjectAccessReview({ body: get })).status?.allowed).toBe(true)
  })

  it('accepts a client certificate signed by its CA and refuses one signed by another', async () => {
    const asUser = client(cluster.kubeconfig({ cert: true }), CoreV1Api)
    expect((await asUser.listNode()).items).toHaveLength(5)
    expect(cluster.requests.at(-1)).toMatchObject({ method: 'GET', path: '/api/v1/nodes', user: 'user' })

    const stranger = cluster.kubeconfig({ cert: true }).replace(cluster.clientCert().certData, cluster.strangerCert().certData)
      .replace(cluster.clientCert().keyData, cluster.strangerCert().keyData)
    expect((await failure(client(stranger, CoreV1Api).listNode())).code).toBe(401)
  })

  it('fails TLS when the kubeconfig names the wrong CA', async () => {
    const core = client(cluster.kubeconfig({ ca: 'wrong' }), CoreV1Api)
    await expect(core.listNode()).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i)
  })
})

describe('writing objects', () => {
  it('creates, refuses a duplicate with 409, and deletes by label', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    await core.createNamespace({ body: { metadata: { name: 'tenant-a' } } })
    const managed = { 'app.kubernetes.io/managed-by': 'modelplane', 'modelplane.io/endpoint-id': 'ep1' }
    for (const name of ['one', 'two']) {
      await core.createNamespacedConfigMap({ namespace: 'tenant-a', body: { metadata: { name, labels: managed }, data: { k: name } } })
    }
    await core.createNamespacedConfigMap({ namespace: 'tenant-a', body: { metadata: { name: 'theirs' } } })
    const dup = await failure(core.createNamespacedConfigMap({ namespace: 'tenant-a', body: { metadata: { name: 'one' } } }))
    expect(dup.code).toBe(409)
    expect(dup.body).toMatchObject({ reason: 'AlreadyExists', message: 'configmaps "one" already exists', details: { name: 'one', kind: 'configmaps' } })

    await core.deleteCollectionNamespacedConfigMap({ namespace: 'tenant-a', labelSelector: 'app.kubernetes.io/managed-by=modelplane,modelplane.io/endpoint-id=ep1' })
    const left = await core.listNamespacedConfigMap({ namespace: 'tenant-a' })
    expect(left.items.map((c) => c.metadata?.name)).toEqual(['theirs'])
  })

  it('stamps uid, resourceVersion, creationTimestamp and generation, and bumps generation on a spec change', async () => {
    const apps = client(cluster.kubeconfig(), AppsV1Api)
    const body = {
      metadata: { name: 'web' },
      spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'nginx:1' }] } } },
    }
    const created = await apps.createNamespacedDeployment({ namespace: 'default', body })
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/)
    expect(created.metadata?.generation).toBe(1)
    expect(created.spec?.replicas).toBe(1)
    const updated = await apps.replaceNamespacedDeployment({ name: 'web', namespace: 'default', body: { ...created, spec: { ...created.spec!, replicas: 3 } } })
    expect(updated.metadata?.generation).toBe(2)
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion))
    const stale = await failure(apps.replaceNamespacedDeployment({ name: 'web', namespace: 'default', body: created }))
    expect(stale.code).toBe(409)
    expect(stale.body.reason).toBe('Conflict')
  })

  it('answers 404 for a missing namespace and 422 for an invalid name, as recorded', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    const missing = await failure(core.createNamespacedConfigMap({ namespace: 'does-not-exist', body: { metadata: { name: 'a' } } }))
    expect(missing).toEqual({
      code: 404,
      body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'namespaces "does-not-exist" not found', reason: 'NotFound', details: { name: 'does-not-exist', kind: 'namespaces' }, code: 404 },
    })
    const bad = await failure(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'Not_Valid' } } }))
    expect(bad.code).toBe(422)
    expect(bad.body).toMatchObject({ reason: 'Invalid', details: { name: 'Not_Valid', kind: 'ConfigMap', causes: [{ field: 'metadata.name', reason: 'FieldValueInvalid' }] } })
    expect(bad.body.message).toMatch(/^ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain/)
  })

  it('keeps a deleted namespace Terminating until its contents are gone', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    await core.createNamespace({ body: { metadata: { name: 'going' } } })
    await core.createNamespacedSecret({ namespace: 'going', body: { metadata: { name: 's' }, stringData: { a: 'b' } } })
    const answer = (await core.deleteNamespace({ name: 'going' })) as { status?: { phase?: string } }
    expect(answer.status?.phase).toBe('Terminating')
    const refused = await failure(core.createNamespacedSecret({ namespace: 'going', body: { metadata: { name: 't' } } }))
    expect(refused.code).toBe(403)
    await expect.poll(async () => (await failure(core.readNamespace({ name: 'going' }))).code, { timeout: 5_000 }).toBe(404)
  })
})

describe('discovery', () => {
  it('lists the OpenShift groups on an OpenShift cluster and not on a plain one', async () => {
    const openshift = standIn.addCluster({ flavour: 'openshift', gitVersion: 'v1.27.6+f67aeb3' })
    const groups = async (c: StandInCluster) => (await client(c.kubeconfig(), ApisApi).getAPIVersions()).groups.map((g) => g.name)
    const onOpenShift = await groups(openshift)
    expect(onOpenShift).toEqual(expect.arrayContaining(['apps', 'route.openshift.io', 'config.openshift.io', 'project.openshift.io']))
    expect(await groups(cluster)).not.toContain('route.openshift.io')
  })

  it('shows offered add-ons as groups and their CRDs', async () => {
    const withKeda = standIn.addCluster({ offers: { keda: true, customMetrics: true, traefik: true } })
    const apis = (await client(withKeda.kubeconfig(), ApisApi).getAPIVersions()).groups
    const custom = apis.find((g) => g.name === 'custom.metrics.k8s.io')
    expect(custom?.versions.map((v) => v.version)).toEqual(['v1beta2', 'v1beta1'])
    expect(apis.map((g) => g.name)).toEqual(expect.arrayContaining(['keda.sh', 'traefik.io', 'external.metrics.k8s.io']))
    const crds = JSON.parse((await rawGet(withKeda, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions')).body) as { items: Array<{ metadata: { name: string } }> }
    expect(crds.items.map((c) => c.metadata.name)).toEqual(expect.arrayContaining(['scaledobjects.keda.sh', 'ingressroutes.traefik.io']))
  })
})

/** A GET with a bearer token, for answers client-node hides (401 bodies) or has no typed call for. */
function rawGet(c: StandInCluster, path: string, token = c.adminToken): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${c.server}${path}`, { ca: Buffer.from(standIn.caData, 'base64'), headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
  })
}

describe('the connection', () => {
  it('works through the path-prefixed server URL', async () => {
    expect(cluster.server).toBe(`${standIn.url}/c/${cluster.id}`)
    await client(cluster.kubeconfig(), CoreV1Api).listNode({ limit: 1 })
    expect(cluster.requests.at(-1)?.path).toBe('/api/v1/nodes?limit=1')
  })

  it('fails calls while the cluster is unreachable and recovers after', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    cluster.setReachable(false)
    try {
      await expect(core.listNode()).rejects.toThrow(/socket hang up|ECONNRESET|closed/i)
    } finally {
      cluster.setReachable(true)
    }
    expect((await core.listNode()).items).toHaveLength(5)
  })

  it('refuses connections while stopped and keeps state across stop and start', async () => {
    const core = client(cluster.kubeconfig(), CoreV1Api)
    await core.createNamespace({ body: { metadata: { name: 'survives' } } })
    await standIn.stop()
    await expect(core.listNode()).rejects.toThrow(/ECONNREFUSED/)
    await standIn.start()
    expect((await core.readNamespace({ name: 'survives' })).status?.phase).toBe('Active')
  })
})
