import type { V1Node } from '@kubernetes/client-node'
import { ACCELERATOR_TAINTS, detectAccelerators, type DetectionMethod, type Device, type DeviceType } from './accelerators.js'
import { note, resourcesOf, type Problems, type Resources } from './capacity.js'

export { addResources, emptyResources, podRequests, usedByNode, type Resources } from './capacity.js'
export { deviceResources, type DetectionMethod, type Device, type DeviceType } from './accelerators.js'
export { summarizeCluster, type ClusterSummary } from './summary.js'

/**
 * What modelplane knows about a node, read from the Node object alone (pure: no calls).
 *
 * `devices` lists accelerators only: a CPU-only node has none, and its class (`cpu_high` for
 * AVX-512 or AMX servers, else `cpu`) is `deviceType`, with how it was read in `cpu.detectionMethod`.
 * Every string is bounded and lists are capped, whatever the API server (or whoever answers in its
 * place) sends; quantities that do not parse count 0 and are listed in `problems`.
 */
export interface NodeFacts {
  name: string
  roles: string[]
  schedulable: boolean
  /** `cordoned`, `NotReady`, `NoSchedule taint <key>`, `NoExecute taint <key>`. */
  unschedulableReasons: string[]
  ready: boolean
  taints: Array<{ key: string; value?: string; effect: string }>
  conditions: Array<{ type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }>
  pressure: { memory: boolean; disk: boolean; pid: boolean }
  versions: { kubelet: string; kernel: string; os: string; osImage: string; containerRuntime: string }
  arch: string
  internalIp: string | null
  instanceType: string | null
  /** Labels of interest only (topology, instance type, arch/os, roles, accelerator and NFD CPU/PCI labels), at most 128. */
  labels: Record<string, string>
  capacity: Resources
  allocatable: Resources
  cpu: {
    vendor: string | null
    family: string | null
    model: string | null
    avx512: boolean
    amx: boolean
    detectionMethod: Extract<DetectionMethod, 'nfd' | 'node-info'>
  }
  devices: Device[]
  /** The node's primary type: its accelerator with most schedulable units, else its CPU class. */
  deviceType: DeviceType
  problems: string[]
}

const MAX_LABEL_KEY = 317
const MAX_LABEL_VALUE = 63
const MAX_LABELS_KEPT = 128
const MAX_TAINTS = 32
const MAX_CONDITIONS = 16
const NFD = 'feature.node.kubernetes.io/'

const INTERESTING_LABELS = [
  /^topology\.kubernetes\.io\/(zone|region)$/,
  /^failure-domain\.beta\.kubernetes\.io\/(zone|region)$/,
  /^(node|beta)\.kubernetes\.io\/instance-type$/,
  /^kubernetes\.io\/(arch|os)$/,
  /^node-role\.kubernetes\.io\//,
  /^(nvidia\.com|amd\.com|beta\.amd\.com|habana\.ai)\//,
  /^feature\.node\.kubernetes\.io\/(cpu-model\.|cpu-cpuid\.(AVX512|AMX)|pci-|amd-gpu$)/,
]

function bounded(text: unknown, max: number): string {
  if (typeof text !== 'string') return ''
  return text.length > max ? text.slice(0, max) : text
}

/** A time as the API shows every time (ISO 8601 with milliseconds, UTC), whether the client gave a Date or the raw text; anything else is dropped. */
function timestamp(value: unknown): string | undefined {
  const at = value instanceof Date ? value : typeof value === 'string' && value.length <= 64 ? new Date(value) : undefined
  return at && !Number.isNaN(at.getTime()) ? at.toISOString() : undefined
}

