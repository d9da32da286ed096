import { randomBytes, randomUUID } from 'node:crypto'
import { type Authority, type Right, createAuthority } from './auth.js'
import { type Catalog, type Flavour, type Offers, type ResourceType, catalogFor } from './catalog.js'
import { type StandInCerts } from './certs.js'
import { DEFAULT_GIT_VERSION, customResourceDefinitions, versionInfo } from './discovery.js'
import { nodeFixture } from './fixtures.js'
import { kubeconfigYaml } from './kubeconfig.js'
import { type ClusterContext } from './router.js'
import { type BehaviourRule } from './kubelet.js'
import { type ProxiedAnswer, type ProxiedRequest } from './runtime-sim.js'
import { callPod } from './proxy.js'
import { type KubeObject, type ObjectStore, createObjectStore } from './store.js'
import { editAs } from './apply.js'
import { createWatchHub } from './watch.js'
import { type WorkloadOptions, createWorkloads } from './workloads.js'

/**
 * One stand-in cluster: its objects, its credentials, what it serves, and the knobs tests turn
 * (reachability, latency). Many live behind one server, each under its own path prefix.
 */

export interface ClusterOptions {
  /** Default random; the cluster lives under `${url}/c/${id}`. Lowercase letters, digits and dashes. */
  id?: string
  flavour?: Flavour
  /** /version's gitVersion, e.g. 'v1.29.4+k3s1', 'v1.28.9-eks-036c24b', 'v1.29.1-gke.1589018'. */
  gitVersion?: string
  /** Fixture names (test/fixtures/kube/nodes/<name>.json or test/fixtures/kube/<name>.json) or Node objects. */
  nodes?: Array<string | object>
  /** Pod objects (with spec.nodeName and resource requests); their namespaces are created as needed. */
  pods?: object[]
  offers?: Offers
  /** The same uid on two clusters = one cluster reached through two URLs. */
  kubeSystemUid?: string
  /** How long a deleted namespace stays Terminating before it and its contents are gone (default 50 ms). */
  namespaceTerminationMs?: number
  /** Changes kept for watches resuming from a resourceVersion (default 1000); older ones answer 410 Expired. */
  watchHistory?: number
  /** How often a watch with allowWatchBookmarks gets a BOOKMARK (default 60 s). */
  watchBookmarkMs?: number
  /**
   * The deployment controller, scheduler and kubelets (workloads.ts) with their timing knobs; on
   * unless `false` (then Deployments keep the status they are given and pods stay as written).
   */
  workloads?: WorkloadOptions | false
}

export interface RecordedRequest {
  method: string
  path: string
  user: string
  /** When it arrived (epoch ms), before any latency: how often a cluster is asked is part of what tests check. */
  at: number
}

export interface StandInCluster {
  id: string
  /** `${url}/c/${id}` */
  server: string
  kubeSystemUid: string
  /** All rights. */
  adminToken: string
  /** get/list/watch only. */
  readOnlyToken: string
  /** A token with exactly these rights ('*' wildcards; no group = any group). */
  tokenWith(rights: Array<{ verb: string; group?: string; resource: string }>): string
  /** base64 PEMs of a client certificate (CN=user, O=group) with all rights. */
  clientCert(): { certData: string; keyData: string }
  /** base64 PEMs of a client certificate with the same subject signed by an unrelated CA (answered 401). */
  strangerCert(): { certData: string; keyData: string }
  kubeconfig(o?: { token?: string; cert?: boolean; ca?: 'right' | 'wrong' | 'none'; server?: string; context?: string }): string
  nodes: { put(node: object): void; remove(name: string): void; list(): object[] }
  pods: { put(pod: object): void; remove(ns: string, name: string): void }
  /** false: requests to this cluster get their connection destroyed without an answer. */
  setReachable(up: boolean): void
  /** Delay before each answer. */
  setLatency(ms: number): void
  /** What was asked (last 1000), for assertions. */
  requests: RecordedRequest[]
  /**
   * Changes an object as another field manager would (`kubectl-edit`, an autoscaler on
   * spec.replicas), recorded in managedFields as an Update. `resource` is the plural, with the
   * group when it is ambiguous ('deployments', 'ingresses.networking.k8s.io'); `mutate` edits the
   * object in place or returns a new one. With `subresource: 'status'` only status changes.
   */
  editAs(manager: string, resource: string, namespace: string | undefined, name: string,
    mutate: (obj: KubeObject) => KubeObject | void, opts?: { subresource?: 'status' }): KubeObject
  /** The stored object (a copy), or undefined; `resource` as for editAs. */
  read(resource: string, namespace: string | undefined, name: string): KubeObject | undefined
  /** The stored objects of a kind (copies), in one namespace or all; `resource` as for editAs. */
  list(resource: string, namespace?: string): KubeObject[]
  /** Watch streams open now. */
  openWatches(): number
  /**
   * What workloads do, matched by container image or pod labels (later rules win): ready after N
   * ms, image pull failure, crash loop, OOM kill, unschedulable, never ready. Returns the undo.
   */
  behave(rule: BehaviourRule): () => void
  /** A line in a container's log (the first container when `container` is undefined). */
  appendLog(namespace: string, pod: string, container: string | undefined, line: string): void
  /** `n` inference requests to the pod's server, as traffic from clients would count. */
  sendRequests(namespace: string, pod: string, n: number, container?: string): void
  /** Ends a container's run (default exit 137, reason Error): it restarts after the back-off, counters at zero. */
  killContainer(namespace: string, pod: string, container?: string, exit?: { exitCode?: number; reason?: string }): void
  /** A request from inside the cluster network straight to a pod's port (headers reach the server as sent). */
  callPod(namespace: string, pod: string, port: number, request: Partial<ProxiedRequest> & { path: string }): ProxiedAnswer
}

