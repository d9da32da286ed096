import type { KubeClient } from './client.js'
import { KubeError, toKubeError } from './errors.js'
import { MANAGED_BY, MANAGER } from './labels.js'
import { REDACTED } from '../logger.js'

/**
 * Writing modelplane's objects into a cluster and taking them away again. Writes are server-side
 * apply with field manager `modelplane`: the cluster merges what we send with what others set,
 * applying the same manifest twice changes nothing, and fields we stop sending are removed when no
 * one else set them. Only the kinds in MANAGED_KINDS are written; teardown finds what to delete by
 * labels (ours always include `app.kubernetes.io/managed-by: modelplane`), kind by kind in the
 * reverse of the order they were applied.
 */

/** What modelplane applies: a Kubernetes object in its wire form. */
export type KubeManifest = {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
  }
  [k: string]: unknown
}

/** An object as a cluster answers it (lists lose kind and apiVersion; listManaged puts them back). */
export interface KubeObject {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    namespace?: string
    uid?: string
    resourceVersion?: string
    generation?: number
    creationTimestamp?: string
    deletionTimestamp?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
    managedFields?: unknown[]
    [k: string]: unknown
  }
  [k: string]: unknown
}

export interface KindInfo {
  kind: string
  /** '' for the core group */
  group: string
  version: string
  plural: string
  namespaced: boolean
}

const kind = (kind: string, group: string, version: string, plural: string, namespaced = true): KindInfo => ({
  kind,
  group,
  version,
  plural,
  namespaced,
})

/**
 * The kinds modelplane writes, in the order they are applied: the namespace first, then what
 * governs it (quota, limits, network policy), identities and configuration, storage, workloads
 * after everything they mount or run as, their autoscalers and budgets, and routing last, so that
 * traffic is only sent once there is something to receive it.
 */
export const MANAGED_KINDS: readonly KindInfo[] = Object.freeze([
  kind('Namespace', '', 'v1', 'namespaces', false),
  kind('ResourceQuota', '', 'v1', 'resourcequotas'),
  kind('LimitRange', '', 'v1', 'limitranges'),
  kind('NetworkPolicy', 'networking.k8s.io', 'v1', 'networkpolicies'),
  kind('ServiceAccount', '', 'v1', 'serviceaccounts'),
  kind('Role', 'rbac.authorization.k8s.io', 'v1', 'roles'),
  kind('RoleBinding', 'rbac.authorization.k8s.io', 'v1', 'rolebindings'),
  kind('Secret', '', 'v1', 'secrets'),
  kind('ConfigMap', '', 'v1', 'configmaps'),
  kind('PersistentVolumeClaim', '', 'v1', 'persistentvolumeclaims'),
  kind('Job', 'batch', 'v1', 'jobs'),
  kind('Deployment', 'apps', 'v1', 'deployments'),
  kind('Service', '', 'v1', 'services'),
  kind('HorizontalPodAutoscaler', 'autoscaling', 'v2', 'horizontalpodautoscalers'),
  kind('ScaledObject', 'keda.sh', 'v1alpha1', 'scaledobjects'),
  kind('PodDisruptionBudget', 'policy', 'v1', 'poddisruptionbudgets'),
  kind('Ingress', 'networking.k8s.io', 'v1', 'ingresses'),
  kind('Route', 'route.openshift.io', 'v1', 'routes'),
  kind('IngressRoute', 'traefik.io', 'v1alpha1', 'ingressroutes'),
])

/** Kind names in the order they are applied. */
export const APPLY_ORDER: readonly string[] = Object.freeze(MANAGED_KINDS.map((k) => k.kind))
/** Kind names in the order they are torn down (routing first, the namespace last). */
export const TEARDOWN_ORDER: readonly string[] = Object.freeze([...APPLY_ORDER].reverse())

const BY_KIND = new Map(MANAGED_KINDS.map((k) => [k.kind, k]))

export const apiVersionOf = (k: KindInfo): string => (k.group ? `${k.group}/${k.version}` : k.version)

/** A manifest modelplane will not write: refused before any call to the cluster. */
export class ManifestRefused extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ManifestRefused'
  }
}

/** The table entry of a kind; throws ManifestRefused for a kind modelplane does not write. */
export function kindInfo(kindName: string): KindInfo {
  const info = BY_KIND.get(kindName)
  if (!info) throw new ManifestRefused(`modelplane does not write objects of kind ${JSON.stringify(kindName.slice(0, 100))}; it writes ${APPLY_ORDER.join(', ')}`)
  return info
}

