import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import { waitFor } from '../../helpers/wait.js'

/** The tenant's clusters as a list (filters, sort, pages, a summary each), and who may change them. */

let h: ClusterHarness
let viewer: SeededUser
const ids: Record<string, string> = {}

type Item = { id: string; name: string; status: string; summary: { nodes: { total: number } } | null }

beforeAll(async () => {
  h = await startClusterHarness()
  viewer = await h.seed('viewer')
  const specs: Array<[string, Parameters<typeof h.kube.addCluster>[0], Record<string, string>]> = [
    ['alpha-gpu', { nodes: ['a100-8x', 'cpu-small'] }, { region: 'eu', tier: 'gpu' }],
    ['beta-amd', { nodes: ['mi300x'] }, { region: 'us', tier: 'gpu' }],
    ['gamma-cpu', { nodes: ['sapphire-rapids', 'cpu-small'] }, { region: 'eu', tier: 'cpu' }],
    ['delta-ocp', { nodes: ['gaudi2'], flavour: 'openshift' }, { region: 'us' }],
  ]
  // One after the other: createdAt orders them.
  for (const [name, opts, labels] of specs) {
    const standIn = h.kube.addCluster(opts)
    ids[name] = (await h.registerAvailable({ name, kubeconfig: standIn.kubeconfig(), labels })).clusterId
  }
  const broken = h.kube.addCluster({ nodes: ['cpu-small'] })
  const res = await h.register({ name: 'epsilon-failed', kubeconfig: broken.kubeconfig({ token: broken.readOnlyToken }) })
  ids['epsilon-failed'] = res.json().clusterId
  await h.finished(res.json().workflowId)
})
afterAll(async () => {
  await h?.close()
})

async function names(query: string, user?: SeededUser): Promise<string[]> {
  const res = await h.call({ method: 'GET', url: `/v1/clusters?${query}` }, user)
  expect(res.statusCode, res.body).toBe(200)
  return (res.json().items as Item[]).map((c) => c.name)
}

describe('GET /v1/clusters', () => {
  it('newest first by default, each with its summary; failed ones listed as failed', async () => {
    const page = (await h.call({ method: 'GET', url: '/v1/clusters' })).json()
    expect(page.total).toBe(5)
    expect(page.items.map((c: Item) => c.name)).toEqual(['epsilon-failed', 'delta-ocp', 'gamma-cpu', 'beta-amd', 'alpha-gpu'])
    const alpha = page.items.find((c: Item) => c.name === 'alpha-gpu')
    expect(alpha.summary).toMatchObject({ nodes: { total: 2 }, byDeviceType: { cuda: { devices: 8 } } })
    expect(page.items.find((c: Item) => c.name === 'epsilon-failed')).toMatchObject({ status: 'failed', summary: null })
  })

  it('filters by status, platform, device type, label and name substring', async () => {
    expect(await names('status=available&sort=name')).toEqual(['alpha-gpu', 'beta-amd', 'delta-ocp', 'gamma-cpu'])
    expect(await names('status=failed')).toEqual(['epsilon-failed'])
    expect(await names('platform=openshift')).toEqual(['delta-ocp'])
    expect(await names('deviceType=cuda')).toEqual(['alpha-gpu'])
    expect(await names('deviceType=cpu&sort=name')).toEqual(['alpha-gpu', 'gamma-cpu'])
    expect(await names('deviceType=cpu_high')).toEqual(['gamma-cpu'])
    expect(await names('deviceType=hpu')).toEqual(['delta-ocp'])
    expect(await names('label=region%3Deu&sort=name')).toEqual(['alpha-gpu', 'gamma-cpu'])
    expect(await names('label=tier%3Dgpu&deviceType=rocm')).toEqual(['beta-amd'])
    expect(await names('q=GPU')).toEqual(['alpha-gpu'])
    // LIKE wildcards in q are literal characters.
    expect(await names('q=%25')).toEqual([])
    expect(await names('q=_')).toEqual([])
  })

  it('sorts by name either way and pages with a stable total', async () => {
    expect(await names('sort=name:desc')).toEqual(['gamma-cpu', 'epsilon-failed', 'delta-ocp', 'beta-amd', 'alpha-gpu'])
    const first = (await h.call({ method: 'GET', url: '/v1/clusters?sort=name&limit=2&page=1' })).json()
    const third = (await h.call({ method: 'GET', url: '/v1/clusters?sort=name&limit=2&page=3' })).json()
    expect(first).toMatchObject({ total: 5, page: 1, limit: 2 })
    expect(first.items.map((c: Item) => c.name)).toEqual(['alpha-gpu', 'beta-amd'])
    expect(third.items.map((c: Item) => c.name)).toEqual(['gamma-cpu'])
    expect(third.total).toBe(5)
    // A page past the end has no row to carry the total: it is still counted.
    const beyond = (await h.call({ method: 'GET', url: '/v1/clusters?sort=name&limit=2&page=9' })).json()
    expect(beyond).toMatchObject({ items: [], total: 5, page: 9 })
    const none = (await h.call({ method: 'GET', url: '/v1/clusters?q=no-such-cluster' })).json()
    expect(none).toMatchObject({ items: [], total: 0 })
  })

  it('refuses unknown filters and sort fields', async () => {
    for (const query of ['sort=kubeconfig', 'deviceType=tpu', 'status=gone', 'color=red', 'label=noequals']) {
      const res = await h.call({ method: 'GET', url: `/v1/clusters?${query}` })
      expect(res.statusCode, query).toBe(400)
    }
  })
})

