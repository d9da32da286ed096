import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import {
  APP_CODE_DIR,
  appHost,
  CODE_HASH_ANNOTATION,
  configMapKey,
  codeHash,
  generateAppManifests,
  staleCodeConfigMaps,
  type AppManifestInput,
} from '../../../src/modules/endpoint_ops/apps/app-manifests.js'
import type { KubeManifest } from '../../../src/modules/endpoint_ops/manifest-types.js'
import { generateManifests, tenantManifests } from '../../../src/modules/endpoint_ops/manifests.js'
import { plan } from '../../../src/modules/endpoint_ops/plan.js'
import { DEFAULT_SERVING_SETTINGS, type ServingSettings } from '../../../src/modules/endpoint_ops/serving-settings.js'
import { cluster, MODELS, node, request, runtimes } from './fixtures.js'

/**
 * Golden manifests of apps: test/fixtures/apps/golden/<case>.yaml. Regenerate after an intended
 * change with UPDATE_GOLDEN=1 and read the diff before committing.
 */
const GOLDEN = new URL('../../fixtures/apps/golden/', import.meta.url)
const UPDATE = process.env.UPDATE_GOLDEN === '1'

const TENANT = '0b6a3c9e-2f4d-4e55-9a61-3c1f2a7d8e90'
const APP_ID = '4c5d6e7f-8091-4a2b-9c3d-5e6f708192a3'
const RESOURCES = { cpuRequest: '100m', cpuLimit: '1', memoryRequest: '128Mi', memoryLimit: '512Mi' }
const RUNNER = 'ghcr.io/modelplane/app-runner:0.1.0'

const HELLO = 'from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get("/")\ndef hello():\n    return {"hello": "world"}\n'
const PACKAGE_FILES = [
  { path: 'main.py', content: 'from fastapi import FastAPI\nfrom shop.models import Item\n\napp = FastAPI(title="shop")\n' },
  { path: 'shop/__init__.py', content: '' },
  { path: 'shop/models.py', content: 'from pydantic import BaseModel\n\n\nclass Item(BaseModel):\n    name: str\n' },
  { path: 'static/style.css', content: 'body { font-family: sans-serif; }\n' },
  { path: 'static/index.html', content: '<!doctype html><title>shop</title>\n' },
]

const withDomain: ServingSettings = { ...DEFAULT_SERVING_SETTINGS, tlsSecretName: 'wildcard-apps-tls', apiServerCidrs: ['10.0.0.10/32'] }

interface Case {
  name: string
  input: Partial<AppManifestInput>
}

const CASES: Case[] = [
  { name: 'ingress-nginx-single-file', input: {} },
  {
    name: 'traefik-package-and-static',
    input: {
      app: { id: APP_ID, name: 'shop', tenantId: TENANT },
      files: PACKAGE_FILES,
      env: { GREETING: 'hi', LOG_FORMAT: 'json' },
      cluster: { id: 'c1', platform: 'kubernetes', server: 'https://10.0.0.10:6443', capabilities: { traefik: true, defaultIngressClass: 'traefik' } },
    },
  },
  {
    name: 'openshift-route',
    input: { cluster: { id: 'c1', platform: 'openshift', server: 'https://api.ocp.example:6443', capabilities: { openshiftRoutes: true } } },
  },
  {
    name: 'no-domain-scaled-to-zero-mirror',
    input: {
      domain: null,
      replicas: 0,
      settings: { ...DEFAULT_SERVING_SETTINGS, registryPrefix: 'registry.corp.example:5000/mirror', imagePullSecrets: ['regcred'], ingressNamespace: 'edge' },
    },
  },
]

function inputFor(c: Case): AppManifestInput {
  return {
    app: { id: APP_ID, name: 'hello', tenantId: TENANT },
    files: [{ path: 'main.py', content: HELLO }],
    entry: 'main.py',
    runnerImage: RUNNER,
    resources: RESOURCES,
    replicas: 1,
    cluster: { id: 'c1', platform: 'kubernetes', server: 'https://10.0.0.10:6443', capabilities: { defaultIngressClass: 'nginx' } },
    settings: withDomain,
    domain: 'apps.example.com',
    ...c.input,
  }
}

