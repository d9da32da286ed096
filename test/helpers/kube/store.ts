import { randomUUID } from 'node:crypto'
import { type ResourceType } from './catalog.js'
import { type FieldMatcher, type LabelMatcher, type Labels, selectableValues } from './selectors.js'
import { badRequest } from './status.js'

/**
 * One cluster's objects, as etcd behind an API server holds them: keyed by group/resource, then
 * namespace/name (the order lists come in), each write stamped with the next value of one
 * revision counter (resourceVersion). Objects are kept serialized, with their labels and
 * selectable fields beside them, so lists are answered without parsing and hundreds of clusters
 * fit in one process; every read hands out a fresh copy. Every change goes through `write` or
 * `remove`, which tell the listeners (watch streams, the controllers) after it is stored.
 */

export interface StoreChange {
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  resource: ResourceType
  /** the object as stored (for DELETED: as it was, with the deletion's resourceVersion) */
  object: KubeObject
  /** for MODIFIED: the object before the change */
  previous?: KubeObject
}
export type StoreListener = (change: StoreChange) => void

export interface ObjectMeta {
  name: string
  generateName?: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  generation?: number
  creationTimestamp?: string
  deletionTimestamp?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  [key: string]: unknown
}

export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  [key: string]: unknown
}

interface Entry {
  /** `${namespace}/${name}`; namespace is '' for cluster-scoped objects. */
  key: string
  labels: Labels
  fields: Record<string, string>
  /** The object; built-in types are kept without kind/apiVersion (their list items carry none). */
  json: string
}

export interface ListOptions {
  /** Only this namespace; all when absent. */
  namespace?: string
  labels?: LabelMatcher
  fields?: FieldMatcher
  limit?: number
  continueToken?: string
}

export interface ListPage {
  resourceVersion: string
  /** Each item serialized as the list carries it. */
  items: string[]
  continue?: string
  remainingItemCount?: number
}

// kube-apiserver writes ObjectMeta fields in this order.
const META_ORDER = ['name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation',
  'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences',
  'finalizers', 'managedFields']

function orderedMeta(meta: ObjectMeta): ObjectMeta {
  const out: Record<string, unknown> = {}
  for (const k of META_ORDER) if (meta[k] !== undefined) out[k] = meta[k]
  for (const [k, v] of Object.entries(meta)) if (!(k in out) && v !== undefined) out[k] = v
  return out as ObjectMeta
}

/** Seconds precision, as Kubernetes timestamps are. */
export function kubeTime(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function keyOf(type: ResourceType, namespace: string | undefined, name: string): string {
  return `${type.namespaced ? (namespace ?? '') : ''}/${name}`
}

interface ContinueToken {
  v: string
  rv: number
  start: string
}

function encodeContinue(rv: number, lastKey: string): string {
  // The same fields kube-apiserver's token carries; clients must treat it as opaque.
  const token: ContinueToken = { v: 'meta.k8s.io/v1', rv, start: `${lastKey}\u0000` }
  return Buffer.from(JSON.stringify(token)).toString('base64url')
}

function decodeContinue(token: string): ContinueToken {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as ContinueToken
    if (parsed.v === 'meta.k8s.io/v1' && typeof parsed.start === 'string' && typeof parsed.rv === 'number') return parsed
  } catch {
    // answered below
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)')
}

