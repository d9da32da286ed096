/**
 * How a Deployment's rollout stands, judged by `kubectl rollout status`'s rules, and why its pods
 * do not come up, in words a user can act on. Inputs are the objects as read from the cluster
 * (typed client objects with Date fields, or raw JSON with strings: both are accepted).
 */

type Time = Date | string

interface Meta {
  name?: string
  uid?: string
  generation?: number
  labels?: Record<string, string>
  annotations?: Record<string, string>
  deletionTimestamp?: Time
  ownerReferences?: Array<{ uid?: string; controller?: boolean }>
}

export interface RolloutDeployment {
  metadata?: Meta
  spec?: { replicas?: number }
  status?: {
    observedGeneration?: number
    replicas?: number
    updatedReplicas?: number
    readyReplicas?: number
    availableReplicas?: number
    unavailableReplicas?: number
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>
  }
}

export interface RolloutReplicaSet {
  metadata?: Meta
  spec?: { replicas?: number }
}

interface ContainerState {
  waiting?: { reason?: string; message?: string }
  running?: { startedAt?: Time }
  terminated?: { exitCode?: number; reason?: string; message?: string }
}

interface ContainerStatus {
  name: string
  state?: ContainerState
  lastState?: ContainerState
  ready?: boolean
  restartCount?: number
}

export interface RolloutPod {
  metadata?: Meta
  spec?: { nodeName?: string }
  status?: {
    phase?: string
    startTime?: Time
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>
    initContainerStatuses?: ContainerStatus[]
    containerStatuses?: ContainerStatus[]
  }
}

export interface PodProblem {
  pod: string
  container?: string
  /** the container is an init container */
  init?: boolean
  /** ImagePullBackOff, ErrImagePull, CrashLoopBackOff, CreateContainerConfigError, InvalidImageName, OOMKilled, Unschedulable, … */
  reason: string
  message: string
  restarts: number
}

export type RolloutState = 'progressing' | 'complete' | 'failed'

export interface RolloutJudgement {
  state: RolloutState
  /**
   * SpecUpdateNotObserved, ReplicasNotUpdated, OldReplicasPendingTermination, ReplicasNotAvailable,
   * OldPodsTerminating (only with waitForOldPods), ProgressDeadlineExceeded, RolloutComplete
   */
  reason: string
  message: string
  /** the newest ReplicaSet's deployment.kubernetes.io/revision */
  revision?: string
  pods: PodProblem[]
}

export interface WorkerView {
  name: string
  node: string | null
  phase: string
  ready: boolean
  restarts: number
  startedAt: string | null
  reasons: string[]
}

const REVISION = 'deployment.kubernetes.io/revision'
const HASH_LABEL = 'pod-template-hash'
/** Waiting reasons that do not clear up by waiting: a user has something to fix. */
const STUCK = new Set(['ImagePullBackOff', 'ErrImagePull', 'CrashLoopBackOff', 'CreateContainerConfigError', 'CreateContainerError', 'InvalidImageName', 'RunContainerError'])

const iso = (t: Time | undefined): string | null => (t === undefined ? null : t instanceof Date ? t.toISOString() : t)

function podReady(pod: RolloutPod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
}

function problemsOf(pod: RolloutPod): PodProblem[] {
  const name = pod.metadata?.name ?? ''
  const out: PodProblem[] = []
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled')
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    out.push({ pod: name, reason: 'Unschedulable', message: scheduled.message ?? '', restarts: 0 })
  }
  const visit = (statuses: ContainerStatus[] | undefined, init: boolean) => {
    for (const c of statuses ?? []) {
      const restarts = c.restartCount ?? 0
      const base = { pod: name, container: c.name, ...(init ? { init: true } : {}), restarts }
      const last = c.lastState?.terminated
      if (last?.reason === 'OOMKilled' || c.state?.terminated?.reason === 'OOMKilled') {
        const waiting = c.state?.waiting?.message ? `; ${c.state.waiting.message}` : ''
        out.push({ ...base, reason: 'OOMKilled', message: `the container ran out of memory and was killed (exit code ${last?.exitCode ?? c.state?.terminated?.exitCode ?? 137})${waiting}` })
        continue
      }
      const waiting = c.state?.waiting
      if (waiting?.reason && STUCK.has(waiting.reason)) {
        let message = waiting.message ?? ''
        if (waiting.reason === 'CrashLoopBackOff' && last) message = `${message}${message ? '; ' : ''}last exit code ${last.exitCode ?? '?'} (${last.reason ?? 'Error'})`
        out.push({ ...base, reason: waiting.reason, message })
      }
    }
  }
  visit(pod.status?.initContainerStatuses, true)
  visit(pod.status?.containerStatuses, false)
  return out
}

/** Each pod's reasons for not serving that a user can act on, with the cluster's own messages. */
export function podProblems(pods: readonly RolloutPod[]): PodProblem[] {
  return pods.flatMap(problemsOf)
}

