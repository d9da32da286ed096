import type { V1Node, V1Pod } from '@kubernetes/client-node'
import type { KubeClient } from '../../platform/kube/index.js'
import { addResources, type ClusterSummary, describeNode, emptyResources, type NodeFacts, type Resources, summarizeCluster, usedByNode } from './hardware.js'

/**
 * What cluster_ops asks of a cluster, through the platform's client: whether our credentials
 * may do what modelplane needs, what kind of cluster it is and what it offers, and its nodes.
 * Lists are paged so that a sync's memory follows the page size, not the cluster's size.
 */

/** What modelplane does in a cluster, now and in the endpoint and app modules. */
export const REQUIRED_ACCESS: ReadonlyArray<{ verb: string; group: string; resource: string; subresource?: string }> = [
  ...['get', 'list', 'watch'].map((verb) => ({ verb, group: '', resource: 'nodes' })),
  ...['get', 'list', 'watch'].map((verb) => ({ verb, group: '', resource: 'pods' })),
  { verb: 'get', group: '', resource: 'pods', subresource: 'log' },
  { verb: 'get', group: '', resource: 'pods', subresource: 'proxy' },
  { verb: 'get', group: '', resource: 'services', subresource: 'proxy' },
  { verb: 'list', group: 'storage.k8s.io', resource: 'storageclasses' },
  { verb: 'list', group: 'networking.k8s.io', resource: 'ingressclasses' },
  { verb: 'list', group: '', resource: 'events' },
  ...['get', 'list', 'create', 'patch', 'delete'].map((verb) => ({ verb, group: '', resource: 'namespaces' })),
  ...(
    [
      ['', 'configmaps'],
      ['', 'secrets'],
      ['', 'services'],
      ['', 'serviceaccounts'],
      ['', 'persistentvolumeclaims'],
      ['', 'resourcequotas'],
      ['apps', 'deployments'],
      ['networking.k8s.io', 'ingresses'],
      ['networking.k8s.io', 'networkpolicies'],
    ] as const
  ).flatMap(([group, resource]) => ['get', 'list', 'create', 'patch', 'delete'].map((verb) => ({ verb, group, resource }))),
]

export function describeAccess(a: { verb: string; group: string; resource: string; subresource?: string }): string {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource
  return `${a.verb} ${a.group ? `${resource}.${a.group}` : resource}`
}

export interface VersionFacts {
  gitVersion: string
  minor: string
}

export async function readVersion(client: KubeClient): Promise<VersionFacts> {
  const v = await client.getJson<{ gitVersion?: string; major?: string; minor?: string }>('/version')
  return { gitVersion: String(v.gitVersion ?? '').slice(0, 100), minor: String(v.minor ?? '').slice(0, 20) }
}

/** The REQUIRED_ACCESS entries the credentials lack, asked of the cluster's own authorizer. */
export async function missingAccess(client: KubeClient): Promise<string[]> {
  const answers = await Promise.all(
    REQUIRED_ACCESS.map(async (access) => {
      const review = await client.authz.createSelfSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: {
            resourceAttributes: {
              verb: access.verb,
              group: access.group,
              resource: access.resource,
              ...(access.subresource ? { subresource: access.subresource } : {}),
            },
          },
        },
      })
      return review.status?.allowed === true ? null : describeAccess(access)
    }),
  )
  return answers.filter((a): a is string => a !== null)
}

export interface StorageClassFacts {
  name: string
  provisioner: string
  default: boolean
  /** Whether its volumes can be mounted by several pods on several nodes (ReadWriteMany). */
  readWriteMany: boolean
}

export interface ClusterCapabilities {
  ingressClasses: string[]
  defaultIngressClass: string | null
  storageClasses: StorageClassFacts[]
  defaultStorageClass: string | null
  /** A storage class whose volumes several pods share; endpoints with several replicas put weights there. */
  readWriteManyStorageClass: string | null
  keda: boolean
  customMetrics: boolean
  externalMetrics: boolean
  metricsServer: boolean
  traefik: boolean
  gatewayApi: boolean
  openshiftRoutes: boolean
}

export interface PlatformFacts {
  platform: 'kubernetes' | 'openshift'
  /** k3s, rke2, eks, gke, aks, openshift, kind, minikube, or null when nothing says. */
  distribution: string | null
  kubernetesVersion: string
  kubeSystemUid: string
  capabilities: ClusterCapabilities
}

/**
 * Provisioners whose volumes are ReadWriteMany. A storage class does not declare its access modes;
 * the provisioner decides, so it is judged by name (file and shared-filesystem drivers).
 */
const RWX_PROVISIONERS = [
  /nfs/i,
  /cephfs/i,
  /^efs\.csi\.aws\.com$/,
  /^filestore\.csi\.storage\.gke\.io$/,
  /^file\.csi\.azure\.com$/,
  /azure-file/i,
  /^driver\.longhorn\.io$/,
  /glusterfs/i,
  /^csi\.trident\.netapp\.io$/,
  /^spectrumscale\.csi\.ibm\.com$/,
  /^juicefs\.csi\.juicedata\.com$/,
  /^fsx\.csi\.aws\.com$/,
]

const DEFAULT_ANNOTATIONS = ['storageclass.kubernetes.io/is-default-class', 'storageclass.beta.kubernetes.io/is-default-class']

