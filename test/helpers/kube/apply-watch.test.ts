import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createKubeClient,
  type KubeClient,
  KubeError,
  parseKubeconfig,
  type WatchEvent,
} from '../../../src/platform/kube/index.js'
import { type KubeStandIn, type StandInCluster, startKubeStandIn } from './index.js'

// Server-side apply, status writes and watch streams of the stand-in, through the real transport.

const RULES = { allowInsecureTls: false, allowHttp: false, deniedCidrs: [] }

interface Obj {
  kind?: string
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; labels?: Record<string, string>; managedFields?: Array<Record<string, unknown>> }
  spec?: Record<string, unknown>
  status?: Record<string, unknown>
  data?: Record<string, string>
}

let standIn: KubeStandIn
let cluster: StandInCluster
let client: KubeClient
let seq = 0

beforeAll(async () => {
  standIn = await startKubeStandIn()
  // No controllers: these tests judge apply and watch on objects only they write.
  cluster = standIn.addCluster({ watchBookmarkMs: 100, workloads: false })
  client = createKubeClient(parseKubeconfig(cluster.kubeconfig(), RULES))
})

afterAll(async () => {
  client.close()
  await standIn.close()
})

async function namespace(): Promise<string> {
  const name = `ns-${++seq}`
  await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name } } })
  return name
}

function apply(path: string, body: string | object, query = 'fieldManager=modelplane') {
  return client.request('PATCH', `${path}?${query}`, {
    body: typeof body === 'string' ? body : JSON.stringify(body),
    contentType: 'application/apply-patch+yaml',
    passStatus: true,
  })
}

const deployment = (ns: string, replicas = 1, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: ns },
  spec: {
    replicas,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'server', image: 'nginx:1.27', ...extra }] } },
  },
})

