import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../../src/app.js'
import { testConfig } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'
import { waitFor } from '../../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../../helpers/workflow.js'

/** Cancelling a running user import: the run reports what the import did before it stopped. */

let app: FastifyInstance
let admin: SeededUser

beforeAll(async () => {
  app = await buildApp(testConfig(), { workflows: { hub: uniqueHub('import-cancel'), tuning: FAST_HUB } })
  await app.ready()
  admin = await seedUser(app, { realm: uniqueRealm('impc'), role: 'admin' })
})

afterAll(async () => {
  await app?.close()
})

interface Run {
  status: string
  currentStep: number
  compensation: string | null
  resultSummary: string | null
  result: { created: number; failed: number; rows: number; notProcessed: number; cancelled: boolean } | null
}

const getRun = async (id: string): Promise<Run> =>
  (await app.inject({ method: 'GET', url: `/v1/workflows/${id}`, headers: bearer(admin.accessToken) })).json()

describe('cancelled import', () => {
  it('reports the users created before the cancel, and they are the users that exist', async () => {
    const rows = Array.from({ length: 8_000 }, (_, i) => ({ email: `cancel-${i}@example.test`, name: `C ${i}`, role: 'viewer' }))
    // One invalid row in the first batch: refused rows are counted too.
    rows[5] = { email: 'not-an-email', name: 'bad', role: 'viewer' }
    const started = await app.inject({
      method: 'POST',
      url: '/ai/admin/users/import',
      headers: { ...bearer(admin.accessToken), 'content-type': 'application/json' },
      payload: JSON.stringify(rows),
    })
    expect(started.statusCode, started.body).toBe(202)
    const { workflowId } = started.json() as { workflowId: string }
    // Step 3 inserts the second batch: the first one is in the ledger.
    await waitFor(async () => (await getRun(workflowId)).currentStep >= 3, 20_000, 'the import never reached its second batch')
    const cancel = await app.inject({ method: 'POST', url: `/v1/workflows/${workflowId}/cancel`, headers: bearer(admin.accessToken) })
    expect(cancel.statusCode, cancel.body).toBe(202)
    let run: Run | undefined
    await waitFor(async () => (run = await getRun(workflowId)).compensation === 'completed', 20_000, 'the cancel never finished')
    expect(run!.status).toBe('cancelled')
    const result = run!.result!
    expect(result.cancelled).toBe(true)
    expect(result.created).toBeGreaterThan(0)
    expect(result.created).toBeLessThan(rows.length - 1)
    expect(result.failed).toBe(1)
    expect(result.notProcessed).toBe(rows.length - result.created - result.failed)
    expect(run!.resultSummary).toContain(`created=${result.created}`)
    const { rows: counted } = await app.platform.database.pool!.query<{ n: number }>(
      `select count(*)::int as n from users where tenant_id = $1 and email like 'cancel-%'`,
      [admin.tenantId],
    )
    expect(counted[0]!.n).toBe(result.created)
  })
})
