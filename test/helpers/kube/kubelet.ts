import { createHash, randomBytes } from 'node:crypto'
import { type ResourceType } from './catalog.js'
import { type EventRecorder } from './events.js'
import { type Container, podSpec } from './pod-spec.js'
import { type RuntimeProcess, runtimeConfig, startProcess, startupLines } from './runtime-sim.js'
import { type KubeObject, type ObjectStore, kubeTime } from './store.js'

/**
 * The kubelets of a stand-in cluster: what happens to a pod once the scheduler has bound it.
 * Volumes are mounted (a missing Secret or ConfigMap volume keeps it ContainerCreating), init
 * containers run one after another, then the containers: image pulled (or ErrImagePull and
 * ImagePullBackOff), configuration resolved (a missing Secret or ConfigMap key in env is
 * CreateContainerConfigError), created, started, ready after a while; a crash or an OOM kill
 * restarts it with CrashLoopBackOff in between, its restartCount growing. A deleted pod stays
 * with its deletionTimestamp until its containers stopped. Status and events are written as the
 * kubelet writes them, so rollout judgement meets the shapes a real cluster produces.
 *
 * What each workload does is decided by behaviour rules, matched by container image or pod labels.
 */

export interface PodBehaviour {
  /** from container start to ready (readiness probe passing); default: the cluster's readyAfterMs */
  readyAfterMs?: number
  /** the readiness probe never passes */
  neverReady?: boolean
  /** the image cannot be pulled; a string is the runtime's error message */
  imagePullError?: boolean | string
  /** the process exits with this code (default 1) `afterMs` (default 20) after it starts, for the first `times` runs (default every run) */
  crash?: boolean | { afterMs?: number; exitCode?: number; lines?: string[]; times?: number }
  /** the kernel kills it for memory `afterMs` after it starts: OOMKilled, exit code 137 */
  oomKill?: boolean | { afterMs?: number; times?: number }
  /** no node will take it; a string is the scheduler's message */
  unschedulable?: boolean | string
  /** how long its containers take to stop after a deletion (bounded by the grace period) */
  terminationMs?: number
  /** an init container's run time before it completes (default 10 ms) */
  runMs?: number
}

export interface BehaviourRule extends PodBehaviour {
  /** a substring of the container image, or a pattern */
  image?: string | RegExp
  /** labels the pod carries (all of them) */
  labels?: Record<string, string>
  /** only this container */
  container?: string
}

export interface KubeletOptions {
  /** how many ms stand for one Kubernetes second in back-offs and grace periods (default 10) */
  secondMs: number
  readyAfterMs: number
  terminationMs: number
  pullMs: number
}

interface LogLine {
  at: string
  text: string
}

export interface LogFollower {
  line(l: LogLine): void
  end(): void
}

type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: Terminated }

interface Terminated {
  exitCode: number
  reason: string
  message?: string
  startedAt: string
  finishedAt: string
  containerID: string
}

export interface ContainerRun {
  spec: Container
  init: boolean
  state: State
  lastState: { terminated?: Terminated }
  restartCount: number
  ready: boolean
  started: boolean
  imageID: string
  containerID?: string
  logs: LogLine[]
  previous?: LogLine[]
  followers: Set<LogFollower>
  process?: RuntimeProcess
  /** crash/image back-off, in Kubernetes seconds */
  backoff: number
  /** runs that ended in a crash or kill, for `times` */
  crashes: number
}

export interface PodRun {
  namespace: string
  name: string
  uid: string
  node: string
  hostIP: string
  podIP: string
  startTime: string
  inits: ContainerRun[]
  mains: ContainerRun[]
  timers: Set<NodeJS.Timeout>
  conditionTimes: Map<string, { status: string; at: string }>
  terminating: boolean
  gone: boolean
}

const MAX_LOG_LINES = 5000
const MAX_BACKOFF_SECONDS = 300
const IMAGE_REFERENCE = /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/

const nanoTime = () => new Date().toISOString().replace('Z', '000000Z')

/** docker.io/library/nginx:latest from nginx, as containerd names what it pulls. */
export function qualifiedImage(image: string): string {
  const first = image.split('/')[0]!
  const hasRegistry = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')
  let ref = hasRegistry ? image : image.includes('/') ? `docker.io/${image}` : `docker.io/library/${image}`
  if (!ref.includes('@') && !/:[^/]+$/.test(ref)) ref += ':latest'
  return ref
}

