import { dns1123Name, managedLabels } from '../../platform/kube/index.js'
import type { CatalogRuntime, PlanDecision } from './plan.js'
import { MODEL_DIR } from './plan.js'
import type { KubeManifest } from './manifest-types.js'
import { DEFAULT_QUOTA, imageFor, type ServingSettings, weightUrlFor } from './serving-settings.js'

/**
 * Desired state, pure: (endpoint, tenant, model, runtime, cluster, settings, plan, weights) → the
 * ordered list of objects to apply. The same function serves a plan (shown with Secrets
 * redacted), a deploy (applied in this order) and a drift check (compared with what is there), so
 * its output is deterministic: no clock, no randomness, object keys sorted, lists in a fixed order.
 */

export interface ManifestInput {
  endpoint: { id: string; name: string; tenantId: string }
  model: { id: string; name: string }
  version: { id: string; label: string } | null
  runtime: CatalogRuntime
  cluster: {
    id: string
    platform: string | null
    /** The API server's URL: its address, when literal, is let through the NetworkPolicy for probes. */
    server?: string | null
    capabilities: { openshiftRoutes?: boolean; defaultIngressClass?: string | null; readWriteManyStorageClass?: string | null; defaultStorageClass?: string | null; keda?: boolean; customMetrics?: boolean } | null
  }
  settings: ServingSettings
  plan: PlanDecision
  env?: Record<string, string>
  /** The version's files with a URL each (presigned at deploy time; placeholders in a plan). */
  weights: Array<{ path: string; size: number; sha256: string | null; url: string }>
  apiKey: string
}

/** A small, pinned image with busybox wget and sha256sum for the weights' init container. */
export const WEIGHTS_FETCHER_IMAGE = 'alpine:3.22.2'
export const API_KEY_ENV = 'MODELPLANE_API_KEY'
export const REDACTED = '<redacted>'
const WEIGHTS_MOUNT = '/etc/modelplane/weights'
const FETCHER_UID = 65534
const SAFE_PATH = /^[A-Za-z0-9._][A-Za-z0-9._/-]{0,511}$/

/** Names of one endpoint's objects: readable, unique per endpoint, at most 63 characters. */
export function endpointNames(endpoint: { id: string; name: string; tenantId: string }) {
  // 'ep-' keeps the name a DNS-1035 label (a Service's name must start with a letter).
  const base = dns1123Name(`ep-${endpoint.name}`, endpoint.id, 54)
  return {
    namespace: dns1123Name('modelplane', endpoint.tenantId),
    base,
    apiKeySecret: `${base}-api-key`,
    weightsSecret: `${base}-weights`,
    weightsVolume: `${base}-weights`,
    networkPolicy: `${base}-ingress`,
  }
}

/** Keys sorted at every depth (arrays keep their order): two runs give the same bytes. */
export function canonical<T>(value: T): T {
  if (Array.isArray(value)) return value.map(canonical) as T
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key]
      if (v !== undefined) out[key] = canonical(v)
    }
    return out as T
  }
  return value
}

/** The Secrets' values replaced: what a plan or a manifests read shows. */
export function redactSecrets(manifests: KubeManifest[]): KubeManifest[] {
  return manifests.map((m) => {
    if (m.kind !== 'Secret') return m
    const hide = (data: unknown) => (data && typeof data === 'object' ? Object.fromEntries(Object.keys(data).map((k) => [k, REDACTED])) : data)
    return { ...m, ...(m.data ? { data: hide(m.data) } : {}), ...(m.stringData ? { stringData: hide(m.stringData) } : {}) }
  })
}

/**
 * Downloads what is missing or corrupt, verifies every file, leaves what is already there and
 * verified: a pod restarted after its URLs expired starts from the volume without fetching.
 */
const FETCH_SCRIPT = [
  'set -eu',
  `cd ${MODEL_DIR}`,
  `while read -r sum size path url; do`,
  '  [ -n "$path" ] || continue',
  '  if [ -f "$path" ] && [ "$sum" != "-" ] && echo "$sum  $path" | sha256sum -c -s; then continue; fi',
  '  mkdir -p "$(dirname "$path")"',
  '  wget -q -T 60 -O "$path.part" "$url"',
  '  if [ "$sum" != "-" ] && ! echo "$sum  $path.part" | sha256sum -c -s; then echo "checksum mismatch: $path" >&2; rm -f "$path.part"; exit 1; fi',
  '  mv "$path.part" "$path"',
  `done < ${WEIGHTS_MOUNT}/files.txt`,
].join('\n')

