import type { Executor } from './client.js'

/**
 * Named prepared statements for a module's hot queries, built once per database handle and name.
 *
 * A statement built with `sql.placeholder(…)` for every value and prepared under a name is parsed
 * and planned by PostgreSQL once per connection instead of once per request (planning a user-list
 * page cost more than executing it), and drizzle builds its SQL text once instead of per request.
 * PGlite ignores the name and runs the same text.
 *
 * The name identifies the SQL text on every pooled connection, so it must change whenever the
 * text does: derive it from the statement's shape (which optional clauses it has, its order), never
 * from values. PostgreSQL keeps 63 bytes of a name; longer names are refused here rather than
 * silently truncated into a collision.
 *
 * Behind PgBouncer in transaction mode, named statements need its `max_prepared_statements`
 * (1.21 or later); see docs/architecture.md.
 */
export function preparedStatements() {
  const byExecutor = new WeakMap<Executor, Map<string, unknown>>()
  return function prepared<Q>(executor: Executor, name: string, build: (name: string) => Q): Q {
    if (Buffer.byteLength(name) > 63) throw new Error(`prepared statement name "${name}" is longer than 63 bytes`)
    let statements = byExecutor.get(executor)
    if (!statements) {
      statements = new Map()
      byExecutor.set(executor, statements)
    }
    let statement = statements.get(name) as Q | undefined
    if (!statement) {
      statement = build(name)
      statements.set(name, statement)
    }
    return statement
  }
}