function refName(m: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return `${m.kind} ${m.metadata.namespace ? `${m.metadata.namespace}/` : ''}${m.metadata.name}`
}

/** Checks a manifest against the table (kind, apiVersion, namespace or none) and answers its kind. */
export function checkManifest(m: KubeManifest): KindInfo {
  if (!m || typeof m !== 'object' || typeof m.kind !== 'string' || !m.metadata || typeof m.metadata.name !== 'string' || !m.metadata.name) {
    throw new ManifestRefused('a manifest needs kind and metadata.name')
  }
  const info = kindInfo(m.kind)
  if (m.apiVersion !== apiVersionOf(info)) {
    throw new ManifestRefused(`${refName(m)}: apiVersion must be ${apiVersionOf(info)}, not ${JSON.stringify(String(m.apiVersion).slice(0, 100))}`)
  }
  if (info.namespaced && !m.metadata.namespace) throw new ManifestRefused(`${refName(m)}: a ${m.kind} needs metadata.namespace`)
  if (!info.namespaced && m.metadata.namespace) throw new ManifestRefused(`${refName(m)}: a ${m.kind} is not namespaced; drop metadata.namespace`)
  return info
}

const seg = (s: string) => encodeURIComponent(s)

/** The collection path of a kind, in one namespace or (namespace undefined) across all of them. */
export function collectionPath(info: KindInfo, namespace?: string): string {
  const root = info.group ? `/apis/${info.group}/${info.version}` : `/api/${info.version}`
  return info.namespaced && namespace !== undefined ? `${root}/namespaces/${seg(namespace)}/${info.plural}` : `${root}/${info.plural}`
}

export function objectPath(info: KindInfo, namespace: string | undefined, name: string): string {
  return `${collectionPath(info, info.namespaced ? namespace : undefined)}/${seg(name)}`
}

export interface ApplyOptions {
  /** Take fields another manager set (drift repair); without it such a field is a CLUSTER_CONFLICT. */
  force?: boolean
  /** The cluster computes and answers the result but stores nothing. */
  dryRun?: boolean
  signal?: AbortSignal
}

export interface ApplyResult {
  /** The object as the cluster has it after the apply (a Secret with its data: redactSecret before showing it). */
  object: KubeObject
  created: boolean
  /** Created, or changed in any way (a new resourceVersion; under dryRun: a different object). */
  changed: boolean
}

/** What an apply could change: the object without what the server moves on every write. */
function content(obj: KubeObject | undefined): string {
  if (!obj) return ''
  const { resourceVersion: _rv, managedFields: _mf, generation: _g, ...meta } = obj.metadata
  return JSON.stringify({ ...obj, metadata: meta }, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  )
}

/** A failure of one object's call, with the object named in the message. */
function about(m: { kind: string; metadata: { name: string; namespace?: string } }, err: unknown): KubeError {
  const e = toKubeError(err)
  return new KubeError(e.code, `${refName(m)}: ${e.message}`, {
    ...(e.httpStatus !== undefined ? { httpStatus: e.httpStatus } : {}),
    ...(e.reason ? { reason: e.reason } : {}),
    ...(e.causes ? { causes: e.causes } : {}),
    retryable: e.retryable,
  })
}

async function getObject(client: Pick<KubeClient, 'request'>, path: string, signal?: AbortSignal): Promise<KubeObject | undefined> {
  const res = await client.request('GET', path, { signal, passStatus: true })
  if (res.status === 404) return undefined
  if (res.status < 200 || res.status > 299) throw toKubeError({ code: res.status, body: res.body.toString('utf8') })
  return res.json<KubeObject>()
}

/**
 * Server-side apply of one manifest as `modelplane`. The object is read first so that the answer
 * can tell whether anything changed (an unchanged apply keeps its resourceVersion). A field
 * another manager owns with a different value fails with CLUSTER_CONFLICT naming field and
 * manager, unless `force`.
 */