export function quantityGiB(value: number): string {
  return Number.isInteger(value) ? `${value}Gi` : `${Math.ceil(value * 1024)}Mi`
}

/** The API server's addresses a NetworkPolicy lets in (probes and metrics through its proxy). */
export function apiServerCidrs(input: { settings: Pick<ServingSettings, 'apiServerCidrs'>; cluster: { server?: string | null } }): string[] {
  const cidrs = new Set(input.settings.apiServerCidrs)
  if (input.cluster.server) {
    try {
      const host = new URL(input.cluster.server).hostname.replace(/^\[|\]$/g, '')
      if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) cidrs.add(`${host}/32`)
      else if (host.includes(':')) cidrs.add(`${host}/128`)
    } catch {
      // A server URL that does not parse names no address.
    }
  }
  return [...cidrs].sort()
}

function ingressNamespace(input: ManifestInput, ingressClass: string | null): string | null {
  if (input.settings.ingressNamespace) return input.settings.ingressNamespace
  if (input.cluster.platform === 'openshift') return 'openshift-ingress'
  if (!ingressClass) return null
  if (/nginx/.test(ingressClass)) return 'ingress-nginx'
  if (/traefik/.test(ingressClass)) return 'traefik'
  return null
}

/**
 * The tenant's namespace, quota and default deny. Model endpoints and apps share the namespace and
 * both apply these, so both take them from here: applying either never changes what the other applied.
 */
export function tenantManifests(tenantId: string, settings: Pick<ServingSettings, 'quota'>): KubeManifest[] {
  const ns = endpointNames({ id: tenantId, name: 'tenant', tenantId }).namespace
  const tenantLabels = managedLabels({ name: 'modelplane-tenant', instance: ns, tenantId })
  const quota = settings.quota ?? {}
  const devices = { ...DEFAULT_QUOTA.devices, ...(quota.devices ?? {}) }
  const hard: Record<string, string> = {
    pods: String(quota.pods ?? DEFAULT_QUOTA.pods),
    'requests.cpu': String(quota.cpu ?? DEFAULT_QUOTA.cpu),
    'requests.memory': quantityGiB(quota.memoryGiB ?? DEFAULT_QUOTA.memoryGiB),
  }
  for (const [resource, count] of Object.entries(devices)) hard[`requests.${resource}`] = String(count)
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...tenantLabels, 'pod-security.kubernetes.io/enforce': 'baseline' } } },
    { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'modelplane-quota', namespace: ns, labels: tenantLabels }, spec: { hard } },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'modelplane-default-deny', namespace: ns, labels: tenantLabels },
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    },
  ]
}

