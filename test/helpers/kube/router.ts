import { type Identity, mayAccess, mayGetPath } from './auth.js'
import { type Catalog, type ResourceType } from './catalog.js'
import { apiGroup, apiGroupList, apiVersions, resourceList } from './discovery.js'
import { parseFieldSelector, parseLabelSelector } from './selectors.js'
import { answerSelfSubjectAccessReview } from './access-review.js'
import { podLog } from './logs.js'
import { proxy } from './proxy.js'
import {
  KubeStatusError,
  alreadyExists,
  badRequest,
  conflict,
  forbidden,
  forbiddenPath,
  methodNotAllowed,
  namespaceTerminating,
  notFound,
  pathNotFound,
} from './status.js'
import { type KubeObject, type ObjectStore, kubeTime } from './store.js'
import { validateMetadata } from './validation.js'
import { deploymentSpecDefaults, kindDefaults } from './defaults.js'
import { answerApply, answerStatusWrite, isApplyPatch, managerOf } from './apply.js'
import { recordUpdate } from './managed-fields.js'
import { type ResponseStream, type WatchHub } from './watch.js'
import { type Workloads } from './workloads.js'

/**
 * Answers one request to one cluster as kube-apiserver would: authorization, then discovery or
 * the resource verbs (get, list, create, update, merge patch, delete, deletecollection) over the
 * generic store. Transport (TLS, authentication, reachability, latency) is the server's job.
 */

export interface ClusterContext {
  catalog: Catalog
  store: ObjectStore
  /** Serialized /version. */
  version: string
  /** host:port for /api's serverAddressByClientCIDRs. */
  hostPort: string
  /** A namespace was marked Terminating: remove it and its contents when its time comes. */
  namespaceDeleted(name: string): void
  /** Recent changes and open watch streams. */
  watches: WatchHub
  /** Controllers, scheduler and kubelets (workloads.ts); absent when the cluster runs none. */
  workloads?: Workloads
}

export interface KubeRequest {
  method: string
  /** The path below the cluster's prefix, e.g. /api/v1/nodes. */
  path: string
  query: URLSearchParams
  identity: Identity
  contentType: string | undefined
  body: string
  userAgent?: string
}

export interface KubeResponse {
  code: number
  contentType: string
  body: string
  /** An answer that goes on after the head (a watch): `body` is not sent. */
  stream?: ResponseStream
}

const json = (code: number, body: string): KubeResponse => ({ code, contentType: 'application/json', body })

/** Namespaces a real cluster refuses to delete. */
const UNDELETABLE_NAMESPACES = new Set(['default', 'kube-system', 'kube-public'])

export function handleKubeRequest(cluster: ClusterContext, req: KubeRequest): KubeResponse {
  try {
    return route(cluster, req)
  } catch (err) {
    if (err instanceof KubeStatusError) return json(err.status.code, JSON.stringify(err.status))
    throw err
  }
}

function route(cluster: ClusterContext, req: KubeRequest): KubeResponse {
  const parts = req.path.split('/').filter(Boolean)
  const isResource = (parts[0] === 'api' && parts.length > 2) || (parts[0] === 'apis' && parts.length > 3)
  if (!isResource) return nonResource(cluster, req, parts)
  const [group, version, rest] = parts[0] === 'api' ? ['', parts[1]!, parts.slice(2)] : [parts[1]!, parts[2]!, parts.slice(3)]
  return resource(cluster, req, group, version, rest)
}

function nonResource(cluster: ClusterContext, req: KubeRequest, parts: string[]): KubeResponse {
  const path = `/${parts.join('/')}`
  const verb = req.method === 'GET' || req.method === 'HEAD' ? 'get' : req.method.toLowerCase()
  if (!mayGetPath(req.identity, path)) throw forbiddenPath(req.identity.user, verb, path)
  if (verb !== 'get') throw methodNotAllowed()
  const { catalog } = cluster
  let body: string | null = null
  if (path === '/version') body = cluster.version
  else if (path === '/healthz' || path === '/livez' || path === '/readyz') return { code: 200, contentType: 'text/plain; charset=utf-8', body: 'ok' }
  else if (path === '/api') body = JSON.stringify(apiVersions(cluster.hostPort))
  else if (path === '/apis') body = apiGroupList(catalog)
  else if (parts[0] === 'api' && parts.length === 2) body = resourceList(catalog, '', parts[1]!)
  else if (parts[0] === 'apis' && parts.length === 2) body = apiGroup(catalog, parts[1]!)
  else if (parts[0] === 'apis' && parts.length === 3) body = resourceList(catalog, parts[1]!, parts[2]!)
  if (body === null) throw pathNotFound()
  return json(200, body)
}

