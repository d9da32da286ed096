import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServingSettings } from '../../../src/modules/endpoint_ops/runtime-module.js'
import { DEFAULT_SERVING_SETTINGS } from '../../../src/modules/endpoint_ops/serving-settings.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'

/**
 * A tenant's serving settings per cluster through GET/PATCH /v1/clusters/{id}/serving-settings,
 * and what the planner reads of them (`forCluster`): defaults until set, validated, permissioned
 * (cluster:view / cluster:manage) and scoped to the cluster's tenant.
 */

let h: ClusterHarness
let clusterId: string
let otherClusterId: string
let users: Record<'viewer' | 'developer' | 'tester' | 'devops', SeededUser>
let tenantB: SeededUser
let bClusterId: string

const url = (id: string) => `/v1/clusters/${id}/serving-settings`
const get = (id: string, user?: SeededUser) => h.call({ method: 'GET', url: url(id) }, user)
const patch = (id: string, payload: unknown, user?: SeededUser, headers: Record<string, string> = {}) =>
  h.call({ method: 'PATCH', url: url(id), payload: payload as never, headers }, user)

const SETTINGS = {
  registryPrefix: 'registry.corp:5000/mirror/',
  imagePullSecrets: ['corp-registry'],
  objectStoreUrl: 'https://minio.storage.svc:9000',
  ingressHostSuffix: 'models.example.com',
  tlsSecretName: 'models-wildcard-tls',
  ingressClassName: 'nginx',
  ingressNamespace: 'ingress-nginx',
  apiServerCidrs: ['10.0.0.1/32', 'fd00::/64', '192.168.1.10'],
  prometheusUrl: 'http://prometheus.monitoring.svc:9090',
  quota: { cpu: 64, memoryGiB: 512, pods: 50, devices: { 'nvidia.com/gpu': 8 } },
}

beforeAll(async () => {
  h = await startClusterHarness()
  clusterId = (await h.registerAvailable({ name: 'serving-a', kubeconfig: h.kube.addCluster({ nodes: ['cpu-small'] }).kubeconfig() })).clusterId
  otherClusterId = (await h.registerAvailable({ name: 'serving-a2', kubeconfig: h.kube.addCluster({ nodes: ['cpu-small'] }).kubeconfig() })).clusterId
  users = {
    viewer: await h.seed('viewer'),
    developer: await h.seed('developer'),
    tester: await h.seed('tester'),
    devops: await h.seed('devops'),
  }
  tenantB = await seedUser(h.app, { realm: uniqueRealm('ssb'), role: 'admin' })
  const registered = await h.call(
    { method: 'POST', url: '/v1/clusters', payload: { name: 'serving-b', kubeconfig: h.kube.addCluster({ nodes: ['cpu-small'] }).kubeconfig() } },
    tenantB,
  )
  expect(registered.statusCode, registered.body).toBe(202)
  // B's cluster exists at once (registering): enough for settings, which need no connection.
  bClusterId = registered.json().clusterId
}, 90_000)

afterAll(async () => {
  await h?.close()
})

