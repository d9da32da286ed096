import { KubeStatusError } from './status.js'

/**
 * Field paths and field sets as server-side apply sees an object (structured-merge-diff): which
 * lists are associative (merged item by item, keyed by some of their fields) and which values are
 * atomic, the set of fields a configuration sets, its `FieldsV1` form (`f:<field>`,
 * `k:{"name":"server"}`, `.` for "this element itself"), and the merge of an applied
 * configuration into a live object. The schema knowledge covers the fields modelplane's manifests
 * use; every other list is atomic, as in a CRD without list-type markers.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
export type JsonObject = { [key: string]: Json }

/** One path, its segments as FieldsV1 keys (`f:spec`, `k:{"name":"server"}`). */
export type FieldPath = readonly string[]
/** A set of paths, each joined with SEP. */
export type FieldSet = Set<string>
export interface FieldsV1 {
  [key: string]: FieldsV1
}

const SEP = '\u0000'
export const joinPath = (path: FieldPath): string => path.join(SEP)
export const splitPath = (joined: string): string[] => (joined === '' ? [] : joined.split(SEP))

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Key fields and their defaults (a port's protocol is TCP when left out). */
interface ListKey {
  fields: readonly string[]
  defaults?: Readonly<Record<string, Json>>
}

const BY_NAME: ListKey = { fields: ['name'] }
const NAMED_LISTS: Record<string, ListKey> = {
  containers: BY_NAME,
  initContainers: BY_NAME,
  ephemeralContainers: BY_NAME,
  env: BY_NAME,
  volumes: BY_NAME,
  imagePullSecrets: BY_NAME,
  volumeMounts: { fields: ['mountPath'] },
  conditions: { fields: ['type'] },
  ownerReferences: { fields: ['uid'] },
}
const CONTAINER_PORTS: ListKey = { fields: ['containerPort', 'protocol'], defaults: { protocol: 'TCP' } }
const SERVICE_PORTS: ListKey = { fields: ['port', 'protocol'], defaults: { protocol: 'TCP' } }
const CONTAINER_LISTS = new Set(['f:containers', 'f:initContainers', 'f:ephemeralContainers'])

/** How the list at `path` merges: by these keys, or atomically (undefined). */
export function listKey(path: FieldPath): ListKey | undefined {
  const last = path[path.length - 1]
  if (last === undefined || !last.startsWith('f:')) return undefined
  const field = last.slice(2)
  if (field === 'ports') {
    if (path.length >= 3 && CONTAINER_LISTS.has(path[path.length - 3]!)) return CONTAINER_PORTS
    if (path.length === 2 && path[0] === 'f:spec') return SERVICE_PORTS
    return undefined
  }
  return NAMED_LISTS[field]
}

const LABEL_SELECTOR_FIELDS = new Set(['selector', 'podSelector', 'namespaceSelector'])

/** A value replaced whole rather than merged: label selectors are atomic structs in the API. */
function isAtomicObject(path: FieldPath, value: JsonObject): boolean {
  const last = path[path.length - 1]
  return !!last && LABEL_SELECTOR_FIELDS.has(last.slice(2)) && ('matchLabels' in value || 'matchExpressions' in value)
}

function itemKey(key: ListKey, item: JsonObject): string {
  const out: JsonObject = {}
  for (const f of key.fields) {
    const v = item[f] ?? key.defaults?.[f]
    if (v !== undefined) out[f] = v
  }
  return `k:${JSON.stringify(out)}`
}

/** `.spec.template.spec.containers[name="server"].image`, as conflicts and errors name fields. */
export function describePath(path: FieldPath): string {
  let out = ''
  for (const seg of path) {
    if (seg.startsWith('f:')) out += `.${seg.slice(2)}`
    else if (seg.startsWith('k:')) {
      const key = JSON.parse(seg.slice(2)) as JsonObject
      out += `[${Object.entries(key).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`
    }
  }
  return out
}

/** The 500 kube-apiserver 1.26 answers when an applied configuration does not fit the schema. */
export function typedPatchError(what: string, path: FieldPath, problem: string): KubeStatusError {
  return new KubeStatusError(500, undefined, `failed to create typed patch object (${what}): ${describePath(path)}: ${problem}`)
}

/** What is wrong with an associative list's items (each needs its keys, no two may share them), if anything. */
function itemsProblem(key: ListKey, items: Json[]): string | undefined {
  const seen = new Set<string>()
  for (const [i, item] of items.entries()) {
    if (!isObject(item)) return `element ${i}: expected map, got ${JSON.stringify(item).slice(0, 100)}`
    for (const f of key.fields) {
      if (item[f] === undefined && key.defaults?.[f] === undefined) {
        return `element ${i}: associative list with keys has an element that omits key field "${f}" (and doesn't have default value)`
      }
    }
    const k = itemKey(key, item)
    if (seen.has(k)) return `duplicate entries for key ${describePath([k])}`
    seen.add(k)
  }
  return undefined
}

export type Scope = 'main' | 'status'

/** Metadata fields that are tracked; name, namespace, uid and the rest belong to the server. */
const TRACKED_METADATA = new Set(['labels', 'annotations', 'ownerReferences', 'finalizers'])

/** The top-level fields of an object that `scope` covers. */
export function scopedFields(obj: JsonObject, scope: Scope, statusSeparate: boolean): Array<[string, Json]> {
  const out: Array<[string, Json]> = []
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || v === undefined || k === 'apiVersion' || k === 'kind') continue
    if (scope === 'status') {
      if (k === 'status') out.push([k, v])
      continue
    }
    if (k === 'status' && statusSeparate) continue
    if (k === 'metadata') {
      if (!isObject(v)) continue
      const meta: JsonObject = {}
      for (const [mk, mv] of Object.entries(v)) if (TRACKED_METADATA.has(mk) && mv !== null && mv !== undefined) meta[mk] = mv
      if (Object.keys(meta).length) out.push([k, meta])
      continue
    }
    out.push([k, v])
  }
  return out
}

