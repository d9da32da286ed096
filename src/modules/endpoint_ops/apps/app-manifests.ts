import { createHash } from 'node:crypto'
import { dns1123Name, managedLabels, shortHash } from '../../../platform/kube/index.js'
import type { KubeManifest } from '../manifest-types.js'
import { apiServerCidrs, canonical, endpointNames, tenantManifests } from '../manifests.js'
import { imageFor, type ServingSettings } from '../serving-settings.js'
import { entryModule, type AppFile } from './files.js'

/**
 * Desired state of an app, pure: (app, its validated files, entry, env, runner image, cluster
 * facts, serving settings) → the ordered objects to apply. Like the model endpoints' generator it
 * serves plan, apply and drift checks alike, so it is deterministic: no clock, no randomness, keys
 * sorted, lists in a fixed order.
 *
 * What contains a user's code is this pod, not the static checks (docs/apps.md): no token, no
 * root, nothing writable but /tmp, no capabilities, the runtime's seccomp profile, limits, and no
 * way out of the pod over the network.
 */

export interface AppManifestInput {
  app: { id: string; name: string; tenantId: string }
  /** What the validator passed (paths relative to the code folder, `/` between folders). */
  files: readonly AppFile[]
  /** The file the runner imports (the validator's `entry`). */
  entry: string
  env?: Record<string, string>
  /** Pinned by tag or digest (config `apps.runnerImage`). */
  runnerImage: string
  resources: { cpuRequest: string; cpuLimit: string; memoryRequest: string; memoryLimit: string }
  /** 0 while the app is scaled to zero; 1 otherwise. */
  replicas: number
  cluster: {
    id: string
    platform: string | null
    /** The API server's URL: its address, when literal, is let through the NetworkPolicy (probes, the metrics read through the proxy). */
    server?: string | null
    capabilities: { openshiftRoutes?: boolean; defaultIngressClass?: string | null; traefik?: boolean } | null
  }
  settings: ServingSettings
  /** Apps are served at `<app>-<hash>.<domain>`; null falls back to the settings' host suffix; neither: no route. */
  domain: string | null
}

/** Where the runner reads the code (its APP_CODE_DIR) and how it is reached. */
export const APP_CODE_DIR = '/app/code'
export const APP_PORT = 8000
export const APP_HEALTH_PATH = '/health'
/** The runner image's user (deploy/runner/Dockerfile). */
export const RUNNER_UID = 10001
export const CODE_HASH_ANNOTATION = 'modelplane.io/code-hash'
export const CODE_HASH_LABEL = 'modelplane.io/code-version'
/** Variables the runner reads itself: a user's env may not set them. */
export const RESERVED_APP_ENV: readonly string[] = Object.freeze(['APP_CODE_DIR', 'APP_MODULE', 'APP_ROOT_PATH', 'HOST', 'PORT', 'HOME', 'PYTHONPATH', 'PYTHONDONTWRITEBYTECODE'])
const TMP_SIZE = '64Mi'
const CODE_VERSION_LENGTH = 10

/** sha256 of the files, independent of their order: the code's version. */
export function codeHash(files: readonly AppFile[]): string {
  const hash = createHash('sha256')
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    // Lengths first, so that no two different file sets hash the same bytes.
    hash.update(`${Buffer.byteLength(file.path)}:${file.path}\n${Buffer.byteLength(file.content)}:`)
    hash.update(file.content)
    hash.update('\n')
  }
  return hash.digest('hex')
}

/** Names of one app's objects, at most 63 characters each; the ConfigMap's moves with the code. */
export function appNames(app: { id: string; name: string; tenantId: string }, hash: string) {
  // 'app-' keeps it a DNS-1035 label (a Service's name starts with a letter); 47 leaves room for '-code-<10>'.
  const base = dns1123Name(`app-${app.name}`, app.id, 47)
  return {
    namespace: endpointNames(app).namespace,
    base,
    codeConfigMap: `${base}-code-${hash.slice(0, CODE_VERSION_LENGTH)}`,
    networkPolicy: `${base}-net`,
    // Names are unique per tenant only; the id's hash keeps two tenants' `shop` apart on one domain.
    hostLabel: dns1123Name(app.name, shortHash(app.id), 63),
  }
}

