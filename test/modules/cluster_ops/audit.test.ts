import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SeededUser } from '../../helpers/auth.js'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * Who changed which cluster: every cluster write (register, PATCH of name or kubeconfig, refresh,
 * DELETE), allowed or refused, leaves exactly one audit entry naming the action, the cluster, the
 * actor and the tenant, with the answer's status; reads leave none.
 */

let h: ClusterHarness
let viewer: SeededUser

beforeAll(async () => {
  h = await startClusterHarness()
  viewer = await h.seed('viewer')
})
afterAll(async () => {
  await h?.close()
})

type AuditEntry = {
  tenantId: string | null
  actorKind: string
  actorId: string
  actorTenantId: string | null
  action: string
  resourceKind: string | null
  resourceId: string | null
  requestId: string
  outcome: number
  method: string
  path: string
}

/** The tenant's cluster audit entries, read as its admin. */
async function clusterAudit(): Promise<AuditEntry[]> {
  const res = await h.call({ method: 'GET', url: '/v1/audit?resourceKind=clusters&limit=100' })
  expect(res.statusCode, res.body).toBe(200)
  return res.json().items
}

const requestIdOf = (res: LightMyRequestResponse) => res.headers['x-request-id'] as string

describe('audit of cluster routes', () => {
  it('one entry per write with action, cluster, actor, tenant and outcome; none for reads', async () => {
    const standIn = h.kube.addCluster({ nodes: ['cpu-small'] })
    const other = h.kube.addCluster({ nodes: ['cpu-small'] })
    const admin = h.admin

    const registered = await h.register({ name: 'audited', kubeconfig: standIn.kubeconfig() })
    expect(registered.statusCode, registered.body).toBe(202)
    const { clusterId, workflowId } = registered.json() as { clusterId: string; workflowId: string }
    expect((await h.finished(workflowId)).status).toBe('completed')

    const writes: Array<{ res: LightMyRequestResponse; by: SeededUser; action: string; method: string; path: string; resourceId: string | null }> = [
      { res: registered, by: admin, action: 'registerCluster', method: 'POST', path: '/v1/clusters', resourceId: clusterId },
    ]
    const write = async (by: SeededUser, method: 'POST' | 'PATCH' | 'DELETE', url: string, path: string, action: string, resourceId: string | null, payload?: object) => {
      const res = await h.call({ method, url, ...(payload ? { payload } : {}) }, by)
      writes.push({ res, by, action, method, path, resourceId })
      return res
    }

    // Refused too: a name already taken (409), and a viewer without cluster:manage (403).
    expect((await write(admin, 'POST', '/v1/clusters', '/v1/clusters', 'registerCluster', null, { name: 'audited', kubeconfig: other.kubeconfig() })).statusCode).toBe(409)
    expect((await write(viewer, 'PATCH', `/v1/clusters/${clusterId}`, '/v1/clusters/:id', 'updateCluster', clusterId, { name: 'by-viewer' })).statusCode).toBe(403)
    expect((await write(admin, 'PATCH', `/v1/clusters/${clusterId}`, '/v1/clusters/:id', 'updateCluster', clusterId, { labels: { team: 'ml' } })).statusCode).toBe(200)
    const rotated = await write(admin, 'PATCH', `/v1/clusters/${clusterId}`, '/v1/clusters/:id', 'updateCluster', clusterId, { kubeconfig: standIn.kubeconfig({ cert: true }) })
    expect(rotated.statusCode, rotated.body).toBe(202)
    expect((await h.finished(rotated.json().workflowId)).status).toBe('completed')
    expect((await write(admin, 'POST', `/v1/clusters/${clusterId}/refresh`, '/v1/clusters/:id/refresh', 'refreshCluster', clusterId)).statusCode).toBe(200)
    const removed = await write(admin, 'DELETE', `/v1/clusters/${clusterId}`, '/v1/clusters/:id', 'deleteCluster', clusterId)
    expect(removed.statusCode, removed.body).toBe(202)
    expect((await h.finished(removed.json().workflowId)).status).toBe('completed')

    const reads = [
      await h.call({ method: 'GET', url: '/v1/clusters' }),
      await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}` }),
      await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes` }),
      await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/history` }, viewer),
    ]
    for (const read of reads) expect(read.statusCode).toBe(200)

    // Entries are written after the answer.
    await waitFor(async () => {
      const ids = new Set((await clusterAudit()).map((e) => e.requestId))
      return writes.every((w) => ids.has(requestIdOf(w.res)))
    }, 10_000, 'not every cluster write was audited')
    const entries = await clusterAudit()
    for (const w of writes) {
      const mine = entries.filter((e) => e.requestId === requestIdOf(w.res))
      expect(mine, `${w.method} ${w.path} (${w.res.statusCode})`).toEqual([
        expect.objectContaining({
          tenantId: w.by.tenantId,
          actorKind: 'user',
          actorId: w.by.id,
          actorTenantId: null,
          action: w.action,
          resourceKind: 'clusters',
          resourceId: w.resourceId,
          outcome: w.res.statusCode,
          method: w.method,
          path: w.path,
        }),
      ])
    }
    expect(entries.filter((e) => e.actorId === viewer.id).map((e) => [e.action, e.outcome])).toEqual([['updateCluster', 403]])
    const readIds = new Set(reads.map(requestIdOf))
    expect(entries.filter((e) => readIds.has(e.requestId))).toEqual([])
    // The entries name the cluster, never what was sent to it.
    expect(JSON.stringify(entries)).not.toContain(standIn.adminToken)
  }, 60_000)
})
