import { and, asc, desc, eq, gt, gte, inArray, isNull, lt, ne, or, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import { preparedStatements } from '../../platform/db/prepared.js'
import { type Raw, type Row, statement } from '../../platform/db/raw.js'
import type { SortRequest } from '../../platform/http/pagination.js'
import { users } from '../auth/tables.js'
import { DuplicateEmailError, DuplicateTagError } from './errors.js'
import type { ImportRowError, ImportUser } from './import-rows.js'
import { userImportBatches, userInvites } from './tables.js'

export type UserStatus = 'active' | 'invited' | 'disabled' | 'deleted'
export type UserSortField = 'createdAt' | 'name' | 'email'

/** What user administration reads: never the password hash, never the secrets' ciphertexts. */
const columns = {
  id: users.id,
  tenantId: users.tenantId,
  authId: users.authId,
  email: users.email,
  name: users.name,
  role: users.role,
  status: users.status,
  tag: users.tag,
  attributes: users.attributes,
  secretNames: sql<string[]>`coalesce(array(select jsonb_object_keys(${users.secrets}) order by 1), '{}')`.as('secret_names'),
  isSuperuser: users.isSuperuser,
  hasPassword: sql<boolean>`${users.passwordHash} is not null`.as('has_password'),
  version: users.version,
  createdAt: users.createdAt,
  updatedAt: users.updatedAt,
}

export interface AdminUserRow {
  id: string
  tenantId: string
  authId: string
  email: string
  name: string
  role: string
  status: string
  tag: string | null
  attributes: unknown
  secretNames: string[]
  /** For the rank rule; never shown. */
  isSuperuser: boolean
  /** Whether a password is set (never the hash itself). */
  hasPassword: boolean
  version: number
  createdAt: Date
  updatedAt: Date
}

export interface UserListFilter {
  tenantId: string
  q?: string
  email?: string
  role?: string
  status?: UserStatus
  tag?: string
  createdFrom?: Date
  createdTo?: Date
  sort: SortRequest<UserSortField>
  limit: number
  offset: number
}

/**
 * How far past the requested page the total is counted. Counting every match of a big tenant costs
 * as much as reading it; counting to page end + this many is bounded, and a total beyond it is
 * reported as a lower bound (totalExact: false). See docs/architecture.md, Decisions.
 */
export const TOTAL_LOOKAHEAD = 1000

/** `%`, `_` and the escape character itself match literally in a LIKE pattern. */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`)
}

/**
 * The values of a list statement, by placeholder name. Every value is a placeholder, so one
 * statement per shape (which filters are present, the order) serves every request of that shape.
 */
function listValues(filter: UserListFilter): Record<string, unknown> {
  return {
    tenantId: filter.tenantId,
    status: filter.status,
    pattern: filter.q ? `%${escapeLike(filter.q)}%` : undefined,
    email: filter.email,
    role: filter.role,
    tag: filter.tag,
    createdFrom: filter.createdFrom,
    // Inclusive to the millisecond the API shows, though the column keeps microseconds.
    createdBefore: filter.createdTo ? new Date(filter.createdTo.getTime() + 1) : undefined,
    limit: filter.limit,
    offset: filter.offset,
    countLimit: filter.offset + filter.limit + TOTAL_LOOKAHEAD + 1,
  }
}

const OPTIONAL_FILTERS = ['q', 'email', 'role', 'status', 'tag', 'createdFrom', 'createdTo'] as const

/** Which optional filters a request uses, as a bit set: the part of a statement's name that its WHERE clause depends on. */
function filterShape(filter: UserListFilter): number {
  return OPTIONAL_FILTERS.reduce((bits, key, i) => (filter[key] !== undefined ? bits | (1 << i) : bits), 0)
}

function listWhere(filter: UserListFilter): SQL {
  const p = sql.placeholder
  const conditions: SQL[] = [eq(users.tenantId, p('tenantId'))]
  // Deleted users are listed only when asked for by name. The literal (not a parameter) lets the
  // planner match the partial index of live users even in a generic plan.
  conditions.push(filter.status ? eq(users.status, p('status')) : sql`${users.status} <> 'deleted'`)
  if (filter.q) {
    conditions.push(or(sql`${users.name} ilike ${p('pattern')} escape '\\'`, sql`${users.email} ilike ${p('pattern')} escape '\\'`)!)
  }
  if (filter.email) conditions.push(sql`lower(${users.email}) = lower(${p('email')})`)
  if (filter.role) conditions.push(eq(users.role, p('role')))
  if (filter.tag) conditions.push(eq(users.tag, p('tag')))
  if (filter.createdFrom) conditions.push(gte(users.createdAt, p('createdFrom')))
  if (filter.createdTo) conditions.push(lt(users.createdAt, p('createdBefore')))
  return and(...conditions)!
}

/**
 * Every ordering ends in the id, so pages never overlap, and runs the same way as an ascending
 * index on (…, field, id): forward for `asc`, backward for `desc`. (A `desc` index column is
 * NULLS LAST in drizzle, which `ORDER BY … DESC` — NULLS FIRST — cannot use; see migration 0007.)
 */
function listOrder(sort: SortRequest<UserSortField>): SQL[] {
  const dir = sort.direction === 'asc' ? asc : desc
  const column = { createdAt: users.createdAt, name: users.name, email: users.email }[sort.field]
  return [dir(column), dir(users.id)]
}

/**
 * The two statements of a list page, unprepared, with placeholders, and the values to fill them
 * with: the page itself and the capped count. Exported so the EXPLAIN test checks exactly the SQL
 * the endpoint runs.
 */
export function listUsersQueries(executor: Executor, filter: UserListFilter) {
  const where = listWhere(filter)
  const page = executor
    .select(columns)
    .from(users)
    .where(where)
    .orderBy(...listOrder(filter.sort))
    .limit(sql.placeholder('limit'))
    .offset(sql.placeholder('offset'))
  // Ordered by creation time, which every (tenant_id[, status | role], created_at, id) index
  // delivers, so the count walks the index that best fits the filter and stops at the cap.
  // Unordered, a capped count looks cheapest to the planner as a sequential scan that stops early —
  // which it is not when the tenant's rows are spread across the table.
  const matches = executor
    .select({ one: sql`1` })
    .from(users)
    .where(where)
    .orderBy(desc(users.createdAt), desc(users.id))
    .limit(sql.placeholder('countLimit'))
    .as('matches')
  const total = executor.select({ n: sql<number>`count(*)::int` }).from(matches)
  return { page, total, values: listValues(filter) }
}

const prepared = preparedStatements()

/**
 * A statement per shape, built once. On PostgreSQL it is a named prepared statement (parsed and
 * planned once per connection), except for substring searches: their best plan depends on how
 * common the substring is (walk the newest users for a common one, the trigram index for a rare
 * one), which only a plan made for the value knows, so they go unnamed ('' — pg sends them as the
 * unnamed statement, planned on every execution) though drizzle still builds them only once.
 */
function statementsOf(executor: Executor, filter: UserListFilter) {
  const values = listValues(filter)
  const shape = filterShape(filter).toString(16)
  const named = (name: string) => (filter.q ? '' : name)
  const build = () => listUsersQueries(executor, filter)
  const page = prepared(executor, `user_list_${shape}_${filter.sort.field}_${filter.sort.direction}`, (name) => build().page.prepare(named(name)))
  // The count does not depend on the requested order.
  const total = prepared(executor, `user_count_${shape}`, (name) => build().total.prepare(named(name)))
  return { page: () => page.execute(values), total: () => total.execute(values) }
}

/** One page of the listing. */
export function listUsersPage(executor: Executor, filter: UserListFilter): Promise<AdminUserRow[]> {
  return statementsOf(executor, filter).page()
}

/** How many users match, counting no further than page end + TOTAL_LOOKAHEAD + 1. */
export async function countUsers(executor: Executor, filter: UserListFilter): Promise<number> {
  const [counted] = await statementsOf(executor, filter).total()
  return counted?.n ?? 0
}

/** The cap of a page's total: past it, the total is reported as a lower bound. */
export const totalCap = (filter: Pick<UserListFilter, 'offset' | 'limit'>) => filter.offset + filter.limit + TOTAL_LOOKAHEAD

/** What the total depends on (not the order or the page): the key of a known total. */
export function filterKey(filter: UserListFilter): string {
  return JSON.stringify([filter.q, filter.email, filter.role, filter.status, filter.tag, filter.createdFrom?.toISOString(), filter.createdTo?.toISOString()])
}

const FIND_LIVE_USER = statement(
  'user_admin_find_live_user',
  `select id, tenant_id as "tenantId", auth_id as "authId", email, name, role, status, tag, attributes,
          coalesce(array(select jsonb_object_keys(secrets) order by 1), '{}') as "secretNames",
          is_superuser as "isSuperuser", password_hash is not null as "hasPassword",
          version, created_at as "createdAt", updated_at as "updatedAt"
     from users
    where id = $1::uuid and tenant_id = $2::uuid and status <> 'deleted'`,
)

/**
 * A live (not deleted) user of the tenant: the module's hottest read (every GET by id, and the
 * re-read after each write), in plain SQL — drizzle's building and row mapping were a tenth of
 * the process's time on it. The columns are those of `columns` above, named as AdminUserRow names them.
 */
export async function findLiveUser(raw: Raw, tenantId: string, id: string): Promise<AdminUserRow | undefined> {
  const [row] = await raw.query<AdminUserRow & Row>(FIND_LIVE_USER, [id, tenantId])
  return row
}

/** The full row, locked for the rest of the transaction (the read of a read-modify-write). */
export async function lockLiveUser(executor: Executor, tenantId: string, id: string) {
  const [row] = await executor
    .select()
    .from(users)
    .where(and(eq(users.id, id), eq(users.tenantId, tenantId), ne(users.status, 'deleted')))
    .for('update')
  return row
}

export const ADMIN_ROLES = ['admin', 'super_admin'] as const

/**
 * Serializes changes to who administers a tenant: taken first by every transaction that may demote,
 * disable or delete an admin, so two of them cannot each leave the other as the "last" admin.
 */
export async function lockTenantAdmins(executor: Executor, tenantId: string): Promise<void> {
  await executor.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`user_admin:admins:${tenantId}`}, 0))`)
}