/** One pod as the API's workers list shows it. */
export function workerView(pod: RolloutPod): WorkerView {
  const reasons: string[] = []
  if (pod.metadata?.deletionTimestamp) reasons.push('Terminating')
  for (const p of problemsOf(pod)) if (!reasons.includes(p.reason)) reasons.push(p.reason)
  for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const r = c.state?.waiting?.reason
    if (r && !reasons.includes(r) && r !== 'CrashLoopBackOff') reasons.push(r)
  }
  return {
    name: pod.metadata?.name ?? '',
    node: pod.spec?.nodeName ?? null,
    phase: pod.status?.phase ?? 'Unknown',
    ready: podReady(pod),
    restarts: (pod.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0),
    startedAt: iso(pod.status?.startTime),
    reasons,
  }
}

function newestReplicaSet(deployment: RolloutDeployment, replicaSets: readonly RolloutReplicaSet[]): RolloutReplicaSet | undefined {
  const uid = deployment.metadata?.uid
  const mine = replicaSets.filter((rs) => !uid || !rs.metadata?.ownerReferences || rs.metadata.ownerReferences.some((o) => o.controller && o.uid === uid))
  const revision = (rs: RolloutReplicaSet) => Number(rs.metadata?.annotations?.[REVISION] ?? 0)
  return mine.reduce<RolloutReplicaSet | undefined>((best, rs) => (!best || revision(rs) > revision(best) ? rs : best), undefined)
}

function withFirstProblem(message: string, problems: PodProblem[]): string {
  const p = problems[0]
  if (!p) return message
  const who = p.container ? `pod ${p.pod}, container ${p.container}` : `pod ${p.pod}`
  return `${message} (${who}: ${p.reason}${p.message ? `: ${p.message}` : ''})`
}

/**
 * kubectl's rollout status rules: waiting while the controller has not observed the latest
 * generation, while fewer than spec.replicas are updated, while old replicas remain, while fewer
 * updated replicas are available than updated; Progressing=False/ProgressDeadlineExceeded is a
 * failure. With `waitForOldPods` (accelerators: terminating pods still hold their devices) it is
 * complete only once no pod of an older ReplicaSet (by pod-template-hash) is left, terminating or not.
 */
export function judgeRollout(input: {
  deployment: RolloutDeployment
  replicaSets: readonly RolloutReplicaSet[]
  pods: readonly RolloutPod[]
  waitForOldPods: boolean
}): RolloutJudgement {
  const { deployment: d, replicaSets, pods, waitForOldPods } = input
  const name = d.metadata?.name ?? ''
  const newest = newestReplicaSet(d, replicaSets)
  const revision = newest?.metadata?.annotations?.[REVISION] ?? d.metadata?.annotations?.[REVISION]
  const problems = podProblems(pods)
  const judged = (state: RolloutState, reason: string, message: string): RolloutJudgement => ({
    state,
    reason,
    message: state === 'complete' ? message : withFirstProblem(message, problems),
    ...(revision !== undefined ? { revision } : {}),
    pods: problems,
  })
  const status = d.status ?? {}
  if ((d.metadata?.generation ?? 0) > (status.observedGeneration ?? 0)) {
    return judged('progressing', 'SpecUpdateNotObserved', 'Waiting for deployment spec update to be observed...')
  }
  const progressing = status.conditions?.find((c) => c.type === 'Progressing')
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return judged('failed', 'ProgressDeadlineExceeded', `deployment "${name}" exceeded its progress deadline`)
  }
  const wanted = d.spec?.replicas ?? 1
  const updated = status.updatedReplicas ?? 0
  const replicas = status.replicas ?? 0
  const available = status.availableReplicas ?? 0
  const waiting = `Waiting for deployment "${name}" rollout to finish: `
  if (updated < wanted) return judged('progressing', 'ReplicasNotUpdated', `${waiting}${updated} out of ${wanted} new replicas have been updated...`)
  if (replicas > updated) return judged('progressing', 'OldReplicasPendingTermination', `${waiting}${replicas - updated} old replicas are pending termination...`)
  if (available < updated) return judged('progressing', 'ReplicasNotAvailable', `${waiting}${available} of ${updated} updated replicas are available...`)
  if (waitForOldPods) {
    // Without the newest ReplicaSet there is no telling old from new: the caller must pass them.
    const newHash = newest?.metadata?.labels?.[HASH_LABEL]
    const old = newHash === undefined ? [] : pods.filter((p) => p.metadata?.labels?.[HASH_LABEL] !== newHash)
    if (old.length > 0) {
      return judged('progressing', 'OldPodsTerminating', `${waiting}${old.length} old pods are still terminating...`)
    }
  }
  return judged('complete', 'RolloutComplete', `deployment "${name}" successfully rolled out`)
}
