import Fastify from 'fastify'
import pg from 'pg'

/**
 * The model-catalog baseline: bare Fastify and a pg pool running the statements model_ops' crud
 * runs (listModels, modelFacets) on every request, as unnamed statements, answering the same JSON
 * fields; no auth, no validation, no envelope, no metrics. The tenant is fixed (BENCH_TENANT_ID):
 * there is no caller to take it from.
 * - `/models`: the page (every column, created_at desc, id) and a full count(*) of the filter, side by side.
 * - `/models/facets`: per facet, the 50 most common values among the models matching every other filter.
 */
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 20) })
const tenantId = process.env.BENCH_TENANT_ID
const app = Fastify()

app.get('/healthz', async () => ({ status: 'ok' }))

type Query = Record<string, string | undefined>

const SCALAR: Record<string, string> = { source: 'source', provider: 'provider_id', format: 'format', license: 'license' }
const ARRAY: Record<string, string> = { task: 'tasks', modality: 'modalities', tag: 'tags' }

/** The WHERE of crud's modelWhere, leaving out one filter; values bounded as the app's schema bounds them. */
function where(query: Query, without?: string): { text: string; params: unknown[] } {
  const params: unknown[] = [tenantId]
  const add = (value: string) => `$${params.push(value.slice(0, 256))}`
  const clauses = ['tenant_id = $1', query.status && without !== 'status' ? `status = ${add(query.status)}` : "status <> 'deleted'"]
  for (const [name, column] of Object.entries(SCALAR)) if (query[name] && name !== without) clauses.push(`${column} = ${add(query[name])}`)
  for (const [name, column] of Object.entries(ARRAY)) if (query[name] && name !== without) clauses.push(`${column} @> array[${add(query[name])}]::text[]`)
  if (query.q && without !== 'q') {
    const like = add(`%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`)
    clauses.push(`(name ilike ${like} or description ilike ${like})`)
  }
  return { text: clauses.join(' and '), params }
}

interface Row {
  [column: string]: unknown
  parameter_count: string | null
  created_at: Date
  updated_at: Date
}

/** The fields of modelplane's Model view, from one row. */
function view(r: Row) {
  return {
    id: r.id,
    name: r.name,
    displayName: r.display_name,
    source: r.source,
    provider: r.provider_id,
    credentialId: r.credential_id,
    uri: r.uri,
    tasks: r.tasks,
    modalities: r.modalities,
    architecture: r.architecture,
    parameterCount: r.parameter_count === null ? null : Number(r.parameter_count),
    contextLength: r.context_length,
    dtype: r.dtype,
    quantization: r.quantization,
    format: r.format,
    license: r.license,
    tags: r.tags,
    description: r.description,
    metadata: r.metadata,
    status: r.status,
    statusReason: r.status_reason,
    defaultVersionId: r.default_version_id,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  }
}

app.get('/models', async (request) => {
  const query = request.query as Query
  const limit = Math.min(100, Number(query.limit ?? 20))
  const page = Math.max(1, Number(query.page ?? 1))
  const { text, params } = where(query)
  const [items, total] = await Promise.all([
    pool.query<Row>(`select * from models where ${text} order by created_at desc, id asc limit ${limit} offset ${(page - 1) * limit}`, params),
    pool.query<{ n: number }>(`select count(*)::int as n from models where ${text}`, params),
  ])
  return { items: items.rows.map(view), total: total.rows[0]!.n, totalExact: true, page, limit }
})

app.get('/models/facets', async (request) => {
  const query = request.query as Query
  const scalar = Object.entries(SCALAR).map(async ([name, column]) => {
    const { text, params } = where(query, name)
    const { rows } = await pool.query<{ value: string; count: number }>(
      `select ${column} as value, count(*)::int as count from models where ${text} and ${column} is not null group by ${column} order by count(*) desc, ${column} asc limit 50`,
      params,
    )
    return [name, rows] as const
  })
  const arrays = Object.entries(ARRAY).map(async ([name, column]) => {
    const { text, params } = where(query, name)
    const { rows } = await pool.query<{ value: string; count: number }>(
      `select v.value, count(*)::int as count from (select unnest(${column}) as value from models where ${text}) v group by v.value order by count(*) desc, v.value asc limit 50`,
      params,
    )
    return [name, rows] as const
  })
  return Object.fromEntries(await Promise.all([...scalar, ...arrays]))
})

await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' })
process.on('SIGTERM', async () => {
  await app.close()
  await pool.end()
  process.exit(0)
})