interface Target {
  group: string
  version: string
  resource: string
  namespace?: string
  name?: string
  subresource?: string
  verb: string
}

/** The request's attributes, as kube-apiserver's request-info parser reads a path. */
function target(req: KubeRequest, group: string, version: string, rest: string[]): Target {
  let parts = rest
  let namespace: string | undefined
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1]
    if (parts.length > 2 && parts[2] !== 'status' && parts[2] !== 'finalize') parts = parts.slice(2)
  }
  const [resource, name, subresource] = parts as [string, string?, string?]
  const collection = name === undefined
  const watch = req.query.get('watch') === 'true' || req.query.get('watch') === '1'
  const verb = {
    GET: collection ? (watch ? 'watch' : 'list') : 'get',
    HEAD: collection ? 'list' : 'get',
    POST: 'create',
    PUT: 'update',
    PATCH: 'patch',
    DELETE: collection ? 'deletecollection' : 'delete',
  }[req.method]
  if (!verb) throw methodNotAllowed()
  return { group, version, resource, namespace, name, subresource, verb }
}

function resource(cluster: ClusterContext, req: KubeRequest, group: string, version: string, rest: string[]): KubeResponse {
  const t = target(req, group, version, rest)
  if (!mayAccess(req.identity, t)) throw forbidden({ ...t, user: req.identity.user })
  const { catalog } = cluster
  if (group === 'authorization.k8s.io' && t.resource === 'selfsubjectaccessreviews' && t.verb === 'create' && !t.name) {
    if (!catalog.lists(group, version, t.resource)) throw pathNotFound()
    return json(201, JSON.stringify(answerSelfSubjectAccessReview(req.identity, parseBody(req.body, 'SelfSubjectAccessReview'))))
  }
  const type = catalog.find(group, version, t.resource)
  const listed = catalog.lists(group, version, t.subresource ? `${t.resource}/${t.subresource}` : t.resource)
  if (!type || !listed) throw pathNotFound()
  // A namespaced collection outside a namespace exists only for reading; a cluster-scoped type has no namespaced paths.
  const isNamespaceObject = group === '' && t.resource === 'namespaces'
  if (type.namespaced && t.namespace === undefined && !['list', 'watch'].includes(t.verb)) throw pathNotFound()
  if (!type.namespaced && t.namespace !== undefined && !isNamespaceObject) throw pathNotFound()
  if (!listed.verbs.includes(t.verb)) throw methodNotAllowed()
  const namespace = type.namespaced ? t.namespace : undefined
  if (t.subresource === 'status' && (t.verb === 'update' || t.verb === 'patch')) return answerStatusWrite(cluster, type, namespace, t.name!, t.verb, req)
  if (t.subresource === 'log' && group === '' && t.resource === 'pods') return podLog(cluster, cluster.workloads, namespace!, t.name!, req.query)
  if (t.subresource === 'proxy' && group === '') return proxy(cluster, cluster.workloads, t.resource, namespace!, t.name!, req)
  if (t.subresource) {
    // Reading a status subresource; its writes are answered above.
    if (t.subresource !== 'status' || t.verb !== 'get') throw pathNotFound()
    return json(200, JSON.stringify(mustGet(cluster, type, namespace, t.name!)))
  }
  if (t.verb === 'watch') return cluster.watches.serve(type, namespace, req.query)
  if (t.verb === 'patch' && isApplyPatch(req.contentType)) return answerApply(cluster, type, namespace, t.name!, req)
  switch (t.verb) {
    case 'list':
      return json(200, list(cluster, type, namespace, req.query))
    case 'get':
      return json(200, JSON.stringify(mustGet(cluster, type, namespace, t.name!)))
    case 'create':
      return json(201, JSON.stringify(create(cluster, type, namespace, parseBody(req.body, type.kind), managerOf(req))))
    case 'update':
      return json(200, JSON.stringify(update(cluster, type, namespace, t.name!, parseBody(req.body, type.kind), managerOf(req))))
    case 'patch':
      return json(200, JSON.stringify(patch(cluster, type, namespace, t.name!, req)))
    case 'delete':
      return remove(cluster, type, namespace, t.name!, req)
    case 'deletecollection':
      return json(200, deleteCollection(cluster, type, namespace, req))
    default:
      throw methodNotAllowed()
  }
}

