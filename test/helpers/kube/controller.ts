import { type ResourceType } from './catalog.js'
import { type EventRecorder } from './events.js'
import { defaultedPod, ownerUid, podTemplateHash, podTerminated, randomSuffix } from './pod-spec.js'
import { type KubeObject, type ObjectStore, kubeTime } from './store.js'

/**
 * The deployment and replicaset controllers of kube-controller-manager, as far as rollouts go:
 * a Deployment owns ReplicaSets named `<deployment>-<pod-template-hash>`, rolls from old to new
 * by RollingUpdate (maxSurge/maxUnavailable) or Recreate, and writes its status with the counts
 * and the Available/Progressing conditions the real controller writes (compare
 * deployment-rollout-status-sequence.json), ProgressDeadlineExceeded included. A ReplicaSet keeps
 * its number of pods. Deleting an owner deletes what it owns (background garbage collection).
 *
 * Every function here reads the store, decides, and writes; the caller runs them off a queue fed
 * by store changes, never inside a store listener.
 */

type IntOrPercent = number | string

interface DeploymentSpec {
  replicas?: number
  selector?: { matchLabels?: Record<string, string> }
  template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: Record<string, unknown> }
  strategy?: { type?: string; rollingUpdate?: { maxSurge?: IntOrPercent; maxUnavailable?: IntOrPercent } }
  progressDeadlineSeconds?: number
  revisionHistoryLimit?: number
  paused?: boolean
}

interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  lastUpdateTime: string
  lastTransitionTime: string
  reason: string
  message: string
}

interface DeploymentStatus {
  observedGeneration?: number
  replicas?: number
  updatedReplicas?: number
  readyReplicas?: number
  availableReplicas?: number
  unavailableReplicas?: number
  conditions?: Condition[]
}

interface ReplicaSetStatus {
  replicas: number
  fullyLabeledReplicas?: number
  readyReplicas?: number
  availableReplicas?: number
  observedGeneration?: number
}

const REVISION = 'deployment.kubernetes.io/revision'
const DESIRED = 'deployment.kubernetes.io/desired-replicas'
const MAX_REPLICAS = 'deployment.kubernetes.io/max-replicas'
const HASH_LABEL = 'pod-template-hash'
const SOURCE = { deployment: { component: 'deployment-controller' }, replicaset: { component: 'replicaset-controller' } }

const specOf = (d: KubeObject) => (d.spec ?? {}) as DeploymentSpec
const rsReplicas = (rs: KubeObject) => Number((rs.spec as { replicas?: number } | undefined)?.replicas ?? 0)
const rsStatus = (rs: KubeObject) => (rs.status ?? { replicas: 0 }) as ReplicaSetStatus
const revisionOf = (rs: KubeObject) => Number(rs.metadata.annotations?.[REVISION] ?? 0)

/** An absolute number or a percentage of `total`; surge rounds up, unavailability down (intstr). */
function resolve(value: IntOrPercent | undefined, total: number, roundUp: boolean, fallback: string): number {
  const v = value ?? fallback
  if (typeof v === 'number') return v
  const m = /^(\d+)%$/.exec(v)
  if (!m) return Number(v) || 0
  const exact = (Number(m[1]) * total) / 100
  return roundUp ? Math.ceil(exact) : Math.floor(exact)
}

export function rollingParameters(d: KubeObject): { maxSurge: number; maxUnavailable: number } {
  const spec = specOf(d)
  const replicas = spec.replicas ?? 1
  if (spec.strategy?.type === 'Recreate') return { maxSurge: 0, maxUnavailable: 0 }
  const ru = spec.strategy?.rollingUpdate
  const maxSurge = resolve(ru?.maxSurge, replicas, true, '25%')
  let maxUnavailable = resolve(ru?.maxUnavailable, replicas, false, '25%')
  // Both zero would never make progress; the controller lets one pod be unavailable.
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1
  return { maxSurge, maxUnavailable: Math.min(maxUnavailable, replicas) }
}

