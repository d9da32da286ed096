import pg from 'pg'
import pino from 'pino'
import { openDatabase } from '../src/platform/db/client.js'
import { migrate } from '../src/platform/db/migrate.js'
import { TEST_DATABASE_URL, TEST_DATABASE_NAME, ADMIN_DATABASE_URL } from './helpers/env.js'

/**
 * Once per run: a fresh database for this run on the real PostgreSQL server, migrated with the
 * project's own migrations. Test files share it and keep out of each other's way with unique ids.
 */
export default async function setup() {
  // Test workers are forked after this runs and inherit the name.
  process.env.TEST_PG_DATABASE = TEST_DATABASE_NAME
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL })
  await admin.connect()
  try {
    await dropAbandonedDatabases(admin)
    await admin.query(`drop database if exists "${TEST_DATABASE_NAME}" with (force)`)
    await admin.query(`create database "${TEST_DATABASE_NAME}"`)
  } finally {
    await admin.end()
  }
  const handle = await openDatabase({ url: TEST_DATABASE_URL, dataDir: '/tmp', poolMax: 2, log: pino({ level: 'silent' }) })
  try {
    await migrate(handle)
  } finally {
    await handle.close()
  }
  return async function teardown() {
    if (process.env.KEEP_TEST_DATABASE) return
    const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL })
    await admin.connect()
    try {
      await admin.query(`drop database if exists "${TEST_DATABASE_NAME}" with (force)`)
    } finally {
      await admin.end()
    }
  }
}

/** Databases left by runs that were killed: their pid no longer exists. */
async function dropAbandonedDatabases(admin: pg.Client) {
  const { rows } = await admin.query<{ datname: string }>(
    "select datname from pg_database where datname ~ '^modelplane_test_[0-9]+$'",
  )
  for (const { datname } of rows) {
    const pid = Number(datname.slice('modelplane_test_'.length))
    if (isAlive(pid)) continue
    await admin.query(`drop database if exists "${datname}" with (force)`)
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
