/**
 * What a tenant says about serving on one of its clusters: where images come from, how the
 * cluster reaches the object store holding the weights, how endpoints are exposed, how much of
 * the cluster the tenant's namespace may take. Every field is optional: defaults follow.
 */
export interface ServingSettings {
  /** Put before every image (`registry.corp:5000/mirror`): `vllm/vllm-openai:v…` → `registry.corp:5000/mirror/vllm/vllm-openai:v…`. */
  registryPrefix: string | null
  /** Secrets in the tenant's namespace the kubelet pulls images with. */
  imagePullSecrets: string[]
  /** The object store as the cluster reaches it: presigned weight URLs are rewritten to this origin. */
  objectStoreUrl: string | null
  /** Endpoints are exposed as `<endpoint>.<suffix>`; no suffix, no Ingress (reached through the API server). */
  ingressHostSuffix: string | null
  /** A TLS Secret in the tenant's namespace for the Ingress (a wildcard certificate of the suffix). */
  tlsSecretName: string | null
  /** Default: the ingress class registration found as the cluster's default. */
  ingressClassName: string | null
  /** Where the ingress controller's pods run, so the endpoint's NetworkPolicy lets them in. */
  ingressNamespace: string | null
  /** The API server's addresses, so probes through its proxy pass the NetworkPolicy. */
  apiServerCidrs: string[]
  /** A Prometheus with the runtimes' metrics, which KEDA reads to scale on concurrency. */
  prometheusUrl: string | null
  /** The tenant namespace's ResourceQuota; defaults when null. */
  quota: { cpu?: number; memoryGiB?: number; pods?: number; devices?: Record<string, number> } | null
}

export const DEFAULT_SERVING_SETTINGS: ServingSettings = {
  registryPrefix: null,
  imagePullSecrets: [],
  objectStoreUrl: null,
  ingressHostSuffix: null,
  tlsSecretName: null,
  ingressClassName: null,
  ingressNamespace: null,
  apiServerCidrs: [],
  prometheusUrl: null,
  quota: null,
}

/** The quota of a tenant's namespace when its settings name none: a team's share of a GPU cluster. */
export const DEFAULT_QUOTA = {
  cpu: 256,
  memoryGiB: 2048,
  pods: 200,
  devices: { 'nvidia.com/gpu': 16, 'amd.com/gpu': 16, 'habana.ai/gaudi': 16 } as Record<string, number>,
}

/** An image reference with the registry prefix put in front (Docker Hub's implicit host left out). */
export function imageFor(reference: string, settings: Pick<ServingSettings, 'registryPrefix'>): string {
  if (!settings.registryPrefix) return reference
  const prefix = settings.registryPrefix.replace(/\/+$/, '')
  const path = reference.replace(/^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '')
  return `${prefix}/${path}`
}

/** A presigned URL moved to the origin the cluster reaches the store at (path and signature kept). */
export function weightUrlFor(url: string, settings: Pick<ServingSettings, 'objectStoreUrl'>): string {
  if (!settings.objectStoreUrl) return url
  const from = new URL(url)
  const to = new URL(settings.objectStoreUrl)
  // S3 signs the host header: a different host only works when the cluster's address reaches the
  // same store under the name it was signed for (a proxy that keeps Host) or a path-style origin.
  const base = to.pathname.replace(/\/+$/, '')
  return `${to.protocol}//${to.host}${base}${from.pathname}${from.search}`
}