export function parseBody(body: string, kind: string): KubeObject {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch (err) {
    throw badRequest(`the object provided is unrecognized (must be of type ${kind}): couldn't get version/kind; json parse error: ${(err as Error).message.slice(0, 200)}`)
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw badRequest(`the object provided is unrecognized (must be of type ${kind}): couldn't get version/kind; json parse error: not an object`)
  }
  const obj = parsed as KubeObject
  obj.metadata = obj.metadata && typeof obj.metadata === 'object' ? obj.metadata : ({} as KubeObject['metadata'])
  return obj
}

export function mustGet(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, name: string): KubeObject {
  const obj = cluster.store.get(type, namespace, name)
  if (!obj) throw notFound({ group: type.group, resource: type.resource, name })
  return obj
}

function selection(type: ResourceType, query: URLSearchParams) {
  return {
    labels: parseLabelSelector(query.get('labelSelector') ?? undefined),
    fields: parseFieldSelector(query.get('fieldSelector') ?? undefined, type.selectableFields),
  }
}

function listBody(type: ResourceType, metadata: Record<string, unknown>, items: string[]): string {
  const head = JSON.stringify({ kind: `${type.kind}List`, apiVersion: type.apiVersion, metadata })
  return `${head.slice(0, -1)},"items":[${items.join(',')}]}`
}

function list(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, query: URLSearchParams): string {
  const limitText = query.get('limit')
  const limit = limitText === null ? undefined : Number(limitText)
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) throw badRequest(`limit: Invalid value: ${JSON.stringify(limitText!.slice(0, 32))}`)
  const page = cluster.store.list(type, {
    namespace,
    ...selection(type, query),
    limit,
    continueToken: query.get('continue') || undefined,
  })
  const metadata: Record<string, unknown> = { resourceVersion: page.resourceVersion }
  if (page.continue) metadata.continue = page.continue
  if (page.remainingItemCount !== undefined) metadata.remainingItemCount = page.remainingItemCount
  return listBody(type, metadata, page.items)
}

const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'

function generatedName(prefix: string): string {
  let suffix = ''
  for (let i = 0; i < 5; i++) suffix += GENERATE_ALPHABET[Math.floor(Math.random() * GENERATE_ALPHABET.length)]
  return `${prefix}${suffix}`
}

export function checkNamespaceOpen(cluster: ClusterContext, type: ResourceType, namespace: string, name: string) {
  const nsType = cluster.catalog.find('', 'v1', 'namespaces')!
  const ns = cluster.store.get(nsType, undefined, namespace)
  if (!ns) throw notFound({ group: '', resource: 'namespaces', name: namespace })
  if (ns.metadata.deletionTimestamp) throw namespaceTerminating({ group: type.group, resource: type.resource, name }, namespace)
}

/** Server-side defaults the stand-in fills in (a small part of kube-apiserver's). */
export function withDefaults(type: ResourceType, obj: KubeObject): KubeObject {
  if (type.group === '' && type.resource === 'namespaces') {
    return {
      ...obj,
      metadata: { ...obj.metadata, labels: { ...obj.metadata.labels, 'kubernetes.io/metadata.name': obj.metadata.name } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    }
  }
  if (type.group === '' && type.resource === 'pods' && !obj.status) return { ...obj, status: { phase: 'Pending', qosClass: 'BestEffort' } }
  if (type.group === 'apps' && type.resource === 'deployments') return { ...obj, spec: deploymentSpecDefaults(obj.spec), status: {} }
  return kindDefaults(type, obj)
}

function create(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, body: KubeObject, manager: string): KubeObject {
  const meta = body.metadata
  if (type.namespaced) {
    if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
    }
    meta.namespace = namespace
  } else {
    delete meta.namespace
  }
  if (!meta.name && typeof meta.generateName === 'string' && meta.generateName) meta.name = generatedName(meta.generateName)
  // Server-owned fields are not taken from the client.
  for (const field of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp'] as const) delete meta[field]
  validateMetadata(type, body)
  if (namespace !== undefined) checkNamespaceOpen(cluster, type, namespace, meta.name)
  if (cluster.store.get(type, namespace, meta.name)) throw alreadyExists({ group: type.group, resource: type.resource, name: meta.name })
  delete meta.managedFields
  recordUpdate({ type, statusSeparate: hasStatusSubresource(cluster, type), old: undefined, next: body, manager })
  return cluster.store.insert(type, withDefaults(type, body))
}

export function hasStatusSubresource(cluster: ClusterContext, type: ResourceType): boolean {
  return !!cluster.catalog.lists(type.group, type.version, `${type.resource}/status`)
}

function update(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, name: string, body: KubeObject, manager: string): KubeObject {
  if (body.metadata.name !== undefined && body.metadata.name !== name) {
    throw badRequest(`the name of the object (${String(body.metadata.name).slice(0, 253)}) does not match the name on the URL (${name})`)
  }
  const old = mustGet(cluster, type, namespace, name)
  const rv = body.metadata.resourceVersion
  if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion) throw conflict({ group: type.group, resource: type.resource, name })
  const next: KubeObject = { ...body, metadata: { ...body.metadata, name, namespace: old.metadata.namespace } }
  if (old.metadata.deletionTimestamp) next.metadata.deletionTimestamp = old.metadata.deletionTimestamp
  // With a status subresource, writes to the main resource leave status alone.
  const statusSeparate = hasStatusSubresource(cluster, type)
  if (statusSeparate) next.status = old.status
  next.metadata.managedFields = old.metadata.managedFields
  recordUpdate({ type, statusSeparate, old, next, manager })
  validateMetadata(type, next)
  return cluster.store.replace(type, next)
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patchValue: unknown): unknown {
  if (!patchValue || typeof patchValue !== 'object' || Array.isArray(patchValue)) return patchValue
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {}
  for (const [k, v] of Object.entries(patchValue)) {
    if (v === null) delete out[k]
    else out[k] = mergePatch(out[k], v)
  }
  return out
}

