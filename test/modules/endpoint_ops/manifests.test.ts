import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { generateManifests, type ManifestInput, redactSecrets, REDACTED } from '../../../src/modules/endpoint_ops/manifests.js'
import type { KubeManifest } from '../../../src/modules/endpoint_ops/manifest-types.js'
import { plan, type PlanCluster, type PlanModel, type PlanRequest } from '../../../src/modules/endpoint_ops/plan.js'
import { DEFAULT_SERVING_SETTINGS, type ServingSettings } from '../../../src/modules/endpoint_ops/serving-settings.js'
import { cluster, MODELS, node, request, runtimes } from './fixtures.js'

/**
 * Golden manifests per device type and runtime: test/fixtures/endpoints/golden/<case>.yaml.
 * Regenerate after an intended change with UPDATE_GOLDEN=1 and read the diff before committing.
 */
const GOLDEN = new URL('../../fixtures/endpoints/golden/', import.meta.url)
const UPDATE = process.env.UPDATE_GOLDEN === '1'

const TENANT = '0b6a3c9e-2f4d-4e55-9a61-3c1f2a7d8e90'
const ENDPOINT_ID = '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d'
const API_KEY = 'mp-endpoint-key-0123456789abcdef'

const withIngress: ServingSettings = {
  ...DEFAULT_SERVING_SETTINGS,
  ingressHostSuffix: 'models.example.com',
  tlsSecretName: 'wildcard-models-tls',
  imagePullSecrets: ['regcred'],
  apiServerCidrs: ['10.0.0.10/32'],
}

interface Case {
  name: string
  model: PlanModel
  cluster: PlanCluster
  request?: Partial<PlanRequest>
  settings?: ServingSettings
  extraRuntimes?: typeof runtimes
}

const gaudiRuntime = { ...runtimes[0]!, id: '00000000-0000-4000-8000-0000000000aa', name: 'vllm-gaudi', deviceType: 'hpu' as const, image: 'registry.example/vllm-gaudi', tag: '1.22.0' }

const CASES: Case[] = [
  { name: 'cuda-vllm', model: MODELS.llama8b, cluster: cluster([node('a100-8x'), node('cpu-small')]), settings: withIngress },
  {
    name: 'cuda-vllm-tp4-keda-rwx',
    model: MODELS.llama70b,
    cluster: cluster([node('a100-8x')], { keda: true, defaultIngressClass: 'nginx', readWriteManyStorageClass: 'cephfs' }),
    request: { autoscale: { min: 0, max: 2, targetConcurrency: 16 } },
    settings: { ...withIngress, prometheusUrl: 'http://prometheus.monitoring.svc:9090' },
  },
  { name: 'cuda-sglang', model: MODELS.llama8b, cluster: cluster([node('a100-8x')]), request: { runtime: 'sglang-cuda', maxModelLen: 16384 } },
  { name: 'cuda-tei', model: MODELS.bgeSmall, cluster: cluster([node('a100-8x')]), settings: withIngress },
  { name: 'cuda-mig-vllm', model: MODELS.llama8b, cluster: cluster([node('a100-mig')]) },
  {
    name: 'cuda-vllm-hpa-ephemeral',
    model: MODELS.llama8b,
    cluster: cluster([node('a100-8x')], { customMetrics: true, defaultIngressClass: 'traefik' }),
    request: { autoscale: { min: 1, max: 4, targetConcurrency: 8 } },
    settings: { ...withIngress, registryPrefix: 'registry.corp.example:5000/mirror', objectStoreUrl: 'https://minio.storage.svc:9000' },
  },
  { name: 'rocm-vllm', model: MODELS.llama8b, cluster: cluster([node('mi300x')]) },
  { name: 'hpu-operator-runtime', model: MODELS.llama8b, cluster: cluster([node('gaudi2')]), request: { deviceType: 'hpu' }, extraRuntimes: [gaudiRuntime] },
  { name: 'cpu-llamacpp', model: MODELS.qwenGguf, cluster: cluster([node('cpu-small')]), request: { maxModelLen: 4096, maxConcurrency: 2 } },
  { name: 'cpu-high-tei', model: MODELS.bgeSmall, cluster: cluster([node('sapphire-rapids')]) },
  { name: 'cpu-high-vllm', model: MODELS.qwenGguf.format ? { ...MODELS.bgeSmall, tasks: ['text-generation'], name: 'tiny-chat' } : MODELS.bgeSmall, cluster: cluster([node('sapphire-rapids')]), request: { runtime: 'vllm-cpu' } },
  {
    name: 'openshift-route',
    model: MODELS.llama8b,
    cluster: { ...cluster([node('a100-8x')], { openshiftRoutes: true }), platform: 'openshift' },
    settings: withIngress,
  },
]