export async function applyManifest(
  client: Pick<KubeClient, 'request'>,
  manifest: KubeManifest,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  const info = checkManifest(manifest)
  const path = objectPath(info, manifest.metadata.namespace, manifest.metadata.name)
  const query = new URLSearchParams({ fieldManager: MANAGER })
  if (opts.force) query.set('force', 'true')
  if (opts.dryRun) query.set('dryRun', 'All')
  try {
    const before = await getObject(client, path, opts.signal)
    const res = await client.request('PATCH', `${path}?${query}`, {
      body: JSON.stringify(manifest),
      contentType: 'application/apply-patch+yaml',
      signal: opts.signal,
    })
    const object = res.json<KubeObject>()
    object.kind ??= manifest.kind
    object.apiVersion ??= manifest.apiVersion
    const created = res.status === 201 || !before
    const changed = created || (opts.dryRun ? content(before) !== content(object) : before!.metadata.resourceVersion !== object.metadata.resourceVersion)
    return { object, created, changed }
  } catch (err) {
    if (opts.signal?.aborted) throw err
    throw about(manifest, err)
  }
}

/** The manifests in APPLY_ORDER (stable within a kind); every one is checked before anything is sent. */
export function inApplyOrder<T extends KubeManifest>(manifests: readonly T[]): T[] {
  const rank = (m: T) => APPLY_ORDER.indexOf(checkManifest(m).kind)
  return manifests.map((m, i) => ({ m, i, r: rank(m) })).sort((a, b) => a.r - b.r || a.i - b.i).map((x) => x.m)
}

/** Applies manifests one by one in APPLY_ORDER; stops at the first failure (the KubeError names the object). */
export async function applyManifests(
  client: Pick<KubeClient, 'request'>,
  manifests: readonly KubeManifest[],
  opts: ApplyOptions = {},
): Promise<Array<ApplyResult & { manifest: KubeManifest }>> {
  const ordered = inApplyOrder(manifests)
  const results: Array<ApplyResult & { manifest: KubeManifest }> = []
  for (const manifest of ordered) results.push({ manifest, ...(await applyManifest(client, manifest, opts)) })
  return results
}

export interface ManagedQuery {
  /** A label selector; deleteManaged insists it includes app.kubernetes.io/managed-by=modelplane. */
  selector: string
  /** Only these namespaces (cluster-scoped kinds are still searched cluster-wide). Default: all. */
  namespaces?: readonly string[]
  /** Only these kinds (names from MANAGED_KINDS). Default: all of them. */
  kinds?: readonly string[]
  signal?: AbortSignal
}

export interface ObjectRef {
  kind: string
  apiVersion: string
  namespace?: string
  name: string
  uid?: string
}

const PAGE = 500

function kindsOf(q: ManagedQuery, order: readonly string[]): KindInfo[] {
  const wanted = q.kinds ? new Set(q.kinds.map((k) => kindInfo(k).kind)) : undefined
  return order.filter((k) => !wanted || wanted.has(k)).map((k) => BY_KIND.get(k)!)
}

/** The paths to list for one kind: one per namespace asked, or one across the cluster. */
function scopes(info: KindInfo, q: ManagedQuery): string[] {
  if (!info.namespaced || !q.namespaces) return [collectionPath(info)]
  return [...new Set(q.namespaces)].map((ns) => collectionPath(info, ns))
}

interface ListAnswer {
  items?: KubeObject[]
  metadata?: { continue?: string }
}

/** Every page of a list; a kind the cluster does not serve (no KEDA, not OpenShift) is an empty list. */
async function* listAll(client: Pick<KubeClient, 'request'>, path: string, selector: string, signal?: AbortSignal, limit = PAGE): AsyncGenerator<KubeObject> {
  let token: string | undefined
  do {
    const q = new URLSearchParams({ labelSelector: selector, limit: String(limit) })
    if (token) q.set('continue', token)
    const res = await client.request('GET', `${path}?${q}`, { signal, passStatus: true })
    if (res.status === 404) return
    if (res.status < 200 || res.status > 299) throw toKubeError({ code: res.status, body: res.body.toString('utf8') })
    const page = res.json<ListAnswer>()
    for (const item of page.items ?? []) yield item
    token = page.metadata?.continue || undefined
  } while (token)
}

function checkSelector(selector: string) {
  if (typeof selector !== 'string' || !selector.trim()) throw new ManifestRefused('a selector is required: an empty one would match everything in the cluster')
}

