import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * A registration cancelled through the workflows API (`POST /v1/workflows/{id}/cancel`) while it
 * talks to the cluster leaves what a failed one leaves: a `failed` record saying it was cancelled,
 * without its kubeconfig or nodes, never offered as a place to run anything, never synced; and the
 * same API server can be registered again.
 */

let h: ClusterHarness

beforeAll(async () => {
  h = await startClusterHarness()
})
afterAll(async () => {
  await h?.close()
})

const HELLO_APP = 'from fastapi import FastAPI\n\napp = FastAPI()\n'

async function leasesOf(clusterId: string): Promise<number> {
  const { rows } = await h.app.platform.database.db.execute(sql`select count(*)::int as n from sweep_leases where resource_id = ${clusterId}`)
  return (rows[0] as { n: number }).n
}

describe('cancelling a registration', () => {
  it('leaves a failed record without kubeconfig or nodes, usable by nothing, and the server free to register again', async () => {
    const standIn = h.kube.addCluster({ nodes: ['a100-8x', 'cpu-small'] })
    // Every answer is slow: the run is still verifying (dozens of access reviews) when it is cancelled.
    standIn.setLatency(300)
    const res = await h.register({ name: 'cancelled', kubeconfig: standIn.kubeconfig() })
    expect(res.statusCode, res.body).toBe(202)
    const { clusterId, workflowId } = res.json() as { clusterId: string; workflowId: string }
    // Cancelled once the run is talking to the cluster.
    await waitFor(() => standIn.requests.length > 0, 10_000, 'the run never asked the cluster')
    expect((await h.cluster(clusterId)).status).toBe('registering')

    // A registering cluster is not deleted under its run: the answer says to cancel the run first.
    const early = await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })
    expect(early.statusCode).toBe(409)
    expect(early.json()).toMatchObject({ errorCode: 'CLUSTER_BUSY', message: expect.stringContaining(workflowId) })

    // Nor given a new kubeconfig while the first one is being verified.
    const rotate = await h.call({ method: 'PATCH', url: `/v1/clusters/${clusterId}`, payload: { kubeconfig: standIn.kubeconfig({ cert: true }) } })
    expect(rotate.statusCode).toBe(409)
    expect(rotate.json()).toMatchObject({ errorCode: 'CLUSTER_BUSY', details: { status: 'registering' } })

    const cancel = await h.call({ method: 'POST', url: `/v1/workflows/${workflowId}/cancel` })
    expect(cancel.statusCode, cancel.body).toBe(202)
    expect(cancel.json()).toMatchObject({ workflowId, status: 'cancelled', compensation: 'running' })
    let run: Record<string, unknown> = {}
    await waitFor(
      async () => {
        run = (await h.call({ method: 'GET', url: `/v1/workflows/${workflowId}` })).json()
        return run.compensation !== 'running'
      },
      20_000,
      'the compensation did not finish',
    )
    expect(run).toMatchObject({ status: 'cancelled', compensation: 'completed', result: { clusterId, status: 'failed' } })

    // The record says what happened and holds nothing usable.
    const got = await h.cluster(clusterId)
    expect(got).toMatchObject({ status: 'failed', statusReason: 'CANCELLED', summary: null })
    expect(got.statusMessage).toMatch(/cancelled/)
    const row = await h.row(clusterId)
    expect(row?.kubeconfigSealed).toBeNull()
    expect(row?.pendingKubeconfigSealed).toBeNull()
    expect((await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes` })).json().total).toBe(0)
    const history = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/history` })).json()
    expect(history.items.map((e: { fromStatus: string | null; toStatus: string; reason: string | null }) => [e.fromStatus, e.toStatus, e.reason])).toEqual([
      ['registering', 'failed', 'CANCELLED'],
      [null, 'registering', null],
    ])
    await h.app.platform.events.drain()
    const failedEvents = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.registration_failed&limit=100' })).json()
    expect(failedEvents.items.find((e: { data: { clusterId: string } }) => e.data.clusterId === clusterId)?.data).toMatchObject({ reason: 'CANCELLED' })
    const registered = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.registered&limit=100' })).json()
    expect(registered.items.map((e: { data: { clusterId: string } }) => e.data.clusterId)).not.toContain(clusterId)

    // Not usable: not listed as available, not synced, refused as a place to run an app, not refreshable.
    const usable = (await h.call({ method: 'GET', url: '/v1/clusters?status=available&limit=100' })).json()
    expect(usable.items.map((c: { id: string }) => c.id)).not.toContain(clusterId)
    expect(await leasesOf(clusterId)).toBe(0)
    const app = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'on-cancelled', clusterId, code: HELLO_APP } })
    expect(app.statusCode, app.body).toBe(409)
    expect(app.json()).toMatchObject({ errorCode: 'CLUSTER_BUSY', details: { status: 'failed' } })
    expect((await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).json().errorCode).toBe('CLUSTER_BUSY')

    // The same server under the same name registers again, and is the only usable one.
    standIn.setLatency(0)
    const again = await h.registerAvailable({ name: 'cancelled', kubeconfig: standIn.kubeconfig() })
    expect(again.clusterId).not.toBe(clusterId)
    expect((await h.cluster(again.clusterId)).summary.nodes.total).toBe(2)
    const named = (await h.call({ method: 'GET', url: '/v1/clusters?q=cancelled&limit=100' })).json()
    expect(named.items.map((c: { id: string; status: string }) => [c.id, c.status])).toEqual([
      [again.clusterId, 'available'],
      [clusterId, 'failed'],
    ])
    // Whatever step was in flight when the run was cancelled did not bring the old record back.
    expect(await h.cluster(clusterId)).toMatchObject({ status: 'failed', summary: null })
    expect((await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/nodes` })).json().total).toBe(0)
    expect((await h.row(clusterId))?.kubeconfigSealed).toBeNull()

    // The cancelled record can be deleted though a live cluster now has its name and server; the live one stays.
    const removed = await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })
    expect(removed.statusCode, removed.body).toBe(202)
    expect((await h.cluster(clusterId)).status).toBe('deleted')
    expect((await h.finished(removed.json().workflowId)).result).toMatchObject({ status: 'deleted', note: null })
    expect((await h.call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })).json().errorCode).toBe('CLUSTER_DELETED')
    await h.app.platform.events.drain()
    const deleted = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.deleted&limit=100' })).json()
    expect(deleted.items.filter((e: { data: { clusterId: string } }) => e.data.clusterId === clusterId)).toHaveLength(1)
    expect(await h.cluster(again.clusterId)).toMatchObject({ name: 'cancelled', status: 'available' })
  }, 60_000)
})

describe('a cancel that crosses the last step', () => {
  it('leaves a registration that already completed as it is, and the compensation says so', async () => {
    // What the compensation does when the run's last step (activation) committed just before the cancel.
    const standIn = h.kube.addCluster({ nodes: ['cpu-small'] })
    const { clusterId } = await h.registerAvailable({ name: 'crossed', kubeconfig: standIn.kubeconfig() })
    const answer = await h.app.services.clusters.failRegistration(clusterId, 'CANCELLED: the registration was cancelled')
    expect(answer).toEqual({ clusterId, status: 'available' })
    expect(await h.cluster(clusterId)).toMatchObject({ status: 'available', statusReason: null, summary: { nodes: { total: 1 } } })
    expect((await h.row(clusterId))?.kubeconfigSealed).not.toBeNull()
    await h.app.platform.events.drain()
    const failed = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.registration_failed&limit=100' })).json()
    expect(failed.items.map((e: { data: { clusterId: string } }) => e.data.clusterId)).not.toContain(clusterId)
    expect((await h.call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).json().status).toBe('available')
  })
})