export function describeNode(node: V1Node): NodeFacts {
  const problems: Problems = []
  const rawLabels: Record<string, unknown> = node.metadata?.labels ?? {}
  const labelKeys = Object.keys(rawLabels).filter((key) => key.length <= MAX_LABEL_KEY)
  const label = (key: string): string | undefined => {
    const value = rawLabels[key]
    return typeof value === 'string' && value.length <= MAX_LABEL_VALUE ? value : undefined
  }

  const name = bounded(node.metadata?.name, 253)
  const capacity = resourcesOf(node.status?.capacity, 'status.capacity', problems)
  const allocatable = resourcesOf(node.status?.allocatable, 'status.allocatable', problems)
  const devices = detectAccelerators(labelKeys, label, capacity)

  const cpuFlag = (flag: string) => label(`${NFD}cpu-cpuid.${flag}`) === 'true'
  const nfdCpu = labelKeys.some((key) => key.startsWith(`${NFD}cpu-model.`) || key.startsWith(`${NFD}cpu-cpuid.`))
  const cpu: NodeFacts['cpu'] = {
    vendor: label(`${NFD}cpu-model.vendor_id`) ?? null,
    family: label(`${NFD}cpu-model.family`) ?? null,
    model: label(`${NFD}cpu-model.id`) ?? null,
    avx512: cpuFlag('AVX512F'),
    amx: ['AMXBF16', 'AMXINT8', 'AMXTILE', 'AMXFP16'].some(cpuFlag),
    detectionMethod: nfdCpu ? 'nfd' : 'node-info',
  }

  const conditions: NodeFacts['conditions'] = (node.status?.conditions ?? []).slice(0, MAX_CONDITIONS).map((c) => {
    const lastTransitionTime = timestamp(c.lastTransitionTime)
    return {
      type: bounded(c.type, 63),
      status: bounded(c.status, 16),
      ...(c.reason ? { reason: bounded(c.reason, 128) } : {}),
      ...(c.message ? { message: bounded(c.message, 512) } : {}),
      ...(lastTransitionTime ? { lastTransitionTime } : {}),
    }
  })
  const isTrue = (type: string) => conditions.some((c) => c.type === type && c.status === 'True')
  const ready = isTrue('Ready')

  const taints: NodeFacts['taints'] = (node.spec?.taints ?? [])
    .filter((t) => typeof t.key === 'string' && t.key.length <= MAX_LABEL_KEY)
    .slice(0, MAX_TAINTS)
    .map((t) => ({ key: t.key, ...(t.value !== undefined ? { value: bounded(t.value, MAX_LABEL_VALUE) } : {}), effect: bounded(t.effect, 32) }))

  const cordoned = node.spec?.unschedulable === true
  const vendors = new Set(devices.map((d) => d.vendor))
  const unschedulableReasons: string[] = []
  if (cordoned) unschedulableReasons.push('cordoned')
  if (!ready) unschedulableReasons.push('NotReady')
  for (const taint of taints) {
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue
    // Accelerator pods tolerate their accelerator's taint; the taints the control plane adds for
    // a cordoned or not-ready node are already said above.
    const tolerated = ACCELERATOR_TAINTS[taint.key]
    if (tolerated && vendors.has(tolerated)) continue
    if (cordoned && taint.key === 'node.kubernetes.io/unschedulable') continue
    if (!ready && (taint.key === 'node.kubernetes.io/not-ready' || taint.key === 'node.kubernetes.io/unreachable')) continue
    const reason = `${taint.effect} taint ${taint.key}`
    if (!unschedulableReasons.includes(reason)) unschedulableReasons.push(reason)
  }

  const roles = labelKeys
    .filter((key) => key.startsWith('node-role.kubernetes.io/'))
    .map((key) => key.slice('node-role.kubernetes.io/'.length))
    .filter((role) => role.length > 0 && role.length <= 63)
  const legacyRole = label('kubernetes.io/role')
  if (legacyRole && !roles.includes(legacyRole)) roles.push(legacyRole)

  const labels: Record<string, string> = {}
  let kept = 0
  for (const key of [...labelKeys].sort()) {
    const value = label(key)
    if (value === undefined || !INTERESTING_LABELS.some((pattern) => pattern.test(key))) continue
    if (kept++ >= MAX_LABELS_KEPT) {
      note(problems, `more than ${MAX_LABELS_KEPT} labels of interest; the rest were left out`)
      break
    }
    labels[key] = value
  }

  const info = node.status?.nodeInfo
  const primary = [...devices].sort((a, b) => b.slices - a.slices)[0]
  return {
    name,
    roles: roles.slice(0, 16),
    schedulable: unschedulableReasons.length === 0,
    unschedulableReasons,
    ready,
    taints,
    conditions,
    pressure: { memory: isTrue('MemoryPressure'), disk: isTrue('DiskPressure'), pid: isTrue('PIDPressure') },
    versions: {
      kubelet: bounded(info?.kubeletVersion, 64),
      kernel: bounded(info?.kernelVersion, 128),
      os: bounded(info?.operatingSystem, 32),
      osImage: bounded(info?.osImage, 128),
      containerRuntime: bounded(info?.containerRuntimeVersion, 128),
    },
    arch: label('kubernetes.io/arch') ?? bounded(info?.architecture, 32),
    internalIp: bounded(node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address, 45) || null,
    instanceType: label('node.kubernetes.io/instance-type') ?? label('beta.kubernetes.io/instance-type') ?? null,
    labels,
    capacity,
    allocatable,
    cpu,
    devices,
    deviceType: primary?.type ?? (cpu.avx512 || cpu.amx ? 'cpu_high' : 'cpu'),
    problems,
  }
}
