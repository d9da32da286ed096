import { readFileSync } from 'node:fs'
import type { V1Node, V1Pod } from '@kubernetes/client-node'
import { describe, expect, it } from 'vitest'
import {
  addResources,
  describeNode,
  emptyResources,
  summarizeCluster,
  usedByNode,
  type Device,
} from '../../../src/modules/cluster_ops/hardware.js'
import { parseQuantity } from '../../../src/modules/cluster_ops/quantity.js'

const fixture = (name: string): V1Node =>
  JSON.parse(readFileSync(new URL(`../../fixtures/kube/nodes/${name}.json`, import.meta.url), 'utf8')) as V1Node

const GiB = 1024 ** 3
const KiB = 1024

describe('describeNode: what each kind of node holds', () => {
  const cases: Array<[string, Partial<Device> & { deviceType: string }]> = [
    ['a100-8x', { deviceType: 'cuda', vendor: 'nvidia', product: 'NVIDIA-A100-SXM4-80GB', count: 8, slices: 8, sharing: 'none', resourceName: 'nvidia.com/gpu', memoryMiB: 81920, driverVersion: '535.161.08', cudaVersion: '12.2', detectionMethod: 'gpu-feature-discovery' }],
    ['mi300x', { deviceType: 'rocm', vendor: 'amd', product: 'AMD_Instinct_MI300X_OAM', count: 8, slices: 8, sharing: 'none', resourceName: 'amd.com/gpu', memoryMiB: 192 * 1024, detectionMethod: 'amd-gpu-labeller' }],
    ['gaudi2', { deviceType: 'hpu', vendor: 'habana', product: null, count: 8, slices: 8, sharing: 'none', resourceName: 'habana.ai/gaudi', memoryMiB: null, detectionMethod: 'nfd' }],
    ['a100-mig', { deviceType: 'cuda', vendor: 'nvidia', product: 'NVIDIA-A100-80GB-PCIe', count: 2, slices: 9, sharing: 'mig', resourceName: 'nvidia.com/mig-1g.10gb', migProfiles: { '1g.10gb': 7, '3g.40gb': 2 }, memoryMiB: 81920, detectionMethod: 'gpu-feature-discovery' }],
    ['t4-time-sliced', { deviceType: 'cuda', vendor: 'nvidia', product: 'Tesla-T4', productLabel: 'Tesla-T4-SHARED', count: 1, slices: 4, sharing: 'time-slicing', resourceName: 'nvidia.com/gpu', memoryMiB: 15360, detectionMethod: 'gpu-feature-discovery' }],
    ['l4-nfd-vendor', { deviceType: 'cuda', vendor: 'nvidia', product: null, count: 1, slices: 1, sharing: 'none', resourceName: 'nvidia.com/gpu', memoryMiB: null, driverVersion: null, detectionMethod: 'nfd' }],
    ['cordoned', { deviceType: 'cuda', vendor: 'nvidia', product: 'NVIDIA-H100-80GB-HBM3', count: 8, slices: 8, sharing: 'none', memoryMiB: 81559, detectionMethod: 'gpu-feature-discovery' }],
  ]
  it.each(cases)('%s', (name, { deviceType, ...device }) => {
    const facts = describeNode(fixture(name))
    expect(facts.deviceType).toBe(deviceType)
    expect(facts.devices).toHaveLength(1)
    expect(facts.devices[0]).toMatchObject(device)
    expect(facts.problems).toEqual([])
  })

  it('a Sapphire Rapids server is cpu_high, read from NFD (AVX-512 and AMX), with no accelerator', () => {
    const facts = describeNode(fixture('sapphire-rapids'))
    expect(facts.deviceType).toBe('cpu_high')
    expect(facts.devices).toEqual([])
    expect(facts.cpu).toEqual({ vendor: 'Intel', family: '6', model: '143', avx512: true, amx: true, detectionMethod: 'nfd' })
    expect(facts.instanceType).toBe('m7i.8xlarge')
    expect(facts.labels['topology.kubernetes.io/zone']).toBe('us-east-1a')
    expect(facts.labels['feature.node.kubernetes.io/cpu-cpuid.AMXBF16']).toBe('true')
    // Only CPU flags that decide the class are kept, not every cpuid flag NFD writes.
    expect(facts.labels['feature.node.kubernetes.io/cpu-cpuid.AESNI']).toBeUndefined()
    expect(facts.labels['eks.amazonaws.com/nodegroup']).toBeUndefined()
    expect(facts.allocatable).toMatchObject({ cpuMillis: 31850, memoryBytes: 125453920 * KiB, pods: 234, ephemeralBytes: 95551679124 })
  })

  it('a small VM without NFD is a plain cpu node, read from node info and capacity', () => {
    const facts = describeNode(fixture('cpu-small'))
    expect(facts).toMatchObject({
      deviceType: 'cpu',
      devices: [],
      schedulable: true,
      ready: true,
      arch: 'amd64',
      internalIp: '192.168.10.21',
      instanceType: null,
      cpu: { vendor: null, avx512: false, amx: false, detectionMethod: 'node-info' },
      versions: { kubelet: 'v1.30.5', os: 'linux', osImage: 'Ubuntu 24.04.1 LTS', containerRuntime: 'containerd://1.7.12' },
      pressure: { memory: false, disk: false, pid: false },
    })
    expect(facts.capacity).toEqual({ cpuMillis: 4000, memoryBytes: 16393232 * KiB, pods: 110, ephemeralBytes: 47227284 * KiB, extended: { 'hugepages-1Gi': 0, 'hugepages-2Mi': 0 } })
  })

  it('condition times read as the API shows every time; one that is not a time is left out', () => {
    const node = fixture('cpu-small')
    const ready = node.status!.conditions!.find((c) => c.type === 'Ready')!
    const asText = (value: string) => ({ ...node, status: { ...node.status, conditions: [{ ...ready, lastTransitionTime: value as unknown as Date }] } }) as V1Node
    expect(describeNode(asText('2026-11-30T10:26:50+01:00')).conditions[0]!.lastTransitionTime).toBe('2026-11-30T09:26:50.000Z')
    for (const junk of ['yesterday', '2026-13-45T99:00:00Z', 'x'.repeat(100)]) {
      const [condition] = describeNode(asText(junk)).conditions
      expect(condition, junk.slice(0, 20)).toMatchObject({ type: 'Ready', status: ready.status })
      expect(condition, junk.slice(0, 20)).not.toHaveProperty('lastTransitionTime')
    }
  })

  it('a GPU node carrying its own GPU taint is schedulable: GPU pods tolerate it', () => {
    const facts = describeNode(fixture('a100-8x'))
    expect(facts.taints).toEqual([{ key: 'nvidia.com/gpu', value: 'true', effect: 'NoSchedule' }])
    expect(facts).toMatchObject({ schedulable: true, unschedulableReasons: [], ready: true, instanceType: 'p4d.24xlarge', internalIp: '10.0.0.10' })
    expect(facts.conditions).toEqual([
      { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastTransitionTime: '2026-11-30T10:26:50.000Z' },
    ])
    expect(facts.allocatable.extended['nvidia.com/gpu']).toBe(8)
    expect(facts.allocatable.memoryBytes).toBe(1056763 * 1024 * 1024)
  })

  it('Habana and AMD nodes are schedulable under their accelerator taints', () => {
    expect(describeNode(fixture('gaudi2')).schedulable).toBe(true)
    expect(describeNode(fixture('mi300x')).schedulable).toBe(true)
  })

  it('a cordoned node is unschedulable and says why once, though it also carries the unschedulable taint', () => {
    const facts = describeNode(fixture('cordoned'))
    expect(facts).toMatchObject({ schedulable: false, ready: true, unschedulableReasons: ['cordoned'], roles: ['gpu-worker'] })
  })

  it('a NotReady node is unschedulable, with the kubelet condition kept for the user', () => {
    const facts = describeNode(fixture('not-ready'))
    expect(facts).toMatchObject({ schedulable: false, ready: false, unschedulableReasons: ['NotReady'], deviceType: 'cpu', roles: ['worker'] })
    expect(facts.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'KubeletNotReady', message: expect.stringContaining('PLEG is not healthy') })
  })

  it('an accelerator taint on a node without that accelerator, and any other NoExecute taint, make it unschedulable', () => {
    const node = fixture('cpu-small')
    node.spec = { taints: [{ key: 'nvidia.com/gpu', value: 'true', effect: 'NoSchedule' }, { key: 'dedicated', value: 'batch', effect: 'NoExecute' }, { key: 'spot', effect: 'PreferNoSchedule' }] }
    expect(describeNode(node).unschedulableReasons).toEqual(['NoSchedule taint nvidia.com/gpu', 'NoExecute taint dedicated'])
  })

  it('reads condition times whether they arrive as strings (raw JSON) or Dates (client-node models)', () => {
    const node = fixture('a100-8x')
    node.status!.conditions![0]!.lastTransitionTime = new Date('2026-11-30T10:26:50Z')
    expect(describeNode(node).conditions[0]!.lastTransitionTime).toBe('2026-11-30T10:26:50.000Z')
  })
})