export function generateManifests(input: ManifestInput): KubeManifest[] {
  const { endpoint, plan, runtime, settings } = input
  const names = endpointNames(endpoint)
  const ns = names.namespace
  const labels = {
    ...managedLabels({
      name: endpoint.name,
      instance: names.base,
      tenantId: endpoint.tenantId,
      owner: { key: 'modelplane.io/endpoint-id', id: endpoint.id },
    }),
    'app.kubernetes.io/component': 'model-endpoint',
    'modelplane.io/runtime': runtime.engine,
  }
  const selector = { 'app.kubernetes.io/managed-by': 'modelplane', 'modelplane.io/endpoint-id': endpoint.id }
  const meta = (name: string, extra: Record<string, string> = {}) => ({ name, namespace: ns, labels: { ...labels, ...extra } })
  const accelerator = plan.device.resourceName !== null
  const ingressClass = settings.ingressClassName ?? input.cluster.capabilities?.defaultIngressClass ?? null
  const openshift = input.cluster.platform === 'openshift' && input.cluster.capabilities?.openshiftRoutes === true

  for (const file of input.weights) {
    if (!SAFE_PATH.test(file.path) || file.path.split('/').includes('..')) throw new Error(`a weight file's path cannot be written safely: ${file.path.slice(0, 80)}`)
  }

  const manifests: KubeManifest[] = [...tenantManifests(endpoint.tenantId, settings)]

  const from: Array<Record<string, unknown>> = []
  const controllerNs = ingressNamespace(input, ingressClass)
  if (controllerNs) from.push({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': controllerNs } } })
  for (const cidr of apiServerCidrs(input)) from.push({ ipBlock: { cidr } })
  manifests.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(names.networkPolicy),
    spec: {
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress'],
      // No peer known: nothing is let in (an empty `from` would let everyone in).
      ingress: from.length > 0 ? [{ from, ports: [{ port: runtime.port, protocol: 'TCP' }] }] : [],
    },
  })
  manifests.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(names.base), automountServiceAccountToken: false })
  manifests.push({ apiVersion: 'v1', kind: 'Secret', metadata: meta(names.apiKeySecret), type: 'Opaque', stringData: { 'api-key': input.apiKey } })
  const lines = [...input.weights]
    .sort((a, b) => a.path.localeCompare(b.path))
    .map((f) => `${f.sha256 ?? '-'} ${f.size} ${f.path} ${weightUrlFor(f.url, settings)}`)
  manifests.push({ apiVersion: 'v1', kind: 'Secret', metadata: meta(names.weightsSecret), type: 'Opaque', stringData: { 'files.txt': `${lines.join('\n')}\n` } })

  // The weights' volume: shared when replicas can be several and the cluster offers ReadWriteMany,
  // one per pod otherwise (a single replica keeps a claim of its own across restarts).
  const many = (plan.autoscaler?.max ?? plan.replicas) > 1
  const rwx = input.cluster.capabilities?.readWriteManyStorageClass ?? null
  const size = `${plan.resources.weightsVolumeGiB}Gi`
  let weightsVolume: Record<string, unknown>
  if (!many || rwx) {
    manifests.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: meta(names.weightsVolume),
      spec: {
        accessModes: [many ? 'ReadWriteMany' : 'ReadWriteOnce'],
        resources: { requests: { storage: size } },
        ...(many && rwx ? { storageClassName: rwx } : {}),
      },
    })
    weightsVolume = { name: 'weights', persistentVolumeClaim: { claimName: names.weightsVolume } }
  } else {
    weightsVolume = {
      name: 'weights',
      ephemeral: {
        volumeClaimTemplate: {
          metadata: { labels },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } },
        },
      },
    }
  }

  const deviceRequest: Record<string, string> = accelerator ? { [plan.device.resourceName!]: String(plan.resources.devicesPerReplica) } : {}
  const env = [
    { name: API_KEY_ENV, valueFrom: { secretKeyRef: { name: names.apiKeySecret, key: 'api-key' } } },
    ...(runtime.apiKey.kind === 'env' ? [{ name: runtime.apiKey.name, valueFrom: { secretKeyRef: { name: names.apiKeySecret, key: 'api-key' } } }] : []),
    ...Object.keys(input.env ?? {})
      .sort()
      .map((name) => ({ name, value: input.env![name]! })),
  ]
  const matchExpressions: Array<Record<string, unknown>> = []
  if (plan.device.productLabel && plan.device.productLabelKey) {
    matchExpressions.push({ key: plan.device.productLabelKey, operator: 'In', values: [plan.device.productLabel] })
  }
  if (plan.device.cpuClass === 'cpu_high') matchExpressions.push({ key: 'feature.node.kubernetes.io/cpu-cpuid.AVX512F', operator: 'In', values: ['true'] })
  if (plan.device.arch) matchExpressions.push({ key: 'kubernetes.io/arch', operator: 'In', values: [plan.device.arch] })
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'http' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 5,
  })
  const nonRoot = runtime.runAsUser !== null
  const pod = {
    metadata: { labels },
    spec: {
      serviceAccountName: names.base,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(settings.imagePullSecrets.length > 0 ? { imagePullSecrets: [...settings.imagePullSecrets].sort().map((name) => ({ name })) } : {}),
      securityContext: { fsGroup: FETCHER_UID, seccompProfile: { type: 'RuntimeDefault' }, ...(nonRoot ? { runAsNonRoot: true, runAsUser: runtime.runAsUser } : {}) },
      ...(accelerator ? { tolerations: [{ key: plan.device.tolerate, operator: 'Exists', effect: 'NoSchedule' }] } : {}),
      ...(matchExpressions.length > 0
        ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions }] } } } }
        : {}),
      initContainers: [
        {
          name: 'fetch-weights',
          image: imageFor(WEIGHTS_FETCHER_IMAGE, settings),
          command: ['/bin/sh', '-c', FETCH_SCRIPT],
          resources: { requests: { cpu: '250m', memory: '128Mi' }, limits: { memory: '256Mi' } },
          securityContext: {
            runAsNonRoot: true,
            runAsUser: FETCHER_UID,
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: [
            { name: 'weights', mountPath: MODEL_DIR },
            { name: 'weight-urls', mountPath: WEIGHTS_MOUNT, readOnly: true },
          ],
        },
      ],
      containers: [
        {
          name: 'runtime',
          image: imageFor(plan.runtime.image, settings),
          args: plan.engineArgs,
          env,
          ports: [{ name: 'http', containerPort: runtime.port, protocol: 'TCP' }],
          // Loading a large model takes minutes: the startup probe allows 30 before liveness counts.
          startupProbe: probe(runtime.healthPath, 10, 180),
          readinessProbe: probe(runtime.readinessPath, 10, 3),
          livenessProbe: probe(runtime.healthPath, 20, 3),
          resources: {
            requests: { cpu: String(plan.resources.cpu), memory: quantityGiB(plan.resources.memoryGiB), ...deviceRequest },
            limits: { memory: quantityGiB(plan.resources.memoryGiB), ...deviceRequest },
          },
          securityContext: { allowPrivilegeEscalation: false, ...(nonRoot ? { capabilities: { drop: ['ALL'] } } : {}) },
          volumeMounts: [
            { name: 'weights', mountPath: MODEL_DIR, readOnly: true },
            { name: 'dshm', mountPath: '/dev/shm' },
          ],
        },
      ],
      volumes: [
        weightsVolume,
        { name: 'weight-urls', secret: { secretName: names.weightsSecret, defaultMode: 0o440 } },
        { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: quantityGiB(plan.resources.shmGiB) } },
      ],
    },
  }
  manifests.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(names.base),
    spec: {
      // An autoscaler owns replicas: our apply leaves the field to it.
      ...(plan.autoscaler ? {} : { replicas: plan.replicas }),
      selector: { matchLabels: selector },
      revisionHistoryLimit: 3,
      progressDeadlineSeconds: 1800,
      strategy: plan.strategy === 'Recreate' ? { type: 'Recreate' } : { type: 'RollingUpdate', rollingUpdate: accelerator ? { maxSurge: 0, maxUnavailable: 1 } : { maxSurge: 1, maxUnavailable: 0 } },
      template: pod,
    },
  })
  manifests.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(names.base),
    spec: { type: 'ClusterIP', selector, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
  })

  const host = settings.ingressHostSuffix ? `${names.base}.${settings.ingressHostSuffix.replace(/^\.+/, '')}` : null
  if (host && openshift) {
    manifests.push({
      apiVersion: 'route.openshift.io/v1',
      kind: 'Route',
      metadata: meta(names.base),
      spec: { host, to: { kind: 'Service', name: names.base, weight: 100 }, port: { targetPort: 'http' }, tls: { termination: 'edge', insecureEdgeTerminationPolicy: 'Redirect' } },
    })
  } else if (host && ingressClass) {
    manifests.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: meta(names.base),
      spec: {
        ingressClassName: ingressClass,
        tls: [{ hosts: [host], ...(settings.tlsSecretName ? { secretName: settings.tlsSecretName } : {}) }],
        rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: names.base, port: { name: 'http' } } } }] } }],
      },
    })
  }

  const scaler = plan.autoscaler
  if (scaler?.kind === 'keda') {
    manifests.push({
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: meta(names.base),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: names.base },
        minReplicaCount: scaler.min,
        maxReplicaCount: scaler.max,
        triggers: [
          {
            type: 'prometheus',
            metadata: {
              serverAddress: settings.prometheusUrl!,
              query: `sum(${scaler.metric}{namespace="${ns}",pod=~"${names.base}-.*"})`,
              threshold: String(scaler.targetConcurrency),
            },
          },
        ],
      },
    })
  } else if (scaler?.kind === 'hpa') {
    manifests.push({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: meta(names.base),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: names.base },
        minReplicas: scaler.min,
        maxReplicas: scaler.max,
        metrics: [{ type: 'Pods', pods: { metric: { name: scaler.metric }, target: { type: 'AverageValue', averageValue: String(scaler.targetConcurrency) } } }],
      },
    })
  }
  return manifests.map(canonical)
}
