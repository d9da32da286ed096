import Type from 'typebox'
import { EXAMPLE, StrictObject, Uuid } from '../../platform/http/schemas.js'

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()])
const Name = (maxLength: number, description: string, example: string) =>
  Type.String({ minLength: 1, maxLength, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', description, examples: [example] })
const Url = (description: string, example: string) => Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://[^\\s]*$', description, examples: [example] })

const Quota = StrictObject(
  {
    cpu: Type.Optional(Type.Number({ minimum: 0.1, maximum: 100_000, description: 'CPU cores the namespace may request' })),
    memoryGiB: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1_000_000, description: 'memory the namespace may request, in GiB' })),
    pods: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    devices: Type.Optional(
      Type.Record(Type.String({ minLength: 3, maxLength: 253 }), Type.Integer({ minimum: 0, maximum: 100_000 }), {
        maxProperties: 16,
        description: 'per extended resource (`nvidia.com/gpu`, `amd.com/gpu`, `habana.ai/gaudi`), the devices the namespace may request',
      }),
    ),
  },
  { title: 'ServingQuota', description: "the tenant namespace's ResourceQuota on this cluster; null: the defaults" },
)

const fields = {
  registryPrefix: Nullable(
    Type.String({
      minLength: 1,
      maxLength: 255,
      description: 'put before every image: `registry.corp:5000/mirror` makes `vllm/vllm-openai:v…` into `registry.corp:5000/mirror/vllm/vllm-openai:v…`',
      examples: ['registry.corp:5000/mirror'],
    }),
  ),
  imagePullSecrets: Type.Array(Name(253, 'a Secret in the tenant namespace', 'corp-registry'), {
    maxItems: 16,
    uniqueItems: true,
    description: "Secrets in the tenant's namespace the kubelet pulls images with",
  }),
  objectStoreUrl: Nullable(Url('the object store as the cluster reaches it (no credentials): presigned weight URLs are moved to this origin', 'https://minio.storage.svc:9000')),
  ingressHostSuffix: Nullable(Name(253, 'endpoints are exposed as `<endpoint>.<suffix>`; none: no Ingress', 'models.example.com')),
  tlsSecretName: Nullable(Name(253, "a TLS Secret in the tenant's namespace for the Ingress (a wildcard certificate of the suffix)", 'models-wildcard-tls')),
  ingressClassName: Nullable(Name(253, 'default: the ingress class registration found as the default', 'nginx')),
  ingressNamespace: Nullable(Name(63, "where the ingress controller's pods run, so the endpoint's NetworkPolicy lets them in", 'ingress-nginx')),
  apiServerCidrs: Type.Array(Type.String({ minLength: 2, maxLength: 49 }), {
    maxItems: 32,
    uniqueItems: true,
    description: "the API server's addresses (CIDRs), so probes through its proxy pass the NetworkPolicy",
    examples: [['10.0.0.1/32']],
  }),
  prometheusUrl: Nullable(Url('a Prometheus with the runtimes\' metrics, which KEDA reads to scale on concurrency', 'http://prometheus.monitoring.svc:9090')),
  quota: Type.Union([Quota, Type.Null()]),
}

const SETTINGS_EXAMPLE = {
  registryPrefix: 'registry.corp:5000/mirror',
  imagePullSecrets: ['corp-registry'],
  objectStoreUrl: 'https://minio.storage.svc:9000',
  ingressHostSuffix: 'models.example.com',
  tlsSecretName: 'models-wildcard-tls',
  ingressClassName: 'nginx',
  ingressNamespace: 'ingress-nginx',
  apiServerCidrs: ['10.0.0.1/32'],
  prometheusUrl: 'http://prometheus.monitoring.svc:9090',
  quota: { cpu: 64, memoryGiB: 512, pods: 50, devices: { 'nvidia.com/gpu': 8 } },
}

export const ServingSettingsView = Type.Object(
  {
    clusterId: Uuid,
    ...fields,
    isDefault: Type.Boolean({ description: 'true when the tenant has set nothing for this cluster (what is shown are the defaults)' }),
    updatedBy: Type.Union([Type.String(), Type.Null()]),
    updatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  {
    title: 'ServingSettings',
    examples: [{ clusterId: '6c1f3e2a-4b8d-4f7e-9a0c-2d5b8e1f7a39', ...SETTINGS_EXAMPLE, isDefault: false, updatedBy: EXAMPLE.userId, updatedAt: EXAMPLE.updatedAt }],
  },
)

export const ServingSettingsUpdate = StrictObject(
  {
    registryPrefix: Type.Optional(fields.registryPrefix),
    imagePullSecrets: Type.Optional(fields.imagePullSecrets),
    objectStoreUrl: Type.Optional(fields.objectStoreUrl),
    ingressHostSuffix: Type.Optional(fields.ingressHostSuffix),
    tlsSecretName: Type.Optional(fields.tlsSecretName),
    ingressClassName: Type.Optional(fields.ingressClassName),
    ingressNamespace: Type.Optional(fields.ingressNamespace),
    apiServerCidrs: Type.Optional(fields.apiServerCidrs),
    prometheusUrl: Type.Optional(fields.prometheusUrl),
    quota: Type.Optional(fields.quota),
  },
  {
    title: 'ServingSettingsUpdate',
    description: 'the fields to change; a field left out keeps its value, null (or [] for a list) puts its default back',
    examples: [SETTINGS_EXAMPLE, { registryPrefix: null, imagePullSecrets: [] }],
  },
)

export const ClusterIdParams = StrictObject({ id: Uuid })
