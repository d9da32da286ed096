import fs from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  applyManifest,
  applyManifests,
  createKubeClient,
  deleteManaged,
  type KubeClient,
  type KubeManifest,
  KubeError,
  type KubeObject,
  listManaged,
  managedGone,
  managedLabels,
  managedSelector,
  ManifestRefused,
  parseKubeconfig,
  pathWatchSource,
  redactSecret,
  runWatch,
  type WatchEvent,
} from '../../../src/platform/kube/index.js'
import { type KubeStandIn, type StandInCluster, startKubeStandIn } from '../../helpers/kube/index.js'
import { waitFor } from '../../helpers/wait.js'

// The apply/teardown client against the stand-in API server, over HTTPS, as endpoint deployment uses it.

const RULES = { allowInsecureTls: false, allowHttp: false, deniedCidrs: [] }
const recorded = JSON.parse(fs.readFileSync(new URL('../../fixtures/kube/ssa-first-apply-response.json', import.meta.url), 'utf8')) as KubeObject

let standIn: KubeStandIn
let cluster: StandInCluster
let client: KubeClient

function clientFor(c: StandInCluster): KubeClient {
  return createKubeClient(parseKubeconfig(c.kubeconfig(), RULES))
}

beforeAll(async () => {
  standIn = await startKubeStandIn()
  // No controllers: these tests judge apply on objects only they write.
  cluster = standIn.addCluster({ workloads: false })
  client = clientFor(cluster)
})

afterAll(async () => {
  client.close()
  await standIn.close()
})

let seq = 0
const unique = (prefix: string) => `${prefix}-${++seq}-${Math.random().toString(36).slice(2, 7)}`

async function namespace(labels: Record<string, string> = {}): Promise<string> {
  const name = unique('ns')
  await applyManifest(client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } })
  return name
}

/** The Deployment of the recorded first apply (ssa-first-apply-response.json), in a namespace of ours. */
function web(ns: string, o: { replicas?: number | null; image?: string; labels?: Record<string, string>; name?: string } = {}): KubeManifest {
  const spec: Record<string, unknown> = {
    selector: { matchLabels: { 'app.kubernetes.io/name': 'web' } },
    progressDeadlineSeconds: 600,
    template: {
      metadata: { labels: { 'app.kubernetes.io/name': 'web' } },
      spec: {
        containers: [{
          name: 'server',
          image: o.image ?? 'vllm/vllm-openai:v0.6.3',
          ports: [{ name: 'http', containerPort: 8000 }],
          resources: { limits: { 'nvidia.com/gpu': '1' }, requests: { cpu: '100m', memory: '128Mi' } },
        }],
      },
    },
  }
  if (o.replicas !== null) spec.replicas = o.replicas ?? 2
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: o.name ?? 'web',
      namespace: ns,
      labels: o.labels ?? { 'app.kubernetes.io/managed-by': 'modelplane', 'app.kubernetes.io/name': 'web' },
    },
    spec,
  }
}

async function failure(call: Promise<unknown>): Promise<KubeError> {
  try {
    await call
  } catch (err) {
    if (err instanceof KubeError) return err
    throw err
  }
  throw new Error('the call succeeded')
}

const spec = (obj: { metadata: unknown; [k: string]: unknown } | undefined) => obj?.spec as { replicas?: number; template: { spec: { containers: Array<{ image: string; env?: unknown[] }> } } }