describe('serving settings', () => {
  it('answers the defaults, with an ETag, until the tenant sets something', async () => {
    const res = await get(otherClusterId)
    expect(res.statusCode, res.body).toBe(200)
    expect(res.headers.etag).toMatch(/^W\//)
    expect(res.json()).toEqual({ clusterId: otherClusterId, ...DEFAULT_SERVING_SETTINGS, isDefault: true, updatedBy: null, updatedAt: null })
  })

  it('stores what a cluster manager sets, and the planner reads it for that cluster only', async () => {
    const before = await get(clusterId)
    const res = await patch(clusterId, SETTINGS, undefined, { 'if-match': String(before.headers.etag) })
    expect(res.statusCode, res.body).toBe(200)
    const { registryPrefix: _prefix, ...rest } = SETTINGS
    // A trailing slash of the prefix is dropped: images are joined with one.
    expect(res.json()).toMatchObject({ ...rest, registryPrefix: 'registry.corp:5000/mirror', isDefault: false, updatedBy: h.admin.id })
    expect(res.headers.etag).not.toBe(before.headers.etag)
    expect((await get(clusterId, users.viewer)).json()).toMatchObject({ objectStoreUrl: SETTINGS.objectStoreUrl, quota: SETTINGS.quota })

    const planner = createServingSettings({ db: h.app.platform.database.db, clusters: h.app.services.clusters, log: pino({ level: 'silent' }) })
    expect(await planner.forCluster(h.admin.tenantId, clusterId)).toMatchObject({ registryPrefix: 'registry.corp:5000/mirror', imagePullSecrets: ['corp-registry'] })
    expect(await planner.forCluster(h.admin.tenantId, otherClusterId)).toEqual(DEFAULT_SERVING_SETTINGS)
    // Another tenant's settings for the same cluster id would be its own: there are none.
    expect(await planner.forCluster(tenantB.tenantId, clusterId)).toEqual(DEFAULT_SERVING_SETTINGS)
  })

  it('merges a change into what is set, and null puts a default back', async () => {
    await patch(otherClusterId, { registryPrefix: 'localhost:5000', imagePullSecrets: ['a', 'b'], quota: { pods: 10 } })
    const res = await patch(otherClusterId, { registryPrefix: null, ingressNamespace: 'ingress' })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ registryPrefix: null, imagePullSecrets: ['a', 'b'], quota: { pods: 10 }, ingressNamespace: 'ingress' })
    const reset = await patch(otherClusterId, { imagePullSecrets: [], quota: null, ingressNamespace: null })
    expect(reset.json()).toMatchObject({ ...DEFAULT_SERVING_SETTINGS, isDefault: false })
  })

  it('answers 412 to a stale If-Match, also on the first write, and keeps what was there', async () => {
    const fresh = (await h.registerAvailable({ name: `serving-${randomUUID().slice(0, 6)}`, kubeconfig: h.kube.addCluster({ nodes: ['cpu-small'] }).kubeconfig() })).clusterId
    const defaults = String((await get(fresh)).headers.etag)
    expect((await patch(fresh, { ingressClassName: 'traefik' }, undefined, { 'if-match': defaults })).statusCode).toBe(200)
    const stale = await patch(fresh, { ingressClassName: 'nginx' }, undefined, { 'if-match': defaults })
    expect(stale.statusCode).toBe(412)
    expect(stale.json().errorCode).toBe('PRECONDITION_FAILED')
    expect((await get(fresh)).json().ingressClassName).toBe('traefik')
  }, 30_000)

  it.each([
    ['a prefix without a registry host', { registryPrefix: 'mirror/images' }, 'body.registryPrefix', /registry host/],
    ['a prefix with a scheme', { registryPrefix: 'https://registry.corp' }, 'body.registryPrefix', /registry host/],
    ['a prefix with upper case path', { registryPrefix: 'registry.corp/Mirror' }, 'body.registryPrefix', /path component/],
    ['credentials in the object store URL', { objectStoreUrl: 'https://user:secret@minio.corp:9000' }, 'body.objectStoreUrl', /no credentials/],
    ['a query in the object store URL', { objectStoreUrl: 'https://minio.corp/?X-Amz-Signature=x' }, 'body.objectStoreUrl', /without query/],
    ['an ftp object store', { objectStoreUrl: 'ftp://minio.corp' }, 'body.objectStoreUrl', /.+/],
    ['credentials in the Prometheus URL', { prometheusUrl: 'http://admin:pw@prometheus:9090' }, 'body.prometheusUrl', /no credentials/],
    ['a CIDR with a long prefix', { apiServerCidrs: ['10.0.0.0/33'] }, 'body.apiServerCidrs.0', /prefix length/],
    ['a CIDR that is no address', { apiServerCidrs: ['10.0.0.300/8'] }, 'body.apiServerCidrs.0', /IPv4 or IPv6/],
    ['a bad pull secret name', { imagePullSecrets: ['Corp_Registry'] }, 'body.imagePullSecrets.0', /.+/],
    ['a TLS secret without a host suffix', { tlsSecretName: 'tls', ingressHostSuffix: null }, 'body.tlsSecretName', /ingressHostSuffix/],
    ['a suffix that is no domain', { ingressHostSuffix: 'models' }, 'body.ingressHostSuffix', /DNS domain/],
    ['a negative quota', { quota: { cpu: -1 } }, 'body.quota', /must be >= 0.1/],
    ['an unbounded quota', { quota: { pods: 10_000_000 } }, 'body.quota', /must be <= 100000/],
    ['a device quota of no resource name', { quota: { devices: { gpus: 4 } } }, 'body.quota.devices.gpus', /extended resource/],
    ['an unknown field', { registry: 'x' }, 'body.registry', /unknown field/],
    ['nothing', {}, null, null],
  ])('refuses %s with 400 naming the field, changing nothing', async (_what, payload, field, message) => {
    const before = (await get(clusterId)).json()
    const res = await patch(clusterId, payload)
    expect(res.statusCode, res.body).toBe(400)
    expect(res.json().errorCode).toBe('VALIDATION_ERROR')
    if (field) {
      const problem = res.json().details.fields.find((f: { field: string }) => f.field === field)
      expect(problem, JSON.stringify(res.json().details.fields)).toBeDefined()
      expect(problem.message).toMatch(message!)
    }
    expect(res.body).not.toContain('secret@')
    expect((await get(clusterId)).json()).toEqual(before)
  })

  it('lets cluster:view read and only cluster:manage change them', async () => {
    for (const user of [users.viewer, users.developer, users.tester]) {
      expect((await get(clusterId, user)).statusCode).toBe(200)
      const res = await patch(clusterId, { ingressClassName: 'sneaky' }, user)
      expect(res.statusCode).toBe(403)
      expect(res.json().errorCode).toBe('FORBIDDEN')
    }
    expect((await patch(clusterId, { ingressClassName: 'haproxy' }, users.devops)).statusCode).toBe(200)
    expect((await get(clusterId)).json().ingressClassName).toBe('haproxy')
  })

  it("answers another tenant's cluster as an unknown one: 404, and nothing of it changes", async () => {
    const before = (await get(clusterId)).json()
    for (const id of [clusterId, randomUUID()]) {
      const read = await get(id, tenantB)
      expect(read.statusCode).toBe(404)
      expect(read.json().errorCode).toBe('CLUSTER_NOT_FOUND')
      const write = await patch(id, { registryPrefix: 'evil.example.com' }, tenantB)
      expect(write.statusCode).toBe(404)
      expect(write.json().errorCode).toBe('CLUSTER_NOT_FOUND')
    }
    expect((await get(clusterId)).json()).toEqual(before)
    // B's own cluster is B's to set, and A's settings are not B's.
    expect((await get(bClusterId, tenantB)).json().isDefault).toBe(true)
    expect((await get(bClusterId)).statusCode).toBe(404)
  })

  it('refuses an id that is no UUID with 400', async () => {
    const res = await h.call({ method: 'GET', url: url('not-a-uuid'), headers: bearer(h.admin.accessToken) })
    expect(res.statusCode).toBe(400)
  })
})