export function createObjectStore() {
  let revision = 0
  const tables = new Map<string, Map<string, Entry>>()
  const listeners = new Set<StoreListener>()

  function tell(change: StoreChange) {
    for (const listener of listeners) listener(change)
  }

  function table(type: ResourceType): Map<string, Entry> {
    const id = `${type.group}/${type.resource}`
    let t = tables.get(id)
    if (!t) {
      t = new Map()
      tables.set(id, t)
    }
    return t
  }

  function serialize(type: ResourceType, entry: Entry): string {
    if (type.custom) return entry.json
    return `{"kind":${JSON.stringify(type.kind)},"apiVersion":${JSON.stringify(type.apiVersion)},${entry.json.slice(1)}`
  }

  function parse(type: ResourceType, entry: Entry): KubeObject {
    return JSON.parse(serialize(type, entry)) as KubeObject
  }

  /** The single place objects change. */
  function write(type: ResourceType, obj: KubeObject): KubeObject {
    const { kind: _kind, apiVersion: _apiVersion, metadata, ...rest } = obj
    const meta = orderedMeta({ ...metadata, resourceVersion: String(++revision) })
    const body = type.custom
      ? { apiVersion: type.apiVersion, kind: type.kind, metadata: meta, ...rest }
      : { metadata: meta, ...rest }
    const entry: Entry = {
      key: keyOf(type, meta.namespace, meta.name),
      labels: meta.labels ? { ...meta.labels } : undefined,
      fields: selectableValues(body, type.selectableFields),
      json: JSON.stringify(body),
    }
    const t = table(type)
    const before = t.get(entry.key)
    t.set(entry.key, entry)
    const stored = parse(type, entry)
    if (listeners.size) {
      tell(before
        ? { type: 'MODIFIED', resource: type, object: parse(type, entry), previous: parse(type, before) }
        : { type: 'ADDED', resource: type, object: parse(type, entry) })
    }
    return stored
  }

  function get(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const entry = table(type).get(keyOf(type, namespace, name))
    return entry && parse(type, entry)
  }

  /** A new object: the server's metadata (uid, creationTimestamp, generation) is set here. */
  function insert(type: ResourceType, obj: KubeObject): KubeObject {
    const metadata: ObjectMeta = {
      ...obj.metadata,
      uid: obj.metadata.uid ?? randomUUID(),
      creationTimestamp: obj.metadata.creationTimestamp ?? kubeTime(),
    }
    if (type.generation) metadata.generation = 1
    return write(type, { ...obj, metadata })
  }

  return {
    /** The current revision: the resourceVersion a list answers with. */
    revision: () => String(revision),
    get,
    insert,

    /** A new state of a stored object: uid and creationTimestamp stay; generation moves with spec. */
    replace(type: ResourceType, obj: KubeObject): KubeObject {
      const old = get(type, obj.metadata.namespace, obj.metadata.name)
      if (!old) return insert(type, obj)
      const metadata: ObjectMeta = { ...obj.metadata, uid: old.metadata.uid, creationTimestamp: old.metadata.creationTimestamp }
      if (type.generation) {
        const changed = JSON.stringify(old.spec) !== JSON.stringify(obj.spec)
        metadata.generation = (old.metadata.generation ?? 1) + (changed ? 1 : 0)
      }
      return write(type, { ...obj, metadata })
    },

    remove(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
      const t = table(type)
      const key = keyOf(type, namespace, name)
      const entry = t.get(key)
      if (!entry) return undefined
      t.delete(key)
      revision++
      const removed = parse(type, entry)
      if (listeners.size) {
        const object = parse(type, entry)
        object.metadata.resourceVersion = String(revision)
        tell({ type: 'DELETED', resource: type, object })
      }
      return removed
    },

    /** Called after every change, in order; returns the function that stops it. */
    subscribe(listener: StoreListener): () => void {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },

    list(type: ResourceType, o: ListOptions = {}): ListPage {
      const prefix = o.namespace !== undefined && type.namespaced ? `${o.namespace}/` : ''
      const start = o.continueToken ? decodeContinue(o.continueToken).start : ''
      const keys = [...table(type).keys()].filter((k) => k.startsWith(prefix) && k >= start).sort()
      const t = table(type)
      const matches = (e: Entry) => (!o.labels || o.labels(e.labels)) && (!o.fields || o.fields(e.fields))
      const limit = o.limit && o.limit > 0 ? o.limit : Infinity
      const items: string[] = []
      let i = 0
      for (; i < keys.length && items.length < limit; i++) {
        const e = t.get(keys[i]!)!
        if (matches(e)) items.push(serialize(type, e))
      }
      const page: ListPage = { resourceVersion: String(revision), items }
      const more = keys.slice(i).some((k) => matches(t.get(k)!))
      if (more) {
        page.continue = encodeContinue(revision, keys[i - 1]!)
        // Like kube-apiserver: the count is only given when no selector narrows the list.
        if (!o.labels && !o.fields) page.remainingItemCount = keys.length - i
      }
      return page
    },

    /** Every object of a type (optionally in one namespace), parsed. */
    all(type: ResourceType, namespace?: string): KubeObject[] {
      const prefix = namespace !== undefined && type.namespaced ? `${namespace}/` : ''
      return [...table(type).values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : 1))
        .map((e) => parse(type, e))
    },
  }
}

export type ObjectStore = ReturnType<typeof createObjectStore>
