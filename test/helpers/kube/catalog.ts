import { readFileSync } from 'node:fs'

/**
 * Which API groups, versions and resources a stand-in cluster serves, from its flavour and what it
 * offers. Core v1 and apps/v1 are the lists recorded from kube-apiserver 1.26; the other groups are
 * written here in the same shape. A catalog is shared by every cluster with the same flavour and
 * offers (a benchmark hosts hundreds of clusters in one process).
 */

/** One entry of an APIResourceList, as discovery answers it. */
export interface ApiResource {
  name: string
  singularName: string
  namespaced: boolean
  group?: string
  version?: string
  kind: string
  verbs: string[]
  shortNames?: string[]
  categories?: string[]
  storageVersionHash?: string
}

/** A resource the stand-in stores objects of (not a subresource, not a review). */
export interface ResourceType {
  group: string
  version: string
  /** The plural, as in the path. */
  resource: string
  kind: string
  namespaced: boolean
  verbs: readonly string[]
  /** "v1" or "apps/v1". */
  apiVersion: string
  /** Served from a CustomResourceDefinition: list items keep their kind and apiVersion. */
  custom: boolean
  /** metadata.generation is kept (types with a spec a controller acts on). */
  generation: boolean
  /** The fields a fieldSelector may name (kube-apiserver refuses any other). */
  selectableFields: readonly string[]
}

export interface GroupVersion {
  version: string
  resources: ApiResource[]
}

export interface ApiGroup {
  name: string
  /** Preferred version first. */
  versions: GroupVersion[]
  /** The group's types come from CRDs (they appear in the customresourcedefinitions list). */
  crd: boolean
}

export interface Offers {
  ingressClass?: string
  defaultStorageClass?: { name: string; provisioner: string; rwx?: boolean }
  keda?: boolean
  customMetrics?: boolean
  traefik?: boolean
}

export type Flavour = 'kubernetes' | 'openshift'