function podReady(pod: KubeObject): boolean {
  const conditions = (pod.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? []
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True')
}

const active = (pod: KubeObject) => !pod.metadata.deletionTimestamp && !podTerminated(pod)

export interface ControllerDeps {
  store: ObjectStore
  deployments: ResourceType
  replicasets: ResourceType
  pods: ResourceType
  namespaces: ResourceType
  events: EventRecorder
  /** ms per Kubernetes second, for progressDeadlineSeconds */
  secondMs: number
  /** a graceful pod deletion; returns false when the pod has no kubelet and must simply go */
  deletePod(namespace: string, name: string): boolean
  /** ask for a sync of this deployment after `ms` (the progress deadline) */
  resyncAfter(namespace: string, name: string, ms: number): void
}

export function createControllers(deps: ControllerDeps) {
  const { store, events } = deps
  /** when each deployment (by uid) last made progress, in ms: condition times have only seconds */
  const progressAt = new Map<string, number>()

  const owned = (type: ResourceType, namespace: string, uid: string) => store.all(type, namespace).filter((o) => ownerUid(o) === uid)

  function deploymentEvent(d: KubeObject, message: string) {
    events.record({ involved: d, kind: 'Deployment', apiVersion: 'apps/v1', reason: 'ScalingReplicaSet', message, source: SOURCE.deployment })
  }

  function namespaceOpen(namespace: string): boolean {
    return !store.get(deps.namespaces, undefined, namespace)?.metadata.deletionTimestamp
  }

  // ---- replicasets ---------------------------------------------------------------------------

  /** Which pods go first when a ReplicaSet shrinks (kube's ActivePods ordering). */
  function deletionRank(pod: KubeObject): number[] {
    const status = (pod.status ?? {}) as { phase?: string; containerStatuses?: Array<{ restartCount?: number }> }
    const bound = (pod.spec as { nodeName?: string } | undefined)?.nodeName ? 1 : 0
    const phase = status.phase === 'Pending' ? 0 : status.phase === 'Running' ? 2 : 1
    const restarts = (status.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0)
    return [bound, phase, podReady(pod) ? 1 : 0, -restarts, -Date.parse(String(pod.metadata.creationTimestamp))]
  }

  function compareRank(a: number[], b: number[]): number {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
    return 0
  }

  function syncReplicaSet(namespace: string, name: string): void {
    const rs = store.get(deps.replicasets, namespace, name)
    if (!rs || rs.metadata.deletionTimestamp) return
    const uid = String(rs.metadata.uid)
    const want = rsReplicas(rs)
    let pods = owned(deps.pods, namespace, uid).filter(active)
    const rsEvent = (reason: string, message: string) =>
      events.record({ involved: rs, kind: 'ReplicaSet', apiVersion: 'apps/v1', reason, message, source: SOURCE.replicaset })
    if (pods.length < want && namespaceOpen(namespace)) {
      const template = (rs.spec as { template: DeploymentSpec['template'] }).template
      for (let i = pods.length; i < want; i++) {
        const podName = `${name}-${randomSuffix()}`
        const pod = store.insert(deps.pods, defaultedPod({
          metadata: {
            name: podName,
            generateName: `${name}-`,
            namespace,
            labels: { ...template.metadata?.labels },
            ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
            ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name, uid, controller: true, blockOwnerDeletion: true }],
          },
          spec: structuredClone(template.spec ?? {}),
        }))
        rsEvent('SuccessfulCreate', `Created pod: ${podName}`)
        pods.push(pod)
      }
    } else if (pods.length > want) {
      const doomed = [...pods].sort((a, b) => compareRank(deletionRank(a), deletionRank(b))).slice(0, pods.length - want)
      for (const pod of doomed) {
        if (!deps.deletePod(namespace, pod.metadata.name)) store.remove(deps.pods, namespace, pod.metadata.name)
        rsEvent('SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`)
      }
      const gone = new Set(doomed.map((p) => p.metadata.name))
      pods = pods.filter((p) => !gone.has(p.metadata.name))
    }
    const ready = pods.filter(podReady).length
    const status: ReplicaSetStatus = { replicas: pods.length }
    if (pods.length) status.fullyLabeledReplicas = pods.length
    if (ready) status.readyReplicas = ready
    // minReadySeconds is not modelled: a ready pod is available.
    if (ready) status.availableReplicas = ready
    status.observedGeneration = rs.metadata.generation ?? 1
    if (JSON.stringify(status) !== JSON.stringify(rs.status ?? {})) store.replace(deps.replicasets, { ...rs, status })
  }

  // ---- deployments ---------------------------------------------------------------------------

  function setCondition(conditions: Condition[], next: Condition): Condition[] {
    const current = conditions.find((c) => c.type === next.type)
    if (current && current.status === next.status && current.reason === next.reason) return conditions
    const c = current && current.status === next.status ? { ...next, lastTransitionTime: current.lastTransitionTime } : next
    return [...conditions.filter((x) => x.type !== next.type), c]
  }

  function condition(type: string, status: 'True' | 'False', reason: string, message: string): Condition {
    const now = kubeTime()
    return { type, status, lastUpdateTime: now, lastTransitionTime: now, reason, message }
  }

  function scale(d: KubeObject, rs: KubeObject, to: number): KubeObject {
    const from = rsReplicas(rs)
    const spec = specOf(d)
    const replicas = spec.replicas ?? 1
    const annotations = { ...rs.metadata.annotations, [DESIRED]: String(replicas), [MAX_REPLICAS]: String(replicas + rollingParameters(d).maxSurge) }
    if (from === to && rs.metadata.annotations?.[DESIRED] === annotations[DESIRED] && rs.metadata.annotations?.[MAX_REPLICAS] === annotations[MAX_REPLICAS]) return rs
    const next = store.replace(deps.replicasets, { ...rs, metadata: { ...rs.metadata, annotations }, spec: { ...(rs.spec as object), replicas: to } })
    if (to > from) deploymentEvent(d, `Scaled up replica set ${rs.metadata.name} to ${to}${from ? ` from ${from}` : ''}`)
    if (to < from) deploymentEvent(d, `Scaled down replica set ${rs.metadata.name} to ${to} from ${from}`)
    return next
  }

  function createReplicaSet(d: KubeObject, hash: string, replicas: number, revision: number): KubeObject {
    const spec = specOf(d)
    const name = `${d.metadata.name}-${hash}`
    const template = structuredClone(spec.template)
    template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, [HASH_LABEL]: hash } }
    const total = spec.replicas ?? 1
    const rs = store.insert(deps.replicasets, {
      metadata: {
        name,
        namespace: d.metadata.namespace,
        labels: { ...template.metadata.labels },
        annotations: { [DESIRED]: String(total), [MAX_REPLICAS]: String(total + rollingParameters(d).maxSurge), [REVISION]: String(revision) },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        replicas,
        selector: { matchLabels: { ...spec.selector?.matchLabels, [HASH_LABEL]: hash } },
        template,
      },
      status: { replicas: 0 },
    })
    if (replicas > 0) deploymentEvent(d, `Scaled up replica set ${name} to ${replicas}`)
    return rs
  }

  function oldPodsRunning(namespace: string, olds: KubeObject[]): boolean {
    return olds.some((rs) => owned(deps.pods, namespace, String(rs.metadata.uid)).some((p) => !podTerminated(p)))
  }

  /** One pass of the deployment controller over one Deployment. */
  function syncDeployment(namespace: string, name: string): void {
    const d = store.get(deps.deployments, namespace, name)
    if (!d || d.metadata.deletionTimestamp) return
    const spec = specOf(d)
    const uid = String(d.metadata.uid)
    const replicas = spec.replicas ?? 1
    const recreate = spec.strategy?.type === 'Recreate'
    const { maxSurge, maxUnavailable } = rollingParameters(d)
    const hash = podTemplateHash(spec.template)
    const byRevision = (a: KubeObject, b: KubeObject) => revisionOf(a) - revisionOf(b)
    let all = owned(deps.replicasets, namespace, uid).sort(byRevision)
    let newRS = all.find((rs) => rs.metadata.labels?.[HASH_LABEL] === hash)
    let olds = all.filter((rs) => rs !== newRS)
    const oldStatus = (d.status ?? {}) as DeploymentStatus
    let conditions = [...(oldStatus.conditions ?? [])]
    const hasDeadline = spec.progressDeadlineSeconds !== undefined && spec.progressDeadlineSeconds !== null
    const maxOldRevision = olds.reduce((m, rs) => Math.max(m, revisionOf(rs)), 0)

    const progressing = (reason: string, message: string) => {
      conditions = setCondition(conditions, condition('Progressing', 'True', reason, message))
      progressAt.set(uid, Date.now())
    }

    if (newRS && revisionOf(newRS) <= maxOldRevision) {
      // A template seen before (a rollback): its ReplicaSet becomes the newest revision again.
      newRS = store.replace(deps.replicasets, { ...newRS, metadata: { ...newRS.metadata, annotations: { ...newRS.metadata.annotations, [REVISION]: String(maxOldRevision + 1) } } })
    }
    if (newRS && hasDeadline && !conditions.some((c) => c.type === 'Progressing')) progressing('FoundNewReplicaSet', `Found new replica set "${newRS.metadata.name}"`)

    const activeOlds = () => olds.filter((rs) => rsReplicas(rs) > 0)
    const sum = (list: KubeObject[], f: (rs: KubeObject) => number) => list.reduce((n, rs) => n + f(rs), 0)
    const refresh = () => {
      all = owned(deps.replicasets, namespace, uid).sort(byRevision)
      newRS = all.find((rs) => rs.metadata.labels?.[HASH_LABEL] === hash)
      olds = all.filter((rs) => rs !== newRS)
    }
    const create = (count: number) => {
      newRS = createReplicaSet(d, hash, count, maxOldRevision + 1)
      if (hasDeadline) progressing('NewReplicaSetCreated', `Created new replica set "${newRS.metadata.name}"`)
      refresh()
    }

    if (!spec.paused) {
      if (recreate) {
        let scaledDown = false
        for (const rs of activeOlds()) {
          scale(d, rs, 0)
          scaledDown = true
        }
        refresh()
        if (!scaledDown && !oldPodsRunning(namespace, olds)) {
          if (!newRS) create(replicas)
          else if (rsReplicas(newRS) !== replicas) newRS = scale(d, newRS, replicas)
        }
      } else {
        if (!newRS) {
          const current = sum(all, rsReplicas)
          create(activeOlds().length === 0 ? replicas : Math.max(0, Math.min(replicas + maxSurge - current, replicas)))
        }
        const rsNew = newRS!
        if (activeOlds().length === 0) {
          // No rollout in flight: a change of spec.replicas scales the one ReplicaSet directly.
          if (rsReplicas(rsNew) !== replicas) newRS = scale(d, rsNew, replicas)
        } else if (!reconcileNew(d, rsNew, all, replicas, maxSurge)) {
          reconcileOlds(d, rsNew, activeOlds(), all, replicas, maxUnavailable)
        }
        refresh()
      }
    }

    // ---- status (calculateStatus + syncRolloutStatus) ----
    const current = newRS
    const available = sum(all, (rs) => rsStatus(rs).availableReplicas ?? 0)
    const status: DeploymentStatus = {
      observedGeneration: d.metadata.generation ?? 1,
      replicas: sum(all, (rs) => rsStatus(rs).replicas ?? 0),
      updatedReplicas: current ? (rsStatus(current).replicas ?? 0) : 0,
      readyReplicas: sum(all, (rs) => rsStatus(rs).readyReplicas ?? 0),
      availableReplicas: available,
      unavailableReplicas: Math.max(0, sum(all, rsReplicas) - available),
    }
    const minAvailable = replicas - (recreate || replicas === 0 ? 0 : maxUnavailable)
    conditions = setCondition(conditions, available >= minAvailable
      ? condition('Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.')
      : condition('Available', 'False', 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.'))

    const rsName = current ? `ReplicaSet "${current.metadata.name}"` : 'Deployment'
    const currentProgress = conditions.find((c) => c.type === 'Progressing')
    const settled = status.replicas === status.updatedReplicas && currentProgress?.reason === 'NewReplicaSetAvailable'
    if (!hasDeadline) conditions = conditions.filter((c) => c.type !== 'Progressing')
    else if (!settled) {
      const complete = status.updatedReplicas === replicas && status.replicas === replicas && status.availableReplicas === replicas && (status.observedGeneration ?? 0) >= (d.metadata.generation ?? 1)
      const oldOld = (oldStatus.replicas ?? 0) - (oldStatus.updatedReplicas ?? 0)
      const newOld = (status.replicas ?? 0) - (status.updatedReplicas ?? 0)
      const moved = (status.updatedReplicas ?? 0) > (oldStatus.updatedReplicas ?? 0) || newOld < oldOld ||
        (status.readyReplicas ?? 0) > (oldStatus.readyReplicas ?? 0) || available > (oldStatus.availableReplicas ?? 0)
      if (complete) {
        conditions = setCondition(conditions, condition('Progressing', 'True', 'NewReplicaSetAvailable', `${rsName} has successfully progressed.`))
        progressAt.delete(uid)
      } else if (moved) {
        const next = condition('Progressing', 'True', 'ReplicaSetUpdated', `${rsName} is progressing.`)
        // Progress refreshes lastUpdateTime even under the same reason; the transition time stays.
        if (currentProgress?.status === 'True') next.lastTransitionTime = currentProgress.lastTransitionTime
        conditions = [...conditions.filter((c) => c.type !== 'Progressing'), next]
        progressAt.set(uid, Date.now())
      } else if (currentProgress && currentProgress.reason !== 'NewReplicaSetAvailable' && currentProgress.reason !== 'ProgressDeadlineExceeded') {
        const since = progressAt.get(uid) ?? Date.parse(currentProgress.lastUpdateTime)
        const deadlineMs = spec.progressDeadlineSeconds! * deps.secondMs
        if (Date.now() - since > deadlineMs) {
          conditions = setCondition(conditions, condition('Progressing', 'False', 'ProgressDeadlineExceeded', `${rsName} has timed out progressing.`))
        } else {
          deps.resyncAfter(namespace, name, since + deadlineMs - Date.now() + 1)
        }
      }
    }
    if (conditions.length) status.conditions = conditions
    for (const key of ['replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas', 'unavailableReplicas'] as const) {
      if (!status[key]) delete status[key]
    }

    if (current && status.updatedReplicas === replicas && status.replicas === replicas && available === replicas) cleanup(d, olds)

    const annotations = current ? { ...d.metadata.annotations, [REVISION]: String(revisionOf(current)) } : d.metadata.annotations
    const metaChanged = JSON.stringify(annotations ?? {}) !== JSON.stringify(d.metadata.annotations ?? {})
    if (metaChanged || JSON.stringify(status) !== JSON.stringify(oldStatus)) {
      store.replace(deps.deployments, { ...d, metadata: { ...d.metadata, ...(annotations ? { annotations } : {}) }, status })
    }
  }

  /** Scale the new ReplicaSet up as far as maxSurge allows (or down to spec.replicas); true when it changed. */
  function reconcileNew(d: KubeObject, newRS: KubeObject, all: KubeObject[], replicas: number, maxSurge: number): boolean {
    const have = rsReplicas(newRS)
    if (have === replicas) return false
    if (have > replicas) return scale(d, newRS, replicas) !== newRS
    const current = all.reduce((n, rs) => n + rsReplicas(rs), 0)
    const room = replicas + maxSurge - current
    if (room <= 0) return false
    const to = have + Math.min(room, replicas - have)
    return scale(d, newRS, to) !== newRS
  }

  /** Scale old ReplicaSets down as far as maxUnavailable allows: unhealthy pods first, then oldest first. */
  function reconcileOlds(d: KubeObject, newRS: KubeObject, olds: KubeObject[], all: KubeObject[], replicas: number, maxUnavailable: number): void {
    const allPods = all.reduce((n, rs) => n + rsReplicas(rs), 0)
    const minAvailable = replicas - maxUnavailable
    const newUnavailable = rsReplicas(newRS) - (rsStatus(newRS).availableReplicas ?? 0)
    let budget = allPods - minAvailable - newUnavailable
    if (budget <= 0) return
    const counts = new Map(olds.map((rs) => [rs.metadata.name, rsReplicas(rs)]))
    for (const rs of olds) {
      if (budget <= 0) break
      const unhealthy = rsReplicas(rs) - (rsStatus(rs).availableReplicas ?? 0)
      if (unhealthy <= 0) continue
      const down = Math.min(budget, unhealthy)
      counts.set(rs.metadata.name, rsReplicas(rs) - down)
      budget -= down
    }
    const availableNow = all.reduce((n, rs) => n + (rsStatus(rs).availableReplicas ?? 0), 0)
    let toScaleDown = availableNow - minAvailable
    for (const rs of olds) {
      if (toScaleDown <= 0) break
      const have = counts.get(rs.metadata.name)!
      const down = Math.min(have, toScaleDown)
      if (down <= 0) continue
      counts.set(rs.metadata.name, have - down)
      toScaleDown -= down
    }
    for (const rs of olds) if (counts.get(rs.metadata.name) !== rsReplicas(rs)) scale(d, rs, counts.get(rs.metadata.name)!)
  }

  /** Old ReplicaSets beyond revisionHistoryLimit, emptied, are deleted oldest first. */
  function cleanup(d: KubeObject, olds: KubeObject[]): void {
    const limit = specOf(d).revisionHistoryLimit ?? 10
    const empty = olds.filter((rs) => rsReplicas(rs) === 0 && (rsStatus(rs).replicas ?? 0) === 0)
    for (const rs of empty.slice(0, Math.max(0, empty.length - limit))) store.remove(deps.replicasets, rs.metadata.namespace, rs.metadata.name)
  }

  return {
    syncDeployment,
    syncReplicaSet,
    /** Background garbage collection: what an owner that is gone owned goes too. */
    collect(ownerKind: 'Deployment' | 'ReplicaSet', namespace: string, uid: string): void {
      if (ownerKind === 'Deployment') {
        progressAt.delete(uid)
        for (const rs of owned(deps.replicasets, namespace, uid)) store.remove(deps.replicasets, namespace, rs.metadata.name)
        return
      }
      for (const pod of owned(deps.pods, namespace, uid)) {
        if (!deps.deletePod(namespace, pod.metadata.name)) store.remove(deps.pods, namespace, pod.metadata.name)
      }
    },
  }
}

export type Controllers = ReturnType<typeof createControllers>
