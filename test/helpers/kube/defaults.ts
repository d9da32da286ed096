import { type ResourceType } from './catalog.js'
import { type KubeObject } from './store.js'

/**
 * The defaults kube-apiserver fills into the workloads and services modelplane writes (a part of
 * its defaulting functions), so that the stand-in's objects read like a real cluster's: what the
 * API server adds belongs to no field manager, and drift checks must tell it from what we set.
 */

type Obj = Record<string, unknown>
const asObj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {})

function imagePullPolicy(image: unknown): string {
  const ref = typeof image === 'string' ? image : ''
  if (ref.includes('@')) return 'IfNotPresent'
  const lastPart = ref.slice(ref.lastIndexOf('/') + 1)
  const tag = lastPart.includes(':') ? lastPart.slice(lastPart.indexOf(':') + 1) : ''
  return tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent'
}

function containerDefaults(c: unknown): unknown {
  const container = asObj(c)
  const out: Obj = { ...container }
  if (Array.isArray(container.ports)) out.ports = container.ports.map((p) => ({ ...asObj(p), protocol: asObj(p).protocol ?? 'TCP' }))
  out.terminationMessagePath ??= '/dev/termination-log'
  out.terminationMessagePolicy ??= 'File'
  out.imagePullPolicy ??= imagePullPolicy(container.image)
  return out
}

/** A pod spec as the API server completes it; `restartPolicy` only where it has a default (not for Jobs). */
export function podSpecDefaults(spec: unknown, restartPolicy: string | undefined): Obj {
  const s = asObj(spec)
  const out: Obj = { ...s }
  for (const list of ['initContainers', 'containers'] as const) {
    if (Array.isArray(s[list])) out[list] = (s[list] as unknown[]).map(containerDefaults)
  }
  if (restartPolicy) out.restartPolicy ??= restartPolicy
  out.terminationGracePeriodSeconds ??= 30
  out.dnsPolicy ??= 'ClusterFirst'
  out.securityContext ??= {}
  out.schedulerName ??= 'default-scheduler'
  return out
}

function templateDefaults(template: unknown, restartPolicy: string | undefined): Obj {
  const t = asObj(template)
  // A pod template's metadata is written with a null creationTimestamp, as the recordings show.
  return { ...t, metadata: { creationTimestamp: null, ...asObj(t.metadata) }, spec: podSpecDefaults(t.spec, restartPolicy) }
}

export function deploymentSpecDefaults(spec: unknown): Obj {
  const s = asObj(spec)
  const strategy = asObj(s.strategy)
  const type = (strategy.type as string | undefined) ?? 'RollingUpdate'
  const rolling = asObj(strategy.rollingUpdate)
  return {
    replicas: 1,
    ...s,
    ...(s.template !== undefined ? { template: templateDefaults(s.template, 'Always') } : {}),
    strategy: type === 'RollingUpdate'
      ? { type, rollingUpdate: { maxUnavailable: rolling.maxUnavailable ?? '25%', maxSurge: rolling.maxSurge ?? '25%' } }
      : { ...strategy, type },
    revisionHistoryLimit: s.revisionHistoryLimit ?? 10,
    progressDeadlineSeconds: s.progressDeadlineSeconds ?? 600,
  }
}

/** Defaults of the other kinds modelplane writes (Deployments and Namespaces are done by the router). */
export function kindDefaults(type: ResourceType, obj: KubeObject): KubeObject {
  if (type.group === 'batch' && type.resource === 'jobs') {
    const spec = asObj(obj.spec)
    return {
      ...obj,
      spec: {
        parallelism: 1,
        completions: 1,
        backoffLimit: 6,
        completionMode: 'NonIndexed',
        suspend: false,
        ...spec,
        ...(spec.template !== undefined ? { template: templateDefaults(spec.template, undefined) } : {}),
      },
    }
  }
  if (type.group === '' && type.resource === 'services') {
    const spec = asObj(obj.spec)
    const ports = Array.isArray(spec.ports)
      ? spec.ports.map((p) => {
        const port = asObj(p)
        return { ...port, protocol: port.protocol ?? 'TCP', targetPort: port.targetPort ?? port.port }
      })
      : undefined
    return {
      ...obj,
      spec: {
        ...spec,
        ...(ports ? { ports } : {}),
        type: spec.type ?? 'ClusterIP',
        sessionAffinity: spec.sessionAffinity ?? 'None',
      },
    }
  }
  return obj
}