export async function countActiveAdmins(executor: Executor, tenantId: string, exceptId?: string): Promise<number> {
  const conditions = [eq(users.tenantId, tenantId), eq(users.status, 'active'), inArray(users.role, [...ADMIN_ROLES])]
  if (exceptId) conditions.push(ne(users.id, exceptId))
  const [row] = await executor
    .select({ n: sql<number>`count(*)::int` })
    .from(users)
    .where(and(...conditions))
  return row?.n ?? 0
}

/** A unique violation of the tenant's email or tag index, as the API's conflict. */
function conflictOf(err: unknown): Error | undefined {
  const cause = (err as { cause?: unknown }).cause ?? err
  const { code, constraint } = cause as { code?: string; constraint?: string }
  if (code !== '23505') return undefined
  if (constraint === 'users_tenant_email_key') return new DuplicateEmailError()
  if (constraint === 'users_tenant_tag_key') return new DuplicateTagError()
  return undefined
}

async function mapConflicts<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    throw conflictOf(err) ?? err
  }
}

export interface NewAdminUser {
  id: string
  tenantId: string
  authId: string
  email: string
  name: string
  role: string
  status: string
  tag: string | null
  attributes: Record<string, unknown>
  secrets: Record<string, string>
}

/** Inserts the user; the unique indexes decide duplicates (DuplicateEmailError / DuplicateTagError), never a prior read. */
export async function insertUser(executor: Executor, user: NewAdminUser): Promise<void> {
  await mapConflicts(() => executor.insert(users).values(user))
}