/**
 * The fields a value sets: leaves (scalars, atomic lists and structs, empty maps) and the items of
 * associative lists, each item's own fields below it. With `strict` (an applied configuration,
 * named in errors), a malformed associative list is the API server's 500; otherwise (a stored
 * object) it counts as one atomic value.
 */
export function fieldSetOf(obj: JsonObject, scope: Scope, statusSeparate: boolean, strict?: { what: string }): FieldSet {
  const out: FieldSet = new Set()
  const walk = (value: Json, path: string[]) => {
    if (isObject(value)) {
      const entries = Object.entries(value).filter(([, v]) => v !== null && v !== undefined)
      if (entries.length === 0 || isAtomicObject(path, value)) return void out.add(joinPath(path))
      for (const [k, v] of entries) walk(v, [...path, `f:${k}`])
      return
    }
    const key = Array.isArray(value) ? listKey(path) : undefined
    const problem = key && Array.isArray(value) ? itemsProblem(key, value) : 'atomic'
    if (problem && problem !== 'atomic' && strict) throw typedPatchError(strict.what, path, problem)
    if (problem || !key || !Array.isArray(value)) return void out.add(joinPath(path))
    for (const item of value as JsonObject[]) {
      const itemPath = [...path, itemKey(key, item)]
      out.add(joinPath(itemPath))
      for (const [k, v] of Object.entries(item)) if (v !== null && v !== undefined) walk(v, [...itemPath, `f:${k}`])
    }
  }
  for (const [k, v] of scopedFields(obj, scope, statusSeparate)) walk(v, [`f:${k}`])
  return out
}

