import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bearer } from '../../helpers/auth.js'
import { type EndpointHarness, startEndpointHarness } from '../../helpers/endpoints.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * Two replicas of the API on one database and one workflow hub, both running the reconcile sweep
 * that scales idle apps to zero: an idle app is scaled to zero once, by one of them.
 */

let h: EndpointHarness
let second: FastifyInstance
let clusterId: string

const HELLO = 'from fastapi import FastAPI\n\napp = FastAPI()\n'

beforeAll(async () => {
  h = await startEndpointHarness()
  ;({ clusterId } = await h.addAvailableCluster({ nodes: ['cpu-small'] }))
  second = await h.replica()
}, 90_000)

afterAll(async () => {
  await h?.close()
})

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getApp(app: FastifyInstance, id: string): Promise<Record<string, any>> {
  const res = await app.inject({ method: 'GET', url: `/v1/apps/${id}`, headers: bearer(h.admin.accessToken) })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}

describe('the idle sweep in two replicas', () => {
  it('scales an idle app to zero once, not once per replica', { timeout: 120_000 }, async () => {
    // Created through one replica, looked at through the other: both serve the same apps.
    const created = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'idle-twice', clusterId, code: HELLO, idleMinutes: 1 } })
    expect(created.statusCode, created.body).toBe(202)
    const { appId } = created.json() as { appId: string }
    await waitFor(async () => (await getApp(second, appId)).phase === 'running', 45_000)
    const running = await getApp(second, appId)

    // Idle for two minutes of its one: both replicas' sweeps (every second here) find it due.
    const db = h.app.platform.database.db
    await db.execute(sql`update endpoints set last_activity_at = now() - interval '2 minutes' where id = ${appId}`)
    await waitFor(async () => (await getApp(h.app, appId)).phase === 'scaled_to_zero', 45_000)
    // Several more passes of both sweeps change nothing.
    await new Promise((resolve) => setTimeout(resolve, 4_000))

    const asleep = await getApp(second, appId)
    expect(asleep.phase).toBe('scaled_to_zero')
    expect(asleep.replicas).toBe(0)
    expect(asleep.revision).toBe(running.revision + 1)
    const runs = await h.call({ method: 'GET', url: `/v1/workflows?resourceId=${appId}&limit=100` })
    expect(runs.statusCode, runs.body).toBe(200)
    const summaries = (runs.json().items as Array<{ inputSummary: string | null }>).map((r) => r.inputSummary ?? '')
    expect(summaries.filter((s) => /to zero: idle/.test(s))).toHaveLength(1)
    const moves = await db.execute(sql`select count(*)::int as n from endpoint_status_history where endpoint_id = ${appId} and to_phase = 'scaled_to_zero'`)
    expect((moves.rows[0] as { n: number }).n).toBe(1)
  })
})