/**
 * A ConfigMap key for a path: keys cannot hold `/`. A file at the top keeps its name; one in a
 * folder gets `.d-<hash of path>-<file name>`: user paths never start with `.` (the validator
 * refuses hidden names), so no key made here can be another file's own name.
 */
export function configMapKey(path: string): string {
  if (!path.includes('/')) return path
  const name = path.slice(path.lastIndexOf('/') + 1)
  return `.d-${shortHash(path)}-${name}`.slice(0, 253)
}

/**
 * Of the ConfigMaps found with the app's labels, those of code versions to delete once the rollout
 * of `keep[0]` is complete (not before: a pod of the old version restarting mid-rollout would find
 * its code gone). The other hashes of `keep` stay too: the version that served before this one, so
 * that going back to it finds its files in place.
 */
export function staleCodeConfigMaps(app: { id: string; name: string; tenantId: string }, keep: readonly string[], names: readonly string[]): string[] {
  const kept = new Set(keep.map((hash) => appNames(app, hash).codeConfigMap))
  const prefix = `${appNames(app, '').base}-code-`
  return names.filter((name) => name.startsWith(prefix) && !kept.has(name)).sort()
}

function ingressNamespace(input: AppManifestInput, ingressClass: string | null, traefik: boolean): string | null {
  if (input.settings.ingressNamespace) return input.settings.ingressNamespace
  if (input.cluster.platform === 'openshift') return 'openshift-ingress'
  if (traefik) return 'traefik'
  if (!ingressClass) return null
  if (/nginx/.test(ingressClass)) return 'ingress-nginx'
  if (/traefik/.test(ingressClass)) return 'traefik'
  return null
}

/** The host an app is served at, or null when neither APPS_DOMAIN nor the settings name a domain. */
export function appHost(input: Pick<AppManifestInput, 'app' | 'domain' | 'settings'>): string | null {
  const domain = (input.domain ?? input.settings.ingressHostSuffix)?.replace(/^\.+/, '')
  if (!domain) return null
  return `${appNames(input.app, '').hostLabel}.${domain}`
}