/** The value at a path, undefined when absent. */
export function valueAt(obj: Json | undefined, path: FieldPath): Json | undefined {
  let current: Json | undefined = obj
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!
    if (current === undefined || current === null) return undefined
    if (seg.startsWith('f:')) {
      if (!isObject(current)) return undefined
      current = current[seg.slice(2)]
    } else if (seg.startsWith('k:')) {
      const key = listKey(path.slice(0, i))
      if (!key || !Array.isArray(current)) return undefined
      current = current.find((item) => isObject(item) && itemKey(key, item) === seg)
    } else return undefined
  }
  return current
}

/** Removes the field or list item at a path (nothing when absent). */
export function removePath(obj: JsonObject, path: FieldPath) {
  const parent = valueAt(obj, path.slice(0, -1))
  const seg = path[path.length - 1]
  if (seg === undefined || parent === undefined) return
  if (seg.startsWith('f:') && isObject(parent)) delete parent[seg.slice(2)]
  else if (seg.startsWith('k:') && Array.isArray(parent)) {
    const key = listKey(path.slice(0, -1))
    const i = key ? parent.findIndex((item) => isObject(item) && itemKey(key, item) === seg) : -1
    if (i >= 0) parent.splice(i, 1)
    // An empty list is left out when the API server writes the object (omitempty).
    if (parent.length === 0) removePath(obj, path.slice(0, -1))
  }
}

/** Whether a path still names something in the object. */
export function exists(obj: JsonObject, path: FieldPath): boolean {
  return valueAt(obj, path) !== undefined
}

/** JSON with sorted keys: equal values give equal text whatever their key order. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (isObject(value)) {
    return `{${Object.keys(value).filter((k) => value[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/**
 * An applied value merged into a live one: maps and structs field by field, associative lists
 * item by item (live items keep their place, new ones are appended), everything else replaced.
 */
export function mergeValue(live: Json | undefined, applied: Json, path: string[]): Json {
  if (isObject(applied) && isObject(live) && !isAtomicObject(path, applied)) {
    const out: JsonObject = { ...live }
    for (const [k, v] of Object.entries(applied)) {
      if (v === null || v === undefined) continue
      out[k] = mergeValue(live[k], v, [...path, `f:${k}`])
    }
    return out
  }
  const key = Array.isArray(applied) ? listKey(path) : undefined
  if (key && Array.isArray(applied) && Array.isArray(live) && live.every(isObject)) {
    const out = [...live] as JsonObject[]
    for (const item of applied as JsonObject[]) {
      const k = itemKey(key, item)
      const i = out.findIndex((existing) => itemKey(key, existing) === k)
      if (i >= 0) out[i] = mergeValue(out[i], item, [...path, k]) as JsonObject
      else out.push(structuredClone(item))
    }
    return out
  }
  return structuredClone(applied)
}

/** The FieldsV1 tree of a set, keys sorted as the API server writes them (`.` first). */
export function toFieldsV1(set: FieldSet): FieldsV1 {
  interface Node {
    member: boolean
    children: Map<string, Node>
  }
  const root: Node = { member: false, children: new Map() }
  for (const joined of set) {
    let node = root
    for (const seg of splitPath(joined)) {
      let next = node.children.get(seg)
      if (!next) {
        next = { member: false, children: new Map() }
        node.children.set(seg, next)
      }
      node = next
    }
    node.member = true
  }
  const render = (node: Node): FieldsV1 => {
    const out: FieldsV1 = {}
    if (node.member && node.children.size) out['.'] = {}
    for (const key of [...node.children.keys()].sort()) out[key] = render(node.children.get(key)!)
    return out
  }
  return render(root)
}

/** The set a FieldsV1 tree describes; anything that is not a tree of objects is ignored. */
export function fromFieldsV1(tree: unknown): FieldSet {
  const out: FieldSet = new Set()
  const walk = (node: unknown, path: string[]) => {
    if (!isObject(node)) return
    const keys = Object.keys(node)
    if (path.length && (keys.length === 0 || keys.includes('.'))) out.add(joinPath(path))
    for (const k of keys) if (k !== '.') walk(node[k], [...path, k])
  }
  walk(tree, [])
  return out
}