function inputFor(c: Case): ManifestInput {
  const all = [...runtimes, ...(c.extraRuntimes ?? [])]
  const settings = c.settings ?? DEFAULT_SERVING_SETTINGS
  const decision = plan({ request: request(c.model, c.request), model: c.model, cluster: c.cluster, runtimes: all, settings })
  return {
    endpoint: { id: ENDPOINT_ID, name: `${c.name}-endpoint`, tenantId: TENANT },
    model: { id: c.model.id, name: c.model.name },
    version: { id: '8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b', label: 'v1' },
    runtime: all.find((r) => r.id === decision.runtime.id)!,
    cluster: { id: c.cluster.id, platform: c.cluster.platform, server: 'https://10.0.0.10:6443', capabilities: c.cluster.capabilities },
    settings,
    plan: decision,
    env: c.request?.env ?? { HF_HUB_OFFLINE: '1' },
    weights: c.model.files.map((f, i) => ({
      path: f.path,
      size: f.size,
      sha256: i % 2 === 0 ? `${String(i).repeat(2)}${'ab'.repeat(31)}` : null,
      url: `https://s3.internal.example/modelplane/models/${c.model.id}/${f.path}?X-Amz-Signature=sig${i}`,
    })),
    apiKey: API_KEY,
  }
}

type Validator = { validate(): void }
/** Kinds KEDA and OpenShift serve: not in the core schemas, checked for shape here. */
const CUSTOM_KINDS = new Set(['ScaledObject', 'Route'])
async function validatorFor(manifest: KubeManifest): Promise<Validator | null> {
  if (CUSTOM_KINDS.has(manifest.kind)) return null
  const group = manifest.apiVersion === 'v1' ? 'v1' : manifest.apiVersion
  const mod = (await import(`kubernetes-models/${group}/${manifest.kind}`)) as Record<string, new (data: unknown) => Validator>
  return new mod[manifest.kind]!(manifest)
}

const REQUIRED_LABELS = ['app.kubernetes.io/managed-by', 'app.kubernetes.io/name', 'app.kubernetes.io/instance', 'modelplane.io/tenant']
describe('manifests: golden files per device type and runtime', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const manifests = generateManifests(inputFor(c))
    const text = manifests.map((m) => stringify(m, { lineWidth: 0 })).join('---\n')
    const file = new URL(`${name}.yaml`, GOLDEN)
    if (UPDATE || !existsSync(file)) {
      mkdirSync(GOLDEN, { recursive: true })
      writeFileSync(file, text)
    }
    expect(text).toBe(readFileSync(file, 'utf8'))

    for (const manifest of manifests) {
      const where = `${manifest.kind}/${manifest.metadata.name}`
      expect(manifest.metadata.name.length, where).toBeLessThanOrEqual(63)
      expect(manifest.metadata.name, where).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      for (const label of REQUIRED_LABELS) expect(manifest.metadata.labels?.[label], `${where} ${label}`).toBeTruthy()
      const validator = await validatorFor(manifest)
      if (validator) expect(() => validator.validate(), where).not.toThrow()
      else expect(manifest.spec, `${where} has a spec`).toBeTypeOf('object')
    }
    // Everything of the endpoint carries its id; the tenant's namespace, quota and default deny do not (teardown keeps them).
    const tenantLevel = new Set(['Namespace', 'ResourceQuota'])
    for (const m of manifests) {
      const owned = m.metadata.labels?.['modelplane.io/endpoint-id'] === ENDPOINT_ID
      expect(owned, `${m.kind}/${m.metadata.name}`).toBe(!tenantLevel.has(m.kind) && m.metadata.name !== 'modelplane-default-deny')
    }
  })

  it('gives byte-identical manifests for the same input, run after run', () => {
    for (const c of CASES) {
      const first = JSON.stringify(generateManifests(inputFor(c)))
      const second = JSON.stringify(generateManifests(inputFor(c)))
      expect(second).toBe(first)
    }
  })
})