export function generateAppManifests(input: AppManifestInput): KubeManifest[] {
  const { app, settings } = input
  if (!input.files.some((f) => f.path === input.entry) || !input.entry.endsWith('.py')) {
    throw new Error(`the entry is not one of the app's Python files: ${input.entry.slice(0, 80)}`)
  }
  const reserved = Object.keys(input.env ?? {}).filter((name) => RESERVED_APP_ENV.includes(name))
  if (reserved.length > 0) throw new Error(`the runner sets these variables itself: ${reserved.join(', ')}`)

  const hash = codeHash(input.files)
  const names = appNames(app, hash)
  const ns = names.namespace
  const labels = {
    ...managedLabels({ name: app.name, instance: names.base, tenantId: app.tenantId, owner: { key: 'modelplane.io/app-id', id: app.id } }),
    'app.kubernetes.io/component': 'app',
  }
  const selector = { 'app.kubernetes.io/managed-by': 'modelplane', 'modelplane.io/app-id': app.id }
  const meta = (name: string, extra: Record<string, string> = {}) => ({ name, namespace: ns, labels: { ...labels, ...extra } })
  const caps = input.cluster.capabilities ?? {}
  const openshift = input.cluster.platform === 'openshift' && caps.openshiftRoutes === true
  const traefik = !openshift && caps.traefik === true
  const ingressClass = settings.ingressClassName ?? caps.defaultIngressClass ?? null

  const manifests: KubeManifest[] = [...tenantManifests(app.tenantId, settings)]

  // In: the ingress controller and the API server (probes and the metrics read go through its proxy).
  // Out: nothing, DNS included — an app that could resolve names could still send data out in the
  // queries themselves, and with every other port closed a resolved name is of no use to it.
  const from: Array<Record<string, unknown>> = []
  const controllerNs = ingressNamespace(input, ingressClass, traefik)
  if (controllerNs) from.push({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': controllerNs } } })
  for (const cidr of apiServerCidrs(input)) from.push({ ipBlock: { cidr } })
  manifests.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(names.networkPolicy),
    spec: {
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress', 'Egress'],
      // No peer known: nothing is let in (an empty `from` would let everyone in).
      ingress: from.length > 0 ? [{ from, ports: [{ port: APP_PORT, protocol: 'TCP' }] }] : [],
      egress: [],
    },
  })
  manifests.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(names.base), automountServiceAccountToken: false })

  const files = [...input.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  manifests.push({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(names.codeConfigMap, { [CODE_HASH_LABEL]: hash.slice(0, CODE_VERSION_LENGTH) }),
    // One ConfigMap per code version, never changed: a pod reads the version it started with,
    // and a new version is a new name in the pod template, hence a rollout.
    immutable: true,
    data: Object.fromEntries(files.map((f) => [configMapKey(f.path), f.content])),
  })

  const probe = (periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path: APP_HEALTH_PATH, port: 'http' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 3,
  })
  const env = [
    ...Object.keys(input.env ?? {})
      .sort()
      .map((name) => ({ name, value: input.env![name]! })),
    { name: 'APP_CODE_DIR', value: APP_CODE_DIR },
    { name: 'APP_MODULE', value: entryModule(input.entry) },
    { name: 'PORT', value: String(APP_PORT) },
  ]
  const pod = {
    metadata: { labels, annotations: { [CODE_HASH_ANNOTATION]: hash } },
    spec: {
      serviceAccountName: names.base,
      automountServiceAccountToken: false,
      // No <SERVICE>_PORT variables of the namespace's services in the app's environment.
      enableServiceLinks: false,
      ...(settings.imagePullSecrets.length > 0 ? { imagePullSecrets: [...settings.imagePullSecrets].sort().map((name) => ({ name })) } : {}),
      securityContext: { runAsNonRoot: true, runAsUser: RUNNER_UID, runAsGroup: RUNNER_UID, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'runner',
          image: imageFor(input.runnerImage, settings),
          env,
          ports: [{ name: 'http', containerPort: APP_PORT, protocol: 'TCP' }],
          // The runner listens only once the import and the app's startup succeeded.
          startupProbe: probe(2, 30),
          readinessProbe: probe(5, 3),
          livenessProbe: probe(10, 3),
          resources: {
            requests: { cpu: input.resources.cpuRequest, memory: input.resources.memoryRequest },
            limits: { cpu: input.resources.cpuLimit, memory: input.resources.memoryLimit },
          },
          securityContext: {
            runAsNonRoot: true,
            runAsUser: RUNNER_UID,
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          },
          volumeMounts: [
            // The whole folder, not subPath: a subPath mount would not follow the ConfigMap's files.
            { name: 'code', mountPath: APP_CODE_DIR, readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: [
        {
          name: 'code',
          configMap: { name: names.codeConfigMap, defaultMode: 0o444, items: files.map((f) => ({ key: configMapKey(f.path), path: f.path })) },
        },
        { name: 'tmp', emptyDir: { sizeLimit: TMP_SIZE } },
      ],
    },
  }
  manifests.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(names.base),
    spec: {
      replicas: input.replicas,
      selector: { matchLabels: selector },
      revisionHistoryLimit: 3,
      progressDeadlineSeconds: 300,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: pod,
    },
  })
  manifests.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(names.base),
    spec: { type: 'ClusterIP', selector, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
  })

  const host = appHost(input)
  if (host && openshift) {
    manifests.push({
      apiVersion: 'route.openshift.io/v1',
      kind: 'Route',
      metadata: meta(names.base),
      spec: { host, to: { kind: 'Service', name: names.base, weight: 100 }, port: { targetPort: 'http' }, tls: { termination: 'edge', insecureEdgeTerminationPolicy: 'Redirect' } },
    })
  } else if (host && traefik) {
    manifests.push({
      apiVersion: 'traefik.io/v1alpha1',
      kind: 'IngressRoute',
      metadata: meta(names.base),
      spec: {
        entryPoints: ['websecure'],
        routes: [{ kind: 'Rule', match: `Host(\`${host}\`)`, services: [{ name: names.base, port: 80 }] }],
        tls: settings.tlsSecretName ? { secretName: settings.tlsSecretName } : {},
      },
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
  return manifests.map(canonical)
}