describe('server-side apply', () => {
  it('needs a fieldManager (400), takes YAML, and answers 201 on create and 200 after', async () => {
    const ns = await namespace()
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/web`
    const missing = await apply(path, deployment(ns), '')
    expect(missing.status).toBe(400)
    expect(missing.json()).toMatchObject({ kind: 'Status', reason: 'BadRequest', message: 'fieldManager is required for apply requests' })

    const yaml = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: server
          image: nginx:1.27
`
    const created = await apply(path, yaml)
    expect(created.status).toBe(201)
    expect(created.json<Obj>().spec).toMatchObject({ replicas: 1, selector: { matchLabels: { app: 'web' } } })
    const again = await apply(path, yaml)
    expect(again.status).toBe(200)
    expect(again.json<Obj>().metadata.resourceVersion).toBe(created.json<Obj>().metadata.resourceVersion)
  })

  it('refuses a configuration for another kind or name, and a container list without names as the API server does', async () => {
    const ns = await namespace()
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/web`
    expect((await apply(path, { ...deployment(ns), kind: 'StatefulSet' })).status).toBe(400)
    expect((await apply(path, { ...deployment(ns), metadata: { name: 'other' } })).status).toBe(400)
    const nameless = deployment(ns)
    delete (nameless.spec.template.spec.containers[0] as { name?: string }).name
    const answer = await apply(path, nameless)
    expect(answer.status).toBe(500)
    expect(answer.json<{ message: string }>().message).toContain('.spec.template.spec.containers: element 0: associative list with keys has an element that omits key field "name"')
  })

  it('names every conflicting field, grouped by manager, and the fields of a container by its key', async () => {
    const ns = await namespace()
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/web`
    await apply(path, deployment(ns, 2))
    cluster.editAs('kubectl-edit', 'deployments', ns, 'web', (d) => {
      const spec = d.spec as { replicas: number; template: { spec: { containers: Array<{ image: string }> } } }
      spec.replicas = 3
      spec.template.spec.containers[0]!.image = 'nginx:1.28'
    })
    const answer = await apply(path, deployment(ns, 2))
    expect(answer.status).toBe(409)
    const body = answer.json<{ message: string; details: { causes: Array<{ field: string }> } }>()
    expect(body.message).toBe('Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name="server"].image')
    expect(body.details.causes.map((c) => c.field)).toEqual(['.spec.replicas', '.spec.template.spec.containers[name="server"].image'])
    // The same values as the other manager's are no conflict: the field is shared.
    const shared = await apply(path, deployment(ns, 3, { image: 'nginx:1.28' }))
    expect(shared.status).toBe(200)
  })

  it('keys container ports by port and protocol, so two managers can each own a port', async () => {
    const ns = await namespace()
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/web`
    await apply(path, deployment(ns, 1, { ports: [{ name: 'http', containerPort: 8000 }] }))
    const sidecar = await apply(path, deployment(ns, 1, { ports: [{ name: 'metrics', containerPort: 9090 }] }), 'fieldManager=metrics-injector')
    expect(sidecar.status).toBe(200)
    const ports = (sidecar.json<Obj>().spec as { template: { spec: { containers: Array<{ ports: unknown[] }> } } }).template.spec.containers[0]!.ports
    expect(ports).toEqual([{ name: 'http', containerPort: 8000, protocol: 'TCP' }, { name: 'metrics', containerPort: 9090, protocol: 'TCP' }])
  })

  it('records PUT and merge patch as Update by the fieldManager or the user agent, and takes their fields from the applier', async () => {
    const ns = await namespace()
    await apply(`/api/v1/namespaces/${ns}/configmaps/cfg`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { a: '1', b: '2' } })
    const patched = await client.request('PATCH', `/api/v1/namespaces/${ns}/configmaps/cfg?fieldManager=kubectl-edit`, {
      body: { data: { a: '9' } },
      contentType: 'application/merge-patch+json',
    })
    const entries = patched.json<Obj>().metadata.managedFields!
    expect(entries.map((e) => `${e.manager}:${e.operation}`)).toEqual(['modelplane:Apply', 'kubectl-edit:Update'])
    expect(entries[0]!.fieldsV1).toEqual({ 'f:data': { 'f:b': {} } })
    expect(entries[1]!.fieldsV1).toEqual({ 'f:data': { 'f:a': {} } })
    const put = await client.request('PUT', `/api/v1/namespaces/${ns}/configmaps/cfg`, {
      body: { metadata: { name: 'cfg' }, data: { a: '9', b: '2', c: '3' } },
    })
    // Our client's user agent is "modelplane", so the PUT is modelplane's Update, beside its Apply.
    expect(put.json<Obj>().metadata.managedFields!.map((e) => `${e.manager}:${e.operation}`)).toEqual(['modelplane:Apply', 'kubectl-edit:Update', 'modelplane:Update'])
  })
})

describe('status subresource', () => {
  it('PUT and PATCH of status change only status; writes to the object leave status alone', async () => {
    const ns = await namespace()
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/web`
    const created = (await apply(path, deployment(ns, 2))).json<Obj>()
    const put = await client.request('PUT', `${path}/status`, {
      body: { ...created, spec: { ...created.spec, replicas: 7 }, status: { observedGeneration: 1, replicas: 2, readyReplicas: 1 } },
    })
    const afterPut = put.json<Obj>()
    expect(afterPut.status).toEqual({ observedGeneration: 1, replicas: 2, readyReplicas: 1 })
    expect(afterPut.spec!.replicas).toBe(2)
    expect(afterPut.metadata.generation).toBe(1)
    expect(afterPut.metadata.managedFields!.find((e) => e.subresource === 'status')).toMatchObject({ manager: 'modelplane', operation: 'Update' })

    const patched = await client.request('PATCH', `${path}/status`, { body: { status: { readyReplicas: 2 } }, contentType: 'application/merge-patch+json' })
    expect(patched.json<Obj>().status).toEqual({ observedGeneration: 1, replicas: 2, readyReplicas: 2 })

    const applied = await apply(`${path}/status`, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, status: { availableReplicas: 2 } }, 'fieldManager=deployment-controller')
    expect(applied.status).toBe(200)
    expect(applied.json<Obj>().status).toMatchObject({ availableReplicas: 2, readyReplicas: 2 })

    const respec = await apply(path, { ...deployment(ns, 3), status: { replicas: 99 } })
    expect(respec.json<Obj>().spec!.replicas).toBe(3)
    expect(respec.json<Obj>().status!.replicas).toBe(2)
    expect(respec.json<Obj>().metadata.generation).toBe(2)

    expect((await client.request('PUT', `/api/v1/namespaces/${ns}/configmaps/x/status`, { body: {}, passStatus: true })).status).toBe(404)
  })
})

