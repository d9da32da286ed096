import { type Catalog, type ResourceType } from './catalog.js'
import { createControllers } from './controller.js'
import { createEventRecorder } from './events.js'
import { type BehaviourRule, type PodBehaviour, behaviourFor, createKubelet } from './kubelet.js'
import { ownerUid, podSpec } from './pod-spec.js'
import { schedule, unschedulableMessage, usageByNode } from './scheduler.js'
import { type KubeObject, type ObjectStore, type StoreChange, kubeTime } from './store.js'

/**
 * Everything in a stand-in cluster that acts on its own: the deployment and replicaset
 * controllers, garbage collection by owner, the scheduler and the kubelets. They follow the
 * store's changes (as a real controller follows its informers) through one queue that runs after
 * the write that caused it, and timers (all unref'd, all stopped by `close`).
 */

export interface WorkloadOptions {
  /** How many ms stand for one Kubernetes second: progressDeadlineSeconds, back-offs, grace periods (default 10). */
  secondMs?: number
  /** From container start to ready, unless a behaviour says otherwise (default 30). */
  readyAfterMs?: number
  /** How long a deleted pod stays terminating, at most its grace period (default 50). */
  terminationMs?: number
  /** How long an image pull takes (default 5). */
  pullMs?: number
  /** Behaviours from the start (more with `behave`). */
  behaviours?: BehaviourRule[]
}

const key = (type: ResourceType) => `${type.group}/${type.resource}`