describe('applyManifest', () => {
  it('creates the object, owned by modelplane field by field as a real API server records it', async () => {
    const ns = await namespace()
    const result = await applyManifest(client, web(ns))
    expect(result.created).toBe(true)
    expect(result.changed).toBe(true)
    expect(result.object.metadata.generation).toBe(1)
    const [entry, ...others] = result.object.metadata.managedFields as Array<Record<string, unknown>>
    expect(others).toEqual([])
    expect(entry).toMatchObject({ manager: 'modelplane', operation: 'Apply', apiVersion: 'apps/v1', fieldsType: 'FieldsV1' })
    expect(entry!.fieldsV1).toEqual((recorded.metadata.managedFields as Array<Record<string, unknown>>)[0]!.fieldsV1)
    // What the server fills in is there, as a real one fills it in, and owned by no one.
    expect(result.object.spec).toEqual(recorded.spec)
  })

  it('applying the same manifest again changes nothing: same resourceVersion, same generation', async () => {
    const ns = await namespace()
    const first = await applyManifest(client, web(ns))
    const second = await applyManifest(client, web(ns))
    expect(second).toMatchObject({ created: false, changed: false })
    expect(second.object.metadata.resourceVersion).toBe(first.object.metadata.resourceVersion)
    expect(second.object.metadata.generation).toBe(1)
  })

  it('a changed field is a new generation', async () => {
    const ns = await namespace()
    const first = await applyManifest(client, web(ns))
    const next = await applyManifest(client, web(ns, { image: 'vllm/vllm-openai:v0.7.0' }))
    expect(next).toMatchObject({ created: false, changed: true })
    expect(next.object.metadata.resourceVersion).not.toBe(first.object.metadata.resourceVersion)
    expect(next.object.metadata.generation).toBe(2)
    expect(spec(next.object).template.spec.containers[0]!.image).toBe('vllm/vllm-openai:v0.7.0')
  })

  it('a field another manager changed is a conflict naming field and manager, and force takes it back', async () => {
    const ns = await namespace()
    await applyManifest(client, web(ns))
    cluster.editAs('kubectl-edit', 'deployments', ns, 'web', (d) => void ((d.spec as { replicas: number }).replicas = 5))

    const err = await failure(applyManifest(client, web(ns)))
    expect(err.code).toBe('CLUSTER_CONFLICT')
    expect(err.message).toContain('.spec.replicas')
    expect(err.message).toContain('kubectl-edit')
    expect(err.message).toContain(`Deployment ${ns}/web`)
    expect(err.causes).toEqual([{ field: '.spec.replicas', message: 'conflict with "kubectl-edit" using apps/v1' }])
    expect(spec(cluster.read('deployments', ns, 'web')).replicas).toBe(5)

    const forced = await applyManifest(client, web(ns), { force: true })
    expect(forced.changed).toBe(true)
    expect(spec(forced.object).replicas).toBe(2)
    const editor = (forced.object.metadata.managedFields as Array<{ manager: string; fieldsV1: unknown }>).find((e) => e.manager === 'kubectl-edit')
    expect(JSON.stringify(editor?.fieldsV1 ?? {})).not.toContain('f:replicas')
  })

  it('a field dropped from the manifest is removed from the object', async () => {
    const ns = await namespace()
    const withExtra = web(ns, { labels: { 'app.kubernetes.io/managed-by': 'modelplane', 'app.kubernetes.io/name': 'web', stage: 'canary' } })
    ;(spec(withExtra).template.spec.containers[0]!).env = [{ name: 'HF_HUB_OFFLINE', value: '1' }]
    await applyManifest(client, withExtra)
    const after = await applyManifest(client, web(ns))
    expect(after.changed).toBe(true)
    expect(after.object.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'modelplane', 'app.kubernetes.io/name': 'web' })
    expect(spec(after.object).template.spec.containers[0]!.env).toBeUndefined()
  })

  it('leaves spec.replicas to the autoscaler that owns it when our manifest omits replicas', async () => {
    const ns = await namespace()
    await applyManifest(client, web(ns, { replicas: null }))
    cluster.editAs('kube-controller-manager', 'deployments', ns, 'web', (d) => void ((d.spec as { replicas: number }).replicas = 4))
    const again = await applyManifest(client, web(ns, { replicas: null, image: 'vllm/vllm-openai:v0.7.0' }))
    expect(again.changed).toBe(true)
    expect(spec(again.object).replicas).toBe(4)
    expect(spec(again.object).template.spec.containers[0]!.image).toBe('vllm/vllm-openai:v0.7.0')
  })

  it('dry run answers the outcome and stores nothing', async () => {
    const ns = await namespace()
    const planned = await applyManifest(client, web(ns), { dryRun: true })
    expect(planned).toMatchObject({ created: true, changed: true })
    expect(spec(planned.object).replicas).toBe(2)
    expect(cluster.read('deployments', ns, 'web')).toBeUndefined()

    const real = await applyManifest(client, web(ns))
    const change = await applyManifest(client, web(ns, { replicas: 3 }), { dryRun: true })
    expect(change).toMatchObject({ created: false, changed: true })
    expect(spec(change.object).replicas).toBe(3)
    const same = await applyManifest(client, web(ns), { dryRun: true })
    expect(same.changed).toBe(false)
    const stored = cluster.read('deployments', ns, 'web')!
    expect(stored.metadata.resourceVersion).toBe(real.object.metadata.resourceVersion)
    expect(spec(stored).replicas).toBe(2)
  })

  it('refuses a kind it does not write, or a wrong apiVersion, before calling the cluster', async () => {
    const before = cluster.requests.length
    const cron = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'x', namespace: 'default' } }
    await expect(applyManifest(client, cron)).rejects.toThrow(ManifestRefused)
    await expect(applyManifests(client, [web('default'), cron])).rejects.toThrow(/does not write objects of kind "CronJob"/)
    const hpaV1 = { apiVersion: 'autoscaling/v1', kind: 'HorizontalPodAutoscaler', metadata: { name: 'x', namespace: 'default' } }
    await expect(applyManifest(client, hpaV1)).rejects.toThrow(/apiVersion must be autoscaling\/v2/)
    expect(cluster.requests.length).toBe(before)
  })
})

