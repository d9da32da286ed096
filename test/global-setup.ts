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
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL })
  await admin.connect()
  try {
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
}