describe('permissions', () => {
  it('a viewer may read clusters, their nodes and history', async () => {
    const id = ids['alpha-gpu']!
    expect(await names('sort=name', viewer)).toHaveLength(5)
    for (const url of [`/v1/clusters/${id}`, `/v1/clusters/${id}/nodes`, `/v1/clusters/${id}/history`]) {
      expect((await h.call({ method: 'GET', url }, viewer)).statusCode, url).toBe(200)
    }
  })

  it('a viewer gets 403 on register, PATCH, DELETE and refresh, and nothing changes', async () => {
    const id = ids['alpha-gpu']!
    const before = await h.cluster(id)
    const standIn = h.kube.addCluster({ nodes: ['cpu-small'] })
    const attempts = [
      { method: 'POST' as const, url: '/v1/clusters', payload: { name: 'by-viewer', kubeconfig: standIn.kubeconfig() } },
      { method: 'PATCH' as const, url: `/v1/clusters/${id}`, payload: { name: 'renamed-by-viewer' } },
      { method: 'PATCH' as const, url: `/v1/clusters/${id}`, payload: { kubeconfig: standIn.kubeconfig() } },
      { method: 'DELETE' as const, url: `/v1/clusters/${id}` },
      { method: 'DELETE' as const, url: `/v1/clusters/${id}?force=true` },
      { method: 'POST' as const, url: `/v1/clusters/${id}/refresh` },
    ]
    for (const attempt of attempts) {
      const res = await h.call(attempt, viewer)
      expect(res.statusCode, `${attempt.method} ${attempt.url}`).toBe(403)
    }
    const after = await h.cluster(id)
    expect(after).toMatchObject({ name: before.name, status: 'available', updatedAt: before.updatedAt, lastSyncAt: before.lastSyncAt })
    expect((await h.call({ method: 'GET', url: '/v1/clusters?limit=1' })).json().total).toBe(5)
    expect(standIn.requests).toHaveLength(0)
  })

  it('another tenant sees none of them: 404, not 403', async () => {
    const stranger = await seedUser(h.app, { realm: uniqueRealm('other'), role: 'admin' })
    const id = ids['alpha-gpu']!
    expect((await h.call({ method: 'GET', url: '/v1/clusters' }, stranger)).json().total).toBe(0)
    expect((await h.call({ method: 'GET', url: `/v1/clusters/${id}` }, stranger)).statusCode).toBe(404)
    expect((await h.call({ method: 'DELETE', url: `/v1/clusters/${id}` }, stranger)).statusCode).toBe(404)
  })
})

