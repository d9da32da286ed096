import { parseQuantity } from '../../../src/platform/kube/quantity.js'
import { type KubeObject } from './store.js'

/**
 * What the stand-in's controllers need to know of pods and pod templates: the hash a Deployment
 * names its ReplicaSets by, the defaults kube-apiserver fills into a new pod, a pod's resource
 * requests as the scheduler counts them, and typed views of the fields the kubelet reads.
 */

export interface EnvVar {
  name: string
  value?: string
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean }
    configMapKeyRef?: { name: string; key: string; optional?: boolean }
  }
}

export interface Container {
  name: string
  image?: string
  command?: string[]
  args?: string[]
  env?: EnvVar[]
  envFrom?: Array<{ secretRef?: { name: string; optional?: boolean }; configMapRef?: { name: string; optional?: boolean } }>
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> }
  imagePullPolicy?: string
  [key: string]: unknown
}

export interface Volume {
  name: string
  secret?: { secretName: string; optional?: boolean }
  configMap?: { name: string; optional?: boolean }
  [key: string]: unknown
}

export interface Toleration {
  key?: string
  operator?: 'Exists' | 'Equal'
  value?: string
  effect?: string
}

export interface NodeSelectorRequirement {
  key: string
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt'
  values?: string[]
}

export interface PodSpec {
  containers: Container[]
  initContainers?: Container[]
  volumes?: Volume[]
  nodeName?: string
  nodeSelector?: Record<string, string>
  tolerations?: Toleration[]
  affinity?: {
    nodeAffinity?: {
      requiredDuringSchedulingIgnoredDuringExecution?: {
        nodeSelectorTerms: Array<{ matchExpressions?: NodeSelectorRequirement[]; matchFields?: NodeSelectorRequirement[] }>
      }
    }
  }
  terminationGracePeriodSeconds?: number
  restartPolicy?: string
  [key: string]: unknown
}

export const podSpec = (pod: KubeObject): PodSpec => (pod.spec ?? { containers: [] }) as PodSpec

// The alphabet and rule of apimachinery's rand.SafeEncodeString: no vowels, no look-alikes.
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'

function fnv32a(text: string): number {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash >>> 0
}

/** JSON with keys sorted, so that two writes of the same template hash the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * The `pod-template-hash` of a template: FNV-32a of the template, its decimal digits mapped through
 * the safe alphabet, as the deployment controller does ("68d77795bc"). The hashed bytes are our
 * canonical JSON rather than Go's object dump, so values differ from a real cluster's; the shape
 * and the rule (same template, same hash) are the same.
 */
export function podTemplateHash(template: unknown, collisionCount = 0): string {
  const digits = String(fnv32a(canonical(template) + (collisionCount ? String(collisionCount) : '')))
  let out = ''
  for (const ch of digits) out += SAFE_ALPHABET[ch.charCodeAt(0) % SAFE_ALPHABET.length]
  return out
}

/** Five characters of the safe alphabet, as generateName suffixes are. */
export function randomSuffix(): string {
  let out = ''
  for (let i = 0; i < 5; i++) out += SAFE_ALPHABET[Math.floor(Math.random() * SAFE_ALPHABET.length)]
  return out
}

function defaultContainer(c: Container): Container {
  const image = c.image ?? ''
  const tag = image.includes('@') ? 'digest' : (/:([^/:]+)$/.exec(image)?.[1] ?? 'latest')
  const resources = c.resources ? { ...c.resources } : {}
  // Requests default to limits where only limits are given (kube-apiserver's defaulting).
  if (resources.limits && Object.keys(resources.limits).length > 0) {
    resources.requests = { ...resources.limits, ...resources.requests }
  }
  return {
    ...c,
    resources,
    terminationMessagePath: c.terminationMessagePath ?? '/dev/termination-log',
    terminationMessagePolicy: c.terminationMessagePolicy ?? 'File',
    imagePullPolicy: c.imagePullPolicy ?? (tag === 'latest' ? 'Always' : 'IfNotPresent'),
  }
}