describe('describeNode: both NFD forms of PCI presence', () => {
  const gpuOnly = (labels: Record<string, string>, capacity: Record<string, string> = {}): V1Node => ({
    metadata: { name: 'n', labels },
    status: { capacity, conditions: [{ type: 'Ready', status: 'True' }] },
  })

  it('vendor-only (as the GPU Operator sets it) and class+vendor (stock NFD) both find the vendor', () => {
    for (const key of ['pci-10de.present', 'pci-0302_10de.present', 'pci-0300_10de.present']) {
      const facts = describeNode(gpuOnly({ [`feature.node.kubernetes.io/${key}`]: 'true' }, { 'nvidia.com/gpu': '2' }))
      expect(facts.devices, key).toMatchObject([{ vendor: 'nvidia', count: 2, detectionMethod: 'nfd' }])
    }
    expect(describeNode(gpuOnly({ 'feature.node.kubernetes.io/pci-0380_1002.present': 'true' })).devices).toMatchObject([{ vendor: 'amd', count: 0, detectionMethod: 'nfd' }])
  })

  it('the MI300X node without the AMD labeller is found by its class+vendor NFD label', () => {
    const node = fixture('mi300x')
    const labels = node.metadata!.labels!
    for (const key of Object.keys(labels)) if (key.startsWith('amd.com/') || key.endsWith('/amd-gpu')) delete labels[key]
    expect(describeNode(node).devices).toMatchObject([{ vendor: 'amd', product: null, count: 8, memoryMiB: null, detectionMethod: 'nfd' }])
  })

  it('a GPU that NFD saw but no device plugin advertises is reported with nothing schedulable', () => {
    const facts = describeNode(gpuOnly({ 'feature.node.kubernetes.io/pci-0302_10de.present': 'true' }))
    expect(facts.deviceType).toBe('cuda')
    expect(facts.devices).toMatchObject([{ count: 0, slices: 0 }])
  })

  it('display controllers of other vendors, NVIDIA audio functions and "false" labels are not accelerators', () => {
    const facts = describeNode(
      gpuOnly({
        'feature.node.kubernetes.io/pci-0300_1a03.present': 'true',
        'feature.node.kubernetes.io/pci-0403_10de.present': 'true',
        'feature.node.kubernetes.io/pci-1002.present': 'false',
        'feature.node.kubernetes.io/pci-0200_15b3.present': 'true',
      }),
    )
    expect(facts.devices).toEqual([])
    expect(facts.deviceType).toBe('cpu')
  })

  it('NFD configured to label device ids names the Gaudi generation', () => {
    const facts = describeNode(gpuOnly({ 'feature.node.kubernetes.io/pci-1200_1da3_1020.present': 'true' }, { 'habana.ai/gaudi': '8' }))
    expect(facts.devices).toMatchObject([{ product: 'Gaudi2', memoryMiB: 98304, count: 8 }])
  })

  it('a device plugin alone is enough, and says so', () => {
    expect(describeNode(gpuOnly({}, { 'amd.com/gpu': '4' })).devices).toMatchObject([{ vendor: 'amd', count: 4, detectionMethod: 'device-plugin' }])
  })

  it('MIG single strategy: slices are the MIG devices, the physical count is estimated from the profile', () => {
    const facts = describeNode(
      gpuOnly(
        { 'nvidia.com/mig.strategy': 'single', 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB-MIG-1g.5gb', 'nvidia.com/gpu.count': '56', 'nvidia.com/gpu.memory': '4864' },
        { 'nvidia.com/gpu': '56' },
      ),
    )
    expect(facts.devices).toMatchObject([{ product: 'NVIDIA-A100-SXM4-40GB', sharing: 'mig', slices: 56, count: 8, memoryMiB: null }])
  })
})

describe('describeNode: hostile or broken objects', () => {
  it('a malformed quantity counts 0 and is reported, and the rest of the node is still read', () => {
    const node = fixture('t4-time-sliced')
    node.status!.allocatable!['memory'] = 'lots'
    node.status!.allocatable!['nvidia.com/gpu'] = '-4'
    const facts = describeNode(node)
    expect(facts.allocatable.memoryBytes).toBe(0)
    expect(facts.allocatable.extended['nvidia.com/gpu']).toBe(0)
    expect(facts.allocatable.cpuMillis).toBe(3920)
    expect(facts.problems).toEqual([
      'status.allocatable.memory: "lots" counted as 0 (not a Kubernetes quantity)',
      'status.allocatable.nvidia.com/gpu: "-4" counted as 0 (negative)',
    ])
  })

  it('oversized labels are ignored, thousands of labels and resources stay bounded', () => {
    const node = fixture('a100-8x')
    const labels = node.metadata!.labels!
    labels['nvidia.com/gpu.product'] = 'A'.repeat(10_000)
    for (let i = 0; i < 5000; i++) labels[`nvidia.com/junk-${i}`] = 'x'
    for (let i = 0; i < 500; i++) node.status!.capacity![`example.com/r${i}`] = '1'
    node.metadata!.name = 'n'.repeat(100_000)
    const facts = describeNode(node)
    expect(facts.devices[0]!.product).toBeNull()
    expect(Object.keys(facts.labels).length).toBeLessThanOrEqual(128)
    expect(Object.keys(facts.capacity.extended).length).toBeLessThanOrEqual(64)
    expect(facts.name).toHaveLength(253)
    expect(facts.problems.length).toBeGreaterThan(0)
    expect(JSON.stringify(facts).length).toBeLessThan(20_000)
  })

  it('a node with no status at all is described, not thrown on', () => {
    const facts = describeNode({ metadata: { name: 'bare' } })
    expect(facts).toMatchObject({ name: 'bare', ready: false, schedulable: false, unschedulableReasons: ['NotReady'], devices: [], deviceType: 'cpu', internalIp: null })
  })
})

describe('parseQuantity', () => {
  it.each([
    ['100m', 1000, 100],
    ['0.1', 1000, 100],
    ['2', 1000, 2000],
    ['1.5Gi', 1, 1.5 * GiB],
    ['129481064Ki', 1, 129481064 * KiB],
    ['180Gi', 1, 180 * GiB],
    ['12e6', 1, 12_000_000],
    ['1e3', 1000, 1_000_000],
    ['2P', 1, 2e15],
    ['2k', 1, 2000],
    ['0.5G', 1, 500_000_000],
    ['1Ti', 1, 1024 ** 4],
    ['0.5', 1, 1],
    ['.5', 1000, 500],
    ['5.', 1, 5],
    ['+3', 1, 3],
    ['1500u', 1000, 2],
  ])('%s × %d = %d', (text, units, value) => {
    expect(parseQuantity(text, units)).toEqual({ ok: true, value })
  })

  // 1E (an exabyte) is a valid quantity but beyond what a double holds exactly: refused as out of range.
  it.each([['lots'], [''], ['1.2.3'], ['-1'], ['1Gb'], ['1 Gi'], ['x'.repeat(100)], ['1e999'], ['1e40'], ['1E'], [null], [{}]])('refuses %j without throwing', (text) => {
    expect(parseQuantity(text).ok).toBe(false)
  })
})

const pod = (name: string, spec: Partial<V1Pod['spec']> & { nodeName?: string }, phase = 'Running'): V1Pod => ({
  metadata: { name, namespace: 'team-a' },
  spec: { containers: [], ...spec },
  status: { phase },
})
const requests = (r: Record<string, string>) => ({ resources: { requests: r } })

describe('usedByNode', () => {
  it('sums requests of pods bound to each node, skipping finished and unbound pods', () => {
    const used = usedByNode([
      pod('a', { nodeName: 'n1', containers: [{ name: 'c', ...requests({ cpu: '500m', memory: '1Gi', 'nvidia.com/gpu': '1' }) }] }),
      pod('b', { nodeName: 'n1', containers: [{ name: 'c', ...requests({ cpu: '250m' }) }, { name: 'd', ...requests({ cpu: '250m', memory: '512Mi' }) }] }, 'Pending'),
      pod('done', { nodeName: 'n1', containers: [{ name: 'c', ...requests({ cpu: '8' }) }] }, 'Succeeded'),
      pod('crashed', { nodeName: 'n1', containers: [{ name: 'c', ...requests({ cpu: '8' }) }] }, 'Failed'),
      pod('unbound', { containers: [{ name: 'c', ...requests({ cpu: '8' }) }] }, 'Pending'),
      pod('other', { nodeName: 'n2', containers: [{ name: 'c', ...requests({ cpu: '1' }) }] }),
    ])
    expect(used.get('n1')).toEqual({ cpuMillis: 1000, memoryBytes: 1.5 * GiB, pods: 2, ephemeralBytes: 0, extended: { 'nvidia.com/gpu': 1 } })
    expect(used.get('n2')).toMatchObject({ cpuMillis: 1000, pods: 1 })
    expect([...used.keys()].sort()).toEqual(['n1', 'n2'])
  })

  it('an init container larger than the app containers sets the request; a smaller one does not', () => {
    const used = usedByNode([
      pod('big-init', { nodeName: 'n', initContainers: [{ name: 'download', ...requests({ cpu: '2', memory: '256Mi' }) }], containers: [{ name: 'c', ...requests({ cpu: '500m', memory: '1Gi' }) }] }),
    ])
    expect(used.get('n')).toMatchObject({ cpuMillis: 2000, memoryBytes: 1 * GiB })
  })

  it('sidecar init containers run beside the app and beside later init containers; pod overhead is added', () => {
    const used = usedByNode([
      pod('sidecar', {
        nodeName: 'n',
        initContainers: [
          { name: 'proxy', restartPolicy: 'Always', ...requests({ cpu: '100m' }) },
          { name: 'warmup', ...requests({ cpu: '1' }) },
        ],
        containers: [{ name: 'c', ...requests({ cpu: '500m' }) }],
        overhead: { cpu: '250m', memory: '120Mi' },
      }),
    ])
    // max(app 500m + sidecar 100m, warmup 1 + sidecar 100m) + overhead 250m
    expect(used.get('n')).toMatchObject({ cpuMillis: 1350, memoryBytes: 120 * 1024 * 1024 })
  })

  it('a GPU given only as a limit counts as requested (the API server defaults requests to limits)', () => {
    const used = usedByNode([pod('g', { nodeName: 'n', containers: [{ name: 'c', resources: { limits: { 'nvidia.com/gpu': '2' } } }] })])
    expect(used.get('n')!.extended['nvidia.com/gpu']).toBe(2)
  })

  it('a malformed request counts 0 and is reported', () => {
    const problems: string[] = []
    const used = usedByNode([pod('bad', { nodeName: 'n', containers: [{ name: 'c', ...requests({ cpu: 'a lot', memory: '1Gi' }) }] })], problems)
    expect(used.get('n')).toMatchObject({ cpuMillis: 0, memoryBytes: GiB })
    expect(problems).toEqual(['pod team-a/bad containers[0].requests.cpu: "a lot" counted as 0 (not a Kubernetes quantity)'])
  })

  it('addResources adds every field and merges extended resources', () => {
    const a = { ...emptyResources(), cpuMillis: 100, extended: { 'nvidia.com/gpu': 1 } }
    const b = { cpuMillis: 50, memoryBytes: 10, pods: 1, ephemeralBytes: 5, extended: { 'nvidia.com/gpu': 2, 'amd.com/gpu': 1 } }
    expect(addResources(a, b)).toEqual({ cpuMillis: 150, memoryBytes: 10, pods: 1, ephemeralBytes: 5, extended: { 'nvidia.com/gpu': 3, 'amd.com/gpu': 1 } })
  })
})

describe('summarizeCluster on a mixed cluster', () => {
  const names = ['a100-8x', 'a100-mig', 't4-time-sliced', 'l4-nfd-vendor', 'cordoned', 'mi300x', 'gaudi2', 'sapphire-rapids', 'cpu-small', 'not-ready']
  const gpuPod = (name: string, nodeName: string, resource: string, n: string, cpu: string, phase = 'Running') =>
    pod(name, { nodeName, containers: [{ name: 'server', ...requests({ cpu, memory: '1Gi', [resource]: n }) }] }, phase)
  const pods = [
    gpuPod('llama-70b', 'gpu-a100-0', 'nvidia.com/gpu', '3', '8'),
    gpuPod('small-1', 'gpu-a100-mig-0', 'nvidia.com/mig-1g.10gb', '1', '500m'),
    gpuPod('small-2', 'gpu-a100-mig-0', 'nvidia.com/mig-1g.10gb', '1', '500m'),
    gpuPod('mid-1', 'gpu-a100-mig-0', 'nvidia.com/mig-3g.40gb', '1', '1'),
    gpuPod('shared', 'ip-10-0-31-77.ec2.internal', 'nvidia.com/gpu', '1', '1'),
    gpuPod('finished', 'ip-10-0-44-19.ec2.internal', 'nvidia.com/gpu', '1', '1', 'Succeeded'),
    gpuPod('mistral', 'gpu-mi300x-0', 'amd.com/gpu', '2', '16'),
    pod('embedder', { nodeName: 'ip-10-0-12-34.ec2.internal', containers: [{ name: 'c', ...requests({ cpu: '4', memory: '16Gi' }) }] }),
    pod('api', { nodeName: 'worker-small-1', containers: [{ name: 'c', ...requests({ cpu: '1500m', memory: '2Gi' }) }] }),
    pod('stuck', { nodeName: 'worker-7', containers: [{ name: 'c', ...requests({ cpu: '2', memory: '4Gi' }) }] }),
  ]
  const used = usedByNode(pods)
  const summary = summarizeCluster(names.map((n) => {
    const facts = describeNode(fixture(n))
    return { facts, used: used.get(facts.name) ?? emptyResources() }
  }))

  it('counts nodes: the NotReady node is not ready, it and the cordoned node are not schedulable', () => {
    expect(summary.nodes).toEqual({ total: 10, ready: 9, schedulable: 8 })
    expect(summary.deviceTypes).toEqual(['cuda', 'rocm', 'hpu', 'cpu_high', 'cpu'])
  })

  it('CUDA: physical devices and slices apart, used slices subtracted, the cordoned H100s never free', () => {
    expect(summary.byDeviceType['cuda']).toEqual({
      nodes: 5,
      devices: 8 + 2 + 1 + 1 + 8,
      slices: 8 + 9 + 4 + 1 + 8,
      allocatable: 30,
      used: 3 + 3 + 1,
      free: 5 + 6 + 3 + 1 + 0,
      unit: 'slices',
      byProduct: {
        'NVIDIA-A100-SXM4-80GB': { devices: 8, slices: 8, free: 5, memoryMiB: 81920 },
        'NVIDIA-A100-80GB-PCIe': { devices: 2, slices: 9, free: 6, memoryMiB: 81920 },
        'Tesla-T4': { devices: 1, slices: 4, free: 3, memoryMiB: 15360 },
        unknown: { devices: 1, slices: 1, free: 1, memoryMiB: null },
        'NVIDIA-H100-80GB-HBM3': { devices: 8, slices: 8, free: 0, memoryMiB: 81559 },
      },
    })
  })

  it('ROCm and HPU counted from their device plugins', () => {
    expect(summary.byDeviceType['rocm']).toMatchObject({ nodes: 1, devices: 8, slices: 8, allocatable: 8, used: 2, free: 6 })
    expect(summary.byDeviceType['hpu']).toMatchObject({ nodes: 1, devices: 8, slices: 8, allocatable: 8, used: 0, free: 8, byProduct: { unknown: { devices: 8, slices: 8, free: 8, memoryMiB: null } } })
  })

  it('CPU classes in millicores; the NotReady node adds allocatable but nothing free', () => {
    expect(summary.byDeviceType['cpu_high']).toEqual({ nodes: 1, devices: 0, slices: 0, allocatable: 31850, used: 4000, free: 27850, unit: 'millicores', byProduct: {} })
    expect(summary.byDeviceType['cpu']).toEqual({ nodes: 2, devices: 0, slices: 0, allocatable: 4000 + 16000, used: 1500 + 2000, free: 2500, unit: 'millicores', byProduct: {} })
  })

  it('cluster CPU and memory: free only on schedulable nodes', () => {
    const allocatableMillis = 96000 + 63500 + 3920 + 3920 + 223000 + 383500 + 159500 + 31850 + 4000 + 16000
    const usedMillis = 8000 + 2000 + 1000 + 16000 + 4000 + 1500 + 2000
    expect(summary.cpu).toEqual({ allocatableMillis, usedMillis, freeMillis: allocatableMillis - 223000 - 16000 - (usedMillis - 2000) })
    const usedBytes = (6 + 16 + 2 + 4) * GiB
    expect(summary.memory.usedBytes).toBe(usedBytes)
    const notReadyMemory = 65748936 * KiB
    const cordonedMemory = 2112340000 * KiB
    expect(summary.memory.freeBytes).toBe(summary.memory.allocatableBytes - notReadyMemory - cordonedMemory - (usedBytes - 4 * GiB))
  })
})