export interface Catalog {
  /** Core v1 resources (/api/v1). */
  core: GroupVersion
  /** Named groups in the order /apis lists them. */
  groups: ApiGroup[]
  /** The stored type at this group/version/resource, or undefined when none is served. */
  find(group: string, version: string, resource: string): ResourceType | undefined
  /** Every stored type. */
  types: ResourceType[]
  /** Whether group/version/resource (subresource included, "pods/log") appears in discovery. */
  lists(group: string, version: string, name: string): ApiResource | undefined
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']
const STATUS_VERBS = ['get', 'patch', 'update']

function readRecorded(file: string): ApiResource[] {
  const url = new URL(`../../fixtures/kube/discovery/${file}`, import.meta.url)
  return (JSON.parse(readFileSync(url, 'utf8')) as { resources: ApiResource[] }).resources
}

interface Shape {
  namespaced?: boolean
  verbs?: string[]
  shortNames?: string[]
  categories?: string[]
  /** Add `<name>/status`. */
  status?: boolean
}

/** Entries for one resource (and its status subresource) in discovery's shape. */
function entries(name: string, kind: string, shape: Shape, crd: boolean): ApiResource[] {
  const namespaced = shape.namespaced ?? true
  const main: ApiResource = {
    name,
    // Built-in types answered an empty singularName in 1.26; CRD-backed ones carry theirs.
    singularName: crd ? kind.toLowerCase() : '',
    namespaced,
    kind,
    verbs: shape.verbs ?? ALL_VERBS,
  }
  if (shape.shortNames) main.shortNames = shape.shortNames
  if (shape.categories) main.categories = shape.categories
  const out = [main]
  if (shape.status) out.push({ name: `${name}/status`, singularName: '', namespaced, kind, verbs: STATUS_VERBS })
  return out
}

type Table = Array<[name: string, kind: string, shape?: Shape]>

function group(name: string, versions: Array<[version: string, table: Table]>, crd = false): ApiGroup {
  return {
    name,
    crd,
    versions: versions.map(([version, table]) => ({
      version,
      resources: table.flatMap(([n, kind, shape]) => entries(n, kind, shape ?? {}, crd)),
    })),
  }
}

const review = { verbs: ['create'], namespaced: false }

/** Groups every flavour serves, in the order kube-apiserver lists them. */
function builtInGroups(): ApiGroup[] {
  return [
    { name: 'apps', crd: false, versions: [{ version: 'v1', resources: readRecorded('apis-apps-v1.json') }] },
    group('authorization.k8s.io', [['v1', [
      ['localsubjectaccessreviews', 'LocalSubjectAccessReview', { verbs: ['create'] }],
      ['selfsubjectaccessreviews', 'SelfSubjectAccessReview', review],
      ['selfsubjectrulesreviews', 'SelfSubjectRulesReview', review],
      ['subjectaccessreviews', 'SubjectAccessReview', review],
    ]]]),
    group('autoscaling', [['v2', [
      ['horizontalpodautoscalers', 'HorizontalPodAutoscaler', { shortNames: ['hpa'], categories: ['all'], status: true }],
    ]]]),
    group('batch', [['v1', [
      ['cronjobs', 'CronJob', { shortNames: ['cj'], categories: ['all'], status: true }],
      ['jobs', 'Job', { categories: ['all'], status: true }],
    ]]]),
    group('networking.k8s.io', [['v1', [
      ['ingressclasses', 'IngressClass', { namespaced: false }],
      ['ingresses', 'Ingress', { shortNames: ['ing'], status: true }],
      ['networkpolicies', 'NetworkPolicy', { shortNames: ['netpol'] }],
    ]]]),
    group('policy', [['v1', [
      ['poddisruptionbudgets', 'PodDisruptionBudget', { shortNames: ['pdb'], status: true }],
    ]]]),
    group('rbac.authorization.k8s.io', [['v1', [
      ['clusterrolebindings', 'ClusterRoleBinding', { namespaced: false }],
      ['clusterroles', 'ClusterRole', { namespaced: false }],
      ['rolebindings', 'RoleBinding'],
      ['roles', 'Role'],
    ]]]),
    group('storage.k8s.io', [['v1', [
      ['csidrivers', 'CSIDriver', { namespaced: false }],
      ['csinodes', 'CSINode', { namespaced: false }],
      ['csistoragecapacities', 'CSIStorageCapacity'],
      ['storageclasses', 'StorageClass', { namespaced: false, shortNames: ['sc'] }],
      ['volumeattachments', 'VolumeAttachment', { namespaced: false, status: true }],
    ]]]),
    group('apiextensions.k8s.io', [['v1', [
      ['customresourcedefinitions', 'CustomResourceDefinition', { namespaced: false, shortNames: ['crd', 'crds'], status: true }],
    ]]]),
  ]
}

function openShiftGroups(): ApiGroup[] {
  const clusterScoped = { namespaced: false, status: true }
  return [
    group('config.openshift.io', [['v1', [
      ['clusteroperators', 'ClusterOperator', { ...clusterScoped, shortNames: ['co'] }],
      ['clusterversions', 'ClusterVersion', clusterScoped],
      ['infrastructures', 'Infrastructure', clusterScoped],
      ['ingresses', 'Ingress', clusterScoped],
      ['networks', 'Network', clusterScoped],
      ['proxies', 'Proxy', clusterScoped],
    ]]], true),
    group('project.openshift.io', [['v1', [
      ['projectrequests', 'ProjectRequest', { namespaced: false, verbs: ['create', 'list'] }],
      ['projects', 'Project', { namespaced: false, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] }],
    ]]]),
    group('route.openshift.io', [['v1', [['routes', 'Route', { status: true }]]]]),
  ]
}