function qosClass(spec: PodSpec): string {
  const all = [...(spec.initContainers ?? []), ...spec.containers]
  const any = all.some((c) => Object.keys(c.resources?.requests ?? {}).length + Object.keys(c.resources?.limits ?? {}).length > 0)
  if (!any) return 'BestEffort'
  const guaranteed = all.every((c) => ['cpu', 'memory'].every((r) => {
    const limit = c.resources?.limits?.[r]
    const request = c.resources?.requests?.[r]
    return limit !== undefined && (request === undefined || parseQuantity(request) === parseQuantity(limit))
  }))
  return guaranteed ? 'Guaranteed' : 'Burstable'
}

const DEFAULT_TOLERATIONS: Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 } as Toleration,
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 } as Toleration,
]

/** The spec and status kube-apiserver (with its default admission plugins) gives a new pod. */
export function defaultedPod(pod: KubeObject): KubeObject {
  const spec = podSpec(pod)
  const tolerations = [...(spec.tolerations ?? [])]
  for (const t of DEFAULT_TOLERATIONS) if (!tolerations.some((x) => x.key === t.key && x.effect === t.effect)) tolerations.push(t)
  const next: PodSpec = {
    ...spec,
    containers: (spec.containers ?? []).map(defaultContainer),
    ...(spec.initContainers ? { initContainers: spec.initContainers.map(defaultContainer) } : {}),
    restartPolicy: spec.restartPolicy ?? 'Always',
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? 30,
    dnsPolicy: spec.dnsPolicy ?? 'ClusterFirst',
    securityContext: spec.securityContext ?? {},
    schedulerName: spec.schedulerName ?? 'default-scheduler',
    tolerations,
    priority: spec.priority ?? 0,
    enableServiceLinks: spec.enableServiceLinks ?? true,
    preemptionPolicy: spec.preemptionPolicy ?? 'PreemptLowerPriority',
  }
  return { ...pod, spec: next, status: { phase: 'Pending', qosClass: qosClass(next) } }
}

function quantity(text: string | undefined): number {
  if (text === undefined) return 0
  try {
    return parseQuantity(String(text))
  } catch {
    return 0
  }
}

/**
 * What a pod asks of a node, as the scheduler counts it: per resource, the larger of the sum over
 * its containers and the largest init container (init containers run one at a time), plus one pod.
 */
export function podRequests(spec: PodSpec): Map<string, number> {
  const total = new Map<string, number>()
  // Limits stand for missing requests (the API server's defaulting, in case a pod skipped it).
  const asked = (c: Container) => ({ ...c.resources?.limits, ...c.resources?.requests })
  for (const c of spec.containers ?? []) {
    for (const [name, value] of Object.entries(asked(c))) total.set(name, (total.get(name) ?? 0) + quantity(value))
  }
  for (const c of spec.initContainers ?? []) {
    for (const [name, value] of Object.entries(asked(c))) total.set(name, Math.max(total.get(name) ?? 0, quantity(value)))
  }
  total.set('pods', 1)
  return total
}

export function nodeAllocatable(node: KubeObject): Map<string, number> {
  const status = (node.status ?? {}) as { allocatable?: Record<string, string>; capacity?: Record<string, string> }
  const out = new Map<string, number>()
  for (const [name, value] of Object.entries(status.allocatable ?? status.capacity ?? {})) out.set(name, quantity(value))
  return out
}

/** A pod whose containers are done: it no longer holds what it requested. */
export function podTerminated(pod: KubeObject): boolean {
  const phase = (pod.status as { phase?: string } | undefined)?.phase
  return phase === 'Succeeded' || phase === 'Failed'
}

export function ownerUid(obj: KubeObject): string | undefined {
  const refs = obj.metadata.ownerReferences as Array<{ uid: string; controller?: boolean }> | undefined
  return refs?.find((r) => r.controller)?.uid
}
