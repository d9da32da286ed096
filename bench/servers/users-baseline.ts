import Fastify from 'fastify'
import pg from 'pg'

/**
 * The user-listing baselines: bare Fastify and a pg pool, no auth, no validation, no envelope, no
 * cache. The tenant is fixed (BENCH_TENANT_ID): there is no caller to take it from.
 * - `/users`, naive: filter, `select *`, ORDER BY … LIMIT/OFFSET, and a full count(*) for the total.
 * - `/users-same-work`: the statements modelplane's list runs on a request whose total it does not
 *   know yet: its columns (secret names, not the ciphertexts; no password hash), its order (ending
 *   in the id), LIKE metacharacters escaped, and the total counted to page end + 1,000 at most. What
 *   it lacks is what modelplane adds around them: auth, validation, serialization, and the total
 *   kept between requests.
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

/** modelplane's TOTAL_LOOKAHEAD: the count stops this far past the page's end. */
const TOTAL_LOOKAHEAD = 1000
const COLUMNS = `id, tenant_id, auth_id, email, name, role, status, tag, attributes,
  coalesce(array(select jsonb_object_keys(secrets) order by 1), '{}') as secret_names,
  is_superuser, password_hash is not null as has_password, version, created_at, updated_at`

app.get('/users-same-work', async (request) => {
  const query = request.query as Record<string, string | undefined>
  const limit = Number(query.limit ?? 20)
  const page = Number(query.page ?? 1)
  const offset = (page - 1) * limit
  const where = ['tenant_id = $1']
  const params: unknown[] = [tenantId]
  if (query.status) where.push(`status = $${params.push(query.status)}`)
  else where.push("status <> 'deleted'")
  if (query.role) where.push(`role = $${params.push(query.role)}`)
  if (query.q) {
    const pattern = `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
    where.push(`(name ilike $${params.push(pattern)} escape '\\' or email ilike $${params.length} escape '\\')`)
  }
  const [field = 'createdAt', direction = 'desc'] = (query.sort ?? 'createdAt:desc').split(':')
  const dir = direction === 'asc' ? 'asc' : 'desc'
  const filter = where.join(' and ')
  const [items, total] = await Promise.all([
    pool.query(`select ${COLUMNS} from users where ${filter} order by ${SORTS[field] ?? 'created_at'} ${dir}, id ${dir} limit ${limit} offset ${offset}`, params),
    pool.query(
      `select count(*)::int as n from (select 1 from users where ${filter} order by created_at desc, id desc limit ${offset + limit + TOTAL_LOOKAHEAD + 1}) m`,
      params,
    ),
  ])
  const counted = total.rows[0].n as number
  const cap = offset + limit + TOTAL_LOOKAHEAD
  return { items: items.rows, total: Math.min(counted, cap), totalExact: counted <= cap, page, limit }
})

app.get('/users-same-work/:id', async (request, reply) => {
  const { rows } = await pool.query(`select ${COLUMNS} from users where id = $1 and tenant_id = $2 and status <> 'deleted'`, [
    (request.params as { id: string }).id,
    tenantId,
  ])
  if (rows.length === 0) return reply.status(404).send({ error: 'not found' })
  return rows[0]
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