export interface UserChanges {
  email?: string
  name?: string
  role?: string
  status?: string
  tag?: string | null
  attributes?: Record<string, unknown>
  secrets?: Record<string, string>
}

export async function updateUser(executor: Executor, id: string, changes: UserChanges): Promise<void> {
  await mapConflicts(() =>
    executor
      .update(users)
      .set({ ...changes, version: sql`${users.version} + 1`, updatedAt: sql`now()` })
      .where(eq(users.id, id)),
  )
}

// ---- invites ---------------------------------------------------------------------------------

export type InvitePurpose = 'invite' | 'reset'

export async function insertInvite(
  executor: Executor,
  invite: { userId: string; tokenHash: string; expiresAt: Date; purpose: InvitePurpose },
): Promise<void> {
  await executor.insert(userInvites).values(invite)
}

/**
 * Whether an admin ever reset the user's credentials: such a user had a password even when none is
 * set now, and must not be turned back into an invited user (whose invite the admin would hold).
 */
export async function hasCredentialResets(executor: Executor, userId: string): Promise<boolean> {
  const [row] = await executor
    .select({ one: sql`1` })
    .from(userInvites)
    .where(and(eq(userInvites.userId, userId), eq(userInvites.purpose, 'reset')))
    .limit(1)
  return row !== undefined
}

