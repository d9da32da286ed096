import type { Device, DeviceType, NodeFacts, Resources } from '../cluster_ops/index.js'
import { EMBEDDING_TASKS, type RuntimeSpec, tagFor } from './catalog.js'
import {
  autoscalingUnavailable,
  badRequest,
  insufficientCapacity,
  noSuitableRuntime,
  runtimeUnsuitable,
  unknownRuntime,
} from './errors.js'
import { GiB, gib, type ModelFacts, type Sizing, sizeModel } from './sizing.js'

/**
 * The placement planner, pure: (model, cluster facts, runtime catalog, request) → which runtime on
 * which device, how much of it one replica takes, the engine arguments that follow, the nodes that
 * fit and why the others do not. It reads nothing and writes nothing; the same decision feeds the
 * manifests of a plan, a deploy and a drift check.
 */

export interface PlanRequest {
  name: string
  modelId: string
  versionId?: string
  clusterId: string
  runtime?: string
  deviceType?: DeviceType
  replicas: number
  resources?: { cpu?: number; memoryGiB?: number; devices?: number }
  autoscale?: { min: number; max: number; targetConcurrency: number }
  maxModelLen?: number
  maxConcurrency?: number
  env?: Record<string, string>
  args?: string[]
  idleScaleToZeroMinutes?: number
}

export interface PlanModel extends ModelFacts {
  id: string
  name: string
  tasks: string[]
  /** Paths of the version's files, for a GGUF model's file name. */
  files: Array<{ path: string; size: number }>
}

export interface PlanNode {
  facts: NodeFacts
  used: Resources
}

export interface PlanCapabilities {
  keda?: boolean
  customMetrics?: boolean
  openshiftRoutes?: boolean
  defaultIngressClass?: string | null
  readWriteManyStorageClass?: string | null
  defaultStorageClass?: string | null
}

export interface PlanCluster {
  id: string
  platform: string | null
  capabilities: PlanCapabilities | null
  nodes: PlanNode[]
}

export type CatalogRuntime = RuntimeSpec & { id: string }

// A type rather than an interface: the plan's answer is checked against the route's schema, whose
// `autoscaler` is an open record.
export type AutoscalerDecision = {
  kind: 'keda' | 'hpa'
  min: number
  max: number
  targetConcurrency: number
  metric: string
}

export interface PlacementNode {
  node: string
  product: string | null
  freeDevices: number
  /** Replicas this node has room for. */
  room: number
}

export interface PlanDecision {
  runtime: { id: string; name: string; engine: string; image: string }
  deviceType: DeviceType
  device: {
    product: string | null
    /** The node label value the pods are pinned to, null when nothing names the product. */
    productLabel: string | null
    productLabelKey: string | null
    /** The resource one replica requests (nvidia.com/gpu, nvidia.com/mig-3g.40gb…), null on CPU. */
    resourceName: string | null
    memoryGiB: number | null
    sharing: Device['sharing'] | null
    /** The taint key pods tolerate (the accelerator's), null on CPU. */
    tolerate: string | null
    arch: string | null
  } & { cpuClass: 'cpu' | 'cpu_high' | null }
  placement: { nodes: PlacementNode[]; rejected: Array<{ node: string; reasons: string[] }> }
  resources: {
    devicesPerReplica: number
    tensorParallelSize: number
    weightsGiB: number
    kvCacheGiB: number
    overheadGiB: number
    totalGiB: number
    cpu: number
    memoryGiB: number
    shmGiB: number
    weightsVolumeGiB: number
  }
  replicas: number
  maxModelLen: number
  maxConcurrency: number
  engineArgs: string[]
  strategy: 'Recreate' | 'RollingUpdate'
  autoscaler: AutoscalerDecision | null
  assumptions: string[]
}

