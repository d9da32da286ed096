import { Ajv } from 'ajv'
import { CsvError, parse } from 'csv-parse/sync'
import { ValidationError } from '../../platform/errors.js'
import { describeSchemaErrors, type SchemaError } from '../../platform/http/validation.js'
import { mayGrantRole, type Ranked } from '../auth/rank.js'
import { AiUserImportRow, IMPORT_CSV_COLUMNS, IMPORT_MAX_ROWS } from './schema.js'

/** A row that passed every check of its own: what a batch inserts. */
export interface ImportUser {
  row: number
  email: string
  name: string
  role: string
  tag: string | null
  status: 'active' | 'invited' | 'disabled'
}

export type ImportErrorCode = 'VALIDATION_ERROR' | 'ROLE_NOT_ALLOWED' | 'DUPLICATE_IN_FILE' | 'DUPLICATE_EMAIL' | 'DUPLICATE_TAG'

export interface ImportRowError {
  /** 1-based position in the file (in CSV, the first line after the header is row 1). */
  row: number
  email: string | null
  code: ImportErrorCode
  message: string
}

/** A staged row after preparation: either a user to insert or the reason it will not be. */
export type PreparedRow = ImportUser | ImportRowError

export const isRowError = (row: PreparedRow): row is ImportRowError => 'code' in row

// Every problem of a row at once: whoever fixes the file should not need one import per mistake.
const validateRow = new Ajv({ allErrors: true, strict: false, coerceTypes: false }).compile(AiUserImportRow)

/**
 * Parses a CSV import: a header naming columns among IMPORT_CSV_COLUMNS (email and role required),
 * then one user per line. Empty cells count as absent. Parsing stops one row past the limit, so a
 * huge file costs no more than a full one (the body schema then refuses it). A file that is not
 * CSV, or whose header is wrong, is a 400 for the whole request.
 */
export function parseImportCsv(text: string): Array<Record<string, string>> {
  try {
    const records = parse(text, {
      bom: true,
      columns: (header: string[]) => checkedHeader(header),
      skip_empty_lines: true,
      trim: true,
      relax_column_count: true,
      to: IMPORT_MAX_ROWS + 1,
    }) as Array<Record<string, string>>
    return records.map((record) => {
      const row: Record<string, string> = {}
      for (const [key, value] of Object.entries(record)) if (value !== '' && value !== undefined) row[key] = value
      return row
    })
  } catch (err) {
    if (err instanceof ValidationError) throw err
    if (err instanceof CsvError) {
      throw new ValidationError(`the CSV could not be parsed: ${err.message}`.slice(0, 300), [{ field: 'body', message: err.code }])
    }
    throw err
  }
}

function checkedHeader(header: string[]): string[] {
  const columns = header.map((h) => h.trim().toLowerCase())
  const unknown = columns.filter((c) => !(IMPORT_CSV_COLUMNS as readonly string[]).includes(c))
  const missing = ['email', 'role'].filter((c) => !columns.includes(c))
  if (unknown.length > 0 || missing.length > 0 || new Set(columns).size !== columns.length) {
    throw new ValidationError(`the CSV header must name columns among ${IMPORT_CSV_COLUMNS.join(',')}, each once, with email and role`, [
      { field: 'body.header', message: [...unknown.map((c) => `unknown column "${c.slice(0, 40)}"`), ...missing.map((c) => `missing column "${c}"`)].join('; ') || 'repeated column' },
    ])
  }
  return columns
}

function emailOf(raw: unknown): string | null {
  const email = (raw as { email?: unknown } | null)?.email
  return typeof email === 'string' ? email.slice(0, 254) : null
}

/** A row's schema problems, one per field, as "field message; field message". */
function describeProblem(): string {
  const problems = describeSchemaErrors((validateRow.errors ?? []) as SchemaError[], { unknownField: 'is not an importable field' })
  if (problems.length === 0) return 'invalid row'
  return problems
    .map(({ field, message }) => `${(field || 'row').slice(0, 64)} ${message}`)
    .join('; ')
    .slice(0, 500)
}

export interface PrepareOptions {
  /** Who imports: a row may name no role above their rank. */
  importer: Ranked
  /** The status of a row that names none. */
  defaultStatus: ImportUser['status']
}

/**
 * Checks every row on its own (schema, role within the importer's rank), then, among the rows that passed, marks each
 * later row with an email (case-insensitively) or tag seen earlier in the file as DUPLICATE_IN_FILE:
 * the first occurrence wins. Deterministic: the same rows always prepare the same way.
 */
export function prepareRows(rows: readonly unknown[], options: PrepareOptions): PreparedRow[] {
  const emails = new Map<string, number>()
  const tags = new Map<string, number>()
  return rows.map((raw, index): PreparedRow => {
    const row = index + 1
    if (!validateRow(raw)) return { row, email: emailOf(raw), code: 'VALIDATION_ERROR', message: describeProblem() }
    const input = raw as { email: string; name?: string; role: string; tag?: string; status?: ImportUser['status'] }
    if (!mayGrantRole(options.importer, input.role)) {
      return { row, email: input.email, code: 'ROLE_NOT_ALLOWED', message: `the role ${input.role} ranks above the importer's` }
    }
    const key = input.email.toLowerCase()
    const emailFirst = emails.get(key)
    if (emailFirst !== undefined) {
      return { row, email: input.email, code: 'DUPLICATE_IN_FILE', message: `the email already appears in row ${emailFirst}` }
    }
    const tagFirst = input.tag !== undefined ? tags.get(input.tag) : undefined
    if (tagFirst !== undefined) {
      return { row, email: input.email, code: 'DUPLICATE_IN_FILE', message: `the tag already appears in row ${tagFirst}` }
    }
    emails.set(key, row)
    if (input.tag !== undefined) tags.set(input.tag, row)
    return {
      row,
      email: input.email,
      name: input.name ?? '',
      role: input.role,
      tag: input.tag ?? null,
      status: input.status ?? options.defaultStatus,
    }
  })
}
