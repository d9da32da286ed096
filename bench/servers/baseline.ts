import Fastify from 'fastify'
import pg from 'pg'

/**
 * The baseline the benchmarks compare against: bare Fastify and a pg pool, no validation,
 * no auth, no envelope, no metrics. The same queries as the modelplane routes it stands beside.
 */
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_MAX ?? 20) })
const app = Fastify()

app.get('/healthz', async () => ({ status: 'ok' }))

app.get('/outbox', async (request) => {
  const query = request.query as { page?: string; limit?: string }
  const limit = Number(query.limit ?? 20)
  const offset = (Number(query.page ?? 1) - 1) * limit
  const [items, total] = await Promise.all([
    pool.query(
      'select * from outbox_events order by created_at desc, id desc limit $1 offset $2',
      [limit, offset],
    ),
    pool.query('select count(*)::int as n from outbox_events'),
  ])
  return { items: items.rows, total: total.rows[0].n, page: Number(query.page ?? 1), limit }
})

await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' })
process.on('SIGTERM', async () => {
  await app.close()
  await pool.end()
  process.exit(0)
})
