import { randomUUID } from 'node:crypto'
import { parse as parseYaml } from 'yaml'
import { type ResourceType } from './catalog.js'
import {
  type FieldPath,
  type JsonObject,
  canonical,
  describePath,
  fieldSetOf,
  isObject,
  joinPath,
  mergeValue,
  removePath,
  scopedFields,
  splitPath,
  valueAt,
} from './fields.js'
import {
  BEFORE_FIRST_APPLY,
  type Owner,
  ownerId,
  readOwners,
  recordUpdate,
  updateManager,
  writeOwners,
} from './managed-fields.js'
import {
  type ClusterContext,
  type KubeRequest,
  type KubeResponse,
  checkNamespaceOpen,
  hasStatusSubresource,
  mergePatch,
  mustGet,
  parseBody,
  withDefaults,
} from './router.js'
import { KubeStatusError, badRequest, conflict, notFound } from './status.js'
import { type KubeObject, kubeTime } from './store.js'
import { validateMetadata } from './validation.js'

/**
 * Server-side apply (`PATCH` with `application/apply-patch+yaml`) and writes to the `status`
 * subresource, as kube-apiserver 1.26 answers them: the applied configuration is merged into the
 * live object, the applier owns exactly the fields it sent, a field another manager set to a
 * different value is a 409 naming field and manager unless `force`, a field the applier sent before
 * and no longer sends is removed when nobody else owns it, and an apply that changes nothing
 * writes nothing (same resourceVersion, same generation).
 */

const json = (code: number, obj: unknown): KubeResponse => ({ code, contentType: 'application/json', body: JSON.stringify(obj) })

export function isApplyPatch(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]!.trim() === 'application/apply-patch+yaml'
}

const MAX_MANAGER = 128

function flag(query: URLSearchParams, name: string): boolean {
  const v = query.get(name)
  return v === 'true' || v === '1' || v === 'True' || v === 'TRUE' || v === 't'
}

function dryRun(query: URLSearchParams): boolean {
  const values = query.getAll('dryRun').filter((v) => v !== '')
  for (const v of values) {
    if (v !== 'All') throw new KubeStatusError(422, 'Invalid', `dryRun: Unsupported value: ${JSON.stringify(v.slice(0, 64))}: supported values: "All"`)
  }
  return values.length > 0
}

function checkManager(manager: string) {
  if (manager.length > MAX_MANAGER) {
    throw new KubeStatusError(422, 'Invalid', `fieldManager: Too long: may not be longer than ${MAX_MANAGER}`)
  }
}

/** The manager of a create, update or merge patch (`fieldManager` or the user agent). */
export function managerOf(req: KubeRequest): string {
  const manager = updateManager(req.query.get('fieldManager'), req.userAgent)
  checkManager(manager)
  return manager
}

function readConfig(body: string, type: ResourceType): JsonObject {
  let parsed: unknown
  try {
    parsed = parseYaml(body, { maxAliasCount: 100 })
  } catch (err) {
    throw badRequest(`error decoding YAML: ${(err as Error).message.split('\n')[0]!.slice(0, 200)}`)
  }
  if (!isObject(parsed)) throw badRequest(`the object provided is unrecognized (must be of type ${type.kind}): not an object`)
  if (typeof parsed.apiVersion !== 'string' || !parsed.apiVersion) throw badRequest(`Object 'apiVersion' is missing in the applied configuration`)
  if (typeof parsed.kind !== 'string' || !parsed.kind) throw badRequest(`Object 'Kind' is missing in the applied configuration`)
  if (parsed.apiVersion !== type.apiVersion) {
    throw badRequest(`the API version in the data (${parsed.apiVersion.slice(0, 100)}) does not match the expected API version (${type.apiVersion})`)
  }
  if (parsed.kind !== type.kind) throw badRequest(`the kind in the data (${parsed.kind.slice(0, 100)}) does not match the expected kind (${type.kind})`)
  if (!isObject(parsed.metadata)) parsed.metadata = {}
  return parsed
}

/** `name: "fixtures/web; apps/v1, Kind=Deployment"` as typed-patch errors name the object. */
function describeObject(type: ResourceType, namespace: string | undefined, name: string): string {
  return `${namespace ? `${namespace}/` : ''}${name}; ${type.apiVersion}, Kind=${type.kind}`
}

function printManager(o: Owner): string {
  let out = JSON.stringify(o.manager)
  if (o.subresource) out += ` with subresource ${JSON.stringify(o.subresource)}`
  if (o.operation === 'Update') out += ` using ${o.apiVersion}`
  return out
}

interface Conflict {
  owner: Owner
  path: FieldPath
}

