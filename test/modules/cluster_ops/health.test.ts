import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import { freshDatabase } from '../../helpers/database.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * Health as a user follows it: a cluster that goes away is `not_available` at the next sync,
 * `error` once CLUSTER_ERROR_AFTER_MINUTES have passed, and `available` again when it answers,
 * each change in the history and out as an event. Seconds instead of minutes: a 1 s interval and
 * 0.05 min (3 s) to error.
 *
 * A database of its own: the sync sweep is shared by every app on a database, and apps of other
 * test files (with their own intervals and error delays) would otherwise sync these clusters too.
 */

const database = freshDatabase('cluster_health')
let h: ClusterHarness

beforeAll(async () => {
  await database.create()
  h = await startClusterHarness({
    databaseUrl: database.url,
    env: { CLUSTER_SYNC_INTERVAL_SECONDS: '1', SWEEP_POLL_MS: '100', CLUSTER_ERROR_AFTER_MINUTES: '0.05', CLUSTER_REQUEST_TIMEOUT_MS: '2000' },
  })
})
afterAll(async () => {
  await h?.close()
  await database.drop()
})

type History = { fromStatus: string | null; toStatus: string; reason: string | null; at: string }

describe('a cluster going away and coming back', () => {
  it('available → not_available → error → available, with history rows and status_changed events', async () => {
    const standIn = h.kube.addCluster({ nodes: ['a100-8x', 'cpu-small'] })
    const { clusterId } = await h.registerAvailable({ name: 'flaky', kubeconfig: standIn.kubeconfig() })
    const status = async () => (await h.cluster(clusterId)).status as string

    // Synced every second while it answers.
    const firstSync = (await h.cluster(clusterId)).lastSyncAt as string
    await waitFor(async () => (await h.cluster(clusterId)).lastSyncAt !== firstSync, 5_000, 'no periodic sync')

    standIn.setReachable(false)
    const wentAway = Date.now()
    await waitFor(async () => (await status()) === 'not_available', 5_000, 'never not_available')
    const away = await h.cluster(clusterId)
    expect(away).toMatchObject({ statusReason: 'CLUSTER_UNREACHABLE', lastSyncError: expect.stringMatching(/^CLUSTER_UNREACHABLE: /) })
    expect(Date.parse(away.statusSince)).toBeGreaterThanOrEqual(wentAway - 1_000)
    expect(away.conditions).toContainEqual(expect.objectContaining({ type: 'Reachable', status: 'False', reason: 'CLUSTER_UNREACHABLE' }))
    // What it knew of the nodes stays visible while it is away.
    expect(away.summary.nodes.total).toBe(2)

    await waitFor(async () => (await status()) === 'error', 10_000, 'never error')
    const broken = await h.cluster(clusterId)
    expect(broken.statusReason).toBe('CLUSTER_UNREACHABLE')
    expect(Date.now() - wentAway).toBeGreaterThanOrEqual(3_000)

    standIn.nodes.put({ ...standIn.nodes.list()[1], metadata: { name: 'added-while-away', labels: {} } })
    standIn.setReachable(true)
    await waitFor(async () => (await status()) === 'available', 5_000, 'never available again')
    const back = await h.cluster(clusterId)
    expect(back).toMatchObject({ statusReason: null, statusMessage: null, lastSyncError: null })
    expect(back.summary.nodes.total).toBe(3)
    expect(back.conditions).toContainEqual(expect.objectContaining({ type: 'Reachable', status: 'True' }))

    const history = (await h.call({ method: 'GET', url: `/v1/clusters/${clusterId}/history` })).json()
    expect(history.items.map((e: History) => [e.fromStatus, e.toStatus, e.reason])).toEqual([
      ['error', 'available', null],
      ['not_available', 'error', 'CLUSTER_UNREACHABLE'],
      ['available', 'not_available', 'CLUSTER_UNREACHABLE'],
      ['registering', 'available', null],
      [null, 'registering', null],
    ])

    // The outbox as the tenant's admin sees it: the tenant's own events.
    const events = (await h.call({ method: 'GET', url: '/v1/events/outbox?topic=cluster.status_changed&limit=100' })).json()
    const mine = events.items.filter((e: { data: { clusterId: string } }) => e.data.clusterId === clusterId).reverse()
    expect(mine.map((e: { data: { from: string; to: string } }) => `${e.data.from}→${e.data.to}`)).toEqual([
      'registering→available',
      'available→not_available',
      'not_available→error',
      'error→available',
    ])
  }, 30_000)

  it('a cluster that stays away is not synced in a tight loop', async () => {
    const standIn = h.kube.addCluster({ nodes: ['cpu-small'] })
    const { clusterId } = await h.registerAvailable({ name: 'quiet', kubeconfig: standIn.kubeconfig() })
    standIn.setReachable(false)
    await waitFor(async () => (await h.cluster(clusterId)).status === 'not_available', 5_000)
    const before = standIn.requests.length
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    // One sync a second at most (each a couple of calls), not hundreds.
    expect(standIn.requests.length - before).toBeLessThan(12)
  })
})