/** A credential reset: the password is gone until the user sets a new one with their reset token. */
export async function clearPassword(executor: Executor, id: string): Promise<void> {
  await executor
    .update(users)
    .set({ passwordHash: null, version: sql`${users.version} + 1`, updatedAt: sql`now()` })
    .where(eq(users.id, id))
}

/** The unused, unexpired invite with this token hash, locked; with its user's id. */
export async function lockOpenInvite(executor: Executor, tokenHash: string) {
  const [row] = await executor
    .select()
    .from(userInvites)
    .where(and(eq(userInvites.tokenHash, tokenHash), isNull(userInvites.usedAt), gt(userInvites.expiresAt, sql`now()`)))
    .for('update')
  return row
}

export async function closeInvitesOf(executor: Executor, userId: string): Promise<void> {
  await executor
    .update(userInvites)
    .set({ usedAt: sql`now()` })
    .where(and(eq(userInvites.userId, userId), isNull(userInvites.usedAt)))
}

/**
 * Sets the first password of a user without one and makes them active; false when the user cannot
 * take it. An invite is for an invited user; a reset token for an active user whose credentials an
 * admin reset. Neither ever replaces a password that is set: that would be a takeover.
 */
export async function activateWithPassword(executor: Executor, userId: string, passwordHash: string, purpose: InvitePurpose): Promise<boolean> {
  const rows = await executor
    .update(users)
    .set({ passwordHash, status: 'active', version: sql`${users.version} + 1`, updatedAt: sql`now()` })
    .where(and(eq(users.id, userId), eq(users.status, purpose === 'invite' ? 'invited' : 'active'), isNull(users.passwordHash)))
    .returning({ id: users.id })
  return rows.length === 1
}

// ---- bulk import -----------------------------------------------------------------------------

/**
 * Claims a batch of an import for this transaction. A concurrent run of the same batch waits here
 * until the first commits, then finds the claim taken (false); after a rollback the claim is free again.
 */
export async function claimImportBatch(executor: Executor, batch: { importId: string; batch: number; tenantId: string }): Promise<boolean> {
  const rows = await executor.insert(userImportBatches).values(batch).onConflictDoNothing().returning({ batch: userImportBatches.batch })
  return rows.length === 1
}

/**
 * One multi-row insert for the whole batch. Rows whose email or tag is already taken in the tenant
 * are skipped by the unique indexes (never a prior read); answers the emails inserted, as given.
 * Auth ids are fresh UUIDs: embedded mode's issuer names its users by them.
 */
export async function insertImportedUsers(executor: Executor, tenantId: string, batch: readonly ImportUser[]): Promise<Set<string>> {
  if (batch.length === 0) return new Set()
  const column = <K extends keyof ImportUser>(key: K) => sql.param(batch.map((u) => u[key]))
  const result = await executor.execute<{ email: string }>(sql`
    insert into ${users} (tenant_id, auth_id, email, name, role, status, tag)
    select ${tenantId}::uuid, gen_random_uuid()::text, u.email, u.name, u.role, u.status, u.tag
      from unnest(${column('email')}::text[], ${column('name')}::text[], ${column('role')}::text[],
                  ${column('status')}::text[], ${column('tag')}::text[]) as u(email, name, role, status, tag)
    on conflict do nothing
    returning email`)
  return new Set(result.rows.map((r) => r.email))
}