type Validator = { validate(): void }
/** Kinds Traefik and OpenShift serve: not in the core schemas, checked for shape below. */
const CUSTOM_KINDS = new Set(['IngressRoute', 'Route'])
async function validatorFor(manifest: KubeManifest): Promise<Validator | null> {
  if (CUSTOM_KINDS.has(manifest.kind)) return null
  const group = manifest.apiVersion === 'v1' ? 'v1' : manifest.apiVersion
  const mod = (await import(`kubernetes-models/${group}/${manifest.kind}`)) as Record<string, new (data: unknown) => Validator>
  return new mod[manifest.kind]!(manifest)
}

const byKind = (manifests: KubeManifest[], kind: string) => manifests.filter((m) => m.kind === kind)
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const deployment = (manifests: KubeManifest[]) => byKind(manifests, 'Deployment')[0] as any
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const configMap = (manifests: KubeManifest[]) => byKind(manifests, 'ConfigMap')[0] as any

const REQUIRED_LABELS = ['app.kubernetes.io/managed-by', 'app.kubernetes.io/name', 'app.kubernetes.io/instance', 'modelplane.io/tenant']

describe('app manifests: golden files', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const manifests = generateAppManifests(inputFor(c))
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
    // Everything of the app carries its id; the tenant's namespace, quota and default deny do not (teardown keeps them).
    for (const m of manifests) {
      const owned = m.metadata.labels?.['modelplane.io/app-id'] === APP_ID
      expect(owned, `${m.kind}/${m.metadata.name}`).toBe(!['Namespace', 'ResourceQuota'].includes(m.kind) && m.metadata.name !== 'modelplane-default-deny')
    }
  })

  it('gives byte-identical manifests run after run, whatever the order the files come in', () => {
    for (const c of CASES) {
      const first = JSON.stringify(generateAppManifests(inputFor(c)))
      expect(JSON.stringify(generateAppManifests(inputFor(c)))).toBe(first)
      const input = inputFor(c)
      expect(JSON.stringify(generateAppManifests({ ...input, files: [...input.files].reverse() }))).toBe(first)
    }
  })

  it('keeps every name within 63 characters for a long app name, and the host a DNS label', () => {
    const long = 'a'.repeat(40)
    const manifests = generateAppManifests(inputFor({ name: 'long', input: { app: { id: APP_ID, name: long, tenantId: TENANT } } }))
    for (const m of manifests) expect(m.metadata.name.length, `${m.kind}/${m.metadata.name}`).toBeLessThanOrEqual(63)
    const host = appHost({ app: { id: APP_ID, name: long, tenantId: TENANT }, domain: 'apps.example.com', settings: withDomain })!
    expect(host.split('.')[0]!.length).toBeLessThanOrEqual(63)
    expect(host).toMatch(/^a+-[0-9a-f]{8}\.apps\.example\.com$/)
  })
})