describe('applyManifests', () => {
  it('applies in order (namespace first, routing last) whatever order it is given', async () => {
    const ns = unique('ordered')
    const labels = { 'app.kubernetes.io/managed-by': 'modelplane' }
    const results = await applyManifests(client, [
      { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'web', namespace: ns, labels }, spec: { rules: [{ host: 'web.example.com' }] } },
      web(ns),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns, labels }, spec: { selector: { 'app.kubernetes.io/name': 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8000 }] } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web', namespace: ns, labels }, data: { 'config.json': '{}' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } },
    ])
    expect(results.map((r) => r.manifest.kind)).toEqual(['Namespace', 'ConfigMap', 'Deployment', 'Service', 'Ingress'])
    expect(results.every((r) => r.created)).toBe(true)
  })
})

describe('listManaged and deleteManaged', () => {
  it('delete by labels removes ours, in teardown order, and leaves an unlabelled neighbour and another tenant alone', async () => {
    const ns = await namespace()
    const mine = managedLabels({ name: 'web', instance: 'web-1', tenantId: 'tenant-a', owner: { key: 'modelplane.io/endpoint-id', id: 'ep-1' } })
    const theirs = managedLabels({ name: 'web', instance: 'web-2', tenantId: 'tenant-b', owner: { key: 'modelplane.io/endpoint-id', id: 'ep-2' } })
    await applyManifests(client, [
      web(ns, { labels: mine }),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns, labels: mine }, spec: { ports: [{ port: 80 }] } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'web-token', namespace: ns, labels: mine }, stringData: { token: 's3cret' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'neighbour', namespace: ns }, data: { a: '1' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other-tenant', namespace: ns, labels: theirs }, data: { a: '1' } },
    ])
    const selector = managedSelector('tenant-a', { key: 'modelplane.io/endpoint-id', id: 'ep-1' })

    const listed = await listManaged(client, { selector, namespaces: [ns] })
    expect(listed.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['Deployment/web', 'Secret/web-token', 'Service/web'])
    expect(listed.every((o) => o.apiVersion)).toBe(true)
    expect(await managedGone(client, { selector, namespaces: [ns] })).toBe(false)

    const deleted = await deleteManaged(client, { selector, namespaces: [ns] })
    expect(deleted.map((r) => r.kind)).toEqual(['Service', 'Deployment', 'Secret'])
    expect(await managedGone(client, { selector, namespaces: [ns] })).toBe(true)
    expect(await listManaged(client, { selector })).toEqual([])
    expect(cluster.read('configmaps', ns, 'neighbour')).toBeDefined()
    expect(cluster.read('configmaps', ns, 'other-tenant')).toBeDefined()
    expect(await managedGone(client, { selector: managedSelector('tenant-b') })).toBe(false)

    // Again: nothing left to delete is not an error.
    expect(await deleteManaged(client, { selector, namespaces: [ns] })).toEqual([])
  })

  it('refuses a selector that is not limited to modelplane objects', async () => {
    await expect(deleteManaged(client, { selector: 'modelplane.io/tenant=tenant-a' })).rejects.toThrow(ManifestRefused)
    await expect(listManaged(client, { selector: '' })).rejects.toThrow(ManifestRefused)
  })
})

