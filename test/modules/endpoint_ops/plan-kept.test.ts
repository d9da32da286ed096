import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { seedUser, uniqueRealm } from '../../helpers/auth.js'
import { type EndpointHarness, type SeededModel, startEndpointHarness } from '../../helpers/endpoints.js'
import type { StandInCluster } from '../../helpers/kube/index.js'
import { TEST_DATABASE_URL } from '../../helpers/env.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * A plan is kept in the process until a row it was computed from changes, whoever changed it:
 * a sync that saw a node cordoned, the tenant's serving settings, the model, its version's files
 * and the runtime catalog, written through the API or straight into the database by another
 * process. Each answer after a change must be the new one, never the kept one.
 */

let h: EndpointHarness
let clusterId: string
let standIn: StandInCluster
let model: SeededModel
let other: pg.Client

beforeAll(async () => {
  h = await startEndpointHarness()
  ;({ clusterId, standIn } = await h.addAvailableCluster({ nodes: ['a100-8x', 'cpu-small'] }))
  model = await h.seedModel()
  other = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await other.connect()
}, 60_000)

afterAll(async () => {
  await other?.end()
  await h?.close()
})

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function plan(body: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const res = await h.call({ method: 'POST', url: '/v1/endpoints/plan', payload: { name: 'kept', modelId: model.modelId, clusterId, replicas: 1, ...body } })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const imageOf = (p: Record<string, any>): string => p.manifests.find((m: { kind: string }) => m.kind === 'Deployment').spec.template.spec.containers[0].image

/** Asked twice, the same question gets the same answer (the second from memory). */
async function planTwice(body: Record<string, unknown> = {}) {
  const first = await plan(body)
  expect(await plan(body)).toEqual(first)
  return first
}

describe('a kept plan gives way to a change', () => {
  it('a node cordoned in the cluster, once a sync has seen it', async () => {
    const before = await planTwice()
    const gpuNode = before.placement.nodes[0].node as string
    expect(before.placement.rejected.map((r: { node: string }) => r.node)).not.toContain(gpuNode)

    const node = standIn.nodes.list().find((n) => (n as { metadata: { name: string } }).metadata.name === gpuNode) as { spec?: Record<string, unknown> }
    standIn.nodes.put({ ...node, spec: { ...node.spec, unschedulable: true } })
    try {
      expect((await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).statusCode).toBe(200)
      const refused = await h.call({ method: 'POST', url: '/v1/endpoints/plan', payload: { name: 'kept', modelId: model.modelId, clusterId, replicas: 1 } })
      expect(refused.statusCode).toBe(409)
      expect(refused.json().details.rejected.find((r: { node: string }) => r.node === gpuNode)?.reasons).toContain('cordoned')
    } finally {
      standIn.nodes.put(node)
    }
    expect((await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).statusCode).toBe(200)
    expect((await plan()).placement.nodes.map((n: { node: string }) => n.node)).toContain(gpuNode)
  })

  it("the tenant's serving settings changed through the API", async () => {
    expect(imageOf(await planTwice())).not.toMatch(/^registry\.kept\.test\//)
    const url = `/v1/clusters/${clusterId}/serving-settings`
    const etag = (await h.call({ method: 'GET', url })).headers.etag as string
    const patched = await h.call({ method: 'PATCH', url, headers: { 'if-match': etag }, payload: { registryPrefix: 'registry.kept.test/mirror' } })
    expect(patched.statusCode, patched.body).toBe(200)
    expect(imageOf(await plan())).toMatch(/^registry\.kept\.test\/mirror\//)
  })

  it('the model, changed in the database by another process', async () => {
    const before = await planTwice({ maxModelLen: undefined })
    expect(before.maxModelLen).toBe(8192)
    await other.query('update models set context_length = 4096 where id = $1', [model.modelId])
    await waitFor(async () => (await plan()).maxModelLen === 4096, 5_000)
  })

  it("a GGUF version's file, changed in the database by another process (its size is the weights' size)", async () => {
    const gguf = await h.seedModel({ format: 'gguf', quantization: 'Q4_K_M', files: [{ path: 'model-q4.gguf', bytes: Buffer.from('gguf weights') }] })
    const body = { modelId: gguf.modelId, deviceType: 'cpu' }
    const before = await planTwice(body)
    expect(before.resources.weightsGiB).toBeLessThan(0.01)
    await other.query(`update model_version_files set size = 2 * 1024::bigint * 1024 * 1024 where version_id = $1`, [gguf.versionId])
    await waitFor(async () => (await plan(body)).resources.weightsGiB === 2, 5_000)
  })

  it('a shared runtime, changed in the database by another process (the catalog keeps runtimes in memory too)', async () => {
    const before = await planTwice()
    const runtimeId = before.runtime.id as string
    const { rows } = await other.query<{ tag: string }>('select tag from runtimes where id = $1', [runtimeId])
    await other.query('update runtimes set tag = $2 where id = $1', [runtimeId, 'v0.99.0-kept'])
    try {
      await waitFor(async () => imageOf(await plan()).endsWith(':v0.99.0-kept'), 5_000)
    } finally {
      await other.query('update runtimes set tag = $2 where id = $1', [runtimeId, rows[0]!.tag])
    }
    await waitFor(async () => imageOf(await plan()) === imageOf(before), 5_000)
  })

  it('while the process cannot hear changes, every plan is computed afresh', async () => {
    await planTwice()
    const killed = await other.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'modelplane-change-feed' and datname = current_database()")
    expect(killed.rowCount).toBeGreaterThan(0)
    // Written while nobody listens: the notification is lost, the next plan reads the rows anyway.
    await other.query('update models set context_length = 2048 where id = $1', [model.modelId])
    expect((await plan()).maxModelLen).toBe(2048)
    await other.query('update models set context_length = 8192 where id = $1', [model.modelId])
    expect((await plan()).maxModelLen).toBe(8192)
  })
})

describe('who may plan, on whose data', () => {
  it("another tenant asking the same question gets 404, not the first tenant's kept plan", async () => {
    await planTwice()
    const stranger = await seedUser(h.app, { realm: uniqueRealm(), role: 'admin' })
    const theirs = await h.call({ method: 'POST', url: '/v1/endpoints/plan', payload: { name: 'kept', modelId: model.modelId, clusterId, replicas: 1 } }, stranger)
    expect(theirs.statusCode).toBe(404)
  })
  it('a viewer may plan; a plan changes nothing, so it leaves no audit row, while a change does', async () => {
    const viewer = await h.seed('viewer')
    const res = await h.call({ method: 'POST', url: '/v1/endpoints/plan', payload: { name: 'by-viewer', modelId: model.modelId, clusterId, replicas: 1 } }, viewer)
    expect(res.statusCode, res.body).toBe(200)
    const refused = await h.call({ method: 'POST', url: '/v1/endpoints', payload: { name: 'by-viewer', modelId: model.modelId, clusterId, replicas: 1 } }, viewer)
    expect(refused.statusCode).toBe(403)
    await waitFor(async () => {
      const { rows } = await other.query<{ action: string }>('select action from audit_log where actor_id = $1', [viewer.id])
      return rows.some((r) => r.action === 'deployEndpoint')
    }, 5_000)
    const { rows } = await other.query<{ action: string }>('select action from audit_log where actor_id = $1', [viewer.id])
    expect(rows.map((r) => r.action)).not.toContain('planEndpoint')
  })
})
