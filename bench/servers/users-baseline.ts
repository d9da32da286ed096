import Fastify from 'fastify'
import pg from 'pg'

/**
 * The user-listing baseline: bare Fastify and a pg pool, no auth, no validation, no envelope.
 * The naive queries: filter, ORDER BY … LIMIT/OFFSET, and a full count(*) for the total.
 * The tenant is fixed (BENCH_TENANT_ID): there is no caller to take it from.
 */
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 20) })
const tenantId = process.env.BENCH_TENANT_ID
const app = Fastify()
const SORTS: Record<string, string> = { createdAt: 'created_at', name: 'name', email: 'email' }

app.get('/healthz', async () => ({ status: 'ok' }))

app.get('/users', async (request) => {
  const query = request.query as Record<string, string | undefined>
  const limit = Number(query.limit ?? 20)
  const page = Number(query.page ?? 1)
  const where = ['tenant_id = $1']
  const params: unknown[] = [tenantId]
  if (query.status) where.push(`status = $${params.push(query.status)}`)
  else where.push("status <> 'deleted'")
  if (query.role) where.push(`role = $${params.push(query.role)}`)
  if (query.q) where.push(`(name ilike $${params.push(`%${query.q}%`)} or email ilike $${params.length})`)
  const [field = 'createdAt', direction = 'desc'] = (query.sort ?? 'createdAt:desc').split(':')
  const order = `${SORTS[field] ?? 'created_at'} ${direction === 'asc' ? 'asc' : 'desc'}`
  const filter = where.join(' and ')
  const [items, total] = await Promise.all([
    pool.query(`select * from users where ${filter} order by ${order} limit ${limit} offset ${(page - 1) * limit}`, params),
    pool.query(`select count(*)::int as n from users where ${filter}`, params),
  ])
  return { items: items.rows, total: total.rows[0].n, page, limit }
})

app.get('/users/:id', async (request, reply) => {
  const { rows } = await pool.query('select * from users where id = $1 and tenant_id = $2', [(request.params as { id: string }).id, tenantId])
  if (rows.length === 0) return reply.status(404).send({ error: 'not found' })
  return rows[0]
})

await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' })
process.on('SIGTERM', async () => {
  await app.close()
  await pool.end()
  process.exit(0)
})
