import { type ResourceType } from './catalog.js'
import {
  type FieldSet,
  type FieldsV1,
  type JsonObject,
  canonical,
  exists,
  fieldSetOf,
  fromFieldsV1,
  isObject,
  splitPath,
  toFieldsV1,
  valueAt,
} from './fields.js'
import { type KubeObject, kubeTime } from './store.js'

/**
 * `metadata.managedFields`: who set which field, by which operation. Updates (create, PUT, merge
 * patch, a hand edit) take the fields they change from every other manager; applies are handled in
 * apply.ts. Entries are kept sorted as kube-apiserver sorts them (operation, time, manager).
 */

export interface ManagedFieldsEntry {
  manager: string
  operation: 'Apply' | 'Update'
  apiVersion: string
  time: string
  fieldsType: 'FieldsV1'
  fieldsV1: FieldsV1
  subresource?: string
}

export interface Owner {
  manager: string
  operation: 'Apply' | 'Update'
  apiVersion: string
  time: string
  subresource?: string
  set: FieldSet
}

/** The manager kube-apiserver names for fields present before the first apply to an object without managedFields. */
export const BEFORE_FIRST_APPLY = 'before-first-apply'

/** Managers are told apart by name, operation and subresource; Update managers also by API version. */
export function ownerId(o: Pick<Owner, 'manager' | 'operation' | 'subresource' | 'apiVersion'>): string {
  return [o.manager, o.operation, o.subresource ?? '', o.operation === 'Update' ? o.apiVersion : ''].join('\u0000')
}

export function readOwners(obj: KubeObject | undefined): Map<string, Owner> {
  const owners = new Map<string, Owner>()
  const entries = obj?.metadata.managedFields
  if (!Array.isArray(entries)) return owners
  for (const e of entries as unknown[]) {
    if (!isObject(e) || typeof e.manager !== 'string' || (e.operation !== 'Apply' && e.operation !== 'Update')) continue
    const owner: Owner = {
      manager: e.manager,
      operation: e.operation,
      apiVersion: typeof e.apiVersion === 'string' ? e.apiVersion : '',
      time: typeof e.time === 'string' ? e.time : kubeTime(),
      set: fromFieldsV1(e.fieldsV1),
    }
    if (typeof e.subresource === 'string' && e.subresource) owner.subresource = e.subresource
    owners.set(ownerId(owner), owner)
  }
  return owners
}

/** Drops fields that no longer exist in the object, then managers left with none. */
function prune(owners: Map<string, Owner>, obj: KubeObject) {
  for (const [id, owner] of owners) {
    for (const p of owner.set) if (!exists(obj as unknown as JsonObject, splitPath(p))) owner.set.delete(p)
    if (owner.set.size === 0) owners.delete(id)
  }
}

export function writeOwners(owners: Map<string, Owner>, obj: KubeObject): void {
  prune(owners, obj)
  const sorted = [...owners.values()].sort((p, q) => {
    if (p.operation !== q.operation) return p.operation < q.operation ? -1 : 1
    if (p.time !== q.time) return p.time < q.time ? -1 : 1
    if (p.manager !== q.manager) return p.manager < q.manager ? -1 : 1
    if (p.apiVersion !== q.apiVersion) return p.apiVersion < q.apiVersion ? -1 : 1
    return (p.subresource ?? '') < (q.subresource ?? '') ? -1 : 1
  })
  const entries: ManagedFieldsEntry[] = sorted.map((o) => ({
    manager: o.manager,
    operation: o.operation,
    apiVersion: o.apiVersion,
    time: o.time,
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1(o.set),
    ...(o.subresource ? { subresource: o.subresource } : {}),
  }))
  if (entries.length) obj.metadata.managedFields = entries
  else delete obj.metadata.managedFields
}

/**
 * Records an update by `manager` from `old` (undefined: a create) to `next`, in place on `next`:
 * the fields it added or changed become its own and are taken from every other manager.
 */
export function recordUpdate(o: {
  type: ResourceType
  statusSeparate: boolean
  old: KubeObject | undefined
  next: KubeObject
  manager: string
  subresource?: 'status'
}): void {
  const scope = o.subresource === 'status' ? 'status' : 'main'
  const owners = readOwners(o.old)
  const next = o.next as unknown as JsonObject
  const old = o.old as unknown as JsonObject | undefined
  const changed: FieldSet = new Set()
  for (const p of fieldSetOf(next, scope, o.statusSeparate)) {
    const path = splitPath(p)
    const before = valueAt(old, path)
    const isItem = path[path.length - 1]!.startsWith('k:')
    if (isItem ? before === undefined : canonical(before) !== canonical(valueAt(next, path))) changed.add(p)
  }
  const id = ownerId({ manager: o.manager, operation: 'Update', subresource: o.subresource, apiVersion: o.type.apiVersion })
  for (const [otherId, owner] of owners) if (otherId !== id) for (const p of changed) owner.set.delete(p)
  if (changed.size) {
    const mine = owners.get(id)
    const owner: Owner = mine ?? { manager: o.manager, operation: 'Update', apiVersion: o.type.apiVersion, time: '', set: new Set() }
    if (o.subresource) owner.subresource = o.subresource
    for (const p of changed) owner.set.add(p)
    owner.time = kubeTime()
    owners.set(id, owner)
  }
  writeOwners(owners, o.next)
}

/** The manager of a non-apply write: `fieldManager`, else the user agent's product name (kubectl/v1.26 → kubectl). */
export function updateManager(fieldManager: string | null, userAgent: string | undefined): string {
  if (fieldManager) return fieldManager
  const prefix = (userAgent ?? '').split('/')[0]!.trim().split(/\s+/)[0] ?? ''
  return prefix.slice(0, 128) || 'unknown'
}
