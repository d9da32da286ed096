import type { V1Node } from '@kubernetes/client-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeNode } from '../../../src/modules/cluster_ops/hardware.js'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import { nodeFixture } from '../../helpers/kube/index.js'

let h: ClusterHarness

beforeAll(async () => {
  h = await startClusterHarness()
})
afterAll(async () => {
  await h?.close()
})

type Node = { name: string; deviceType: string; schedulable: boolean; unschedulableReasons: string[]; ready: boolean; devices: Array<Record<string, unknown>> }

const gpuPod = (name: string, nodeName: string, resource: string, count: string) => ({
  metadata: { name, namespace: 'inference' },
  spec: { nodeName, containers: [{ name: 'server', image: 'vllm', resources: { requests: { cpu: '1', memory: '1Gi', [resource]: count }, limits: { [resource]: count } } }] },
  status: { phase: 'Running' },
})

describe('registering a cluster', () => {
  it('learns a plain Kubernetes cluster: platform, nodes, devices and capacity', async () => {
    const cluster = h.kube.addCluster({
      gitVersion: 'v1.29.4-eks-036c24b',
      nodes: ['a100-8x', 'mi300x', 'cpu-small', 'cordoned'],
      offers: { ingressClass: 'nginx', defaultStorageClass: { name: 'efs', provisioner: 'efs.csi.aws.com' }, keda: true },
    })
    const res = await h.register({ name: 'gpu-eu', kubeconfig: cluster.kubeconfig(), labels: { region: 'eu' } })
    expect(res.statusCode, res.body).toBe(202)
    const { clusterId, workflowId } = res.json()
    const immediately = await h.cluster(clusterId)
    expect(immediately.status).toBe('registering')

    const done = await h.finished(workflowId)
    expect(done.status, JSON.stringify(done)).toBe('completed')
    const got = await h.cluster(clusterId)
    expect(got.status).toBe('available')
    expect(got.platform).toBe('kubernetes')
    expect(got.distribution).toBe('eks')
    expect(got.kubernetesVersion).toBe('v1.29.4-eks-036c24b')
    expect(got.capabilities).toMatchObject({
      ingressClasses: ['nginx'],
      defaultIngressClass: 'nginx',
      defaultStorageClass: 'efs',
      readWriteManyStorageClass: 'efs',
      keda: true,
      customMetrics: false,
      traefik: false,
      openshiftRoutes: false,
    })
    expect(got.summary.nodes.total).toBe(4)
    // The cordoned node is an 8-GPU H100 in maintenance: counted, never free.
    expect(got.summary.byDeviceType.cuda.devices).toBe(16)
    expect(got.summary.byDeviceType.cuda.free).toBe(8)
    expect(got.summary.nodes.schedulable).toBe(3)
    expect(got.summary.deviceTypes).toEqual(expect.arrayContaining(['cuda', 'rocm', 'cpu']))
    expect(got.conditions.map((c: { type: string; status: string }) => [c.type, c.status])).toEqual(
      expect.arrayContaining([['Reachable', 'True'], ['Schedulable', 'True'], ['Authorized', 'True']]),
    )
    expect(got.lastSyncAt).not.toBeNull()
    expect(JSON.stringify(got)).not.toContain(cluster.adminToken)

    const nodes = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes?deviceType=cuda` })).json()
    expect(nodes.items.map((n: Node) => [n.name, n.schedulable])).toEqual([
      ['dgx-h100-3', false],
      ['gpu-a100-0', true],
    ])
    expect(nodes.items.find((n: Node) => n.schedulable).devices[0]).toMatchObject({ type: 'cuda', count: 8 })

    const events = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.registered&limit=100' })).json()
    expect(events.items.find((e: { data: { clusterId: string } }) => e.data.clusterId === clusterId)?.data).toMatchObject({
      name: 'gpu-eu',
      platform: 'kubernetes',
      distribution: 'eks',
      nodes: 4,
    })
  })

  it('shows its progress step by step on the run', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const { workflowId } = await h.registerAvailable({ name: 'stepwise', kubeconfig: cluster.kubeconfig() })
    const run = await h.finished(workflowId)
    expect(run).toMatchObject({ status: 'completed', currentStep: 4, totalSteps: 4 })
    expect(run.steps.map((s) => [s.step, s.status])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
      [3, 'completed'],
      [4, 'completed'],
    ])
    expect(run.steps.map((s) => s.message)).toEqual([
      expect.stringMatching(/verifying the connection/),
      expect.stringMatching(/detecting the platform/),
      expect.stringMatching(/discovering nodes/),
      expect.stringMatching(/marking the cluster available/),
    ])
  })

  it('learns an OpenShift cluster, with its routes, Traefik and custom metrics', async () => {
    const cluster = h.kube.addCluster({
      flavour: 'openshift',
      gitVersion: 'v1.28.9+416ecaf',
      nodes: ['a100-8x', 'sapphire-rapids'],
      offers: { ingressClass: 'openshift', defaultStorageClass: { name: 'ocs-cephfs', provisioner: 'openshift-storage.cephfs.csi.ceph.com' }, customMetrics: true, traefik: true },
    })
    const { clusterId } = await h.registerAvailable({ name: 'ocp', kubeconfig: cluster.kubeconfig() })
    const got = await h.cluster(clusterId)
    expect(got).toMatchObject({ platform: 'openshift', distribution: 'openshift', kubernetesVersion: 'v1.28.9+416ecaf' })
    expect(got.capabilities).toMatchObject({
      openshiftRoutes: true,
      customMetrics: true,
      traefik: true,
      keda: false,
      defaultStorageClass: 'ocs-cephfs',
      readWriteManyStorageClass: 'ocs-cephfs',
    })
    expect(got.summary.deviceTypes).toEqual(expect.arrayContaining(['cuda', 'cpu_high']))
  })

  it.each([
    ['v1.30.6+k3s1', 'k3s'],
    ['v1.29.1-gke.1589018', 'gke'],
    ['v1.30.2', null],
  ])('reads the distribution from the version %s → %s', async (gitVersion, distribution) => {
    const cluster = h.kube.addCluster({ gitVersion, nodes: ['cpu-small'], offers: { defaultStorageClass: { name: 'local-path', provisioner: 'rancher.io/local-path' } } })
    const { clusterId } = await h.registerAvailable({ name: `distro-${gitVersion.replace(/[^a-z0-9]/gi, '-')}`, kubeconfig: cluster.kubeconfig() })
    const got = await h.cluster(clusterId)
    expect(got).toMatchObject({ platform: 'kubernetes', distribution, kubernetesVersion: gitVersion })
    // A node-local provisioner cannot share a volume between pods on different nodes.
    expect(got.capabilities).toMatchObject({ defaultStorageClass: 'local-path', readWriteManyStorageClass: null, ingressClasses: [], defaultIngressClass: null })
  })
})

describe('distribution hints from the nodes', () => {
  /** The plain VM fixture as a node of one platform: its labels and provider id. */
  const nodeOf = (name: string, labels: Record<string, string>, providerID?: string) => {
    const node = nodeFixture('cpu-small')
    node.metadata.name = name
    node.metadata.labels = { ...(node.metadata.labels as Record<string, string>), 'kubernetes.io/hostname': name, ...labels }
    node.spec = { ...(node.spec as object), ...(providerID ? { providerID } : {}) }
    return node
  }
  const AZURE_VMSS = 'azure:///subscriptions/3f2b8c1e-0000-4000-8000-000000000000/resourceGroups/mc_ml_gpu-aks_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-gpupool-31415926-vmss/virtualMachines/0'

  // AKS's version string is upstream's: only its nodes say AKS. EKS and GKE nodes say so too.
  it.each([
    ['aks', 'v1.29.2', 'aks', nodeOf('aks-gpupool-31415926-vmss000000', { 'kubernetes.azure.com/cluster': 'MC_ml_gpu-aks_westeurope', 'kubernetes.azure.com/agentpool': 'gpupool', 'kubernetes.azure.com/role': 'agent' }, AZURE_VMSS)],
    ['eks', 'v1.29.4', 'eks', nodeOf('ip-10-0-3-17.ec2.internal', { 'eks.amazonaws.com/nodegroup': 'gpu', 'eks.amazonaws.com/capacityType': 'ON_DEMAND' }, 'aws:///eu-west-1a/i-0a1b2c3d4e5f60718')],
    ['gke', 'v1.29.1', 'gke', nodeOf('gke-ml-default-pool-8c2f5a1e-x9qz', { 'cloud.google.com/gke-nodepool': 'default-pool', 'cloud.google.com/gke-os-distribution': 'cos' }, 'gce://ml-project/europe-west4-a/gke-ml-default-pool-8c2f5a1e-x9qz')],
    ['kind', 'v1.30.0', 'kind', nodeOf('kind-control-plane', {}, 'kind://docker/kind/kind-control-plane')],
    ['minikube', 'v1.30.0', 'minikube', nodeOf('minikube', { 'minikube.k8s.io/name': 'minikube', 'minikube.k8s.io/primary': 'true' })],
    ['rke2', 'v1.28.10+rke2r1', 'rke2', nodeOf('rke2-server-0', {})],
    // k3s on Azure VMs: the version string names the distribution, whatever cloud the VMs are in.
    ['k3s on azure', 'v1.30.6+k3s1', 'k3s', nodeOf('k3s-agent-0', { 'node.kubernetes.io/instance-type': 'k3s' }, 'azure:///subscriptions/x/resourceGroups/lab/providers/Microsoft.Compute/virtualMachines/k3s-agent-0')],
    ['kubeadm', 'v1.30.2', null, nodeOf('worker-0', { 'node-role.kubernetes.io/worker': '' })],
  ])('%s (version %s) → %s', async (label, gitVersion, distribution, node) => {
    const cluster = h.kube.addCluster({ gitVersion, nodes: [node] })
    const { clusterId } = await h.registerAvailable({ name: `hint-${label.replace(/ /g, '-')}`, kubeconfig: cluster.kubeconfig() })
    expect(await h.cluster(clusterId)).toMatchObject({ platform: 'kubernetes', distribution, kubernetesVersion: gitVersion })
    const listed = (await h.call({ method: 'GET', url: `/v1/clusters?q=hint-${label.replace(/ /g, '-')}` })).json()
    expect(listed.items.map((c: { distribution: string | null }) => c.distribution)).toEqual([distribution])
  })
})

describe('every node fixture, seen through GET /v1/clusters/{id}/nodes', () => {
  let clusterId: string
  const byName = new Map<string, Node>()

  beforeAll(async () => {
    // The L4 node again, with PCI presence as stock NFD writes it (class 0302 + vendor) instead of by vendor.
    const l4ByClass = nodeFixture('l4-nfd-vendor')
    l4ByClass.metadata.name = 'l4-by-class'
    const labels = l4ByClass.metadata.labels as Record<string, string>
    delete labels['feature.node.kubernetes.io/pci-10de.present']
    labels['feature.node.kubernetes.io/pci-0302_10de.present'] = 'true'
    const cluster = h.kube.addCluster({
      nodes: ['a100-8x', 'mi300x', 'gaudi2', 'sapphire-rapids', 'cpu-small', 'cordoned', 'not-ready', 'a100-mig', 't4-time-sliced', 'l4-nfd-vendor', l4ByClass],
      pods: [
        gpuPod('llama', 'gpu-a100-0', 'nvidia.com/gpu', '3'),
        gpuPod('tiny', 'gpu-a100-mig-0', 'nvidia.com/mig-1g.10gb', '1'),
        gpuPod('shared', 'ip-10-0-31-77.ec2.internal', 'nvidia.com/gpu', '1'),
      ],
    })
    clusterId = (await h.registerAvailable({ name: 'zoo', kubeconfig: cluster.kubeconfig() })).clusterId
    const page = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes?limit=100` })).json()
    expect(page.total).toBe(11)
    for (const node of page.items as Node[]) byName.set(node.name, node)
  })

  const device = (name: string) => byName.get(name)!.devices[0]

  it('8×A100: cuda, 8 devices with product and memory, from GPU Feature Discovery', () => {
    expect(byName.get('gpu-a100-0')).toMatchObject({ deviceType: 'cuda', schedulable: true, ready: true })
    expect(device('gpu-a100-0')).toMatchObject({ type: 'cuda', vendor: 'nvidia', count: 8, slices: 8, product: 'NVIDIA-A100-SXM4-80GB', memoryMiB: 81920, detectionMethod: 'gpu-feature-discovery' })
  })

  it('each node as the API shows it keeps every fact read from the node, nothing lost on the way out', () => {
    for (const name of ['a100-8x', 'mi300x', 'gaudi2', 'sapphire-rapids', 'cpu-small', 'cordoned', 'not-ready', 'a100-mig', 't4-time-sliced', 'l4-nfd-vendor']) {
      const facts = describeNode(nodeFixture(name) as V1Node)
      // Condition times come back as every time the API shows: ISO form with milliseconds.
      const conditions = facts.conditions.map((c) => ({ ...c, ...(c.lastTransitionTime ? { lastTransitionTime: new Date(c.lastTransitionTime).toISOString() } : {}) }))
      expect(byName.get(facts.name), name).toEqual({ ...JSON.parse(JSON.stringify(facts)), conditions, used: expect.any(Object), updatedAt: expect.any(String) })
    }
    // What the issue lists for a node, on the A100 server.
    expect(byName.get('gpu-a100-0')).toMatchObject({
      roles: expect.any(Array),
      taints: [{ key: 'nvidia.com/gpu', effect: 'NoSchedule' }],
      conditions: expect.arrayContaining([expect.objectContaining({ type: 'Ready', status: 'True' })]),
      pressure: { memory: false, disk: false, pid: false },
      versions: { kubelet: expect.stringMatching(/^v1\./), kernel: expect.stringMatching(/\S/), os: 'linux', osImage: expect.stringMatching(/\S/), containerRuntime: expect.stringMatching(/^containerd:/) },
      arch: 'amd64',
      internalIp: '10.0.0.10',
      labels: expect.objectContaining({ 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB' }),
      capacity: { extended: expect.objectContaining({ 'nvidia.com/gpu': 8 }) },
      allocatable: { extended: expect.objectContaining({ 'nvidia.com/gpu': 8 }) },
      used: { extended: { 'nvidia.com/gpu': 3 } },
    })
    expect(device('gpu-a100-0')).toMatchObject({ driverVersion: '535.161.08', cudaVersion: '12.2', sharing: 'none' })
  })

  it('MI300X: rocm; Gaudi 2: hpu', () => {
    expect(byName.get('gpu-mi300x-0')!.deviceType).toBe('rocm')
    expect(device('gpu-mi300x-0')).toMatchObject({ vendor: 'amd', count: 8, product: 'AMD_Instinct_MI300X_OAM' })
    expect(byName.get('hpu-gaudi2-0')!.deviceType).toBe('hpu')
    expect(device('hpu-gaudi2-0')).toMatchObject({ vendor: 'habana', count: 8, detectionMethod: 'nfd' })
  })

  it('Sapphire Rapids: cpu_high; a small VM: cpu; neither has accelerators', () => {
    expect(byName.get('ip-10-0-12-34.ec2.internal')).toMatchObject({ deviceType: 'cpu_high', devices: [] })
    expect(byName.get('worker-small-1')).toMatchObject({ deviceType: 'cpu', devices: [], schedulable: true })
  })

  it('cordoned and NotReady nodes are unschedulable, and say why', () => {
    expect(byName.get('dgx-h100-3')).toMatchObject({ schedulable: false, ready: true })
    expect(byName.get('dgx-h100-3')!.unschedulableReasons.join(' ')).toMatch(/cordon/i)
    expect(byName.get('worker-7')).toMatchObject({ schedulable: false, ready: false })
    const unschedulable = [...byName.values()].filter((n) => !n.schedulable).map((n) => n.name)
    expect(unschedulable.sort()).toEqual(['dgx-h100-3', 'worker-7'])
  })

  it('MIG and time-sliced GPUs: physical devices and schedulable slices apart', () => {
    expect(device('gpu-a100-mig-0')).toMatchObject({ sharing: 'mig', count: 2, slices: 9, migProfiles: { '1g.10gb': 7, '3g.40gb': 2 } })
    expect(device('ip-10-0-31-77.ec2.internal')).toMatchObject({ sharing: 'time-slicing', count: 1, slices: 4, product: 'Tesla-T4' })
  })

  it('both NFD label forms find the L4 GPU', () => {
    expect(device('ip-10-0-44-19.ec2.internal')).toMatchObject({ type: 'cuda', vendor: 'nvidia', count: 1, detectionMethod: 'nfd' })
    expect(device('l4-by-class')).toMatchObject({ type: 'cuda', vendor: 'nvidia', count: 1, detectionMethod: 'nfd' })
  })

  it('the summary counts physical devices and slices, and subtracts what pods request', async () => {
    const { summary } = await h.cluster(clusterId)
    expect(summary.nodes).toEqual({ total: 11, ready: 10, schedulable: 9 })
    expect(summary.byDeviceType.cuda).toMatchObject({
      nodes: 6,
      devices: 8 + 8 + 2 + 1 + 1 + 1,
      slices: 8 + 8 + 9 + 4 + 1 + 1,
      used: 3 + 1 + 1,
      // The cordoned H100s are never free.
      free: 5 + 8 + 3 + 1 + 1,
    })
    expect(summary.byDeviceType.cuda.byProduct['NVIDIA-A100-80GB-PCIe']).toMatchObject({ devices: 2, slices: 9, free: 8 })
    expect(summary.byDeviceType.cuda.byProduct['Tesla-T4']).toMatchObject({ devices: 1, slices: 4, free: 3 })
    expect(summary.byDeviceType.rocm).toMatchObject({ devices: 8, free: 8 })
    expect(summary.byDeviceType.hpu).toMatchObject({ devices: 8, free: 8 })
    expect(summary.deviceTypes).toEqual(['cuda', 'rocm', 'hpu', 'cpu_high', 'cpu'])
    expect(byName.get('gpu-a100-0')).toMatchObject({ used: { extended: { 'nvidia.com/gpu': 3 } } })
  })

  it('nodes filter by device type and schedulability, and page', async () => {
    const hpu = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes?deviceType=hpu` })).json()
    expect(hpu.items.map((n: Node) => n.name)).toEqual(['hpu-gaudi2-0'])
    const down = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes?schedulable=false` })).json()
    expect(down.items.map((n: Node) => n.name).sort()).toEqual(['dgx-h100-3', 'worker-7'])
    const first = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes?limit=4&page=1` })).json()
    const third = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes?limit=4&page=3` })).json()
    expect(first.items).toHaveLength(4)
    expect(third.items).toHaveLength(3)
    expect(first.total).toBe(11)
  })
})

describe('a token without rights', () => {
  it('is refused, listing what is missing', async () => {
    const cluster = h.kube.addCluster({ nodes: ['cpu-small'] })
    const res = await h.register({ name: 'readonly', kubeconfig: cluster.kubeconfig({ token: cluster.readOnlyToken }) })
    expect(res.statusCode).toBe(202)
    const done = await h.finished(res.json().workflowId)
    expect(done.status).toBe('failed')
    expect(done.error?.code).toBe('CLUSTER_FORBIDDEN')
    expect(done.error?.message).toContain('create deployments.apps')
    const got = await h.cluster(res.json().clusterId)
    expect(got.status).toBe('failed')
    expect(got.statusReason).toBe('CLUSTER_FORBIDDEN')
  })
})
