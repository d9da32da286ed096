import { Writable } from 'node:stream'
import { sql } from 'drizzle-orm'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import { freshDatabase } from '../../helpers/database.js'

/**
 * The kubeconfig's credentials stay in the vault: across a registration, a failed registration, two
 * kubeconfig rotations and a delete, no token, client key or kubeconfig text appears in a response,
 * an event, a run record, any database row, or a log line at debug level.
 *
 * A database of its own, so that every row of every table can be searched.
 */

const database = freshDatabase('cluster_secrets')
const logLines: string[] = []
const bodies: string[] = []
let h: ClusterHarness

beforeAll(async () => {
  await database.create()
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk))
      done()
    },
  })
  h = await startClusterHarness({ databaseUrl: database.url, logger: pino({ level: 'debug' }, sink) })
})
afterAll(async () => {
  await h?.close()
  await database.drop()
})

/** Every answer the test reads is kept to be searched. */
async function call(options: Parameters<ClusterHarness['call']>[0]) {
  const res = await h.call(options)
  bodies.push(`${options.method ?? 'GET'} ${options.url} ${res.statusCode} ${JSON.stringify(res.headers)} ${res.body}`)
  return res
}

async function finished(workflowId: string) {
  const run = await h.finished(workflowId)
  await call({ method: 'GET', url: `/v1/workflows/${workflowId}` })
  return run
}

describe('secrets of a kubeconfig', () => {
  it('never appear in responses, events, run records, database rows or logs', async () => {
    const standIn = h.kube.addCluster({ nodes: ['a100-8x'] })
    const other = h.kube.addCluster({})
    const cert = standIn.clientCert()
    const rotatedToken = standIn.tokenWith([{ verb: '*', resource: '*' }])
    const keyPem = Buffer.from(cert.keyData, 'base64').toString('utf8')
    const kubeconfigs = {
      first: standIn.kubeconfig(),
      wrong: h.kube.addCluster({}).kubeconfig({ token: other.adminToken }),
      byCert: standIn.kubeconfig({ cert: true }),
      rotated: standIn.kubeconfig({ token: rotatedToken }),
    }

    // A registration, seen every way a user can look at it.
    const registered = await call({ method: 'POST', url: '/v1/clusters', payload: { name: 'secretive', kubeconfig: kubeconfigs.first } })
    expect(registered.statusCode).toBe(202)
    const { clusterId, workflowId } = registered.json()
    expect((await finished(workflowId)).status).toBe('completed')

    // A registration refused by the cluster (an unknown token).
    const failed = await call({ method: 'POST', url: '/v1/clusters', payload: { name: 'refused', kubeconfig: kubeconfigs.wrong } })
    expect((await finished(failed.json().workflowId)).error?.code).toBe('CLUSTER_UNAUTHORIZED')

    // Two new kubeconfigs: a client certificate, then a token again.
    for (const kubeconfig of [kubeconfigs.byCert, kubeconfigs.rotated]) {
      const patched = await call({ method: 'PATCH', url: `/v1/clusters/${clusterId}`, payload: { kubeconfig } })
      expect(patched.statusCode).toBe(202)
      expect((await finished(patched.json().workflowId)).status).toBe('completed')
    }
    expect((await call({ method: 'POST', url: `/v1/clusters/${clusterId}/refresh` })).statusCode).toBe(200)

    const removed = await call({ method: 'DELETE', url: `/v1/clusters/${clusterId}` })
    expect((await finished(removed.json().workflowId)).status).toBe('completed')

    for (const url of [
      `/v1/clusters/${clusterId}`,
      `/v1/clusters/${failed.json().clusterId}`,
      '/v1/clusters?status=deleted',
      '/v1/clusters?status=failed',
      `/v1/clusters/${clusterId}/history`,
      `/v1/workflows?resourceKind=cluster&limit=100`,
      '/v1/events/outbox?limit=100',
      '/v1/audit?limit=100',
    ]) {
      await call({ method: 'GET', url })
    }

    const db = h.app.platform.database.db
    const tables = (await db.execute(sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`)).rows as Array<{ table_name: string }>
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['clusters', 'outbox_events', 'workflow_runs', 'workflow_history', 'workflow_activity_tasks']))
    const rows: string[] = []
    for (const { table_name } of tables) {
      const result = await db.execute(sql`select row_to_json(t)::text as row from ${sql.identifier(table_name)} t`)
      for (const r of result.rows as Array<{ row: string }>) rows.push(`${table_name}: ${r.row}`)
    }
    // The run records and events are there to be searched, not empty.
    expect(rows.filter((r) => r.startsWith('workflow_history:')).length).toBeGreaterThan(10)
    expect(rows.filter((r) => r.startsWith('outbox_events:')).length).toBeGreaterThan(5)
    expect(logLines.length).toBeGreaterThan(20)
    // The search finds what is meant to be there: the server URL and the cluster's id.
    expect(bodies.some((b) => b.includes(standIn.server))).toBe(true)
    expect(rows.some((r) => r.startsWith('clusters:') && r.includes(standIn.server))).toBe(true)
    expect(logLines.some((l) => l.includes(clusterId))).toBe(true)

    const secrets: Record<string, string> = {
      'the first token': standIn.adminToken,
      'the refused token': other.adminToken,
      'the rotated token': rotatedToken,
      'the client key (base64)': cert.keyData,
      'the client key (PEM body)': keyPem.split('\n')[1]!,
    }
    for (const [name, text] of Object.entries(kubeconfigs)) secrets[`the ${name} kubeconfig`] = text
    const places: Record<string, string[]> = { responses: bodies, 'database rows': rows, 'log lines': logLines }
    for (const [where, texts] of Object.entries(places)) {
      for (const [what, secret] of Object.entries(secrets)) {
        const leak = texts.find((t) => t.includes(secret))
        expect(leak, `${what} in ${where}`).toBeUndefined()
      }
    }
    // And the sealed columns hold ciphertext, dropped at the end.
    expect((await h.row(clusterId))?.kubeconfigSealed).toBeNull()
  }, 45_000)
})