function patch(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, name: string, req: KubeRequest): KubeObject {
  const mediaType = (req.contentType ?? '').split(';')[0]!.trim()
  // Strategic merge differs from merge patch only on lists with merge keys; that difference is not modelled.
  if (mediaType !== 'application/merge-patch+json' && mediaType !== 'application/strategic-merge-patch+json') {
    throw new KubeStatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json`)
  }
  const old = mustGet(cluster, type, namespace, name)
  const patched = mergePatch(old, parseBody(req.body, type.kind)) as KubeObject
  return update(cluster, type, namespace, name, { ...patched, metadata: { ...patched.metadata, resourceVersion: undefined } as KubeObject['metadata'] }, managerOf(req))
}

/** A running pod is deleted gracefully by its kubelet; the answer is the pod, now terminating. */
function terminating(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, name: string, req: KubeRequest): KubeObject | undefined {
  if (!cluster.workloads || type.group !== '' || type.resource !== 'pods' || namespace === undefined) return undefined
  const grace = req.query.get('gracePeriodSeconds') ?? (/"gracePeriodSeconds"\s*:\s*(\d+)/.exec(req.body)?.[1] ?? null)
  return cluster.workloads.deletePod(namespace, name, grace === null ? undefined : Number(grace))
}

function remove(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, name: string, req: KubeRequest): KubeResponse {
  const subject = { group: type.group, resource: type.resource, name }
  const { store } = cluster
  if (type.group === '' && type.resource === 'namespaces') {
    if (UNDELETABLE_NAMESPACES.has(name)) {
      throw new KubeStatusError(403, 'Forbidden', `namespaces "${name}" is forbidden: this namespace may not be deleted`, { name, kind: 'namespaces' })
    }
    const ns = mustGet(cluster, type, undefined, name)
    if (ns.metadata.deletionTimestamp) return json(200, JSON.stringify(ns))
    // The namespace controller empties it and then lets it go; until then it answers Terminating.
    const terminating = store.replace(type, {
      ...ns,
      metadata: { ...ns.metadata, deletionTimestamp: kubeTime() },
      status: { phase: 'Terminating' },
    })
    cluster.namespaceDeleted(name)
    return json(200, JSON.stringify(terminating))
  }
  const graceful = terminating(cluster, type, namespace, name, req)
  if (graceful) return json(200, JSON.stringify(graceful))
  const gone = store.remove(type, namespace, name)
  if (!gone) throw notFound(subject)
  // Pods and services answer with the object; most other registries with a Success Status.
  if (type.group === '' && (type.resource === 'pods' || type.resource === 'services')) return json(200, JSON.stringify(gone))
  const details: Record<string, string> = { name }
  if (type.group) details.group = type.group
  details.kind = type.resource
  details.uid = String(gone.metadata.uid)
  return json(200, JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details }))
}

function deleteCollection(cluster: ClusterContext, type: ResourceType, namespace: string | undefined, req: KubeRequest): string {
  const page = cluster.store.list(type, { namespace, ...selection(type, req.query) })
  const deleted: string[] = []
  for (const item of page.items) {
    const meta = (JSON.parse(item) as KubeObject).metadata
    const gone = terminating(cluster, type, meta.namespace, meta.name, req) ?? cluster.store.remove(type, meta.namespace, meta.name)
    if (gone) deleted.push(item)
  }
  return listBody(type, { resourceVersion: cluster.store.revision() }, deleted)
}