/** The share of a device's memory engines plan to use (vLLM's gpu-memory-utilization default). */
export const USABLE_DEVICE_SHARE = 0.9
const ACCELERATORS: DeviceType[] = ['cuda', 'rocm', 'hpu']
const DEVICE_ORDER: DeviceType[] = ['cuda', 'rocm', 'hpu', 'cpu_high', 'cpu']
/** Device memory assumed when nothing states it, by type: the smallest common data-centre part. */
const ASSUMED_MEMORY_GIB: Record<string, number> = { cuda: 16, rocm: 64, hpu: 32 }
const PRODUCT_LABEL_KEYS: Record<string, string> = { nvidia: 'nvidia.com/gpu.product', amd: 'amd.com/gpu.product-name' }
/** Flags modelplane sets itself; a user's args may not set them again. */
const RESERVED_FLAGS = /^--?(api-key|port|host|hostname|model|model-path|model-id|m|served-model-name|alias|tensor-parallel-size|tp-size|tp)(=|$)/

const engineOrder: Record<string, number> = { vllm: 0, sglang: 1, tei: 2, llamacpp: 3, custom: 4 }

function isEmbedding(model: PlanModel): boolean {
  return model.tasks.length > 0 && model.tasks.every((t) => EMBEDDING_TASKS.includes(t))
}

function servesDevice(runtime: CatalogRuntime, type: DeviceType): boolean {
  return runtime.deviceType === type || (runtime.deviceType === 'cpu' && (type === 'cpu' || type === 'cpu_high'))
}

function servesModel(runtime: CatalogRuntime, model: PlanModel): string | null {
  if (model.format && !runtime.formats.includes(model.format)) return `${runtime.name} serves ${runtime.formats.join(', ')} models, not ${model.format}`
  if (model.tasks.length > 0 && !model.tasks.some((t) => runtime.tasks.includes(t))) {
    return `${runtime.name} serves ${runtime.tasks.slice(0, 6).join(', ')}, not ${model.tasks.slice(0, 3).join(', ')}`
  }
  return null
}

/** Runtimes for this model, best first: an embedding model goes to an embedding server first. */
function candidates(model: PlanModel, runtimes: CatalogRuntime[]): CatalogRuntime[] {
  const embedding = isEmbedding(model)
  return runtimes
    .filter((r) => r.enabled && servesModel(r, model) === null)
    .sort((a, b) => {
      const rank = (r: CatalogRuntime) => (embedding ? (r.engine === 'tei' ? -1 : engineOrder[r.engine]!) : r.engine === 'tei' ? 9 : engineOrder[r.engine]!)
      return rank(a) - rank(b) || a.name.localeCompare(b.name)
    })
}

function withTensorParallel(runtime: CatalogRuntime): boolean {
  return runtime.argsTemplate.includes('{tensorParallelSize}')
}

const free = (node: PlanNode, resource: string) => Math.max(0, (node.facts.allocatable.extended[resource] ?? 0) - (node.used.extended[resource] ?? 0))

/** One way a node offers accelerators: a resource, its memory per unit, how many one pod may take. */
interface Offer {
  node: PlanNode
  device: Device
  resource: string
  product: string | null
  productLabel: string | null
  memoryGiB: number
  memoryAssumed: boolean
  /** At most this many units in one pod (1 for MIG instances and shared GPUs). */
  perPodMax: number
  free: number
}

function offersOf(node: PlanNode, type: DeviceType): Offer[] {
  const offers: Offer[] = []
  for (const device of node.facts.devices.filter((d) => d.type === type)) {
    const assumed = device.memoryMiB === null
    const memoryGiB = (device.memoryMiB ?? ASSUMED_MEMORY_GIB[type]! * 1024) / 1024
    const base = { node, device, product: device.product, productLabel: device.productLabel, memoryAssumed: assumed }
    if (device.migProfiles) {
      for (const profile of Object.keys(device.migProfiles).sort()) {
        const size = Number(/(\d+)gb$/.exec(profile)?.[1] ?? 0)
        if (!size) continue
        const resource = `nvidia.com/mig-${profile}`
        offers.push({ ...base, resource, memoryGiB: size, memoryAssumed: false, perPodMax: 1, free: free(node, resource) })
      }
      if ((node.facts.allocatable.extended['nvidia.com/gpu'] ?? 0) > 0) {
        offers.push({ ...base, resource: 'nvidia.com/gpu', memoryGiB, perPodMax: free(node, 'nvidia.com/gpu'), free: free(node, 'nvidia.com/gpu') })
      }
      continue
    }
    if (device.sharing === 'time-slicing' || device.sharing === 'mps') {
      // A slice shares the GPU's memory with the other slices: counted as its share.
      const perDevice = Math.max(1, Math.round(device.slices / Math.max(1, device.count)))
      offers.push({ ...base, resource: device.resourceName, memoryGiB: memoryGiB / perDevice, perPodMax: 1, free: free(node, device.resourceName) })
      continue
    }
    const available = free(node, device.resourceName)
    offers.push({ ...base, resource: device.resourceName, memoryGiB, perPodMax: device.count, free: available })
  }
  return offers
}

