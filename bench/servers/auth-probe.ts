import path from 'node:path'
import Type from 'typebox'
import type * as AppTypes from '../../src/app.js'
import type * as ConfigTypes from '../../src/config.js'
import type * as CrudTypes from '../../src/modules/auth/crud.js'
import type * as PrincipalTypes from '../../src/platform/auth/principal.js'
import { ROOT } from '../lib.js'

/**
 * Bench only: the compiled app plus two identical database-backed read routes, one public and one
 * guarded by `workflow:view`, so the difference between them is what authentication costs.
 * Creates the user the benchmark logs in as (BENCH_REALM, BENCH_EMAIL, BENCH_PASSWORD).
 */
type AppModule = typeof AppTypes
type ConfigModule = typeof ConfigTypes
type PrincipalModule = typeof PrincipalTypes
type CrudModule = typeof CrudTypes

const dist = (file: string) => path.join(ROOT, 'dist', file)
const { buildApp } = (await import(dist('app.js'))) as AppModule
const { loadConfig } = (await import(dist('config.js'))) as ConfigModule
const { requirePermission } = (await import(dist('platform/auth/principal.js'))) as PrincipalModule
const crud = (await import(dist('modules/auth/crud.js'))) as CrudModule

const app = await buildApp(loadConfig())
const db = app.platform.database.db
const query = { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })) }
const read = async () => (await crud.listTenants(db, { limit: 20, offset: 0 })).rows.map((t) => ({ id: t.id, realm: t.realm }))
const response = { 200: Type.Array(Type.Object({ id: Type.String(), realm: Type.String() })) }

app.get(
  '/bench/public',
  { config: { public: true }, schema: { operationId: 'benchPublic', tags: ['bench'], summary: 'bench', querystring: Type.Object(query, { additionalProperties: false }), response } },
  read,
)
app.get(
  '/bench/guarded',
  {
    config: requirePermission('workflow:view'),
    schema: { operationId: 'benchGuarded', tags: ['bench'], summary: 'bench', querystring: Type.Object(query, { additionalProperties: false }), response },
  },
  read,
)

await app.services.auth.createLocalUser({
  realm: process.env.BENCH_REALM!,
  email: process.env.BENCH_EMAIL!,
  password: process.env.BENCH_PASSWORD!,
  role: 'viewer',
})
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' })
process.on('SIGTERM', async () => {
  await app.close()
  process.exit(0)
})
