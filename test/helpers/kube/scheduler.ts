import {
  type NodeSelectorRequirement,
  type PodSpec,
  type Toleration,
  nodeAllocatable,
  podRequests,
  podSpec,
  podTerminated,
} from './pod-spec.js'
import { type KubeObject } from './store.js'

/**
 * kube-scheduler's filters, in its order, and its FitError message: a node must be schedulable,
 * its NoSchedule/NoExecute taints tolerated, its labels must match the pod's nodeSelector and
 * required node affinity, and its allocatable minus the requests of the non-terminated pods bound
 * to it must hold the pod's requests. Among the nodes that fit, the least allocated wins.
 */

export type ScheduleResult = { node: string } | { unschedulable: string }

interface Taint {
  key: string
  value?: string
  effect: string
}

function tolerates(tolerations: Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false
    if (t.operator === 'Exists') return !t.key || t.key === taint.key
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '')
  })
}

function requirementHolds(value: string | undefined, r: NodeSelectorRequirement): boolean {
  const values = r.values ?? []
  switch (r.operator) {
    case 'In':
      return value !== undefined && values.includes(value)
    case 'NotIn':
      return value === undefined || !values.includes(value)
    case 'Exists':
      return value !== undefined
    case 'DoesNotExist':
      return value === undefined
    case 'Gt':
      return value !== undefined && Number(value) > Number(values[0])
    case 'Lt':
      return value !== undefined && Number(value) < Number(values[0])
    default:
      return false
  }
}

function matchesNode(spec: PodSpec, node: KubeObject): boolean {
  const labels = node.metadata.labels ?? {}
  for (const [k, v] of Object.entries(spec.nodeSelector ?? {})) if (labels[k] !== v) return false
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms
  if (!terms || terms.length === 0) return true
  // Terms are ORed; the requirements inside one term are ANDed.
  return terms.some((term) =>
    (term.matchExpressions ?? []).every((r) => requirementHolds(labels[r.key], r)) &&
    (term.matchFields ?? []).every((r) => r.key === 'metadata.name' && requirementHolds(node.metadata.name, r)))
}

/** What is already asked of each node by the pods bound to it that still run. */
export function usageByNode(pods: KubeObject[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>()
  for (const pod of pods) {
    const spec = podSpec(pod)
    if (!spec.nodeName || podTerminated(pod)) continue
    let used = out.get(spec.nodeName)
    if (!used) out.set(spec.nodeName, (used = new Map()))
    for (const [name, amount] of podRequests(spec)) used.set(name, (used.get(name) ?? 0) + amount)
  }
  return out
}

interface Verdict {
  fits: boolean
  reasons: string[]
  /** Whether evicting lower-priority pods could make room (only resource shortfalls can). */
  preemptionMightHelp: boolean
  /** free share of the node after placing the pod, for scoring */
  score: number
}

function judgeNode(spec: PodSpec, node: KubeObject, used: Map<string, number> | undefined): Verdict {
  const fail = (reason: string): Verdict => ({ fits: false, reasons: [reason], preemptionMightHelp: false, score: 0 })
  if ((node.spec as { unschedulable?: boolean } | undefined)?.unschedulable) return fail('node(s) were unschedulable')
  const taints = ((node.spec as { taints?: Taint[] } | undefined)?.taints ?? []).filter((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute')
  const untolerated = taints.find((t) => !tolerates(spec.tolerations ?? [], t))
  if (untolerated) return fail(`node(s) had untolerated taint {${untolerated.key}: ${untolerated.value ?? ''}}`)
  if (!matchesNode(spec, node)) return fail("node(s) didn't match Pod's node affinity/selector")
  const allocatable = nodeAllocatable(node)
  const reasons: string[] = []
  let score = 0
  for (const [name, amount] of podRequests(spec)) {
    if (amount <= 0) continue
    const free = (allocatable.get(name) ?? 0) - (used?.get(name) ?? 0)
    if (amount > free) reasons.push(name === 'pods' ? 'Too many pods' : `Insufficient ${name}`)
    else if (name === 'cpu' || name === 'memory') score += (free - amount) / (allocatable.get(name) || 1)
  }
  return { fits: reasons.length === 0, reasons, preemptionMightHelp: reasons.length > 0, score }
}

/** "1 node(s) had …, 2 Insufficient nvidia.com/gpu": counts per reason, sorted as the scheduler sorts them. */
function tally(reasons: string[]): string {
  const counts = new Map<string, number>()
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1)
  return [...counts].map(([r, n]) => `${n} ${r}`).sort().join(', ')
}

export function unschedulableMessage(nodeCount: number, verdicts: Array<Pick<Verdict, 'reasons' | 'preemptionMightHelp'>>): string {
  if (nodeCount === 0) return 'no nodes available to schedule pods'
  const reasons = verdicts.flatMap((v) => v.reasons)
  const preemption = verdicts.map((v) => (v.preemptionMightHelp ? 'No preemption victims found for incoming pod' : 'Preemption is not helpful for scheduling'))
  return `0/${nodeCount} nodes are available: ${tally(reasons)}. preemption: 0/${nodeCount} nodes are available: ${tally(preemption)}..`
}

export function schedule(pod: KubeObject, nodes: KubeObject[], usage: Map<string, Map<string, number>>): ScheduleResult {
  const spec = podSpec(pod)
  const verdicts = nodes.map((node) => ({ node, ...judgeNode(spec, node, usage.get(node.metadata.name)) }))
  const fitting = verdicts.filter((v) => v.fits).sort((a, b) => b.score - a.score || (a.node.metadata.name < b.node.metadata.name ? -1 : 1))
  if (fitting.length > 0) return { node: fitting[0]!.node.metadata.name }
  return { unschedulable: unschedulableMessage(nodes.length, verdicts) }
}
