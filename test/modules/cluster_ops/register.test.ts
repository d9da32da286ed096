import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { type KubeStandIn, startKubeStandIn } from '../../helpers/kube/index.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'

let app: FastifyInstance
let kube: KubeStandIn
let admin: SeededUser

beforeAll(async () => {
  kube = await startKubeStandIn()
  app = await buildApp(testConfig({ CLUSTER_DENIED_CIDRS: '169.254.0.0/16' }), { workflows: { hub: uniqueHub('clusters'), tuning: FAST_HUB } })
  await app.ready()
  admin = await seedUser(app, { realm: uniqueRealm('cl'), role: 'admin' })
})
afterAll(async () => {
  await app?.close()
  await kube?.close()
})

async function run(workflowId: string) {
  let body: { status: string; error?: { code: string; message: string }; result?: unknown } = { status: 'pending' }
  await waitFor(async () => {
    const r = await app.inject({ method: 'GET', url: `/v1/workflows/${workflowId}`, headers: bearer(admin.accessToken) })
    body = r.json()
    return ['completed', 'failed', 'cancelled'].includes(body.status)
  }, 20_000)
  return body
}

describe('registering a cluster', () => {
  it('learns a plain Kubernetes cluster: platform, nodes, devices and capacity', async () => {
    const cluster = kube.addCluster({
      gitVersion: 'v1.29.4-eks-036c24b',
      nodes: ['a100-8x', 'mi300x', 'cpu-small', 'cordoned'],
      offers: { ingressClass: 'nginx', defaultStorageClass: { name: 'efs', provisioner: 'efs.csi.aws.com' }, keda: true },
    })
    const res = await app.inject({
      method: 'POST',
      url: '/v1/clusters',
      headers: bearer(admin.accessToken),
      payload: { name: 'gpu-eu', kubeconfig: cluster.kubeconfig(), labels: { region: 'eu' } },
    })
    expect(res.statusCode, res.body).toBe(202)
    const { clusterId, workflowId } = res.json()
    const immediately = await app.inject({ method: 'GET', url: `/v1/clusters/${clusterId}`, headers: bearer(admin.accessToken) })
    expect(immediately.json().status).toBe('registering')

    const done = await run(workflowId)
    expect(done.status, JSON.stringify(done)).toBe('completed')
    const got = (await app.inject({ method: 'GET', url: `/v1/clusters/${clusterId}`, headers: bearer(admin.accessToken) })).json()
    expect(got.status).toBe('available')
    expect(got.platform).toBe('kubernetes')
    expect(got.distribution).toBe('eks')
    expect(got.capabilities.keda).toBe(true)
    expect(got.capabilities.readWriteManyStorageClass).toBe('efs')
    expect(got.summary.nodes.total).toBe(4)
    // The cordoned node is an 8-GPU H100 in maintenance: counted, never free.
    expect(got.summary.byDeviceType.cuda.devices).toBe(16)
    expect(got.summary.byDeviceType.cuda.free).toBe(8)
    expect(got.summary.nodes.schedulable).toBe(3)
    expect(got.summary.deviceTypes).toEqual(expect.arrayContaining(['cuda', 'rocm', 'cpu']))
    expect(JSON.stringify(got)).not.toContain(cluster.adminToken)

    const nodes = (await app.inject({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes?deviceType=cuda`, headers: bearer(admin.accessToken) })).json()
    expect(nodes.items.map((n: { name: string; schedulable: boolean }) => [n.name, n.schedulable])).toEqual([
      ['dgx-h100-3', false],
      ['gpu-a100-0', true],
    ].sort())
    expect(nodes.items.find((n: { schedulable: boolean }) => n.schedulable).devices[0]).toMatchObject({ type: 'cuda', count: 8 })
  })

  it('refuses a token without rights, listing what is missing', async () => {
    const cluster = kube.addCluster({ nodes: ['cpu-small'] })
    const res = await app.inject({
      method: 'POST',
      url: '/v1/clusters',
      headers: bearer(admin.accessToken),
      payload: { name: 'readonly', kubeconfig: cluster.kubeconfig({ token: cluster.readOnlyToken }) },
    })
    expect(res.statusCode).toBe(202)
    const done = await run(res.json().workflowId)
    expect(done.status).toBe('failed')
    expect(done.error?.code).toBe('CLUSTER_FORBIDDEN')
    expect(done.error?.message).toContain('create deployments.apps')
    const got = (await app.inject({ method: 'GET', url: `/v1/clusters/${res.json().clusterId}`, headers: bearer(admin.accessToken) })).json()
    expect(got.status).toBe('failed')
    expect(got.statusReason).toBe('CLUSTER_FORBIDDEN')
  })
})
