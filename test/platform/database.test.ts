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
import { waitFor } from '../helpers/wait.js'

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

    // A second transaction that wants the row locked by a first gets it only after the first
    // commits, and sees the first's change. (PostgreSQL makes it wait on the row lock; PGlite runs
    // one transaction at a time. Either way a user sees the same order.)
    const order: string[] = []
    let second: Promise<unknown> | undefined
    await transaction(db(), async (tx) => {
      await tx.execute(sql`select 1 from outbox_events where topic = ${topic} for update`)
      second = transaction(db(), async (other) => {
        const seen = await other.execute(sql`select payload from outbox_events where topic = ${topic} for update`)
        order.push(`second read ${JSON.stringify((seen.rows[0] as { payload: unknown }).payload)}`)
      })
      if (kind === 'postgres') {
        // The second is waiting on the lock before the first changes the row.
        await waitFor(async () => {
          const waiting = await apps.postgres!.platform.database.pool!.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
          )
          return waiting.rows[0]!.n > 0
        }, 10_000, 'the second transaction never waited on the row lock')
      }
      await tx.execute(sql`update outbox_events set payload = '{"n": 3}'::jsonb where topic = ${topic}`)
      order.push('first committing')
    })
    await second
    expect(order).toEqual(['first committing', 'second read {"n":3}'])
  })
})

describe('migrations', () => {
  it('are idempotent: a second start on the same database applies nothing and fails nothing', async () => {
    const applied = () =>
      apps.postgres!.platform.database.db.execute(sql`select id, hash, created_at from drizzle.__drizzle_migrations order by id`)
    const before = (await applied()).rows
    const again = await buildTestApp({ DATABASE_URL: fresh.url, MIGRATE_ON_START: 'true', VAULT_KEYS: TEST_VAULT_KEYS })
    try {
      expect((await again.inject({ url: '/healthz' })).statusCode).toBe(200)
    } finally {
      await again.close()
    }
    expect(before.length).toBeGreaterThan(0)
    expect((await applied()).rows).toEqual(before)
  })
})
