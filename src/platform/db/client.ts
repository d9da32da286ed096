import fs from 'node:fs'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { sql } from 'drizzle-orm'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import type { NodePgQueryResultHKT } from 'drizzle-orm/node-postgres'
import type { PgDatabase, PgTransaction } from 'drizzle-orm/pg-core'
import type { ExtractTablesWithRelations } from 'drizzle-orm'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import pg from 'pg'
import type { Logger } from 'pino'
import { lockDataDir } from './data-lock.js'

/**
 * One type for both drivers: modules never know whether PGlite or PostgreSQL is underneath.
 * Typed as node-postgres; PGlite's results have the same `rows` shape for everything we use.
 */
type NoSchema = Record<string, never>
export type Database = PgDatabase<NodePgQueryResultHKT, NoSchema>
export type Transaction = PgTransaction<NodePgQueryResultHKT, NoSchema, ExtractTablesWithRelations<NoSchema>>
/** Data-access functions accept either the database or an open transaction. */
export type Executor = Database | Transaction

export interface DatabaseHandle {
  kind: 'postgres' | 'pglite'
  db: Database
  /** PostgreSQL only: the connection string, for a worker thread that opens its own pool. Never log it. */
  url?: string
  /** The raw driver, for the few things drizzle does not cover (LISTEN, advisory locks). */
  pool?: pg.Pool
  pglite?: PGlite
  ping(): Promise<void>
  close(): Promise<void>
}

export interface DatabaseOptions {
  url?: string
  dataDir: string
  poolMax: number
  log: Logger
  /** Names the pool's connections in pg_stat_activity (default `modelplane`). */
  applicationName?: string
}

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.url) {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 5_000,
      application_name: options.applicationName ?? 'modelplane',
    })
    // An idle client that loses its server must not crash the process; the next query reconnects.
    pool.on('error', (err) => options.log.warn({ err: { message: err.message } }, 'idle database client failed'))
    const db = drizzlePg(pool) as unknown as Database
    return {
      kind: 'postgres',
      db,
      url: options.url,
      pool,
      ping: async () => {
        await pool.query('select 1')
      },
      close: () => pool.end(),
    }
  }
  // Before PGlite touches the folder: a second process on it refuses to start (DataDirLockedError).
  const lock = lockDataDir(options.dataDir)
  const dir = path.join(options.dataDir, 'pg')
  let client: PGlite
  try {
    if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) {
      // initdb inside WebAssembly: seconds of silence otherwise, longer on a loaded machine.
      options.log.info({ dir }, 'creating the embedded database (first start only; takes a few seconds)')
    }
    fs.mkdirSync(dir, { recursive: true })
    // pg_trgm: the trigram indexes of user search (migration 0003_pg_trgm) need it loaded.
    client = await PGlite.create({ dataDir: dir, extensions: { pg_trgm } })
  } catch (err) {
    lock.release()
    throw err
  }
  const db = drizzlePglite(client) as unknown as Database
  return {
    kind: 'pglite',
    db,
    pglite: client,
    ping: async () => {
      await db.execute(sql`select 1`)
    },
    close: async () => {
      try {
        await client.close()
      } finally {
        lock.release()
      }
    },
  }
}

/** Runs fn in a transaction; rolls back when it throws. Never make a network call inside fn. */
export function transaction<T>(db: Database, fn: (tx: Transaction) => Promise<T>): Promise<T> {
  return db.transaction(fn)
}

/** The name of the unique index a failed insert or update ran into, if that is what failed. */
export function uniqueViolationOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, constraint } = e as { code?: string; constraint?: string }
    if (code === '23505') return constraint ?? ''
  }
  return undefined
}
