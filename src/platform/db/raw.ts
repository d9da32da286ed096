import type { DatabaseHandle } from './client.js'

/**
 * Plain parameterised SQL for a few hot paths, bypassing the query builder: on PostgreSQL each
 * statement is a named prepared statement (parsed and planned once per pooled connection), on
 * PGlite a plain query. Use it where a profile shows the builder's cost; everything else stays in
 * drizzle.
 *
 * Parameters are typed in the SQL text (`$1::text`) so both drivers agree on them.
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

/** Every statement declared so far (the modules that declare them must have been imported). */
export function declaredStatements(): Statement[] {
  return [...names].map(([name, text]) => ({ name, text }))
}

/** Declares a statement; the name is checked for uniqueness so two texts never share one. */
export function statement(name: string, text: string): Statement {
  if (Buffer.byteLength(name) > 63) throw new Error(`statement name ${name} is longer than 63 bytes`)
  const known = names.get(name)
  if (known !== undefined && known !== text) throw new Error(`statement ${name} declared twice with different text`)
  names.set(name, text)
  return { name, text }
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
  throw new Error('plain SQL needs a PostgreSQL pool or PGlite')
}