describe('watch', () => {
  async function events(path: string, count: number, during?: () => Promise<unknown>): Promise<WatchEvent<Obj>[]> {
    const out: WatchEvent<Obj>[] = []
    const stream = client.watchJson<Obj>(path)
    const first = stream.next()
    const pending = during ? (async () => { await new Promise((r) => setTimeout(r, 20)); await during() })() : Promise.resolve()
    let next = await first
    while (!next.done) {
      out.push(next.value)
      if (out.length >= count) break
      next = await stream.next()
    }
    await stream.return(undefined)
    await pending
    return out
  }

  const cm = (ns: string, name: string, labels: Record<string, string>) =>
    apply(`/api/v1/namespaces/${ns}/configmaps/${name}`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels }, data: { a: '1' } })

  it('without a resourceVersion starts with the current objects as ADDED, then streams changes as they happen', async () => {
    const ns = await namespace()
    await cm(ns, 'one', { app: 'x' })
    const seen = await events(`/api/v1/namespaces/${ns}/configmaps?watch=1`, 2, () => cm(ns, 'two', { app: 'x' }))
    expect(seen.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED one', 'ADDED two'])
  })

  it('with a label selector, an object relabelled out of it is DELETED and one relabelled into it ADDED', async () => {
    const ns = await namespace()
    await cm(ns, 'a', { tier: 'gold' })
    await cm(ns, 'b', { tier: 'bronze' })
    const rv = (await client.getJson<{ metadata: { resourceVersion: string } }>(`/api/v1/namespaces/${ns}/configmaps`)).metadata.resourceVersion
    cluster.editAs('relabeller', 'configmaps', ns, 'a', (o) => void (o.metadata.labels = { tier: 'bronze' }))
    cluster.editAs('relabeller', 'configmaps', ns, 'b', (o) => void (o.metadata.labels = { tier: 'gold' }))
    const seen = await events(`/api/v1/namespaces/${ns}/configmaps?watch=true&labelSelector=tier%3Dgold&resourceVersion=${rv}`, 2)
    expect(seen.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['DELETED a', 'ADDED b'])
  })

  it('across all namespaces with a field selector, and sends bookmarks when allowed', async () => {
    const ns = await namespace()
    const rv = (await client.getJson<{ metadata: { resourceVersion: string } }>('/api/v1/configmaps')).metadata.resourceVersion
    await cm(ns, 'target', {})
    await cm(ns, 'other', {})
    const seen = await events(`/api/v1/configmaps?watch=true&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dtarget&resourceVersion=${rv}`, 2)
    expect(seen[0]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'target', namespace: ns } } })
    expect(seen[1]).toMatchObject({ type: 'BOOKMARK', object: { kind: 'ConfigMap', apiVersion: 'v1' } })
    expect(Number(seen[1]!.object.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(seen[0]!.object.metadata.resourceVersion))
  })

  it('ends the stream after timeoutSeconds, refuses a bad resourceVersion, and lets go of closed streams', async () => {
    const ns = await namespace()
    const started = Date.now()
    const seen = await events(`/api/v1/namespaces/${ns}/configmaps?watch=true&timeoutSeconds=1`, 10)
    expect(seen).toEqual([])
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    const bad = await client.request('GET', `/api/v1/namespaces/${ns}/configmaps?watch=true&resourceVersion=abc`, { passStatus: true })
    expect(bad.status).toBe(400)
    await expect(client.request('GET', `/api/v1/namespaces/${ns}/configmaps?watch=true&labelSelector=%3D%3D`)).rejects.toThrow(KubeError)
    await new Promise((r) => setTimeout(r, 50))
    expect(cluster.openWatches()).toBe(0)
  }, 10_000)

  it('a reader may watch; a token without the watch right may not', async () => {
    const reader = createKubeClient(parseKubeconfig(cluster.kubeconfig({ token: cluster.tokenWith([{ verb: 'list', resource: 'configmaps' }]) }), RULES))
    try {
      const err = await (async () => {
        try {
          for await (const _e of reader.watchJson('/api/v1/configmaps?watch=true')) break
        } catch (e) {
          return e as KubeError
        }
        return undefined
      })()
      expect(err?.code).toBe('CLUSTER_FORBIDDEN')
    } finally {
      reader.close()
    }
  })
})
