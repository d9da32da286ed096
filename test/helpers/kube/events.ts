import { type ResourceType } from './catalog.js'
import { type KubeObject, type ObjectStore, kubeTime } from './store.js'

/**
 * core/v1 Events as the controllers and the kubelet write them (events-in-namespace.json): named
 * `<object>.<hex time>`, an involvedObject reference, reason, message, type, source, and a count
 * that grows when the same thing happens again instead of a new event each time (client-go's
 * event aggregation).
 */

export type EventSource = { component: string; host?: string }

export interface EventInput {
  involved: KubeObject
  /** 'Deployment', 'ReplicaSet', 'Pod' */
  kind: string
  apiVersion: string
  reason: string
  message: string
  type?: 'Normal' | 'Warning'
  source: EventSource
  /** spec.containers{name}: the kubelet names the container an event is about */
  fieldPath?: string
}

let sequence = 0

function eventSuffix(): string {
  // kube uses the creation time in nanoseconds, in hex; a counter keeps names unique within a millisecond.
  return (BigInt(Date.now()) * 1_000_000n + BigInt(sequence++ % 1_000_000)).toString(16)
}

export function createEventRecorder(store: ObjectStore, events: ResourceType) {
  /** key of (object, reason, message, source) → event name, for aggregation */
  const seen = new Map<string, string>()

  return {
    record(e: EventInput): void {
      const meta = e.involved.metadata
      const namespace = meta.namespace ?? 'default'
      const key = [namespace, meta.uid, e.fieldPath ?? '', e.reason, e.message, e.source.component].join('\u0000')
      const now = kubeTime()
      const existingName = seen.get(key)
      const existing = existingName ? store.get(events, namespace, existingName) : undefined
      if (existing) {
        store.replace(events, { ...existing, count: Number(existing.count ?? 1) + 1, lastTimestamp: now })
        return
      }
      const name = `${meta.name}.${eventSuffix()}`
      seen.set(key, name)
      // An event in a namespace being emptied would be removed with it anyway.
      store.insert(events, {
        metadata: { name, namespace },
        involvedObject: {
          kind: e.kind,
          namespace,
          name: meta.name,
          uid: meta.uid,
          apiVersion: e.apiVersion,
          resourceVersion: meta.resourceVersion,
          ...(e.fieldPath ? { fieldPath: e.fieldPath } : {}),
        },
        reason: e.reason,
        message: e.message,
        source: e.source,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        type: e.type ?? 'Normal',
        eventTime: null,
        reportingComponent: e.source.component,
        reportingInstance: e.source.host ?? '',
      })
    },
    /** Forget aggregation keys of a namespace's objects (they went with it). */
    forget(namespace: string): void {
      for (const k of seen.keys()) if (k.startsWith(`${namespace}\u0000`)) seen.delete(k)
    },
  }
}

export type EventRecorder = ReturnType<typeof createEventRecorder>