describe('redactSecret', () => {
  it('hides every value of a Secret and keeps its keys; other objects pass unchanged', async () => {
    const ns = await namespace()
    const { object } = await applyManifest(client, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: ns }, data: { token: Buffer.from('s3cret').toString('base64') },
    })
    const shown = redactSecret(object)
    expect(shown.data).toEqual({ token: '[redacted]' })
    expect(JSON.stringify(shown)).not.toContain(Buffer.from('s3cret').toString('base64'))
    expect((object.data as Record<string, string>).token).toBe(Buffer.from('s3cret').toString('base64'))
    const cm = { kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: '1' } }
    expect(redactSecret(cm)).toBe(cm)
  })
})

describe('watch', () => {
  const configMap = (ns: string, name: string, data: Record<string, string> = { a: '1' }): KubeManifest =>
    ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns, labels: { app: 'w' } }, data })

  async function collect(path: string, count: number): Promise<WatchEvent<KubeObject>[]> {
    const out: WatchEvent<KubeObject>[] = []
    for await (const event of client.watchJson<KubeObject>(path)) {
      out.push(event)
      if (out.length >= count) break
    }
    return out
  }

  it('from a resourceVersion gets exactly the later changes', async () => {
    const ns = await namespace()
    await applyManifest(client, configMap(ns, 'before'))
    const list = await client.getJson<{ metadata: { resourceVersion: string } }>(`/api/v1/namespaces/${ns}/configmaps`)
    await applyManifest(client, configMap(ns, 'after'))
    await applyManifest(client, configMap(ns, 'before', { a: '2' }))
    await client.request('DELETE', `/api/v1/namespaces/${ns}/configmaps/after`)

    const events = await collect(`/api/v1/namespaces/${ns}/configmaps?watch=true&resourceVersion=${list.metadata.resourceVersion}`, 3)
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED after', 'MODIFIED before', 'DELETED after'])
    expect(events[0]!.object).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1' })
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion))
    expect(rvs[0]).toBeGreaterThan(Number(list.metadata.resourceVersion))
    expect([...rvs].sort((a, b) => a - b)).toEqual(rvs)
  })

  it('answers 410 Expired for a resourceVersion older than its history, and runWatch lists again', async () => {
    const small = standIn.addCluster({ watchHistory: 3, workloads: false })
    const c = clientFor(small)
    try {
      const ns = unique('expiring')
      await applyManifest(c, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })
      const rv = (await c.getJson<{ metadata: { resourceVersion: string } }>(`/api/v1/namespaces/${ns}/configmaps`)).metadata.resourceVersion
      for (let i = 0; i < 4; i++) await applyManifest(c, configMap(ns, `cm-${i}`))
      const [event] = await (async () => {
        const out: WatchEvent[] = []
        for await (const e of c.watchJson(`/api/v1/namespaces/${ns}/configmaps?watch=true&resourceVersion=${rv}`)) out.push(e)
        return out
      })()
      expect(event).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } })

      // runWatch: in step, then cut off while more changes than the history holds happen; it lists again.
      const syncs: string[][] = []
      const seen: string[] = []
      const stop = new AbortController()
      const running = runWatch(
        pathWatchSource<KubeObject>(c, `/api/v1/namespaces/${ns}/configmaps`, { labelSelector: 'app=w' }),
        {
          onSync: (items) => void syncs.push(items.map((i) => i.metadata.name).sort()),
          onEvent: (e) => void seen.push(`${e.type} ${e.object.metadata.name}`),
        },
        stop.signal,
        { backoffMs: 50, maxBackoffMs: 100 },
      )
      await waitFor(() => syncs.length === 1 && small.openWatches() === 1)
      await applyManifest(c, configMap(ns, 'live'))
      await waitFor(() => seen.includes('ADDED live'))

      small.setReachable(false)
      for (let i = 0; i < 4; i++) small.editAs('kubectl-edit', 'configmaps', ns, `cm-${i}`, (cm) => void (cm.data = { a: 'edited' }))
      small.setReachable(true)
      await waitFor(() => syncs.length === 2, 5_000, 'runWatch did not list again')
      expect(syncs[1]).toEqual(['cm-0', 'cm-1', 'cm-2', 'cm-3', 'live'])
      stop.abort()
      await running
    } finally {
      c.close()
    }
  }, 30_000)
})
