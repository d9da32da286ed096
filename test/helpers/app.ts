import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { type AppOverrides, buildApp } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'
import { TEST_DATABASE_URL, TEST_REDIS_URL, TEST_VAULT_KEYS } from './env.js'

/** A throwaway data folder, removed when the test process exits. */
export function tempDir(prefix = 'modelplane-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Config for a test app on the real PostgreSQL and Redis; the run's database is already migrated. */
export function testConfig(env: Record<string, string | undefined> = {}): Readonly<Config> {
  return loadConfig({
    LOG_LEVEL: 'silent',
    DATA_DIR: tempDir(),
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_POOL_MAX: '5',
    REDIS_URL: TEST_REDIS_URL,
    VAULT_KEYS: TEST_VAULT_KEYS,
    MIGRATE_ON_START: 'false',
    RATE_LIMIT_MAX: '0',
    // Every test file logs in from 127.0.0.1 through one Redis: a per-address login limit would count them all together.
    LOGIN_RATE_LIMIT_MAX: '0',
    // Apps of different test files share one database: none deletes another's runs unless a test asks.
    WORKFLOW_RETENTION_DAYS: '0',
    // One app per test, with objects in its own DATA_DIR: nothing else reads them. Tests of several replicas declare a shared store.
    SINGLE_REPLICA: 'true',
    ...env,
  })
}

export async function buildTestApp(
  env: Record<string, string | undefined> = {},
  overrides: AppOverrides = {},
): Promise<FastifyInstance> {
  const app = await buildApp(testConfig(env), overrides)
  await app.ready()
  return app
}
