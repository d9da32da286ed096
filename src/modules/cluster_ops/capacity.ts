import type { V1Container, V1Pod } from '@kubernetes/client-node'
import { parseQuantity } from './quantity.js'

/** What a node offers or pods request, in the units the scheduler counts. */
export interface Resources {
  cpuMillis: number
  memoryBytes: number
  pods: number
  ephemeralBytes: number
  /** Every other resource by name (`nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`, `hugepages-2Mi`, …). */
  extended: Record<string, number>
}

/** A quantity we could not read: counted as 0 and said here, never thrown. */
export type Problems = string[]

export const MAX_PROBLEMS = 20
// A node lists a dozen resources; more than this is not a cluster we should trust with our memory,
// and the rest are dropped (and reported).
const MAX_RESOURCES = 64
// A qualified resource name: a DNS subdomain prefix (253) + '/' + a name (63).
const MAX_RESOURCE_NAME = 317
const MAX_NODE_NAME = 253

export function note(problems: Problems | undefined, message: string): void {
  if (!problems || problems.length >= MAX_PROBLEMS) return
  problems.push(message.length > 300 ? `${message.slice(0, 297)}...` : message)
}

export function emptyResources(): Resources {
  return { cpuMillis: 0, memoryBytes: 0, pods: 0, ephemeralBytes: 0, extended: {} }
}

export function addResources(a: Resources, b: Resources): Resources {
  const extended = { ...a.extended }
  for (const [name, value] of Object.entries(b.extended)) extended[name] = (extended[name] ?? 0) + value
  return {
    cpuMillis: a.cpuMillis + b.cpuMillis,
    memoryBytes: a.memoryBytes + b.memoryBytes,
    pods: a.pods + b.pods,
    ephemeralBytes: a.ephemeralBytes + b.ephemeralBytes,
    extended,
  }
}

/** Amounts by resource name, cpu in millicores and everything else in whole units. */
type Amounts = Map<string, number>

const quoted = (value: unknown) => JSON.stringify(typeof value === 'string' ? value.slice(0, 40) : value)

function amountsOf(list: Record<string, unknown> | undefined, where: string, problems?: Problems): Amounts {
  const amounts: Amounts = new Map()
  if (!list || typeof list !== 'object') return amounts
  for (const [name, text] of Object.entries(list)) {
    if (name.length > MAX_RESOURCE_NAME) {
      note(problems, `${where}: a resource name longer than ${MAX_RESOURCE_NAME} characters was ignored`)
      continue
    }
    if (amounts.size >= MAX_RESOURCES) {
      note(problems, `${where}: more than ${MAX_RESOURCES} resources; the rest were ignored`)
      break
    }
    const parsed = parseQuantity(text, name === 'cpu' ? 1000 : 1)
    if (parsed.ok) amounts.set(name, parsed.value)
    else {
      amounts.set(name, 0)
      note(problems, `${where}.${name}: ${quoted(text)} counted as 0 (${parsed.reason})`)
    }
  }
  return amounts
}

function toResources(amounts: Amounts): Resources {
  const resources = emptyResources()
  for (const [name, value] of amounts) {
    if (name === 'cpu') resources.cpuMillis = value
    else if (name === 'memory') resources.memoryBytes = value
    else if (name === 'pods') resources.pods = value
    else if (name === 'ephemeral-storage') resources.ephemeralBytes = value
    else resources.extended[name] = value
  }
  return resources
}

/** A node's `status.capacity` or `status.allocatable`. */
export function resourcesOf(list: Record<string, unknown> | undefined, where: string, problems?: Problems): Resources {
  return toResources(amountsOf(list, where, problems))
}

function sum(into: Amounts, add: Amounts): void {
  for (const [name, value] of add) into.set(name, (into.get(name) ?? 0) + value)
}

function atLeast(into: Amounts, other: Amounts): void {
  for (const [name, value] of other) into.set(name, Math.max(into.get(name) ?? 0, value))
}

function containerRequests(container: V1Container, where: string, problems?: Problems): Amounts {
  const requests = amountsOf(container.resources?.requests, `${where}.requests`, problems)
  // The API server defaults a missing request to its limit; an object that skipped admission
  // (or a hand-built one) would otherwise look free.
  const limits = amountsOf(container.resources?.limits, `${where}.limits`, problems)
  for (const [name, value] of limits) if (!requests.has(name)) requests.set(name, value)
  return requests
}

/**
 * What the scheduler reserves for a pod: the app containers and restartable (sidecar) init
 * containers run together; each ordinary init container runs alone beside the sidecars started
 * before it, so the pod needs the larger of the two, per resource; then the pod overhead. Pod-level
 * requests (`spec.resources`), where set, stand for the containers' sum of that resource.
 */
export function podRequests(pod: V1Pod, problems?: Problems): Resources {
  const spec = pod.spec
  const name = `pod ${(pod.metadata?.namespace ?? '').slice(0, 63)}/${(pod.metadata?.name ?? '').slice(0, 253)}`
  const total: Amounts = new Map()
  if (!spec) return toResources(total)
  for (const [i, container] of (spec.containers ?? []).entries()) {
    sum(total, containerRequests(container, `${name} containers[${i}]`, problems))
  }
  const sidecars: Amounts = new Map()
  const initPeak: Amounts = new Map()
  for (const [i, container] of (spec.initContainers ?? []).entries()) {
    const requests = containerRequests(container, `${name} initContainers[${i}]`, problems)
    if (container.restartPolicy === 'Always') {
      sum(total, requests)
      sum(sidecars, requests)
      atLeast(initPeak, sidecars)
    } else {
      const alongside: Amounts = new Map(sidecars)
      sum(alongside, requests)
      atLeast(initPeak, alongside)
    }
  }
  atLeast(total, initPeak)
  for (const [resource, value] of amountsOf(spec.resources?.requests, `${name} resources.requests`, problems)) {
    total.set(resource, value)
  }
  sum(total, amountsOf(spec.overhead, `${name} overhead`, problems))
  total.set('pods', 1)
  return toResources(total)
}

/**
 * Sum of requests of the pods bound to each node that still hold their resources: every phase
 * but Succeeded and Failed (a terminating pod still holds its GPUs until it is gone).
 */
export function usedByNode(pods: Iterable<V1Pod>, problems?: Problems): Map<string, Resources> {
  const used = new Map<string, Resources>()
  for (const pod of pods) {
    const node = pod.spec?.nodeName
    if (!node || node.length > MAX_NODE_NAME) continue
    const phase = pod.status?.phase
    if (phase === 'Succeeded' || phase === 'Failed') continue
    used.set(node, addResources(used.get(node) ?? emptyResources(), podRequests(pod, problems)))
  }
  return used
}