describe('totals kept between pages', () => {
  const total = async (query: string) => (await h.call({ method: 'GET', url: `/v1/clusters?${query}` })).json().total as number

  /** A write no trigger sees (triggers off for the transaction): what only a kept total would miss. */
  async function setDeviceTypesUnannounced(id: string, change: 'array_append' | 'array_remove') {
    const client = await h.app.platform.database.pool!.connect()
    try {
      await client.query('begin')
      await client.query("set local session_replication_role = 'replica'")
      await client.query(`update clusters set device_types = ${change}(device_types, 'cuda') where id = $1`, [id])
      await client.query('commit')
    } catch (err) {
      await client.query('rollback')
      throw err
    } finally {
      client.release()
    }
  }

  it('are kept between requests, through syncs that change no filtered column, until a change is announced', async () => {
    expect(await total('deviceType=cuda')).toBe(1)
    await setDeviceTypesUnannounced(ids['beta-amd']!, 'array_append')
    try {
      // The page is read fresh; the total is the kept one.
      expect(await names('deviceType=cuda&sort=name')).toEqual(['alpha-gpu', 'beta-amd'])
      expect(await total('deviceType=cuda')).toBe(1)
      // A sync that finds what it found before announces nothing.
      expect((await h.call({ method: 'POST', url: `/v1/clusters/${ids['alpha-gpu']}/refresh` })).statusCode).toBe(200)
      expect(await total('deviceType=cuda')).toBe(1)
      // A write through this replica's API forgets at once, even one no trigger announces (the same name again).
      const renamed = await h.call({ method: 'PATCH', url: `/v1/clusters/${ids['delta-ocp']}`, payload: { name: 'delta-ocp' } })
      expect(renamed.statusCode).toBe(200)
      expect(await total('deviceType=cuda')).toBe(2)
    } finally {
      await setDeviceTypesUnannounced(ids['beta-amd']!, 'array_remove')
    }
    const again = await h.call({ method: 'PATCH', url: `/v1/clusters/${ids['delta-ocp']}`, payload: { name: 'delta-ocp' } })
    expect(again.statusCode).toBe(200)
    expect(await total('deviceType=cuda')).toBe(1)
  })

  it('follow a change committed elsewhere (another replica, a migration) once the database announces it', async () => {
    expect(await total('deviceType=cuda')).toBe(1)
    expect(await total('deviceType=cuda')).toBe(1)
    const pool = h.app.platform.database.pool!
    await pool.query("update clusters set device_types = array_append(device_types, 'cuda') where id = $1", [ids['beta-amd']])
    try {
      await waitFor(async () => (await total('deviceType=cuda')) === 2)
      expect(await names('deviceType=cuda&sort=name')).toEqual(['alpha-gpu', 'beta-amd'])
    } finally {
      await pool.query("update clusters set device_types = array_remove(device_types, 'cuda') where id = $1", [ids['beta-amd']])
    }
    await waitFor(async () => (await total('deviceType=cuda')) === 1)
  })

  it('follow a change made through this replica at once', async () => {
    expect(await total('label=region%3Deu')).toBe(2)
    const id = ids['gamma-cpu']!
    const patch = (labels: Record<string, string>) => h.call({ method: 'PATCH', url: `/v1/clusters/${id}`, payload: { labels } })
    expect((await patch({ region: 'us', tier: 'cpu' })).statusCode).toBe(200)
    try {
      expect(await total('label=region%3Deu')).toBe(1)
      expect(await total('label=region%3Dus')).toBe(3)
    } finally {
      expect((await patch({ region: 'eu', tier: 'cpu' })).statusCode).toBe(200)
    }
    expect(await total('label=region%3Deu')).toBe(2)
  })
})