function schedulingReasons(node: PlanNode, tolerated: string | null): string[] {
  const facts = node.facts
  const reasons: string[] = []
  const cordoned = facts.unschedulableReasons.includes('cordoned')
  if (cordoned) reasons.push('cordoned')
  if (!facts.ready) reasons.push('NotReady')
  for (const taint of facts.taints) {
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue
    if (tolerated && taint.key === tolerated) continue
    if (cordoned && taint.key === 'node.kubernetes.io/unschedulable') continue
    if (!facts.ready && (taint.key === 'node.kubernetes.io/not-ready' || taint.key === 'node.kubernetes.io/unreachable')) continue
    reasons.push(`taint ${taint.key}${taint.value ? `=${taint.value}` : ''}:${taint.effect} is not tolerated`)
  }
  if (facts.pressure.memory) reasons.push('MemoryPressure')
  return reasons
}

function freeHost(node: PlanNode) {
  return {
    cpu: Math.max(0, node.facts.allocatable.cpuMillis - node.used.cpuMillis) / 1000,
    memoryGiB: Math.max(0, node.facts.allocatable.memoryBytes - node.used.memoryBytes) / GiB,
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10

/** The smallest power of two ≥ needed that divides the heads, or null past 64. */
export function tensorParallelSize(needed: number, attentionHeads: number): number | null {
  for (let tp = 1; tp <= 64; tp *= 2) if (tp >= needed && attentionHeads % tp === 0) return tp
  return null
}

interface Attempt {
  runtime: CatalogRuntime
  deviceType: DeviceType
}

interface Candidate {
  key: string
  offers: Offer[]
  devicesPerReplica: number
  tensorParallelSize: number
  cpu: number
  memoryGiB: number
  shmGiB: number
}

interface Evaluation {
  fits: PlacementNode[]
  rejected: Map<string, string[]>
  candidate: Candidate | null
  /** Why nothing fits, when nothing does. */
  failure: { message: string; shortfall: Parameters<typeof insufficientCapacity>[1] } | null
  sizing: Sizing
  extraAssumptions: string[]
}

function hostRequest(request: PlanRequest, devices: number, sizing: Sizing, accelerator: boolean): { cpu: number; memoryGiB: number; shmGiB: number } {
  const shmGiB = accelerator ? Math.min(16, Math.max(1, 2 * devices)) : 1
  if (accelerator) {
    return { cpu: request.resources?.cpu ?? 1 + devices, memoryGiB: request.resources?.memoryGiB ?? 4 + 4 * devices + shmGiB, shmGiB }
  }
  // On CPU the weights and the cache live in host memory.
  const needed = Math.ceil(sizing.totalBytes / GiB) + shmGiB
  return { cpu: request.resources?.cpu ?? 2, memoryGiB: Math.max(request.resources?.memoryGiB ?? 0, needed), shmGiB }
}

function evaluate(attempt: Attempt, input: PlanInput, replicas: number): Evaluation {
  const { request, model, cluster } = input
  const embedding = attempt.runtime.engine === 'tei' || isEmbedding(model)
  const sizing = sizeModel(model, request, { embedding })
  const accelerator = ACCELERATORS.includes(attempt.deviceType)
  const rejected = new Map<string, string[]>()
  const extra: string[] = []
  const reject = (node: string, reason: string) => rejected.set(node, [...(rejected.get(node) ?? []), reason])

  if (!accelerator) {
    const host = hostRequest(request, 0, sizing, false)
    const fits: PlacementNode[] = []
    let best: { node: string; memoryGiB: number } | null = null
    for (const node of input.cluster.nodes) {
      const name = node.facts.name
      const reasons = schedulingReasons(node, null)
      if (node.facts.devices.length > 0 && node.facts.deviceType !== attempt.deviceType) {
        // Accelerator nodes run CPU pods too, but their taints usually keep them away.
      }
      const cls = node.facts.devices.length > 0 ? (node.facts.cpu.avx512 || node.facts.cpu.amx ? 'cpu_high' : 'cpu') : node.facts.deviceType
      if (attempt.deviceType === 'cpu_high' && cls !== 'cpu_high') reasons.push('not a cpu_high node (no AVX-512 or AMX)')
      const hostFree = freeHost(node)
      if (hostFree.memoryGiB < host.memoryGiB) reasons.push(`too little memory: needs ${host.memoryGiB} GiB, ${round1(hostFree.memoryGiB)} GiB free`)
      if (hostFree.cpu < host.cpu) reasons.push(`too little CPU: needs ${host.cpu} cores, ${round1(hostFree.cpu)} free`)
      if (reasons.length > 0) {
        for (const r of reasons) reject(name, r)
        if (reasons.every((r) => r.startsWith('too little')) && (!best || hostFree.memoryGiB > best.memoryGiB)) best = { node: name, memoryGiB: round1(hostFree.memoryGiB) }
        continue
      }
      const room = Math.floor(Math.min(hostFree.memoryGiB / host.memoryGiB, hostFree.cpu / host.cpu))
      fits.push({ node: name, product: null, freeDevices: 0, room })
    }
    const candidate: Candidate = { key: attempt.deviceType, offers: [], devicesPerReplica: 0, tensorParallelSize: 1, ...host }
    const room = fits.reduce((n, f) => n + f.room, 0)
    let failure: Evaluation['failure'] = null
    if (room < replicas) {
      const shortfall = { deviceType: attempt.deviceType, devicesPerReplica: 0, memoryPerDeviceGiB: null, replicas, largestFree: null }
      failure = {
        message:
          fits.length === 0
            ? `needs a ${attempt.deviceType} node with ${host.memoryGiB} GiB of memory and ${host.cpu} cores free; ${best ? `most free: ${best.memoryGiB} GiB on node ${best.node}` : 'no node takes the pod'}`
            : `needs ${replicas} replicas of ${host.memoryGiB} GiB and ${host.cpu} cores; room for ${room}`,
        shortfall,
      }
    }
    return { fits, rejected, candidate, failure, sizing, extraAssumptions: extra }
  }

  // Accelerators: every way a node offers this device type, grouped by (resource, product, memory).
  const groups = new Map<string, Offer[]>()
  for (const node of cluster.nodes) {
    const offers = offersOf(node, attempt.deviceType)
    if (offers.length === 0) reject(node.facts.name, `no ${attempt.deviceType} devices`)
    for (const offer of offers) {
      const key = `${offer.resource}|${offer.product ?? ''}|${offer.memoryGiB}`
      groups.set(key, [...(groups.get(key) ?? []), offer])
    }
  }
  if (groups.size === 0) {
    return {
      fits: [],
      rejected,
      candidate: null,
      failure: {
        message: `the cluster has no ${attempt.deviceType} devices`,
        shortfall: { deviceType: attempt.deviceType, devicesPerReplica: 0, memoryPerDeviceGiB: null, replicas, largestFree: null },
      },
      sizing,
      extraAssumptions: extra,
    }
  }

  const tp = withTensorParallel(attempt.runtime)
  const options: Array<{ candidate: Candidate; fits: PlacementNode[]; rejected: Map<string, string[]>; waste: number; room: number; problem: string | null }> = []
  for (const [key, offers] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const first = offers[0]!
    const needed = Math.max(1, Math.ceil(sizing.totalBytes / (first.memoryGiB * GiB * USABLE_DEVICE_SHARE)))
    let devices = request.resources?.devices ?? needed
    let problem: string | null = null
    let size = 1
    if (!tp && devices > 1) {
      problem = `${attempt.runtime.name} runs one device per replica; the model needs ${needed}× ${first.memoryGiB} GiB`
    } else if (tp) {
      const found = tensorParallelSize(devices, sizing.shape.attentionHeads)
      if (found === null) problem = `no tensor-parallel size of ${devices} or more (a power of two) divides the model's ${sizing.shape.attentionHeads} attention heads`
      else {
        if (request.resources?.devices !== undefined && found !== devices) {
          problem = `resources.devices ${devices} does not divide the model's ${sizing.shape.attentionHeads} attention heads as a power of two`
        }
        size = found
        devices = found
      }
    }
    const host = hostRequest(request, devices, sizing, true)
    const candidate: Candidate = { key, offers, devicesPerReplica: devices, tensorParallelSize: size, ...host }
    const fits: PlacementNode[] = []
    const why = new Map<string, string[]>()
    for (const offer of offers) {
      const name = offer.node.facts.name
      const reasons = schedulingReasons(offer.node, offer.device.resourceName.startsWith('nvidia.com/') ? 'nvidia.com/gpu' : offer.device.resourceName)
      const label = `${offer.product ?? offer.resource} (${round1(offer.memoryGiB)} GiB)`
      if (problem) reasons.push(problem)
      else if (devices > offer.perPodMax) reasons.push(`too little device memory: one replica needs ${devices}× ${label}, the node has ${offer.perPodMax} in one pod`)
      else if (offer.free < devices) reasons.push(`insufficient free devices: needs ${devices}× ${offer.resource}, ${offer.free} free`)
      const hostFree = freeHost(offer.node)
      if (hostFree.memoryGiB < host.memoryGiB) reasons.push(`too little memory: needs ${host.memoryGiB} GiB, ${round1(hostFree.memoryGiB)} GiB free`)
      if (hostFree.cpu < host.cpu) reasons.push(`too little CPU: needs ${host.cpu} cores, ${round1(hostFree.cpu)} free`)
      if (reasons.length > 0) {
        why.set(name, reasons)
        continue
      }
      const room = Math.floor(Math.min(offer.free / devices, hostFree.memoryGiB / host.memoryGiB, hostFree.cpu / host.cpu))
      fits.push({ node: name, product: offer.product, freeDevices: offer.free, room })
    }
    const room = fits.reduce((n, f) => n + f.room, 0)
    options.push({ candidate, fits, rejected: why, waste: devices * first.memoryGiB, room, problem })
  }

  // Of the offers with room for every replica, the one that takes least device memory per replica.
  const ranked = options.sort((a, b) => Number(b.room >= replicas) - Number(a.room >= replicas) || a.waste - b.waste || b.room - a.room || a.candidate.key.localeCompare(b.candidate.key))
  const chosen = ranked[0]!
  const allRejected = new Map(rejected)
  for (const option of options) {
    for (const [node, reasons] of option.rejected) {
      if (chosen.fits.some((f) => f.node === node)) continue
      allRejected.set(node, [...new Set([...(allRejected.get(node) ?? []), ...reasons])])
    }
    if (option !== chosen) {
      for (const fit of option.fits) {
        if (chosen.fits.some((f) => f.node === fit.node)) continue
        const offer = option.candidate.offers[0]!
        allRejected.set(fit.node, [...(allRejected.get(fit.node) ?? []), `${offer.product ?? offer.resource} fits too, but the endpoint is pinned to ${chosen.candidate.offers[0]!.product ?? chosen.candidate.offers[0]!.resource}`])
      }
    }
  }
  const offer = chosen.candidate.offers[0]!
  if (chosen.candidate.offers.some((o) => o.memoryAssumed)) {
    extra.push(`the device memory of ${offer.product ?? offer.resource} is not labelled on the nodes: assumed ${offer.memoryGiB} GiB`)
  }
  if (offer.device.sharing === 'time-slicing' || offer.device.sharing === 'mps') {
    extra.push(`${offer.product ?? offer.resource} is shared (${offer.device.sharing}): one slice is counted as ${round1(offer.memoryGiB)} GiB, and its memory is not isolated from the other slices`)
  }
  let failure: Evaluation['failure'] = null
  if (chosen.room < replicas) {
    // Said in the terms of the best option: the devices one replica needs and where most are free.
    const best = [...options].sort((a, b) => a.candidate.devicesPerReplica - b.candidate.devicesPerReplica || b.waste - a.waste)[0]!
    const perDevice = Math.ceil(sizing.totalBytes / GiB / best.candidate.devicesPerReplica / USABLE_DEVICE_SHARE)
    let largest: { devices: number; node: string } | null = null
    for (const o of options) {
      for (const of of o.candidate.offers) {
        if (schedulingReasons(of.node, of.device.resourceName.startsWith('nvidia.com/') ? 'nvidia.com/gpu' : of.device.resourceName).length > 0) continue
        if (of.memoryGiB < perDevice && o !== best) continue
        if (!largest || of.free > largest.devices) largest = { devices: of.free, node: of.node.facts.name }
      }
    }
    const need = `${best.candidate.devicesPerReplica}× ${attempt.deviceType} with ≥ ${perDevice} GiB each`
    const message = best.problem
      ? best.problem
      : chosen.room === 0
        ? `needs ${need}; largest free: ${largest && largest.devices > 0 ? `${largest.devices}× on node ${largest.node}` : 'none'}`
        : `needs ${replicas} replicas of ${need}; room for ${chosen.room}`
    failure = {
      message,
      shortfall: { deviceType: attempt.deviceType, devicesPerReplica: best.candidate.devicesPerReplica, memoryPerDeviceGiB: perDevice, replicas, largestFree: largest },
    }
  }
  return { fits: chosen.fits, rejected: allRejected, candidate: chosen.candidate, failure, sizing, extraAssumptions: extra }
}

export interface PlanSettings {
  prometheusUrl?: string | null
}

export interface PlanInput {
  request: PlanRequest
  model: PlanModel
  cluster: PlanCluster
  runtimes: CatalogRuntime[]
  settings: PlanSettings
}

function clusterDeviceTypes(cluster: PlanCluster): DeviceType[] {
  const present = new Set<DeviceType>()
  for (const node of cluster.nodes) {
    for (const d of node.facts.devices) present.add(d.type)
    present.add(node.facts.devices.length > 0 ? (node.facts.cpu.avx512 || node.facts.cpu.amx ? 'cpu_high' : 'cpu') : node.facts.deviceType)
  }
  return DEVICE_ORDER.filter((t) => present.has(t))
}

function checkArgsAndEnv(request: PlanRequest): void {
  for (const [i, arg] of (request.args ?? []).entries()) {
    if (RESERVED_FLAGS.test(arg)) throw badRequest(`${arg.split('=')[0]} is set by modelplane from the plan; leave it out of args`, `body.args.${i}`)
  }
  for (const name of Object.keys(request.env ?? {})) {
    if (name.startsWith('MODELPLANE_')) throw badRequest('environment variables starting MODELPLANE_ are modelplane\'s own', `body.env.${name}`)
  }
}

function autoscaler(input: PlanInput, runtime: CatalogRuntime): AutoscalerDecision | null {
  const asked = input.request.autoscale
  if (!asked) return null
  if (asked.min > asked.max) throw badRequest('autoscale.min must not exceed autoscale.max', 'body.autoscale.min')
  const metric = runtime.concurrencyMetric
  if (!metric) throw autoscalingUnavailable(`${runtime.name} exports no metric of requests in flight to scale on`)
  const caps = input.cluster.capabilities ?? {}
  if (caps.keda && input.settings.prometheusUrl) return { kind: 'keda', ...asked, metric }
  if (caps.customMetrics) {
    if (asked.min < 1) throw autoscalingUnavailable('the cluster scales on the custom metrics API through a HorizontalPodAutoscaler, which cannot scale to zero: set autoscale.min to 1 or more')
    return { kind: 'hpa', ...asked, metric: metric.replace(/:/g, '_') }
  }
  if (caps.keda) {
    throw autoscalingUnavailable("the cluster runs KEDA, but its serving settings name no Prometheus to read the runtime's metrics from (PATCH /v1/clusters/{id}/serving-settings prometheusUrl)")
  }
  throw autoscalingUnavailable('autoscaling on concurrency needs KEDA or the custom metrics API on the cluster, and registration found neither')
}

function render(template: string[], values: Record<string, string>): string[] {
  return template.map((token) => token.replace(/\{([A-Za-z]+)\}/g, (whole, key: string) => values[key] ?? whole))
}

/** Where the weights are inside the pod. */
export const MODEL_DIR = '/models'

export function plan(input: PlanInput): PlanDecision {
  const { request, model, cluster } = input
  checkArgsAndEnv(request)
  const usable = candidates(model, input.runtimes)
  const types = clusterDeviceTypes(cluster).filter((t) => !request.deviceType || t === request.deviceType)
  if (request.deviceType && types.length === 0) throw badRequest(`the cluster has no ${request.deviceType} nodes`, 'body.deviceType')

  let attempts: Attempt[]
  if (request.runtime && request.runtime !== 'auto') {
    const named = input.runtimes.find((r) => r.name === request.runtime && r.enabled)
    if (!named) throw unknownRuntime(request.runtime)
    const unfit = servesModel(named, model)
    if (unfit) throw runtimeUnsuitable(unfit)
    attempts = types.filter((t) => servesDevice(named, t)).map((deviceType) => ({ runtime: named, deviceType }))
    if (attempts.length === 0) throw runtimeUnsuitable(`${named.name} runs on ${named.deviceType}, and the cluster has ${request.deviceType ?? 'no such'} nodes`)
  } else {
    // Accelerators first; on each device type, the best runtime for the model.
    attempts = types.flatMap((deviceType) => usable.filter((r) => servesDevice(r, deviceType)).map((runtime) => ({ runtime, deviceType })))
    if (attempts.length === 0) {
      throw noSuitableRuntime(
        `no enabled runtime serves a ${model.format ?? 'model of unknown format'}${model.tasks.length ? ` for ${model.tasks.slice(0, 3).join(', ')}` : ''} on this cluster's ${types.join(', ') || 'nodes'}`,
      )
    }
  }

  const replicas = request.autoscale ? Math.max(1, request.autoscale.min) : request.replicas
  let first: Evaluation | null = null
  let chosen: { attempt: Attempt; evaluation: Evaluation } | null = null
  for (const attempt of attempts) {
    const evaluation = evaluate(attempt, input, replicas)
    first ??= evaluation
    if (!evaluation.failure) {
      chosen = { attempt, evaluation }
      break
    }
  }
  if (!chosen) {
    const rejected = [...first!.rejected.entries()].map(([node, reasons]) => ({ node, reasons })).sort((a, b) => a.node.localeCompare(b.node))
    throw insufficientCapacity(first!.failure!.message, first!.failure!.shortfall, rejected)
  }

  const { attempt, evaluation } = chosen
  const { runtime, deviceType } = attempt
  const candidate = evaluation.candidate!
  const sizing = evaluation.sizing
  const accelerator = ACCELERATORS.includes(deviceType)
  const offer = candidate.offers[0]
  const product = offer?.product ?? null
  const scaler = autoscaler(input, runtime)
  const assumptions = [...sizing.assumptions, ...evaluation.extraAssumptions]
  if (scaler) {
    const room = evaluation.fits.reduce((n, f) => n + f.room, 0)
    if (room < scaler.max) assumptions.push(`autoscale.max is ${scaler.max}, but the nodes that fit have room for ${room} replicas now`)
  }
  if (request.resources?.devices !== undefined && accelerator) {
    const needed = Math.ceil(sizing.totalBytes / ((offer?.memoryGiB ?? 1) * GiB * USABLE_DEVICE_SHARE))
    if (request.resources.devices < needed) assumptions.push(`resources.devices ${request.resources.devices} is below the ${needed} the estimate needs: the engine may run out of memory`)
  }

  const ggufFile = model.files.filter((f) => f.path.endsWith('.gguf')).sort((a, b) => b.size - a.size || a.path.localeCompare(b.path))[0]
  const values: Record<string, string> = {
    modelPath: MODEL_DIR,
    modelFile: ggufFile ? `${MODEL_DIR}/${ggufFile.path}` : MODEL_DIR,
    servedModelName: model.name,
    port: String(runtime.port),
    maxModelLen: String(sizing.maxModelLen),
    tensorParallelSize: String(candidate.tensorParallelSize),
    maxConcurrency: String(sizing.maxConcurrency),
    contextTotal: String(sizing.maxModelLen * sizing.maxConcurrency),
  }
  const engineArgs = render(runtime.argsTemplate, values)
  if (runtime.apiKey.kind === 'flag') engineArgs.push(runtime.apiKey.flag, '$(MODELPLANE_API_KEY)')
  engineArgs.push(...(request.args ?? []))

  const totalFree = evaluation.fits.reduce((n, f) => n + f.freeDevices, 0)
  const strategy: PlanDecision['strategy'] =
    accelerator && (replicas === 1 || candidate.devicesPerReplica * (replicas + 1) > totalFree) ? 'Recreate' : 'RollingUpdate'
  const fileBytes = model.files.reduce((n, f) => n + f.size, 0) || sizing.weightsBytes
  const vendor = offer?.device.vendor
  const fitNodes = new Set(evaluation.fits.map((f) => f.node))
  const arches = [...new Set(cluster.nodes.filter((n) => fitNodes.has(n.facts.name)).map((n) => n.facts.arch).filter(Boolean))]

  return {
    runtime: { id: runtime.id, name: runtime.name, engine: runtime.engine, image: `${runtime.image}:${tagFor(runtime, product)}` },
    deviceType,
    device: {
      product,
      productLabel: offer?.productLabel ?? null,
      productLabelKey: offer?.productLabel && vendor ? (PRODUCT_LABEL_KEYS[vendor] ?? null) : null,
      resourceName: offer?.resource ?? null,
      memoryGiB: offer ? round1(offer.memoryGiB) : null,
      sharing: offer?.device.sharing ?? null,
      tolerate: offer ? (offer.device.resourceName.startsWith('nvidia.com/') ? 'nvidia.com/gpu' : offer.device.resourceName) : null,
      arch: arches.length === 1 ? arches[0]! : null,
      cpuClass: accelerator ? null : (deviceType as 'cpu' | 'cpu_high'),
    },
    placement: {
      nodes: [...evaluation.fits].sort((a, b) => a.node.localeCompare(b.node)),
      rejected: [...evaluation.rejected.entries()].map(([node, reasons]) => ({ node, reasons })).sort((a, b) => a.node.localeCompare(b.node)),
    },
    resources: {
      devicesPerReplica: candidate.devicesPerReplica,
      tensorParallelSize: candidate.tensorParallelSize,
      weightsGiB: gib(sizing.weightsBytes),
      kvCacheGiB: gib(sizing.kvCacheBytes),
      overheadGiB: gib(sizing.overheadBytes),
      totalGiB: gib(sizing.totalBytes),
      cpu: candidate.cpu,
      memoryGiB: candidate.memoryGiB,
      shmGiB: candidate.shmGiB,
      weightsVolumeGiB: Math.ceil((fileBytes * 1.1) / GiB) + 1,
    },
    replicas: request.replicas,
    maxModelLen: sizing.maxModelLen,
    maxConcurrency: sizing.maxConcurrency,
    engineArgs,
    strategy,
    autoscaler: scaler,
    assumptions,
  }
}