/** Which of these emails a live user of the tenant has, case-insensitively; answered as given. */
export async function liveEmailsAmong(executor: Executor, tenantId: string, emails: readonly string[]): Promise<Set<string>> {
  if (emails.length === 0) return new Set()
  const result = await executor.execute<{ email: string }>(sql`
    select x.email from unnest(${sql.param([...emails])}::text[]) as x(email)
     where exists (select 1 from ${users} u
                    where u.tenant_id = ${tenantId}::uuid and u.status <> 'deleted' and lower(u.email) = lower(x.email))`)
  return new Set(result.rows.map((r) => r.email))
}

/** Deletes an import's ledger (its per-batch outcomes and error report) when its run is purged. */
export async function deleteImportBatches(executor: Executor, tenantId: string, importId: string): Promise<void> {
  await executor
    .delete(userImportBatches)
    .where(and(eq(userImportBatches.importId, importId), eq(userImportBatches.tenantId, tenantId)))
}

/** Samples the users table for the planner (ANALYZE takes no lock that blocks reads or writes). */
export async function analyzeUsers(executor: Executor): Promise<void> {
  await executor.execute(sql`analyze ${users}`)
}

export async function recordImportBatch(
  executor: Executor,
  key: { importId: string; batch: number },
  outcome: { created: number; errors: ImportRowError[] },
): Promise<void> {
  await executor
    .update(userImportBatches)
    .set(outcome)
    .where(and(eq(userImportBatches.importId, key.importId), eq(userImportBatches.batch, key.batch)))
}

export async function findImportBatch(executor: Executor, key: { importId: string; batch: number }) {
  const [row] = await executor
    .select({ created: userImportBatches.created, failed: sql<number>`jsonb_array_length(${userImportBatches.errors})::int` })
    .from(userImportBatches)
    .where(and(eq(userImportBatches.importId, key.importId), eq(userImportBatches.batch, key.batch)))
  return row
}

/**
 * Claims every batch of the import that no batch activity has claimed yet, as done with nothing
 * created: no batch inserts anything afterwards. A batch whose transaction is in flight is waited
 * for (the insert conflicts with its uncommitted claim), so the ledger is final once this returns.
 */
export async function closeImportLedger(executor: Executor, ref: { importId: string; tenantId: string; batches: number }): Promise<void> {
  if (ref.batches <= 0) return
  await executor.execute(sql`
    insert into ${userImportBatches} (import_id, batch, tenant_id)
    select ${ref.importId}::uuid, b, ${ref.tenantId}::uuid from generate_series(0, ${ref.batches - 1}::int) b
    on conflict do nothing`)
}

/** Users created and rows refused by code, over every batch of the import. */
export async function importTotals(executor: Executor, importId: string): Promise<{ created: number; failedByCode: Record<string, number> }> {
  const [sums] = await executor
    .select({ created: sql<number>`coalesce(sum(${userImportBatches.created}), 0)::int` })
    .from(userImportBatches)
    .where(eq(userImportBatches.importId, importId))
  const codes = await executor.execute<{ code: string; n: number }>(sql`
    select e->>'code' as code, count(*)::int as n
      from ${userImportBatches} b, jsonb_array_elements(b.errors) e
     where b.import_id = ${importId}::uuid
     group by 1`)
  return { created: sums?.created ?? 0, failedByCode: Object.fromEntries(codes.rows.map((r) => [r.code, r.n])) }
}

/** The import's refused rows in row order, a page at a time. */
export async function listImportErrors(executor: Executor, importId: string, page: { limit: number; offset: number }): Promise<ImportRowError[]> {
  const result = await executor.execute<{ e: ImportRowError }>(sql`
    select e from ${userImportBatches} b, jsonb_array_elements(b.errors) with ordinality as x(e, ord)
     where b.import_id = ${importId}::uuid
     order by b.batch, x.ord
     limit ${page.limit} offset ${page.offset}`)
  return result.rows.map((r) => r.e)
}
