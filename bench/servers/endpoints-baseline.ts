import Fastify from 'fastify'
import pg from 'pg'

/**
 * The plan baseline: bare Fastify and a pg pool, no auth, no validation, no planner. POST /plan
 * takes the plan request's body and reads what modelplane's plan reads from PostgreSQL for it: the
 * cluster row (tenant-scoped), all its node rows, the model (tenant-scoped), its version and the
 * version's files; then answers them as JSON (per node what placement looks at: device type, devices,
 * allocatable, usage; the model and its files), an answer of about the size of the plan's.
 * The tenant is fixed (BENCH_TENANT_ID): there is no caller to take it from. What modelplane adds
 * over this is its layers (token, validation, envelope) and the planning itself (placement,
 * sizing, manifests).
 */
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 20) })
const tenantId = process.env.BENCH_TENANT_ID
const app = Fastify()

app.get('/healthz', async () => ({ status: 'ok' }))

interface PlanBody {
  clusterId: string
  modelId: string
  versionId?: string
}

app.post('/plan', async (request, reply) => {
  const body = request.body as PlanBody
  const [cluster, nodes, model] = await Promise.all([
    pool.query('select * from clusters where id = $1 and tenant_id = $2', [body.clusterId, tenantId]),
    pool.query('select * from cluster_nodes where cluster_id = $1 order by name', [body.clusterId]),
    pool.query('select * from models where id = $1 and tenant_id = $2', [body.modelId, tenantId]),
  ])
  const c = cluster.rows[0] as Record<string, unknown> | undefined
  const m = model.rows[0] as Record<string, unknown> | undefined
  if (!c || !m) return reply.status(404).send({ error: { code: 'NOT_FOUND' } })
  const versionId = body.versionId ?? (m.default_version_id as string)
  const [version, files] = await Promise.all([
    pool.query('select * from model_versions where id = $1 and model_id = $2', [versionId, m.id]),
    pool.query('select * from model_version_files where version_id = $1 order by path', [versionId]),
  ])
  const v = version.rows[0] as Record<string, unknown> | undefined
  return {
    cluster: { id: c.id, name: c.name, platform: c.platform, capabilities: c.capabilities, summary: c.summary },
    // Each node as a placement reads it, not its whole facts (labels, conditions…): an answer of about the plan's size.
    nodes: nodes.rows.map((n: Record<string, unknown>) => {
      const facts = n.facts as { devices?: Array<Record<string, unknown>>; allocatable?: unknown; capacity?: unknown; taints?: unknown }
      return {
        name: n.name,
        deviceType: n.device_type,
        ready: n.ready,
        schedulable: n.schedulable,
        devices: (facts.devices ?? []).map((d) => ({ type: d.type, count: d.count, product: d.product, memoryMiB: d.memoryMiB })),
        allocatable: facts.allocatable ?? facts.capacity,
        used: n.used,
      }
    }),
    model: {
      id: m.id,
      name: m.name,
      tasks: m.tasks,
      format: m.format,
      parameterCount: m.parameter_count,
      dtype: m.dtype,
      quantization: m.quantization,
      contextLength: m.context_length,
      metadata: m.metadata,
    },
    version: v ? { id: v.id, label: v.label } : null,
    files: files.rows.map((f: Record<string, unknown>) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
  }
})

await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' })
process.on('SIGTERM', async () => {
  await app.close()
  await pool.end()
  process.exit(0)
})