export function createWorkloads(store: ObjectStore, catalog: Catalog, opts: WorkloadOptions = {}) {
  const type = (group: string, version: string, resource: string) => {
    const t = catalog.find(group, version, resource)
    if (!t) throw new Error(`stand-in catalog lacks ${group}/${version}/${resource}`)
    return t
  }
  const pods = type('', 'v1', 'pods')
  const nodes = type('', 'v1', 'nodes')
  const deployments = type('apps', 'v1', 'deployments')
  const replicasets = type('apps', 'v1', 'replicasets')
  const options = { secondMs: opts.secondMs ?? 10, readyAfterMs: opts.readyAfterMs ?? 30, terminationMs: opts.terminationMs ?? 50, pullMs: opts.pullMs ?? 5 }
  const rules: BehaviourRule[] = [...(opts.behaviours ?? [])]
  const events = createEventRecorder(store, type('', 'v1', 'events'))
  const timers = new Map<string, NodeJS.Timeout>()
  const queue = new Map<string, () => void>()
  const unschedulable = new Set<string>()
  let draining = false
  let closed = false

  const kubelet = createKubelet({
    store,
    pods,
    nodes,
    secrets: type('', 'v1', 'secrets'),
    configmaps: type('', 'v1', 'configmaps'),
    events,
    options,
    rules: () => rules,
  })

  const controllers = createControllers({
    store,
    deployments,
    replicasets,
    pods,
    namespaces: type('', 'v1', 'namespaces'),
    events,
    secondMs: options.secondMs,
    deletePod: (ns, name) => kubelet.deletePod(ns, name) !== undefined,
    resyncAfter(ns, name, ms) {
      const id = `resync:${ns}/${name}`
      clearTimeout(timers.get(id))
      const timer = setTimeout(() => {
        timers.delete(id)
        enqueue(`deploy:${ns}/${name}`, () => controllers.syncDeployment(ns, name))
      }, ms)
      timer.unref()
      timers.set(id, timer)
    },
  })

  function enqueue(id: string, work: () => void) {
    if (closed) return
    queue.set(id, work)
    if (draining) return
    draining = true
    setImmediate(drain)
  }

  function drain() {
    // Bounded: a controller that keeps finding work yields to the event loop (and to the test).
    for (let round = 0; round < 50 && queue.size > 0 && !closed; round++) {
      const batch = [...queue.values()]
      queue.clear()
      for (const work of batch) work()
    }
    draining = false
    if (queue.size > 0 && !closed) {
      draining = true
      setImmediate(drain)
    }
  }

  function podBehaviour(pod: KubeObject): PodBehaviour {
    const spec = podSpec(pod)
    return [...(spec.initContainers ?? []), ...spec.containers].reduce<PodBehaviour>((b, c) => ({ ...b, ...behaviourFor(rules, pod, c) }), {})
  }

  function trySchedule(ns: string, name: string) {
    const id = `${ns}/${name}`
    const pod = store.get(pods, ns, name)
    if (!pod || podSpec(pod).nodeName || pod.metadata.deletionTimestamp) return void unschedulable.delete(id)
    const all = store.all(nodes)
    const knob = podBehaviour(pod).unschedulable
    const result = knob
      ? { unschedulable: typeof knob === 'string' ? knob : unschedulableMessage(all.length, all.map(() => ({ reasons: ["node(s) didn't match Pod's node affinity/selector"], preemptionMightHelp: false }))) }
      : schedule(pod, all, usageByNode(store.all(pods)))
    if ('node' in result) {
      unschedulable.delete(id)
      kubelet.bind(pod, result.node)
      events.record({ involved: pod, kind: 'Pod', apiVersion: 'v1', reason: 'Scheduled', message: `Successfully assigned ${ns}/${name} to ${result.node}`, source: { component: 'default-scheduler' } })
      return
    }
    unschedulable.add(id)
    const status = (pod.status ?? {}) as { conditions?: Array<{ type: string; message?: string; lastTransitionTime?: string }>; qosClass?: string }
    const old = status.conditions?.find((c) => c.type === 'PodScheduled')
    if (old?.message !== result.unschedulable) {
      const condition = { type: 'PodScheduled', status: 'False', lastProbeTime: null, lastTransitionTime: old?.lastTransitionTime ?? kubeTime(), reason: 'Unschedulable', message: result.unschedulable }
      store.replace(pods, { ...pod, status: { phase: 'Pending', conditions: [condition], qosClass: status.qosClass ?? 'BestEffort' } })
    }
    events.record({ involved: pod, kind: 'Pod', apiVersion: 'v1', reason: 'FailedScheduling', message: result.unschedulable, type: 'Warning', source: { component: 'default-scheduler' } })
  }

  function retryUnschedulable() {
    for (const id of unschedulable) {
      const [ns, name] = id.split('/') as [string, string]
      enqueue(`schedule:${id}`, () => trySchedule(ns, name))
    }
  }

  function ownerName(obj: KubeObject): string | undefined {
    const refs = obj.metadata.ownerReferences as Array<{ name: string; controller?: boolean }> | undefined
    return refs?.find((r) => r.controller)?.name
  }

  function onChange(change: StoreChange) {
    const obj = change.object
    const ns = obj.metadata.namespace ?? ''
    const name = obj.metadata.name
    const uid = String(obj.metadata.uid)
    switch (key(change.resource)) {
      case 'apps/deployments':
        if (change.type === 'DELETED') enqueue(`gc:${uid}`, () => controllers.collect('Deployment', ns, uid))
        else enqueue(`deploy:${ns}/${name}`, () => controllers.syncDeployment(ns, name))
        break
      case 'apps/replicasets': {
        if (change.type === 'DELETED') enqueue(`gc:${uid}`, () => controllers.collect('ReplicaSet', ns, uid))
        else enqueue(`rs:${ns}/${name}`, () => controllers.syncReplicaSet(ns, name))
        const owner = ownerName(obj)
        if (owner) enqueue(`deploy:${ns}/${owner}`, () => controllers.syncDeployment(ns, owner))
        break
      }
      case '/pods': {
        if (change.type === 'ADDED' && !podSpec(obj).nodeName) enqueue(`schedule:${ns}/${name}`, () => trySchedule(ns, name))
        if (change.type === 'DELETED') {
          kubelet.forget(ns, name, obj.metadata.uid)
          unschedulable.delete(`${ns}/${name}`)
          retryUnschedulable()
        }
        const owner = ownerUid(obj) && ownerName(obj)
        if (owner) enqueue(`rs:${ns}/${owner}`, () => controllers.syncReplicaSet(ns, owner))
        // A Recreate rollout waits for the last old pod to go (the deployment controller watches pods for it).
        const rs = owner && change.type === 'DELETED' ? store.get(replicasets, ns, owner) : undefined
        const deploy = rs && ownerName(rs)
        if (deploy) enqueue(`deploy:${ns}/${deploy}`, () => controllers.syncDeployment(ns, deploy))
        break
      }
      case '/nodes':
        retryUnschedulable()
        break
      case '/namespaces':
        if (change.type === 'DELETED') events.forget(name)
        break
      default:
    }
  }

  const unsubscribe = store.subscribe(onChange)

  function container(ns: string, pod: string, name: string | undefined) {
    const run = kubelet.run(ns, pod)
    if (!run) throw new Error(`pod ${ns}/${pod} does not run on any node of this cluster`)
    const c = name === undefined ? run.mains[0] : [...run.mains, ...run.inits].find((x) => x.spec.name === name)
    if (!c) throw new Error(`pod ${ns}/${pod} has no container ${name}`)
    return c
  }

  return {
    kubelet,
    /** A graceful deletion of a running pod; undefined when the API server should remove it at once. */
    deletePod: (ns: string, name: string, graceSeconds?: number) => kubelet.deletePod(ns, name, graceSeconds),
    /** Adds a behaviour rule; the returned function takes it away again (pods that still fail start to succeed). */
    behave(rule: BehaviourRule): () => void {
      rules.push(rule)
      return () => {
        const i = rules.indexOf(rule)
        if (i >= 0) rules.splice(i, 1)
      }
    },
    appendLog(ns: string, pod: string, containerName: string | undefined, line: string): void {
      kubelet.log(container(ns, pod, containerName), line)
    },
    sendRequests(ns: string, pod: string, n: number, containerName?: string): void {
      const c = container(ns, pod, containerName)
      if (!c.process) throw new Error(`container ${c.spec.name} of pod ${ns}/${pod} is not running`)
      c.process.count(n)
    },
    killContainer(ns: string, pod: string, containerName?: string, exit: { exitCode?: number; reason?: string } = {}): void {
      kubelet.kill(ns, pod, containerName, exit.exitCode ?? 137, exit.reason ?? 'Error')
    },
    close(): void {
      closed = true
      unsubscribe()
      for (const t of timers.values()) clearTimeout(t)
      timers.clear()
      queue.clear()
      kubelet.close()
    },
  }
}

export type Workloads = ReturnType<typeof createWorkloads>
