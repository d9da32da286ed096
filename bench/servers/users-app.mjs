import path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Bench only: the compiled modelplane app as `npm start` runs it (plain JavaScript, no TypeScript
 * loader in the process), plus the admin the benchmark logs in as (BENCH_REALM, BENCH_EMAIL,
 * BENCH_PASSWORD).
 */
const dist = (file) => path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', file)
const { buildApp } = await import(dist('app.js'))
const { loadConfig } = await import(dist('config.js'))

const app = await buildApp(loadConfig())
await app.services.auth.createLocalUser({
  realm: process.env.BENCH_REALM,
  email: process.env.BENCH_EMAIL,
  password: process.env.BENCH_PASSWORD,
  role: 'admin',
})
await app.listen({ port: Number(process.env.PORT), host: process.env.HOST ?? '127.0.0.1' })
process.on('SIGTERM', async () => {
  await app.close()
  process.exit(0)
})
