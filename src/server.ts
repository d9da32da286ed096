import closeWithGrace from 'close-with-grace'
import pino from 'pino'
import { ConfigError, loadConfig } from './config.js'
import { openDatabase } from './platform/db/client.js'
import { DataDirLockedError } from './platform/db/data-lock.js'
import type { buildApp as BuildAppFn } from './app.js'

type BuildApp = typeof BuildAppFn
import { loggerOptions } from './platform/logger.js'

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig()
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`)
    process.exit(1)
  }
  throw err
}

const log = pino(loggerOptions(config.logLevel))
// Opening the database (PGlite compiles its WebAssembly) overlaps with loading the rest of the app.
let database: Awaited<ReturnType<typeof openDatabase>>
let buildApp: BuildApp
try {
  ;[database, { buildApp }] = await Promise.all([
    openDatabase({ url: config.database.url, dataDir: config.dataDir, poolMax: config.database.poolMax, log }),
    import('./app.js'),
  ])
} catch (err) {
  if (err instanceof DataDirLockedError) {
    log.fatal(err.message)
    process.exit(1)
  }
  throw err
}
const app = await buildApp(config, { logger: log, database })

// SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close pools; force-exit after the delay.
closeWithGrace(
  { delay: config.shutdownTimeoutMs, logger: { error: (m: string) => log.error(m) } },
  async ({ signal, err }) => {
    if (err) log.error({ err }, 'shutting down after an uncaught error')
    else log.info({ signal }, 'shutting down')
    await app.close()
    await database.close()
  },
)

await app.listen({ port: config.port, host: config.host })
log.info(
  { url: config.publicUrl, parts: config.parts, startupMs: Math.round(process.uptime() * 1000) },
  'modelplane ready',
)