/** 409 with one cause per field, worded as structured-merge-diff words conflicts. */
function conflictError(conflicts: Conflict[]): KubeStatusError {
  const causes = conflicts.map((c) => ({
    reason: 'FieldManagerConflict',
    message: `conflict with ${printManager(c.owner)}`,
    field: describePath(c.path),
  }))
  let text: string
  if (conflicts.length === 1) text = `${causes[0]!.message}: ${causes[0]!.field}`
  else {
    const byManager = new Map<string, string[]>()
    for (const c of conflicts) {
      const m = printManager(c.owner)
      byManager.set(m, [...(byManager.get(m) ?? []), describePath(c.path)])
    }
    text = [...byManager.keys()].sort().flatMap((m) => [`conflicts with ${m}:`, ...byManager.get(m)!.map((f) => `- ${f}`)]).join('\n')
  }
  const n = conflicts.length
  return new KubeStatusError(409, 'Conflict', `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: ${text}`, { causes })
}

/** The object without what changes on every write, to tell whether an apply changed anything. */
function fingerprint(obj: KubeObject): string {
  const meta = { ...obj.metadata }
  delete meta.resourceVersion
  const entries = Array.isArray(meta.managedFields) ? (meta.managedFields as Array<Record<string, unknown>>) : []
  meta.managedFields = entries.map(({ time: _time, ...rest }) => rest)
  return canonical({ ...obj, metadata: meta })
}

interface ApplyInput {
  cluster: ClusterContext
  type: ResourceType
  live: KubeObject | undefined
  config: JsonObject
  manager: string
  force: boolean
  subresource?: 'status'
  what: string
  namespace: string | undefined
  name: string
}

/** The object an apply leads to, or undefined when it changes nothing. */
function applied(a: ApplyInput): KubeObject | undefined {
  const statusSeparate = hasStatusSubresource(a.cluster, a.type)
  const scope = a.subresource === 'status' ? 'status' : 'main'
  const mine = fieldSetOf(a.config, scope, statusSeparate, { what: a.what })
  const live = a.live as unknown as JsonObject | undefined
  const base: JsonObject = live
    ? structuredClone(live)
    : { metadata: { name: a.name, ...(a.namespace !== undefined ? { namespace: a.namespace } : {}) } }
  const merged = structuredClone(base)
  for (const [k, v] of scopedFields(a.config, scope, statusSeparate)) merged[k] = mergeValue(merged[k], v, [`f:${k}`])

  const owners = readOwners(a.live)
  if (a.live && owners.size === 0) {
    // Fields set before anyone applied belong to a stand-in manager, so they can conflict.
    const before: Owner = { manager: BEFORE_FIRST_APPLY, operation: 'Update', apiVersion: a.type.apiVersion, time: kubeTime(), set: fieldSetOf(live!, scope, statusSeparate) }
    owners.set(ownerId(before), before)
  }
  const me = ownerId({ manager: a.manager, operation: 'Apply', subresource: a.subresource, apiVersion: a.type.apiVersion })

  if (live) {
    const conflicts: Conflict[] = []
    for (const p of mine) {
      const path = splitPath(p)
      const before = valueAt(live, path)
      const isItem = path[path.length - 1]!.startsWith('k:')
      if (isItem ? before !== undefined : canonical(before) === canonical(valueAt(merged, path))) continue
      for (const [id, owner] of owners) if (id !== me && owner.set.has(p)) conflicts.push({ owner, path })
    }
    if (conflicts.length && !a.force) throw conflictError(conflicts)
    for (const c of conflicts) c.owner.set.delete(joinPath(c.path))
  }

  // What I set before and no longer set goes, unless someone else also set it.
  const previous = owners.get(me)?.set ?? new Set<string>()
  const othersOwn = new Set<string>()
  for (const [id, owner] of owners) if (id !== me) for (const p of owner.set) othersOwn.add(p)
  for (const p of previous) if (!mine.has(p) && !othersOwn.has(p)) removePath(merged, splitPath(p))
  const meta = merged.metadata as JsonObject
  for (const k of ['labels', 'annotations']) if (isObject(meta[k]) && Object.keys(meta[k]).length === 0) delete meta[k]

  owners.set(me, {
    manager: a.manager,
    operation: 'Apply',
    apiVersion: a.type.apiVersion,
    time: kubeTime(),
    set: mine,
    ...(a.subresource ? { subresource: a.subresource } : {}),
  })

  let next = merged as unknown as KubeObject
  if (scope === 'main') {
    next = withDefaults(a.type, next)
    // With a status subresource, the main resource's writes leave status as it was.
    if (statusSeparate && a.live) next.status = a.live.status
  }
  writeOwners(owners, next)
  if (a.live && fingerprint(next) === fingerprint(a.live)) return undefined
  return next
}