/** What the server needs of a hosted cluster. */
export interface HostedCluster {
  api: StandInCluster
  context: ClusterContext
  authority: Authority
  reachable(): boolean
  latencyMs(): number
  record(request: RecordedRequest): void
  close(): void
}

export interface Host {
  url: string
  hostPort: string
  certs: StandInCerts
}

const ID = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const MAX_RECORDED = 1000

const b64 = (pem: string) => Buffer.from(pem).toString('base64')

function typeIn(catalog: Catalog, group: string, version: string, resource: string): ResourceType {
  const type = catalog.find(group, version, resource)
  if (!type) throw new Error(`stand-in catalog lacks ${group}/${version}/${resource}`)
  return type
}

/** 'deployments', 'deployments.apps' or 'ingresses.networking.k8s.io' → the one stored type it names. */
function typeNamed(catalog: Catalog, resource: string): ResourceType {
  const dot = resource.indexOf('.')
  const plural = dot < 0 ? resource : resource.slice(0, dot)
  const group = dot < 0 ? undefined : resource.slice(dot + 1)
  const found = catalog.types.filter((t) => t.resource === plural && (group === undefined || t.group === group))
  if (found.length !== 1) throw new Error(`${found.length ? 'ambiguous' : 'unknown'} resource ${JSON.stringify(resource)}: name it as <plural>.<group>`)
  return found[0]!
}

function asObject(value: object, what: string): KubeObject {
  const obj = structuredClone(value) as KubeObject
  if (!obj.metadata || typeof obj.metadata.name !== 'string' || !obj.metadata.name) throw new Error(`${what} needs metadata.name`)
  return obj
}

function namespaceObject(name: string, uid?: string): KubeObject {
  return {
    metadata: { name, ...(uid ? { uid } : {}), labels: { 'kubernetes.io/metadata.name': name } },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  }
}

const INGRESS_CONTROLLERS: Record<string, string> = {
  nginx: 'k8s.io/ingress-nginx',
  traefik: 'traefik.io/ingress-controller',
  openshift: 'openshift.io/ingress-to-route',
}

function seedOffers(store: ObjectStore, catalog: Catalog, offers: Offers) {
  for (const crd of customResourceDefinitions(catalog)) {
    store.insert(typeIn(catalog, 'apiextensions.k8s.io', 'v1', 'customresourcedefinitions'), crd as KubeObject)
  }
  if (offers.ingressClass) {
    const name = offers.ingressClass
    store.insert(typeIn(catalog, 'networking.k8s.io', 'v1', 'ingressclasses'), {
      metadata: { name, annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } },
      spec: { controller: INGRESS_CONTROLLERS[name] ?? `example.com/${name}` },
    })
  }
  if (offers.defaultStorageClass) {
    const sc = offers.defaultStorageClass
    // Whether a class gives ReadWriteMany is a fact of its provisioner (NFS, CephFS, EFS…), not of the object.
    store.insert(typeIn(catalog, 'storage.k8s.io', 'v1', 'storageclasses'), {
      metadata: { name: sc.name, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
      provisioner: sc.provisioner,
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'WaitForFirstConsumer',
      allowVolumeExpansion: true,
    })
  }
}