function distributionOf(gitVersion: string, openshift: boolean, nodeLabels: Record<string, string>, providerId: string): string | null {
  if (openshift) return 'openshift'
  if (/\+k3s/.test(gitVersion)) return 'k3s'
  if (/\+rke2/.test(gitVersion)) return 'rke2'
  if (/-eks-/.test(gitVersion) || 'eks.amazonaws.com/nodegroup' in nodeLabels) return 'eks'
  if (/-gke\./.test(gitVersion) || 'cloud.google.com/gke-nodepool' in nodeLabels) return 'gke'
  if ('kubernetes.azure.com/cluster' in nodeLabels || providerId.startsWith('azure://')) return 'aks'
  if (providerId.startsWith('kind://')) return 'kind'
  if ('minikube.k8s.io/name' in nodeLabels) return 'minikube'
  return null
}

/** Platform, distribution, the kube-system uid and what later modules build on. */
export async function detectPlatform(client: KubeClient, version: VersionFacts): Promise<PlatformFacts> {
  const [groupList, kubeSystem, ingressClasses, storageClasses, firstNodes] = await Promise.all([
    client.getJson<{ groups?: Array<{ name?: string }> }>('/apis'),
    client.core.readNamespace({ name: 'kube-system' }),
    client.networking.listIngressClass({ limit: 100 }),
    client.storage.listStorageClass({ limit: 100 }),
    client.core.listNode({ limit: 1 }),
  ])
  const groups = new Set((groupList.groups ?? []).map((g) => String(g.name ?? '')))
  const openshift = groups.has('route.openshift.io') || groups.has('config.openshift.io')
  const node = firstNodes.items[0]
  const storage: StorageClassFacts[] = storageClasses.items.slice(0, 100).map((sc) => ({
    name: String(sc.metadata?.name ?? '').slice(0, 253),
    provisioner: String(sc.provisioner ?? '').slice(0, 253),
    default: DEFAULT_ANNOTATIONS.some((a) => sc.metadata?.annotations?.[a] === 'true'),
    readWriteMany: RWX_PROVISIONERS.some((p) => p.test(String(sc.provisioner ?? ''))),
  }))
  const ingress = ingressClasses.items.slice(0, 100)
  const defaultStorage = storage.find((s) => s.default) ?? null
  const uid = kubeSystem.metadata?.uid
  if (!uid) throw new Error('the kube-system namespace has no uid')
  return {
    platform: openshift ? 'openshift' : 'kubernetes',
    distribution: distributionOf(version.gitVersion, openshift, node?.metadata?.labels ?? {}, String(node?.spec?.providerID ?? '')),
    kubernetesVersion: version.gitVersion,
    kubeSystemUid: String(uid).slice(0, 64),
    capabilities: {
      ingressClasses: ingress.map((i) => String(i.metadata?.name ?? '').slice(0, 253)),
      defaultIngressClass:
        ingress.find((i) => i.metadata?.annotations?.['ingressclass.kubernetes.io/is-default-class'] === 'true')?.metadata?.name ??
        (ingress.length === 1 ? (ingress[0]!.metadata?.name ?? null) : null),
      storageClasses: storage,
      defaultStorageClass: defaultStorage?.name ?? null,
      readWriteManyStorageClass: (defaultStorage?.readWriteMany ? defaultStorage : storage.find((s) => s.readWriteMany))?.name ?? null,
      keda: groups.has('keda.sh'),
      customMetrics: groups.has('custom.metrics.k8s.io'),
      externalMetrics: groups.has('external.metrics.k8s.io'),
      metricsServer: groups.has('metrics.k8s.io'),
      traefik: groups.has('traefik.io') || groups.has('traefik.containo.us'),
      gatewayApi: groups.has('gateway.networking.k8s.io'),
      openshiftRoutes: groups.has('route.openshift.io'),
    },
  }
}

export interface NodeReading {
  facts: NodeFacts
  used: Resources
}

const NODE_PAGE = 100
const POD_PAGE = 500

/** Pods that hold resources: the scheduler counts every pod not yet Succeeded or Failed. */
const LIVE_PODS = 'status.phase!=Succeeded,status.phase!=Failed'

/** One page of a list as the API server sends it (plain JSON, not the client's typed models). */
interface ListPage<T> {
  items?: T[]
  metadata?: { continue?: string }
}

function listPath(base: string, query: Record<string, string | undefined>): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value)
  return `${base}?${params.toString()}`
}

/**
 * Every node with what its pods request, and the cluster's summary. Pods are read a page at a time
 * and folded into per-node sums, so memory follows the node count, never the pod count.
 *
 * The lists are read as plain JSON (`getJson`), not through the typed CoreV1Api: its deserializer
 * copies every object of a page into model classes (dates parsed, every field walked) before we read
 * the few fields we need, which doubled what a sync allocated. Each page is dropped as soon as it is
 * folded into the node facts and the per-node sums.
 */
export async function readNodes(client: KubeClient, signal?: AbortSignal): Promise<{ nodes: NodeReading[]; summary: ClusterSummary }> {
  const facts: NodeFacts[] = []
  let token: string | undefined
  do {
    signal?.throwIfAborted()
    const page = await client.getJson<ListPage<V1Node>>(listPath('/api/v1/nodes', { limit: String(NODE_PAGE), continue: token }), signal)
    for (const node of page.items ?? []) facts.push(describeNode(node))
    token = page.metadata?.continue || undefined
  } while (token)

  const used = new Map<string, Resources>()
  do {
    signal?.throwIfAborted()
    const page = await client.getJson<ListPage<V1Pod>>(
      listPath('/api/v1/pods', { fieldSelector: LIVE_PODS, limit: String(POD_PAGE), continue: token }),
      signal,
    )
    for (const [node, sum] of usedByNode(page.items ?? [])) {
      const before = used.get(node)
      used.set(node, before ? addResources(before, sum) : sum)
    }
    token = page.metadata?.continue || undefined
  } while (token)

  const nodes = facts.map((f) => ({ facts: f, used: used.get(f.name) ?? emptyResources() }))
  return { nodes, summary: summarizeCluster(nodes) }
}