describe('app manifests: what a deploy and an update depend on', () => {
  it('changes the ConfigMap name and the pod template annotation when one file changes, and nothing else of the pod', () => {
    const c = CASES[1]!
    const before = generateAppManifests(inputFor(c))
    const edited = PACKAGE_FILES.map((f) => (f.path === 'static/style.css' ? { ...f, content: 'body { color: red; }\n' } : f))
    const after = generateAppManifests({ ...inputFor(c), files: edited })
    expect(configMap(after).metadata.name).not.toBe(configMap(before).metadata.name)
    const annotation = (m: KubeManifest[]) => deployment(m).spec.template.metadata.annotations[CODE_HASH_ANNOTATION] as string
    expect(annotation(after)).not.toBe(annotation(before))
    expect(annotation(after)).toMatch(/^[0-9a-f]{64}$/)
    expect(deployment(after).spec.template.spec.volumes[0].configMap.name).toBe(configMap(after).metadata.name)
    // The rest of the pod is the same: the rollout is the code's, nothing else moves.
    const podWithoutCode = (m: KubeManifest[]) => {
      const spec = structuredClone(deployment(m).spec.template.spec)
      delete spec.volumes[0].configMap.name
      return spec
    }
    expect(podWithoutCode(after)).toEqual(podWithoutCode(before))
    // Objects other than the ConfigMap and the Deployment are untouched.
    const others = (m: KubeManifest[]) => m.filter((x) => x.kind !== 'ConfigMap' && x.kind !== 'Deployment')
    expect(others(after)).toEqual(others(before))
  })

  it('stores the code in an immutable ConfigMap and mounts it as a folder, files in folders mapped by items', () => {
    const manifests = generateAppManifests(inputFor(CASES[1]!))
    const cm = configMap(manifests)
    expect(cm.immutable).toBe(true)
    for (const key of Object.keys(cm.data)) expect(key).toMatch(/^[-._a-zA-Z0-9]+$/)
    const volume = deployment(manifests).spec.template.spec.volumes.find((v: { name: string }) => v.name === 'code')
    const items = volume.configMap.items as Array<{ key: string; path: string }>
    expect(items.map((i) => i.path).sort()).toEqual(PACKAGE_FILES.map((f) => f.path).sort())
    for (const file of PACKAGE_FILES) {
      const item = items.find((i) => i.path === file.path)!
      expect(cm.data[item.key]).toBe(file.content)
    }
    const container = deployment(manifests).spec.template.spec.containers[0]
    const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'code')
    expect(mount).toEqual({ name: 'code', mountPath: APP_CODE_DIR, readOnly: true })
    expect(JSON.stringify(deployment(manifests))).not.toContain('subPath')
    expect(container.env).toEqual(
      expect.arrayContaining([
        { name: 'APP_MODULE', value: 'main' },
        { name: 'APP_CODE_DIR', value: APP_CODE_DIR },
        { name: 'GREETING', value: 'hi' },
      ]),
    )
  })

  it('names the ConfigMaps of older code versions for pruning, never the current one, the one kept with it, nor another app\'s', () => {
    const app = { id: APP_ID, name: 'hello', tenantId: TENANT }
    const v1 = configMap(generateAppManifests(inputFor(CASES[0]!))).metadata.name as string
    const v2Files = [{ path: 'main.py', content: HELLO.replace('world', 'there') }]
    const v2 = configMap(generateAppManifests({ ...inputFor(CASES[0]!), files: v2Files })).metadata.name as string
    const otherApp = configMap(generateAppManifests({ ...inputFor(CASES[0]!), app: { ...app, id: '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a' } })).metadata.name as string
    const v3Files = [{ path: 'main.py', content: HELLO.replace('world', 'again') }]
    const v3 = configMap(generateAppManifests({ ...inputFor(CASES[0]!), files: v3Files })).metadata.name as string
    const v1Hash = codeHash([{ path: 'main.py', content: HELLO }])
    expect(staleCodeConfigMaps(app, [codeHash(v2Files)], [v1, v2, otherApp])).toEqual([v1])
    expect(staleCodeConfigMaps(app, [v1Hash], [v1])).toEqual([])
    // The version that served before stays beside the current one.
    expect(staleCodeConfigMaps(app, [codeHash(v3Files), codeHash(v2Files)], [v1, v2, v3, otherApp])).toEqual([v1])
  })

  it('gives nested files keys that cannot be another file name, and keeps top-level names', () => {
    expect(configMapKey('main.py')).toBe('main.py')
    const nested = configMapKey('shop/models.py')
    expect(nested).toMatch(/^\.d-[0-9a-f]{8}-models\.py$/)
    expect(configMapKey('other/models.py')).not.toBe(nested)
  })

  it('runs the code as a contained process: no token, no root, read-only root, no capabilities, seccomp, limits, /tmp only', () => {
    const d = deployment(generateAppManifests(inputFor(CASES[0]!)))
    const pod = d.spec.template.spec
    expect(pod.automountServiceAccountToken).toBe(false)
    expect(pod.enableServiceLinks).toBe(false)
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } })
    const c = pod.containers[0]
    expect(c.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    })
    expect(c.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } })
    expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' })
    expect(pod.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } })
    for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) expect(c[p].httpGet).toEqual({ path: '/health', port: 'http' })
    expect(c.image).toBe(RUNNER)
  })

  it('denies every way out, DNS included, and lets in only the ingress controller and the API server', () => {
    const manifests = generateAppManifests(inputFor(CASES[0]!))
    const policy = byKind(manifests, 'NetworkPolicy').find((p) => p.metadata.name.endsWith('-net'))!
    expect(policy.spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/managed-by': 'modelplane', 'modelplane.io/app-id': APP_ID } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }, { ipBlock: { cidr: '10.0.0.10/32' } }], ports: [{ port: 8000, protocol: 'TCP' }] }],
      egress: [],
    })
  })

  it('routes by host: an Ingress, a Traefik IngressRoute when the cluster serves traefik.io, an OpenShift Route, or none without a domain', () => {
    const kinds = (c: Case) => generateAppManifests(inputFor(c)).map((m) => m.kind)
    expect(kinds(CASES[0]!)).toContain('Ingress')
    const traefik = generateAppManifests(inputFor(CASES[1]!))
    const route = byKind(traefik, 'IngressRoute')[0]!
    expect(route.apiVersion).toBe('traefik.io/v1alpha1')
    expect(JSON.stringify(route.spec)).toContain('Host(`shop-')
    expect(byKind(traefik, 'Ingress')).toEqual([])
    expect(kinds(CASES[2]!)).toContain('Route')
    expect(kinds(CASES[3]!).filter((k) => ['Ingress', 'IngressRoute', 'Route'].includes(k))).toEqual([])
    // The domain falls back to the cluster's serving settings.
    const fallback = generateAppManifests(inputFor({ name: 'x', input: { domain: null, settings: { ...withDomain, ingressHostSuffix: 'svc.corp.example' } } }))
    expect((byKind(fallback, 'Ingress')[0]!.spec as { rules: Array<{ host: string }> }).rules[0]!.host).toMatch(/^hello-[0-9a-f]{8}\.svc\.corp\.example$/)
  })

  it('writes the same tenant namespace, quota and default deny as the model endpoints do', () => {
    const c = cluster([node('cpu-small')])
    const decision = plan({ request: request(MODELS.bgeSmall), model: MODELS.bgeSmall, cluster: c, runtimes, settings: withDomain })
    const model = generateManifests({
      endpoint: { id: '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d', name: 'emb', tenantId: TENANT },
      model: { id: MODELS.bgeSmall.id, name: MODELS.bgeSmall.name },
      version: null,
      runtime: runtimes.find((r) => r.id === decision.runtime.id)!,
      cluster: { id: c.id, platform: c.platform, capabilities: c.capabilities },
      settings: withDomain,
      plan: decision,
      weights: [],
      apiKey: 'k',
    })
    expect(tenantManifests(TENANT, withDomain)).toEqual(model.slice(0, 3))
    expect(generateAppManifests(inputFor(CASES[0]!)).slice(0, 3)).toEqual(model.slice(0, 3))
  })

  it('refuses env the runner sets itself and an entry that is not one of the files', () => {
    expect(() => generateAppManifests({ ...inputFor(CASES[0]!), env: { PORT: '1' } })).toThrow(/PORT/)
    expect(() => generateAppManifests({ ...inputFor(CASES[0]!), entry: 'app.py' })).toThrow(/entry/)
  })
})