/** PATCH with application/apply-patch+yaml, on the main resource or its status. */
export function answerApply(
  cluster: ClusterContext,
  type: ResourceType,
  namespace: string | undefined,
  name: string,
  req: KubeRequest,
  subresource?: 'status',
): KubeResponse {
  const manager = req.query.get('fieldManager')
  if (!manager) throw badRequest('fieldManager is required for apply requests')
  checkManager(manager)
  const force = flag(req.query, 'force')
  const dry = dryRun(req.query)
  const config = readConfig(req.body, type)
  const meta = config.metadata as JsonObject
  if (meta.name !== undefined && meta.name !== name) {
    throw badRequest(`the name of the object (${String(meta.name).slice(0, 253)}) does not match the name on the URL (${name})`)
  }
  if (type.namespaced && meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
    throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
  }
  const live = cluster.store.get(type, namespace, name)
  if (!live && subresource) throw notFound({ group: type.group, resource: type.resource, name })
  if (!live && namespace !== undefined) checkNamespaceOpen(cluster, type, namespace, name)
  const next = applied({ cluster, type, live, config, manager, force, subresource, what: describeObject(type, namespace, name), namespace, name })
  if (!next) return json(200, live)
  validateMetadata(type, next)
  if (dry) {
    // Nothing is stored: the answer shows what would be, without a new resourceVersion.
    if (live) return json(200, { ...next, metadata: { ...next.metadata, generation: nextGeneration(type, live, next) } })
    const created = { ...next, metadata: { ...next.metadata, uid: randomUUID(), creationTimestamp: kubeTime(), ...(type.generation ? { generation: 1 } : {}) } }
    return json(201, withKind(type, created))
  }
  if (live) return json(200, cluster.store.replace(type, next))
  return json(201, cluster.store.insert(type, next))
}

function nextGeneration(type: ResourceType, live: KubeObject, next: KubeObject): number | undefined {
  if (!type.generation) return undefined
  return (live.metadata.generation ?? 1) + (canonical(live.spec) === canonical(next.spec) ? 0 : 1)
}

function withKind(type: ResourceType, obj: KubeObject): KubeObject {
  const { apiVersion: _a, kind: _k, ...rest } = obj
  return { kind: type.kind, apiVersion: type.apiVersion, ...rest }
}

/** PUT or PATCH of `<object>/status`: only status changes; spec, labels and the rest stay. */
export function answerStatusWrite(
  cluster: ClusterContext,
  type: ResourceType,
  namespace: string | undefined,
  name: string,
  verb: 'update' | 'patch',
  req: KubeRequest,
): KubeResponse {
  if (verb === 'patch' && isApplyPatch(req.contentType)) return answerApply(cluster, type, namespace, name, req, 'status')
  const manager = managerOf(req)
  const old = mustGet(cluster, type, namespace, name)
  let status: unknown
  if (verb === 'update') {
    const body = parseBody(req.body, type.kind)
    if (body.metadata.name !== undefined && body.metadata.name !== name) {
      throw badRequest(`the name of the object (${String(body.metadata.name).slice(0, 253)}) does not match the name on the URL (${name})`)
    }
    const rv = body.metadata.resourceVersion
    if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion) throw conflict({ group: type.group, resource: type.resource, name })
    status = body.status
  } else {
    const mediaType = (req.contentType ?? '').split(';')[0]!.trim()
    if (mediaType !== 'application/merge-patch+json' && mediaType !== 'application/strategic-merge-patch+json') {
      throw new KubeStatusError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml')
    }
    status = (mergePatch(old, parseBody(req.body, type.kind)) as KubeObject).status
  }
  const next: KubeObject = structuredClone(old)
  if (status === undefined || status === null) delete next.status
  else next.status = status
  recordUpdate({ type, statusSeparate: true, old, next, manager, subresource: 'status' })
  return json(200, cluster.store.replace(type, next))
}

/**
 * A change "by hand" as another field manager (an operator's `kubectl edit`, an autoscaler writing
 * `spec.replicas`): recorded as an Update, so it takes the fields it changes from their owners.
 */
export function editAs(
  cluster: ClusterContext,
  type: ResourceType,
  namespace: string | undefined,
  name: string,
  manager: string,
  mutate: (obj: KubeObject) => KubeObject | void,
  subresource?: 'status',
): KubeObject {
  const old = mustGet(cluster, type, namespace, name)
  const draft = structuredClone(old)
  const edited = mutate(draft) ?? draft
  const statusSeparate = hasStatusSubresource(cluster, type)
  let next: KubeObject
  if (subresource === 'status') next = { ...structuredClone(old), status: edited.status }
  else {
    next = { ...edited, metadata: { ...edited.metadata, name: old.metadata.name, namespace: old.metadata.namespace, managedFields: old.metadata.managedFields } }
    if (statusSeparate) next.status = old.status
  }
  recordUpdate({ type, statusSeparate, old, next, manager, subresource })
  validateMetadata(type, next)
  return cluster.store.replace(type, next)
}
