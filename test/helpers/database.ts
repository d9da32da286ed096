import pg from 'pg'
import { ADMIN_DATABASE_URL } from './env.js'

/**
 * A database of a test file's own, beside the run's shared one: for what needs a database nobody
 * else has touched (migrations from nothing, plans on never-analysed tables). Create it in
 * beforeAll, drop it in afterAll.
 */
export function freshDatabase(prefix: string) {
  const name = `modelplane_${prefix}_${process.pid}_${Date.now()}`
  const url = new URL(ADMIN_DATABASE_URL)
  url.pathname = `/${name}`
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL })
    await client.connect()
    try {
      await client.query(statement)
    } finally {
      await client.end()
    }
  }
  return {
    name,
    url: url.toString(),
    create: () => admin(`create database "${name}"`),
    drop: () => admin(`drop database if exists "${name}" with (force)`),
  }
}
