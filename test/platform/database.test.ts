import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { transaction } from '../../src/platform/db/client.js'
import { buildTestApp, tempDir } from '../helpers/app.js'
import { freshDatabase } from '../helpers/database.js'
import { TEST_VAULT_KEYS } from '../helpers/env.js'

/**
 * The same migrations and the same queries must behave alike on the embedded database (PGlite)
 * and on PostgreSQL: each app below starts on an empty database and migrates it itself.
 */
const fresh = freshDatabase('mig')

const apps: Record<string, FastifyInstance> = {}

beforeAll(async () => {
  await fresh.create()
  apps.pglite = await buildApp(loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: tempDir(), RATE_LIMIT_MAX: '0' }))
  apps.postgres = await buildTestApp({ DATABASE_URL: fresh.url, MIGRATE_ON_START: 'true', VAULT_KEYS: TEST_VAULT_KEYS })
  await apps.pglite.ready()
}, 60_000)

afterAll(async () => {
  await Promise.all(Object.values(apps).map((app) => app.close()))
  await fresh.drop()
})

describe.each(['pglite', 'postgres'])('database on %s', (kind) => {
  const db = () => apps[kind]!.platform.database.db

  it('applied every migration at start', async () => {
    expect(apps[kind]!.platform.database.kind).toBe(kind)
    const applied = await db().execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`)
    const other = await apps[kind === 'pglite' ? 'postgres' : 'pglite']!.platform.database.db.execute(
      sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
    )
    expect((applied.rows[0] as { n: number }).n).toBeGreaterThan(0)
    expect(applied.rows).toEqual(other.rows)
  })

  it('commits, rolls back and locks rows the same way', async () => {
    const topic = `test.${randomUUID()}`
    const events = apps[kind]!.platform.events
    await transaction(db(), async (tx) => {
      await events.publish(tx, topic, { n: 1 })
    })
    await expect(
      transaction(db(), async (tx) => {
        await events.publish(tx, topic, { n: 2 })
        throw new Error('abort')
      }),
    ).rejects.toThrow('abort')
    const rows = await transaction(db(), (tx) =>
      tx.execute(sql`select payload from outbox_events where topic = ${topic} for update`),
    )
    expect(rows.rows.map((r) => (r as { payload: unknown }).payload)).toEqual([{ n: 1 }])
  })
})

describe('migrations', () => {
  it('are idempotent: a second start on the same database applies nothing and fails nothing', async () => {
    const again = await buildTestApp({ DATABASE_URL: fresh.url, MIGRATE_ON_START: 'true', VAULT_KEYS: TEST_VAULT_KEYS })
    await again.close()
  })
})