/** Every object of the table's kinds (or `kinds`) matching the selector: what is applied now. */
export async function listManaged(client: Pick<KubeClient, 'request'>, q: ManagedQuery): Promise<KubeObject[]> {
  checkSelector(q.selector)
  const out: KubeObject[] = []
  for (const info of kindsOf(q, APPLY_ORDER)) {
    for (const path of scopes(info, q)) {
      for await (const item of listAll(client, path, q.selector, q.signal)) {
        out.push({ ...item, kind: info.kind, apiVersion: apiVersionOf(info) })
      }
    }
  }
  return out
}

/** Whether nothing matching the selector remains (objects still terminating count as remaining). */
export async function managedGone(client: Pick<KubeClient, 'request'>, q: ManagedQuery): Promise<boolean> {
  checkSelector(q.selector)
  for (const info of kindsOf(q, TEARDOWN_ORDER)) {
    for (const path of scopes(info, q)) {
      for await (const _item of listAll(client, path, q.selector, q.signal, 1)) return false
    }
  }
  return true
}

export interface DeleteOptions extends ManagedQuery {
  /** Foreground (default): the object goes once its dependents (ReplicaSets, Pods) are gone. */
  propagation?: 'Foreground' | 'Background'
}

const MANAGED_REQUIREMENT = new RegExp(`(^|,)\\s*${MANAGED_BY.replace(/\./g, '\\.')}\\s*==?\\s*${MANAGER}\\s*(,|$)`)

/**
 * Deletes every object of the table's kinds matching the selector, in TEARDOWN_ORDER, and answers
 * what it asked the cluster to delete. An object already gone (404) is skipped. Objects with a
 * deletion under way are asked again (harmless) so the call can be repeated until managedGone.
 * The selector must include app.kubernetes.io/managed-by=modelplane: nothing of anyone else's.
 */
export async function deleteManaged(client: Pick<KubeClient, 'request'>, q: DeleteOptions): Promise<ObjectRef[]> {
  checkSelector(q.selector)
  if (!MANAGED_REQUIREMENT.test(q.selector)) {
    throw new ManifestRefused(`deleteManaged needs a selector with ${MANAGED_BY}=${MANAGER}, so that it never touches objects of anyone else`)
  }
  const body = { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: q.propagation ?? 'Foreground' }
  const deleted: ObjectRef[] = []
  for (const info of kindsOf(q, TEARDOWN_ORDER)) {
    for (const path of scopes(info, q)) {
      // The whole list first: deleting while paging would shift the pages under us.
      const items: KubeObject[] = []
      for await (const item of listAll(client, path, q.selector, q.signal)) items.push(item)
      for (const item of items) {
        const ref: ObjectRef = {
          kind: info.kind,
          apiVersion: apiVersionOf(info),
          ...(item.metadata.namespace ? { namespace: item.metadata.namespace } : {}),
          name: item.metadata.name,
          ...(item.metadata.uid ? { uid: item.metadata.uid } : {}),
        }
        try {
          const res = await client.request('DELETE', objectPath(info, item.metadata.namespace, item.metadata.name), {
            body,
            signal: q.signal,
            passStatus: true,
          })
          if (res.status === 404) continue
          if (res.status < 200 || res.status > 299) throw toKubeError({ code: res.status, body: res.body.toString('utf8') })
          deleted.push(ref)
        } catch (err) {
          if (q.signal?.aborted) throw err
          throw about({ kind: info.kind, metadata: { name: ref.name, namespace: ref.namespace } }, err)
        }
      }
    }
  }
  return deleted
}

/**
 * An object fit to show: a Secret's `data` and `stringData` values (and a client-side apply's
 * copy of them in the last-applied annotation) replaced by a marker, keys kept. Other objects are
 * returned as they are.
 */
export function redactSecret<T extends { kind?: unknown; metadata?: unknown }>(object: T): T {
  if (!object || object.kind !== 'Secret') return object
  const out = structuredClone(object) as T & { data?: unknown; stringData?: unknown; metadata?: { annotations?: Record<string, string> } }
  for (const field of ['data', 'stringData'] as const) {
    const values = out[field]
    if (values && typeof values === 'object') {
      out[field] = Object.fromEntries(Object.keys(values).map((k) => [k, REDACTED]))
    }
  }
  const annotations = out.metadata?.annotations
  if (annotations && 'kubectl.kubernetes.io/last-applied-configuration' in annotations) {
    annotations['kubectl.kubernetes.io/last-applied-configuration'] = REDACTED
  }
  return out
}