function offeredGroups(offers: Offers): ApiGroup[] {
  const out: ApiGroup[] = []
  if (offers.keda) {
    out.push(group('keda.sh', [['v1alpha1', [
      ['clustertriggerauthentications', 'ClusterTriggerAuthentication', { namespaced: false, shortNames: ['cta', 'clustertriggerauth'], status: true }],
      ['scaledjobs', 'ScaledJob', { shortNames: ['sj'], status: true }],
      ['scaledobjects', 'ScaledObject', { shortNames: ['so'], status: true }],
      ['triggerauthentications', 'TriggerAuthentication', { shortNames: ['ta', 'triggerauth'], status: true }],
    ]]], true))
    // KEDA's metrics server registers itself as the external metrics API.
    out.push(group('external.metrics.k8s.io', [['v1beta1', [['externalmetrics', 'ExternalMetricValueList', { verbs: ['get'] }]]]]))
  }
  if (offers.customMetrics) {
    // An adapter (prometheus-adapter) serves both versions; its metric list depends on its rules.
    out.push(group('custom.metrics.k8s.io', [['v1beta2', []], ['v1beta1', []]]))
  }
  if (offers.traefik) {
    const kinds: Array<[string, string]> = [
      ['ingressroutes', 'IngressRoute'], ['ingressroutetcps', 'IngressRouteTCP'], ['ingressrouteudps', 'IngressRouteUDP'],
      ['middlewares', 'Middleware'], ['middlewaretcps', 'MiddlewareTCP'], ['serverstransports', 'ServersTransport'],
      ['serverstransporttcps', 'ServersTransportTCP'], ['tlsoptions', 'TLSOption'], ['tlsstores', 'TLSStore'],
      ['traefikservices', 'TraefikService'],
    ]
    out.push(group('traefik.io', [['v1alpha1', kinds.map(([n, k]) => [n, k])]], true))
  }
  return out
}

const COMMON_FIELDS = ['metadata.name', 'metadata.namespace']
const EXTRA_FIELDS: Record<string, string[]> = {
  '/pods': ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork',
    'status.phase', 'status.podIP', 'status.nominatedNodeName'],
  '/nodes': ['spec.unschedulable'],
  '/secrets': ['type'],
  '/namespaces': ['status.phase'],
  '/events': ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid',
    'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason',
    'reportingComponent', 'source', 'type'],
  '/replicationcontrollers': ['status.replicas'],
  'apps/replicasets': ['status.replicas'],
}

// Types whose registry keeps metadata.generation (a spec that controllers observe).
const GENERATION_GROUPS = new Set(['apps', 'autoscaling', 'batch', 'networking.k8s.io', 'policy', 'apiextensions.k8s.io'])

function typeOf(groupName: string, version: string, r: ApiResource, crd: boolean): ResourceType {
  return {
    group: groupName,
    version,
    resource: r.name,
    kind: r.kind,
    namespaced: r.namespaced,
    verbs: r.verbs,
    apiVersion: groupName ? `${groupName}/${version}` : version,
    custom: crd,
    generation: crd || GENERATION_GROUPS.has(groupName),
    selectableFields: [...COMMON_FIELDS, ...(EXTRA_FIELDS[`${groupName}/${r.name}`] ?? [])],
  }
}

function isStored(r: ApiResource): boolean {
  return !r.name.includes('/') && r.verbs.includes('list')
}

function buildCatalog(flavour: Flavour, offers: Offers): Catalog {
  const core: GroupVersion = { version: 'v1', resources: readRecorded('api-v1.json') }
  const groups = [...builtInGroups(), ...(flavour === 'openshift' ? openShiftGroups() : []), ...offeredGroups(offers)]
  const types = new Map<string, ResourceType>()
  const listed = new Map<string, ApiResource>()
  const index = (g: string, crd: boolean, gv: GroupVersion) => {
    for (const r of gv.resources) {
      listed.set(`${g}/${gv.version}/${r.name}`, r)
      if (isStored(r)) types.set(`${g}/${gv.version}/${r.name}`, typeOf(g, gv.version, r, crd))
    }
  }
  index('', false, core)
  for (const g of groups) for (const gv of g.versions) index(g.name, g.crd, gv)
  return {
    core,
    groups,
    find: (g, v, r) => types.get(`${g}/${v}/${r}`),
    types: [...types.values()],
    lists: (g, v, n) => listed.get(`${g}/${v}/${n}`),
  }
}

const catalogs = new Map<string, Catalog>()

/** The catalog for a flavour and offers, shared between clusters that have the same. */
export function catalogFor(flavour: Flavour, offers: Offers): Catalog {
  const key = JSON.stringify([flavour, !!offers.keda, !!offers.customMetrics, !!offers.traefik])
  let catalog = catalogs.get(key)
  if (!catalog) {
    catalog = buildCatalog(flavour, offers)
    catalogs.set(key, catalog)
  }
  return catalog
}
