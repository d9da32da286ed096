import pino from 'pino'
import { loadConfig } from '../../config.js'
import { openDatabase } from './client.js'
import { migrate } from './migrate.js'

// `npm run db:migrate`: applies pending migrations to DATABASE_URL (or the embedded database) and exits.
// It touches neither cache nor object store: the shared-parts rule (config.ts) has nothing to guard here.
const config = loadConfig({ ...process.env, SINGLE_REPLICA: 'true' })
const log = pino({ level: config.logLevel })
const handle = await openDatabase({
  url: config.database.url,
  dataDir: config.dataDir,
  poolMax: 2,
  log,
})
try {
  await migrate(handle)
  log.info({ database: handle.kind }, 'migrations applied')
} finally {
  await handle.close()
}
