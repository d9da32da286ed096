import { type ContainerRun } from './kubelet.js'
import { podSpec } from './pod-spec.js'
import { type ClusterContext, type KubeRequest, type KubeResponse } from './router.js'
import { type ProxiedAnswer, type ProxiedRequest } from './runtime-sim.js'
import { KubeStatusError, notFound } from './status.js'
import { type KubeObject } from './store.js'
import { type Workloads } from './workloads.js'

/**
 * The API server's proxy subresources: `/api/v1/namespaces/{ns}/pods/{name}[:{port}]/proxy/{path}`
 * and `/api/v1/namespaces/{ns}/services/{name}[:{port}]/proxy/{path}`, any method, query kept.
 * A Service proxy reaches one ready pod behind its selector (503 `no endpoints available` when
 * there is none); a pod proxy reaches that pod. Behind a running container answers the simulated
 * server of runtime-sim.ts; nothing listening is 503 "connection refused", as the API server
 * reports a failed dial. Like kube-apiserver, the caller's Authorization header (its credential
 * for the API server) is not passed on to the pod.
 */

function unavailable(message: string): KubeStatusError {
  return new KubeStatusError(503, 'ServiceUnavailable', message)
}

/** `name`, `name:port` or `scheme:name:port`, as the proxy path names its target. */
function parseTarget(text: string): { name: string; port: string } {
  const parts = decodeURIComponent(text).split(':')
  if (parts.length === 3) return { name: parts[1]!, port: parts[2]! }
  return { name: parts[0]!, port: parts[1] ?? '' }
}

/** The path after `/proxy`, with a leading slash. */
function proxiedPath(path: string): string {
  const at = path.indexOf('/proxy')
  const rest = at >= 0 ? path.slice(at + '/proxy'.length) : ''
  return rest.startsWith('/') ? rest : `/${rest}`
}

function resolvePort(pod: KubeObject, port: string | number): number | undefined {
  if (typeof port === 'number') return port
  if (/^\d+$/.test(port)) return Number(port)
  for (const c of podSpec(pod).containers) {
    const found = c.ports?.find((p) => p.name === port)
    if (found) return found.containerPort
  }
  return undefined
}

/** Sends one request to whatever listens on the pod's port (the answer the API server relays). */
export function callPod(workloads: Workloads | undefined, pod: KubeObject, port: number, req: ProxiedRequest): ProxiedAnswer {
  const ns = pod.metadata.namespace ?? 'default'
  const run = workloads?.kubelet.run(ns, pod.metadata.name)
  const ip = run?.podIP ?? ''
  const target: ContainerRun | undefined = run?.mains.find((c) => c.process?.listensOn(port))
  if (!run || run.gone || !target?.process) throw unavailable(`error trying to reach service: dial tcp ${ip}:${port}: connect: connection refused`)
  return target.process.handle(port, req)
}

function relay(answer: ProxiedAnswer): KubeResponse {
  return { code: answer.status, contentType: answer.contentType, body: answer.body }
}

function podReadyForService(pod: KubeObject): boolean {
  if (pod.metadata.deletionTimestamp) return false
  const status = (pod.status ?? {}) as { podIP?: string; conditions?: Array<{ type: string; status: string }> }
  return !!status.podIP && (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
}

const rotation = new WeakMap<object, number>()

export function proxy(cluster: ClusterContext, workloads: Workloads | undefined, resource: string, namespace: string, nameAndPort: string, req: KubeRequest): KubeResponse {
  const { name, port } = parseTarget(nameAndPort)
  const forwarded: ProxiedRequest = {
    method: req.method,
    path: proxiedPath(req.path),
    query: req.query,
    headers: { 'content-type': req.contentType },
    body: req.body,
  }
  const pods = cluster.catalog.find('', 'v1', 'pods')!
  if (resource === 'pods') {
    const pod = cluster.store.get(pods, namespace, name)
    if (!pod) throw notFound({ group: '', resource: 'pods', name })
    const target = resolvePort(pod, port || 80)
    if (target === undefined) throw unavailable(`error trying to reach service: dial tcp: unknown port "${port}"`)
    return relay(callPod(workloads, pod, target, forwarded))
  }
  const services = cluster.catalog.find('', 'v1', 'services')!
  const svc = cluster.store.get(services, namespace, name)
  if (!svc) throw notFound({ group: '', resource: 'services', name })
  const spec = (svc.spec ?? {}) as { selector?: Record<string, string>; ports?: Array<{ name?: string; port: number; targetPort?: number | string }> }
  const svcPort = port
    ? spec.ports?.find((p) => p.name === port || String(p.port) === port)
    : spec.ports?.length === 1 ? spec.ports[0] : spec.ports?.find((p) => !p.name)
  const noEndpoints = unavailable(`no endpoints available for service "${name}"`)
  if (!svcPort || !spec.selector) throw noEndpoints
  const selector = spec.selector
  const ready = cluster.store.all(pods, namespace).filter((p) =>
    Object.entries(selector).every(([k, v]) => p.metadata.labels?.[k] === v) && podReadyForService(p))
  if (ready.length === 0) throw noEndpoints
  // Endpoints are taken in turn, as kube-proxy would spread connections.
  const turn = rotation.get(cluster) ?? 0
  rotation.set(cluster, turn + 1)
  const pod = ready[turn % ready.length]!
  const target = resolvePort(pod, svcPort.targetPort ?? svcPort.port)
  if (target === undefined) throw noEndpoints
  return relay(callPod(workloads, pod, target, forwarded))
}
