import Fastify from 'fastify'
import pg from 'pg'

/**
 * The cluster-listing baselines: bare Fastify and a pg pool, no auth, no validation, no envelope.
 * The tenant is fixed (BENCH_TENANT_ID): there is no caller to take it from. Both run a page in
 * created_at desc, id order and a full count(*) of the filter, side by side, and answer the same
 * JSON fields as modelplane's Cluster, less what a real API adds (auth, ETag, metrics, headers).
 * - `/clusters`, naive: `select *` for the page (the sealed kubeconfigs included).
 * - `/clusters-same-work`: the columns modelplane's list reads (crud.ts, LISTED), nothing else.
 */
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 20) })
const tenantId = process.env.BENCH_TENANT_ID
const app = Fastify()

app.get('/healthz', async () => ({ status: 'ok' }))

interface Row {
  [column: string]: unknown
  created_at: Date
  updated_at: Date
  status_since: Date
  last_sync_at: Date | null
  permissions: { missing: string[] } | null
}

const iso = (d: Date | null) => (d ? d.toISOString() : null)

/** The fields of modelplane's Cluster view, from one row. */
function view(r: Row) {
  return {
    id: r.id,
    name: r.name,
    labels: r.labels,
    status: r.status,
    statusReason: r.status_reason,
    statusMessage: r.status_message,
    statusSince: r.status_since.toISOString(),
    server: r.server,
    platform: r.platform,
    distribution: r.distribution,
    kubernetesVersion: r.kubernetes_version,
    capabilities: r.capabilities,
    missingPermissions: r.permissions?.missing ?? [],
    summary: r.summary,
    conditions: r.conditions,
    lastSyncAt: iso(r.last_sync_at),
    lastSyncDurationMs: r.last_sync_duration_ms,
    lastSyncError: r.last_sync_error,
    registrationWorkflowId: r.registration_workflow_id,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  }
}

const SAME_WORK_COLUMNS = `id, name, labels, status, status_reason, status_message, status_since, server, platform,
  distribution, kubernetes_version, capabilities, permissions, summary, conditions, last_sync_at, last_sync_duration_ms,
  last_sync_error, registration_workflow_id, created_by, created_at, updated_at`

async function listPage(columns: string, query: Record<string, string | undefined>) {
  const limit = Math.min(100, Number(query.limit ?? 20))
  const page = Math.max(1, Number(query.page ?? 1))
  const where = ['tenant_id = $1', "status <> 'deleted'"]
  const params: unknown[] = [tenantId]
  if (query.deviceType) where.push(`device_types @> array[$${params.push(query.deviceType.slice(0, 32))}]::text[]`)
  const filter = where.join(' and ')
  const [items, total] = await Promise.all([
    pool.query<Row>(`select ${columns} from clusters where ${filter} order by created_at desc, id asc limit ${limit} offset ${(page - 1) * limit}`, params),
    pool.query<{ n: number }>(`select count(*)::int as n from clusters where ${filter}`, params),
  ])
  return { items: items.rows.map(view), total: total.rows[0]!.n, totalExact: true, page, limit }
}

app.get('/clusters', (request) => listPage('*', request.query as Record<string, string | undefined>))
app.get('/clusters-same-work', (request) => listPage(SAME_WORK_COLUMNS, request.query as Record<string, string | undefined>))

await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' })
process.on('SIGTERM', async () => {
  await app.close()
  await pool.end()
  process.exit(0)
})
