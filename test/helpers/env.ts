/**
 * Where the tests find their servers. Defaults match a developer machine and CI
 * (PostgreSQL and Redis on localhost); TEST_PG_ADMIN_URL and TEST_REDIS_URL point elsewhere.
 */
export const ADMIN_DATABASE_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
// One database per test run (the global setup's pid), so concurrent runs never drop each other's.
export const TEST_DATABASE_NAME = process.env.TEST_PG_DATABASE ?? `modelplane_test_${process.pid}`
export const TEST_DATABASE_URL = (() => {
  const url = new URL(ADMIN_DATABASE_URL)
  url.pathname = `/${TEST_DATABASE_NAME}`
  return url.toString()
})()
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0'
/** A fixed test key ring: newest first. Never used outside tests. */
export const TEST_VAULT_KEYS = `t2:${Buffer.alloc(32, 2).toString('base64')},t1:${Buffer.alloc(32, 1).toString('base64')}`
