import type { DatabaseHandle } from '../../../platform/db/client.js'

/**
 * Plain parameterised SQL for the hub's hot paths, bypassing the query builder: on PostgreSQL each
 * statement is a named prepared statement (parsed and planned once per pooled connection), on
 * PGlite a plain query. Under load the builder and one round trip per small statement were most of
 * the process's CPU time (see bench/RESULTS.md); these statements do each step in one round trip.
 *
 * Parameters are typed in the SQL text (`$1::text`) so both drivers agree on them; byte arrays in
 * arrays travel as hex text and are decoded by the server.
 */
export interface Statement {
  /** Unique per text: a pooled connection keeps the prepared statement under this name. */
  readonly name: string
  readonly text: string
}

export type Row = Record<string, unknown>

export interface Raw {
  query<T extends Row = Row>(statement: Statement, values: unknown[]): Promise<T[]>
}

const names = new Map<string, string>()

/** Declares a statement; the name is checked for uniqueness so two texts never share one. */
export function statement(name: string, text: string): Statement {
  const full = `modelplane_hub_${name}`
  const known = names.get(full)
  if (known !== undefined && known !== text) throw new Error(`statement ${full} declared twice with different text`)
  names.set(full, text)
  return { name: full, text }
}

export function rawExecutor(database: DatabaseHandle): Raw {
  const { pool, pglite } = database
  if (pool) {
    return {
      async query<T extends Row>(stmt: Statement, values: unknown[]): Promise<T[]> {
        const result = await pool.query<T>({ name: stmt.name, text: stmt.text, values })
        return result.rows
      },
    }
  }
  if (pglite) {
    return {
      async query<T extends Row>(stmt: Statement, values: unknown[]): Promise<T[]> {
        const result = await pglite.query<T>(stmt.text, values)
        return result.rows
      },
    }
  }
  throw new Error('the workflow hub needs a PostgreSQL pool or PGlite')
}

/** `bytea[]` as both drivers send it: hex strings, decoded with `decode(x, 'hex')`. */
export function hexArray(values: Uint8Array[]): string[] {
  return values.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'))
}