export function createCluster(host: Host, opts: ClusterOptions = {}): HostedCluster {
  const id = opts.id ?? randomBytes(6).toString('hex')
  if (!ID.test(id)) throw new Error(`cluster id must be a DNS label, got ${JSON.stringify(id.slice(0, 64))}`)
  const flavour = opts.flavour ?? 'kubernetes'
  const offers = opts.offers ?? {}
  const catalog = catalogFor(flavour, offers)
  const store = createObjectStore()
  const watches = createWatchHub(store, { historySize: opts.watchHistory, bookmarkMs: opts.watchBookmarkMs })
  const authority = createAuthority()
  const kubeSystemUid = opts.kubeSystemUid ?? randomUUID()
  const server = `${host.url}/c/${id}`
  const terminationMs = opts.namespaceTerminationMs ?? 50
  const timers = new Set<NodeJS.Timeout>()
  const requests: RecordedRequest[] = []
  let reachable = true
  let latencyMs = 0

  const namespaces = typeIn(catalog, '', 'v1', 'namespaces')
  const nodes = typeIn(catalog, '', 'v1', 'nodes')
  const pods = typeIn(catalog, '', 'v1', 'pods')

  for (const ns of ['default', 'kube-node-lease', 'kube-public', 'kube-system']) {
    store.insert(namespaces, namespaceObject(ns, ns === 'kube-system' ? kubeSystemUid : undefined))
  }
  seedOffers(store, catalog, offers)

  function ensureNamespace(name: string) {
    if (!store.get(namespaces, undefined, name)) store.insert(namespaces, namespaceObject(name))
  }

  /** The namespace controller's part: empty the namespace, then let it go. */
  function finishNamespaceDeletion(name: string) {
    for (const type of catalog.types) {
      if (!type.namespaced) continue
      for (const obj of store.all(type, name)) store.remove(type, name, obj.metadata.name)
    }
    store.remove(namespaces, undefined, name)
  }

  const workloads = opts.workloads === false ? undefined : createWorkloads(store, catalog, opts.workloads ?? {})
  const needWorkloads = () => {
    if (!workloads) throw new Error(`stand-in cluster ${id} runs no workloads (created with workloads: false)`)
    return workloads
  }

  const context: ClusterContext = {
    workloads,
    catalog,
    store,
    version: JSON.stringify(versionInfo(opts.gitVersion ?? DEFAULT_GIT_VERSION)),
    hostPort: host.hostPort,
    watches,
    namespaceDeleted(name) {
      const timer = setTimeout(() => {
        timers.delete(timer)
        finishNamespaceDeletion(name)
      }, terminationMs)
      timer.unref()
      timers.add(timer)
    },
  }

  const clientCert = { certData: b64(host.certs.clientCert), keyData: b64(host.certs.clientKey) }
  const strangerCert = { certData: b64(host.certs.strangerCert), keyData: b64(host.certs.strangerKey) }

  const api: StandInCluster = {
    id,
    server,
    kubeSystemUid,
    adminToken: authority.adminToken,
    readOnlyToken: authority.readOnlyToken,
    tokenWith: (rights: Right[]) => authority.tokenWith(rights),
    clientCert: () => ({ ...clientCert }),
    strangerCert: () => ({ ...strangerCert }),
    kubeconfig(o = {}) {
      const ca = o.ca ?? 'right'
      return kubeconfigYaml({
        server: o.server ?? server,
        context: o.context ?? `standin-${id}`,
        caData: ca === 'none' ? undefined : b64(ca === 'wrong' ? host.certs.wrongCaCert : host.certs.caCert),
        token: o.token ?? (o.cert ? undefined : authority.adminToken),
        cert: o.cert ? clientCert : undefined,
      })
    },
    nodes: {
      put: (node) => void store.replace(nodes, asObject(node, 'a node')),
      remove: (name) => void store.remove(nodes, undefined, name),
      list: () => store.all(nodes),
    },
    pods: {
      put(pod) {
        const obj = asObject(pod, 'a pod')
        obj.metadata.namespace ??= 'default'
        ensureNamespace(obj.metadata.namespace)
        store.replace(pods, obj)
      },
      remove: (ns, name) => void store.remove(pods, ns, name),
    },
    setReachable(up) {
      reachable = up
      if (!up) watches.dropAll()
    },
    setLatency(ms) {
      latencyMs = Math.max(0, ms)
    },
    requests,
    editAs(manager, resource, namespace, name, mutate, o = {}) {
      const type = typeNamed(catalog, resource)
      return editAs(context, type, type.namespaced ? namespace : undefined, name, manager, mutate, o.subresource)
    },
    read(resource, namespace, name) {
      const type = typeNamed(catalog, resource)
      return store.get(type, type.namespaced ? namespace : undefined, name)
    },
    list(resource, namespace) {
      const type = typeNamed(catalog, resource)
      return store.all(type, type.namespaced ? namespace : undefined)
    },
    openWatches: () => watches.open(),
    behave: (rule) => needWorkloads().behave(rule),
    appendLog: (ns, pod, container, line) => needWorkloads().appendLog(ns, pod, container, line),
    sendRequests: (ns, pod, n, container) => needWorkloads().sendRequests(ns, pod, n, container),
    killContainer: (ns, pod, container, exit) => needWorkloads().killContainer(ns, pod, container, exit),
    callPod(ns, pod, port, request) {
      const obj = store.get(pods, ns, pod)
      if (!obj) throw new Error(`no pod ${ns}/${pod}`)
      return callPod(needWorkloads(), obj, port, { method: 'GET', query: new URLSearchParams(), headers: {}, body: '', ...request })
    },
  }

  for (const node of opts.nodes ?? []) api.nodes.put(typeof node === 'string' ? nodeFixture(node) : node)
  for (const pod of opts.pods ?? []) api.pods.put(pod)
  // A watch cache starts empty: the seed objects are there to be listed, not replayed.
  watches.forget()

  return {
    api,
    context,
    authority,
    reachable: () => reachable,
    latencyMs: () => latencyMs,
    record(request) {
      requests.push(request)
      if (requests.length > MAX_RECORDED) requests.splice(0, requests.length - MAX_RECORDED)
    },
    close() {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      watches.close()
      workloads?.close()
    },
  }
}