function ruleMatches(rule: BehaviourRule, pod: KubeObject, c: Container): boolean {
  if (rule.container !== undefined && rule.container !== c.name) return false
  if (rule.image !== undefined) {
    const image = c.image ?? ''
    if (typeof rule.image === 'string' ? !image.includes(rule.image) : !rule.image.test(image)) return false
  }
  if (rule.labels) {
    const labels = pod.metadata.labels ?? {}
    if (!Object.entries(rule.labels).every(([k, v]) => labels[k] === v)) return false
  }
  return true
}

export function behaviourFor(rules: readonly BehaviourRule[], pod: KubeObject, c: Container): PodBehaviour {
  const out: PodBehaviour = {}
  for (const rule of rules) {
    if (!ruleMatches(rule, pod, c)) continue
    const { image: _i, labels: _l, container: _c, ...behaviour } = rule
    Object.assign(out, behaviour)
  }
  return out
}

export interface KubeletDeps {
  store: ObjectStore
  pods: ResourceType
  secrets: ResourceType
  configmaps: ResourceType
  nodes: ResourceType
  events: EventRecorder
  options: KubeletOptions
  rules(): readonly BehaviourRule[]
}

export function createKubelet(deps: KubeletDeps) {
  const { store, events, options } = deps
  const runs = new Map<string, PodRun>()
  const imagesOnNode = new Map<string, Set<string>>()
  let nextIp = 0

  const keyOf = (ns: string, name: string) => `${ns}/${name}`
  const sec = (seconds: number) => seconds * options.secondMs

  function podObject(run: PodRun): KubeObject | undefined {
    const pod = store.get(deps.pods, run.namespace, run.name)
    return pod && pod.metadata.uid === run.uid ? pod : undefined
  }

  function after(run: PodRun, ms: number, fn: () => void) {
    if (run.gone) return
    const timer = setTimeout(() => {
      run.timers.delete(timer)
      if (!run.gone) fn()
    }, Math.max(0, ms))
    timer.unref()
    run.timers.add(timer)
  }

  function event(run: PodRun, c: ContainerRun | undefined, reason: string, message: string, type: 'Normal' | 'Warning' = 'Normal') {
    const pod = podObject(run)
    if (!pod) return
    events.record({
      involved: pod,
      kind: 'Pod',
      apiVersion: 'v1',
      reason,
      message,
      type,
      source: { component: 'kubelet', host: run.node },
      ...(c ? { fieldPath: `spec.${c.init ? 'initContainers' : 'containers'}{${c.spec.name}}` } : {}),
    })
  }

  function log(c: ContainerRun, text: string) {
    const line = { at: nanoTime(), text }
    c.logs.push(line)
    if (c.logs.length > MAX_LOG_LINES) c.logs.splice(0, c.logs.length - MAX_LOG_LINES)
    for (const f of c.followers) f.line(line)
  }

  function endFollowers(c: ContainerRun) {
    for (const f of c.followers) f.end()
    c.followers.clear()
  }

  // ---- status -------------------------------------------------------------------------------

  function containerStatus(c: ContainerRun) {
    return {
      name: c.spec.name,
      state: c.state,
      lastState: c.lastState,
      ready: c.ready,
      restartCount: c.restartCount,
      image: c.spec.image ?? '',
      imageID: c.imageID,
      ...(c.containerID ? { containerID: c.containerID } : {}),
      started: c.started,
    }
  }

  const isWaiting = (c: ContainerRun) => 'waiting' in c.state
  const initDone = (c: ContainerRun) => 'terminated' in c.state && c.state.terminated.exitCode === 0

  /** The kubelet's getPhase for restartPolicy Always. */
  function phaseOf(run: PodRun): string {
    if (!run.inits.every(initDone)) return 'Pending'
    const waiting = run.mains.filter((c) => isWaiting(c) && !c.lastState.terminated).length
    return waiting > 0 ? 'Pending' : 'Running'
  }

  function condition(run: PodRun, type: string, ok: boolean, reason?: string, message?: string) {
    const status = ok ? 'True' : 'False'
    const known = run.conditionTimes.get(type)
    const at = known && known.status === status ? known.at : kubeTime()
    run.conditionTimes.set(type, { status, at })
    return { type, status, lastProbeTime: null, lastTransitionTime: at, ...(reason ? { reason } : {}), ...(message ? { message } : {}) }
  }

  function writeStatus(run: PodRun) {
    const pod = podObject(run)
    if (!pod) return
    const pendingInits = run.inits.filter((c) => !initDone(c)).map((c) => c.spec.name)
    const unready = run.mains.filter((c) => !c.ready).map((c) => c.spec.name)
    const old = (pod.status ?? {}) as Record<string, unknown>
    const status: Record<string, unknown> = {
      phase: phaseOf(run),
      conditions: [
        pendingInits.length
          ? condition(run, 'Initialized', false, 'ContainersNotInitialized', `containers with incomplete status: [${pendingInits.join(' ')}]`)
          : condition(run, 'Initialized', true),
        unready.length ? condition(run, 'Ready', false, 'ContainersNotReady', `containers with unready status: [${unready.join(' ')}]`) : condition(run, 'Ready', true),
        unready.length
          ? condition(run, 'ContainersReady', false, 'ContainersNotReady', `containers with unready status: [${unready.join(' ')}]`)
          : condition(run, 'ContainersReady', true),
        condition(run, 'PodScheduled', true),
      ],
      hostIP: run.hostIP,
      podIP: run.podIP,
      podIPs: [{ ip: run.podIP }],
      startTime: run.startTime,
      ...(run.inits.length ? { initContainerStatuses: run.inits.map(containerStatus) } : {}),
      containerStatuses: run.mains.map(containerStatus),
      qosClass: old.qosClass ?? 'BestEffort',
    }
    store.replace(deps.pods, { ...pod, status })
  }

  // ---- containers ---------------------------------------------------------------------------

  function behaviour(run: PodRun, c: ContainerRun): PodBehaviour {
    const pod = podObject(run)
    return pod ? behaviourFor(deps.rules(), pod, c.spec) : {}
  }

  function nextBackoff(c: ContainerRun): number {
    c.backoff = c.backoff === 0 ? 10 : Math.min(c.backoff * 2, MAX_BACKOFF_SECONDS)
    return c.backoff
  }

  function pullError(image: string, b: PodBehaviour): string {
    if (typeof b.imagePullError === 'string') return b.imagePullError
    const ref = qualifiedImage(image)
    return `rpc error: code = NotFound desc = failed to pull and unpack image "${ref}": failed to resolve reference "${ref}": ${ref}: not found`
  }

  /** The first Secret/ConfigMap (or key of one) the container's environment needs and the namespace lacks. */
  function missingConfig(run: PodRun, c: Container): string | undefined {
    const secret = (name: string) => store.get(deps.secrets, run.namespace, name)
    const configMap = (name: string) => store.get(deps.configmaps, run.namespace, name)
    for (const from of c.envFrom ?? []) {
      if (from.secretRef && !from.secretRef.optional && !secret(from.secretRef.name)) return `secret "${from.secretRef.name}" not found`
      if (from.configMapRef && !from.configMapRef.optional && !configMap(from.configMapRef.name)) return `configmap "${from.configMapRef.name}" not found`
    }
    for (const env of c.env ?? []) {
      const s = env.valueFrom?.secretKeyRef
      if (s && !s.optional) {
        const obj = secret(s.name)
        if (!obj) return `secret "${s.name}" not found`
        const data = { ...(obj.data as Record<string, string> | undefined), ...(obj.stringData as Record<string, string> | undefined) }
        if (!(s.key in data)) return `couldn't find key ${s.key} in Secret ${run.namespace}/${s.name}`
      }
      const m = env.valueFrom?.configMapKeyRef
      if (m && !m.optional) {
        const obj = configMap(m.name)
        if (!obj) return `configmap "${m.name}" not found`
        if (!(m.key in ((obj.data as Record<string, string> | undefined) ?? {}))) return `couldn't find key ${m.key} in ConfigMap ${run.namespace}/${m.name}`
      }
    }
    return undefined
  }

  function resolvedEnv(run: PodRun, c: Container): Record<string, string> {
    const out: Record<string, string> = {}
    const secretData = (name: string): Record<string, string> => {
      const obj = store.get(deps.secrets, run.namespace, name)
      const data: Record<string, string> = {}
      for (const [k, v] of Object.entries((obj?.data as Record<string, string> | undefined) ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8')
      return { ...data, ...((obj?.stringData as Record<string, string> | undefined) ?? {}) }
    }
    const configData = (name: string) => (store.get(deps.configmaps, run.namespace, name)?.data as Record<string, string> | undefined) ?? {}
    for (const from of c.envFrom ?? []) {
      if (from.secretRef) Object.assign(out, secretData(from.secretRef.name))
      if (from.configMapRef) Object.assign(out, configData(from.configMapRef.name))
    }
    for (const env of c.env ?? []) {
      if (env.value !== undefined) out[env.name] = env.value
      else if (env.valueFrom?.secretKeyRef) {
        const v = secretData(env.valueFrom.secretKeyRef.name)[env.valueFrom.secretKeyRef.key]
        if (v !== undefined) out[env.name] = v
      } else if (env.valueFrom?.configMapKeyRef) {
        const v = configData(env.valueFrom.configMapKeyRef.name)[env.valueFrom.configMapKeyRef.key]
        if (v !== undefined) out[env.name] = v
      }
    }
    return out
  }

  function startContainer(run: PodRun, c: ContainerRun, onCompleted: () => void) {
    const image = c.spec.image ?? ''
    if (!IMAGE_REFERENCE.test(image)) {
      c.state = { waiting: { reason: 'InvalidImageName', message: `Failed to apply default image tag "${image}": couldn't parse image reference "${image}": invalid reference format` } }
      event(run, c, 'InspectFailed', `Failed to apply default image tag "${image}": couldn't parse image reference "${image}": invalid reference format`, 'Warning')
      event(run, c, 'Failed', 'Error: InvalidImageName', 'Warning')
      return writeStatus(run)
    }
    const b = behaviour(run, c)
    const present = imagesOnNode.get(run.node)?.has(image) && c.spec.imagePullPolicy !== 'Always'
    if (b.imagePullError) {
      event(run, c, 'Pulling', `Pulling image "${image}"`)
      const message = pullError(image, b)
      after(run, options.pullMs, () => {
        c.state = { waiting: { reason: 'ErrImagePull', message } }
        event(run, c, 'Failed', `Failed to pull image "${image}": ${message}`, 'Warning')
        event(run, c, 'Failed', 'Error: ErrImagePull', 'Warning')
        writeStatus(run)
        const backoff = nextBackoff(c)
        // The back-off shows for a while; then the kubelet tries the pull again.
        after(run, Math.min(sec(1), sec(backoff) / 2), () => {
          c.state = { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } }
          event(run, c, 'BackOff', `Back-off pulling image "${image}"`)
          event(run, c, 'Failed', 'Error: ImagePullBackOff', 'Warning')
          writeStatus(run)
          after(run, sec(backoff), () => startContainer(run, c, onCompleted))
        })
      })
      return
    }
    if (present) {
      event(run, c, 'Pulled', `Container image "${image}" already present on machine`)
      return createContainer(run, c, onCompleted)
    }
    event(run, c, 'Pulling', `Pulling image "${image}"`)
    after(run, options.pullMs, () => {
      let images = imagesOnNode.get(run.node)
      if (!images) imagesOnNode.set(run.node, (images = new Set()))
      images.add(image)
      event(run, c, 'Pulled', `Successfully pulled image "${image}" in 1.204s (1.204s including waiting)`)
      createContainer(run, c, onCompleted)
    })
  }

  function createContainer(run: PodRun, c: ContainerRun, onCompleted: () => void) {
    const image = c.spec.image ?? ''
    c.imageID = `${qualifiedImage(image).replace(/:[^/:@]+$/, '').replace(/@.*$/, '')}@sha256:${createHash('sha256').update(image).digest('hex')}`
    const missing = missingConfig(run, c.spec)
    if (missing) {
      c.state = { waiting: { reason: 'CreateContainerConfigError', message: missing } }
      event(run, c, 'Failed', `Error: ${missing}`, 'Warning')
      writeStatus(run)
      // The kubelet tries again on its next sync: the Secret may have been created since.
      after(run, sec(10), () => createContainer(run, c, onCompleted))
      return
    }
    const startedAt = kubeTime()
    c.containerID = `containerd://${randomBytes(32).toString('hex')}`
    c.state = { running: { startedAt } }
    c.ready = false
    c.started = false
    event(run, c, 'Created', `Created container ${c.spec.name}`)
    event(run, c, 'Started', `Started container ${c.spec.name}`)
    const b = behaviour(run, c)
    const cfg = runtimeConfig(c.spec, resolvedEnv(run, c.spec))
    c.process = startProcess(cfg, () => c.ready)
    for (const line of startupLines(cfg)) log(c, line)
    writeStatus(run)

    const crash = b.oomKill
      ? { afterMs: 20, exitCode: 137, reason: 'OOMKilled', times: Infinity, lines: [] as string[], ...(typeof b.oomKill === 'object' ? b.oomKill : {}) }
      : b.crash
        ? { afterMs: 20, exitCode: 1, reason: 'Error', times: Infinity, lines: ['Traceback (most recent call last):', 'RuntimeError: Engine core initialization failed. See root cause above.'], ...(typeof b.crash === 'object' ? b.crash : {}) }
        : undefined
    if (crash && c.crashes < crash.times) {
      after(run, crash.afterMs, () => {
        for (const line of crash.lines) log(c, line)
        exitContainer(run, c, crash.exitCode, crash.reason, onCompleted)
      })
    }
    if (c.init) {
      if (!crash || c.crashes >= crash.times) after(run, b.runMs ?? 10, () => exitContainer(run, c, 0, 'Completed', onCompleted))
      return
    }
    if (!b.neverReady) {
      after(run, b.readyAfterMs ?? options.readyAfterMs, () => {
        if (!('running' in c.state) || run.terminating) return
        c.ready = true
        c.started = true
        writeStatus(run)
      })
    } else {
      after(run, Math.max(b.readyAfterMs ?? options.readyAfterMs, 1), () => {
        c.started = true
        event(run, c, 'Unhealthy', 'Readiness probe failed: HTTP probe failed with statuscode: 503', 'Warning')
        writeStatus(run)
      })
    }
  }

  /** The container's process ended: completed (init), or crashed/killed and restarted after a back-off. */
  function exitContainer(run: PodRun, c: ContainerRun, exitCode: number, reason: string, onCompleted: () => void) {
    if (!('running' in c.state)) return
    const terminated: Terminated = {
      exitCode,
      reason,
      startedAt: c.state.running.startedAt,
      finishedAt: kubeTime(),
      containerID: c.containerID ?? '',
    }
    c.process = undefined
    c.ready = false
    c.started = false
    endFollowers(c)
    if (exitCode === 0 && c.init) {
      c.state = { terminated }
      writeStatus(run)
      return onCompleted()
    }
    c.crashes++
    c.lastState = { terminated }
    c.previous = c.logs
    c.logs = []
    const backoff = nextBackoff(c)
    const podRef = `${run.name}_${run.namespace}(${run.uid})`
    c.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${backoff}s restarting failed container=${c.spec.name} pod=${podRef}` } }
    event(run, c, 'BackOff', `Back-off restarting failed container ${c.spec.name} in pod ${podRef}`, 'Warning')
    writeStatus(run)
    after(run, sec(backoff), () => {
      if (run.terminating) return
      c.restartCount++
      event(run, c, 'Pulled', `Container image "${c.spec.image ?? ''}" already present on machine`)
      createContainer(run, c, onCompleted)
    })
  }

  function runInits(run: PodRun, i: number) {
    if (i >= run.inits.length) return startMains(run)
    startContainer(run, run.inits[i]!, () => runInits(run, i + 1))
  }

  function startMains(run: PodRun) {
    for (const c of run.mains) {
      c.state = { waiting: { reason: 'ContainerCreating' } }
    }
    writeStatus(run)
    for (const c of run.mains) startContainer(run, c, () => {})
  }

  function missingVolume(run: PodRun): string | undefined {
    for (const v of podSpec(podObject(run)!).volumes ?? []) {
      if (v.secret && !v.secret.optional && !store.get(deps.secrets, run.namespace, v.secret.secretName)) {
        return `MountVolume.SetUp failed for volume "${v.name}" : secret "${v.secret.secretName}" not found`
      }
      if (v.configMap && !v.configMap.optional && !store.get(deps.configmaps, run.namespace, v.configMap.name)) {
        return `MountVolume.SetUp failed for volume "${v.name}" : configmap "${v.configMap.name}" not found`
      }
    }
    return undefined
  }

  function mountVolumes(run: PodRun) {
    if (!podObject(run)) return
    const missing = missingVolume(run)
    if (missing) {
      event(run, undefined, 'FailedMount', missing, 'Warning')
      after(run, sec(10), () => mountVolumes(run))
      return
    }
    runInits(run, 0)
  }

  function newContainer(spec: Container, init: boolean, waitingReason: string): ContainerRun {
    return {
      spec,
      init,
      state: { waiting: { reason: waitingReason } },
      lastState: {},
      restartCount: 0,
      ready: false,
      started: false,
      imageID: '',
      logs: [],
      followers: new Set(),
      backoff: 0,
      crashes: 0,
    }
  }

  function hostIPOf(nodeName: string): string {
    const node = store.get(deps.nodes, undefined, nodeName)
    const addresses = ((node?.status as { addresses?: Array<{ type: string; address: string }> } | undefined)?.addresses) ?? []
    return addresses.find((a) => a.type === 'InternalIP')?.address ?? '10.0.0.1'
  }

  function stopRun(run: PodRun) {
    run.gone = true
    for (const t of run.timers) clearTimeout(t)
    run.timers.clear()
    for (const c of [...run.inits, ...run.mains]) {
      c.process = undefined
      endFollowers(c)
    }
  }

  return {
    /** The scheduler bound the pod to a node: write the binding and start the pod there. */
    bind(pod: KubeObject, nodeName: string): void {
      const ns = pod.metadata.namespace ?? 'default'
      const spec = podSpec(pod)
      nextIp++
      const run: PodRun = {
        namespace: ns,
        name: pod.metadata.name,
        uid: String(pod.metadata.uid),
        node: nodeName,
        hostIP: hostIPOf(nodeName),
        podIP: `10.244.${(nextIp >> 8) & 255}.${nextIp & 255}`,
        startTime: kubeTime(),
        inits: (spec.initContainers ?? []).map((c) => newContainer(c, true, 'PodInitializing')),
        mains: spec.containers.map((c) => newContainer(c, false, spec.initContainers?.length ? 'PodInitializing' : 'ContainerCreating')),
        timers: new Set(),
        conditionTimes: new Map(),
        terminating: false,
        gone: false,
      }
      const earlier = runs.get(keyOf(ns, run.name))
      if (earlier) stopRun(earlier)
      runs.set(keyOf(ns, run.name), run)
      store.replace(deps.pods, { ...pod, spec: { ...spec, nodeName } })
      writeStatus(run)
      after(run, 0, () => mountVolumes(run))
    },

    /** The pod left the store (deleted for good, or with its namespace). */
    forget(namespace: string, name: string, uid: string | undefined): void {
      const run = runs.get(keyOf(namespace, name))
      if (!run || (uid && run.uid !== uid)) return
      stopRun(run)
      runs.delete(keyOf(namespace, name))
    },

    /**
     * A DELETE of a pod this kubelet runs: it is marked with deletionTimestamp and removed when its
     * containers have stopped (terminationMs, at most the grace period). Undefined for pods it
     * does not run (the API server removes those at once).
     */
    deletePod(namespace: string, name: string, graceSeconds?: number): KubeObject | undefined {
      const run = runs.get(keyOf(namespace, name))
      const pod = run && podObject(run)
      if (!run || !pod) return undefined
      if (run.terminating) return pod
      const grace = graceSeconds ?? podSpec(pod).terminationGracePeriodSeconds ?? 30
      if (grace === 0) return undefined
      run.terminating = true
      const deletionTimestamp = kubeTime(new Date(Date.now() + grace * 1000))
      const marked = store.replace(deps.pods, { ...pod, metadata: { ...pod.metadata, deletionTimestamp, deletionGracePeriodSeconds: grace } })
      for (const c of run.mains) if ('running' in c.state) event(run, c, 'Killing', `Stopping container ${c.spec.name}`)
      const b = run.mains[0] ? behaviour(run, run.mains[0]) : {}
      const stopMs = Math.min(b.terminationMs ?? options.terminationMs, sec(grace))
      for (const t of run.timers) clearTimeout(t)
      run.timers.clear()
      after(run, stopMs, () => {
        stopRun(run)
        runs.delete(keyOf(namespace, name))
        store.remove(deps.pods, namespace, name)
      })
      return marked
    },

    run(namespace: string, name: string): PodRun | undefined {
      return runs.get(keyOf(namespace, name))
    },

    log,

    /** Ends the container's current run as a crash would (exit code, reason), for restart tests. */
    kill(namespace: string, name: string, container: string | undefined, exitCode: number, reason: string): void {
      const run = runs.get(keyOf(namespace, name))
      const c = run && (container ? run.mains.find((m) => m.spec.name === container) : run.mains[0])
      if (!run || !c || !('running' in c.state)) throw new Error(`no running container ${container ?? ''} in pod ${namespace}/${name}`)
      exitContainer(run, c, exitCode, reason, () => {})
    },

    close(): void {
      for (const run of runs.values()) stopRun(run)
      runs.clear()
    },
  }
}

export type Kubelet = ReturnType<typeof createKubelet>