describe('manifests: what a deploy depends on', () => {
  const byKind = (manifests: KubeManifest[], kind: string) => manifests.filter((m) => m.kind === kind)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const deployment = (manifests: KubeManifest[]) => byKind(manifests, 'Deployment')[0] as any

  it('starts the runtime with its key from the Secret, never in the Deployment itself', () => {
    const manifests = generateManifests(inputFor(CASES[0]!))
    const d = deployment(manifests)
    const runtime = d.spec.template.spec.containers[0]
    expect(runtime.args).toEqual(expect.arrayContaining(['--api-key', '$(MODELPLANE_API_KEY)']))
    expect(runtime.env).toContainEqual({ name: 'MODELPLANE_API_KEY', valueFrom: { secretKeyRef: { name: expect.stringMatching(/-api-key$/), key: 'api-key' } } })
    expect(JSON.stringify(d)).not.toContain(API_KEY)
    const secret = byKind(manifests, 'Secret').find((s) => s.metadata.name.endsWith('-api-key'))!
    expect(secret.stringData).toEqual({ 'api-key': API_KEY })
  })

  it('redacts every Secret value and leaves the rest as it is', () => {
    const manifests = generateManifests(inputFor(CASES[0]!))
    const shown = redactSecrets(manifests)
    const text = JSON.stringify(shown)
    expect(text).not.toContain(API_KEY)
    expect(text).not.toContain('X-Amz-Signature')
    for (const s of byKind(shown, 'Secret')) for (const v of Object.values(s.stringData as object)) expect(v).toBe(REDACTED)
    expect(shown.filter((m) => m.kind !== 'Secret')).toEqual(manifests.filter((m) => m.kind !== 'Secret'))
  })

  it('follows the GPU rules: tolerations, product affinity, memory /dev/shm, no surge', () => {
    const d = deployment(generateManifests(inputFor(CASES[0]!)))
    const pod = d.spec.template.spec
    expect(pod.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }])
    expect(pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions).toContainEqual({
      key: 'nvidia.com/gpu.product',
      operator: 'In',
      values: ['NVIDIA-A100-SXM4-80GB'],
    })
    expect(pod.volumes).toContainEqual({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '2Gi' } })
    expect(pod.containers[0].resources.limits['nvidia.com/gpu']).toBe('1')
    expect(d.spec.strategy).toEqual({ type: 'Recreate' })
    expect(pod.automountServiceAccountToken).toBe(false)
    expect(pod.initContainers[0].securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true })
  })

  it('leaves replicas to the autoscaler that owns them, and shares one ReadWriteMany volume', () => {
    const manifests = generateManifests(inputFor(CASES[1]!))
    expect(deployment(manifests).spec.replicas).toBeUndefined()
    expect(byKind(manifests, 'ScaledObject')[0]).toMatchObject({ spec: { minReplicaCount: 0, maxReplicaCount: 2 } })
    expect(byKind(manifests, 'PersistentVolumeClaim')[0]).toMatchObject({ spec: { accessModes: ['ReadWriteMany'], storageClassName: 'cephfs' } })
  })

  it('gives each pod its own volume when replicas can be several and nothing is ReadWriteMany; prefixes images; rewrites weight URLs', () => {
    const manifests = generateManifests(inputFor(CASES[5]!))
    const d = deployment(manifests)
    expect(byKind(manifests, 'PersistentVolumeClaim')).toEqual([])
    expect(d.spec.template.spec.volumes[0].ephemeral.volumeClaimTemplate.spec.accessModes).toEqual(['ReadWriteOnce'])
    expect(d.spec.template.spec.containers[0].image).toBe('registry.corp.example:5000/mirror/vllm/vllm-openai:v0.29.0')
    expect(d.spec.template.spec.initContainers[0].image).toBe('registry.corp.example:5000/mirror/alpine:3.22.2')
    const files = byKind(manifests, 'Secret').find((s) => s.metadata.name.endsWith('-weights'))!.stringData as Record<string, string>
    expect(files['files.txt']).toContain('https://minio.storage.svc:9000/modelplane/models/')
    expect(byKind(manifests, 'HorizontalPodAutoscaler')[0]).toMatchObject({ spec: { minReplicas: 1, maxReplicas: 4 } })
    expect(byKind(manifests, 'Ingress')[0]).toMatchObject({ spec: { ingressClassName: 'traefik' } })
  })

  it('lets in only the ingress controller and the API server, on the runtime port', () => {
    const manifests = generateManifests(inputFor(CASES[0]!))
    const policy = byKind(manifests, 'NetworkPolicy').find((p) => p.metadata.name.endsWith('-ingress'))!
    expect(policy.spec).toMatchObject({
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }, { ipBlock: { cidr: '10.0.0.10/32' } }], ports: [{ port: 8000, protocol: 'TCP' }] }],
    })
    expect(byKind(manifests, 'NetworkPolicy').find((p) => p.metadata.name === 'modelplane-default-deny')!.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress'] })
  })

  it('refuses a weight path that would escape the volume', () => {
    const input = inputFor(CASES[0]!)
    input.weights = [{ path: '../etc/passwd', size: 1, sha256: null, url: 'https://s3.example/x' }]
    expect(() => generateManifests(input)).toThrow(/cannot be written safely/)
  })
})
