import { and, count, desc, eq, gt, gte, isNull, lte, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../platform/db/client.js'
import {
  type ApiKeyRow,
  apiKeys,
  type AuditRow,
  auditLog,
  revokedTokens,
  rolePermissions,
  roles,
  type SigningKeyRow,
  signingKeys,
  type TenantRow,
  tenants,
  userGrants,
  type UserRow,
  users,
} from './tables.js'

// ---- roles and grants -------------------------------------------------------------------

export async function seedRoles(
  executor: Executor,
  seeded: Record<string, { description: string; permissions: readonly string[] }>,
): Promise<void> {
  const roleRows = Object.entries(seeded).map(([name, r]) => ({ name, description: r.description }))
  await executor.insert(roles).values(roleRows).onConflictDoNothing()
  const grants = Object.entries(seeded).flatMap(([role, r]) => r.permissions.map((permission) => ({ role, permission })))
  await executor.insert(rolePermissions).values(grants).onConflictDoNothing()
}

export async function roleGrants(executor: Executor): Promise<Array<{ role: string; permission: string }>> {
  return executor.select().from(rolePermissions)
}

export async function userExtraGrants(executor: Executor, userId: string): Promise<string[]> {
  const rows = await executor
    .select({ permission: userGrants.permission })
    .from(userGrants)
    .where(eq(userGrants.userId, userId))
  return rows.map((r) => r.permission)
}

export async function addUserGrant(executor: Executor, userId: string, permission: string): Promise<void> {
  await executor.insert(userGrants).values({ userId, permission }).onConflictDoNothing()
}

/** False when the user did not have this extra grant. */
export async function removeUserGrant(executor: Executor, userId: string, permission: string): Promise<boolean> {
  const rows = await executor
    .delete(userGrants)
    .where(and(eq(userGrants.userId, userId), eq(userGrants.permission, permission)))
    .returning({ permission: userGrants.permission })
  return rows.length === 1
}

// ---- tenants -----------------------------------------------------------------------------

export async function findTenantByRealm(executor: Executor, realm: string): Promise<TenantRow | undefined> {
  const [row] = await executor.select().from(tenants).where(eq(tenants.realm, realm)).limit(1)
  return row
}

export async function findTenantById(executor: Executor, id: string): Promise<TenantRow | undefined> {
  const [row] = await executor.select().from(tenants).where(eq(tenants.id, id)).limit(1)
  return row
}

export async function findTenantByIdForUpdate(executor: Executor, id: string): Promise<TenantRow | undefined> {
  const [row] = await executor.select().from(tenants).where(eq(tenants.id, id)).for('update')
  return row
}

/** The tenant service principals act in: `local` when it exists, else the oldest. */
export async function findDefaultTenant(executor: Executor): Promise<TenantRow | undefined> {
  const [row] = await executor
    .select()
    .from(tenants)
    .orderBy(sql`${tenants.realm} = 'local' desc`, tenants.createdAt)
    .limit(1)
  return row
}

/** Inserts the tenant unless its realm exists; returns the row either way. */
export async function ensureTenant(executor: Executor, realm: string, displayName: string): Promise<TenantRow> {
  await executor.insert(tenants).values({ realm, displayName }).onConflictDoNothing()
  return (await findTenantByRealm(executor, realm))!
}

export async function insertTenant(
  executor: Executor,
  values: { realm: string; displayName: string },
): Promise<TenantRow | undefined> {
  const [row] = await executor.insert(tenants).values(values).onConflictDoNothing().returning()
  return row
}

/** Takes back a tenant whose creation could not be finished; refused by the database once anything refers to it. */
export async function deleteTenant(executor: Executor, id: string): Promise<void> {
  await executor.delete(tenants).where(eq(tenants.id, id))
}

export async function updateTenant(
  executor: Executor,
  id: string,
  changes: { displayName?: string; status?: string },
): Promise<TenantRow> {
  const [row] = await executor
    .update(tenants)
    .set({ ...changes, updatedAt: sql`now()` })
    .where(eq(tenants.id, id))
    .returning()
  return row!
}

export async function listTenants(
  executor: Executor,
  query: { onlyId?: string; limit: number; offset: number },
): Promise<{ rows: TenantRow[]; total: number }> {
  const where = query.onlyId ? eq(tenants.id, query.onlyId) : undefined
  const [rows, [totalRow]] = await Promise.all([
    executor.select().from(tenants).where(where).orderBy(tenants.realm).limit(query.limit).offset(query.offset),
    executor.select({ n: count() }).from(tenants).where(where),
  ])
  return { rows, total: totalRow?.n ?? 0 }
}

// ---- users -------------------------------------------------------------------------------

export async function findUserById(executor: Executor, id: string): Promise<UserRow | undefined> {
  const [row] = await executor.select().from(users).where(eq(users.id, id)).limit(1)
  return row
}

export async function findUserByAuthId(executor: Executor, tenantId: string, authId: string): Promise<UserRow | undefined> {
  const [row] = await executor
    .select()
    .from(users)
    .where(and(eq(users.tenantId, tenantId), eq(users.authId, authId)))
    .limit(1)
  return row
}

/** Served by the partial unique index on (tenant_id, lower(email)). */
export async function findLiveUserByEmail(executor: Executor, tenantId: string, email: string): Promise<UserRow | undefined> {
  const [row] = await executor
    .select()
    .from(users)
    .where(and(eq(users.tenantId, tenantId), sql`lower(${users.email}) = lower(${email})`, sql`${users.status} <> 'deleted'`))
    .limit(1)
  return row
}

export interface NewUser {
  tenantId: string
  authId: string
  email: string
  name: string
  role: string
  status?: string
  isSuperuser?: boolean
  passwordHash?: string | null
}

/** Undefined when the (tenant, auth id) or the live email is taken. */
export async function insertUser(executor: Executor, user: NewUser): Promise<UserRow | undefined> {
  const [row] = await executor.insert(users).values(user).onConflictDoNothing().returning()
  return row
}

export async function updateUserIdentity(
  executor: Executor,
  id: string,
  changes: { email: string; name: string; role: string; status?: string },
): Promise<UserRow> {
  const [row] = await executor
    .update(users)
    .set({ ...changes, updatedAt: sql`now()` })
    .where(eq(users.id, id))
    .returning()
  return row!
}

/**
 * Replaces the password of an active user; false when the user is not (or no longer) active.
 * `updated_at` stays: it is the user resource's ETag, and the password is no part of that resource.
 */
export async function setPasswordHash(executor: Executor, userId: string, passwordHash: string): Promise<boolean> {
  const rows = await executor
    .update(users)
    .set({ passwordHash })
    .where(and(eq(users.id, userId), eq(users.status, 'active')))
    .returning({ id: users.id })
  return rows.length === 1
}

/**
 * Ends every session of the user: tokens issued before the returned instant are refused. `iat` has
 * whole seconds, so the cut-off is the next whole second: a token minted in the same second as
 * the change is refused too, rather than one minted just before it surviving.
 */
export async function endSessionsOf(executor: Executor, userId: string): Promise<Date | undefined> {
  const [row] = await executor
    .update(users)
    .set({ sessionsValidAfter: sql`date_trunc('second', now()) + interval '1 second'` })
    .where(eq(users.id, userId))
    .returning({ sessionsValidAfter: users.sessionsValidAfter })
  return row?.sessionsValidAfter ?? undefined
}

// ---- API keys ----------------------------------------------------------------------------

export async function insertApiKey(
  executor: Executor,
  key: { tenantId: string; userId: string; name: string; prefix: string; keyHash: string; scopes: string[]; expiresAt: Date | null },
): Promise<ApiKeyRow> {
  const [row] = await executor.insert(apiKeys).values(key).returning()
  return row!
}

export async function findApiKeyByPrefix(executor: Executor, prefix: string): Promise<ApiKeyRow | undefined> {
  const [row] = await executor.select().from(apiKeys).where(eq(apiKeys.prefix, prefix)).limit(1)
  return row
}

export async function listLiveApiKeys(
  executor: Executor,
  query: { userId: string; limit: number; offset: number },
): Promise<{ rows: ApiKeyRow[]; total: number }> {
  const where = and(eq(apiKeys.userId, query.userId), isNull(apiKeys.revokedAt))
  const [rows, [totalRow]] = await Promise.all([
    executor.select().from(apiKeys).where(where).orderBy(desc(apiKeys.createdAt)).limit(query.limit).offset(query.offset),
    executor.select({ n: count() }).from(apiKeys).where(where),
  ])
  return { rows, total: totalRow?.n ?? 0 }
}

/** Revokes a live key of this user; undefined when there is none (unknown, another user's, or already revoked). */
export async function revokeApiKey(executor: Executor, id: string, userId: string): Promise<ApiKeyRow | undefined> {
  const [row] = await executor
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(apiKeys.id, id), eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt)))
    .returning()
  return row
}

/** Revokes every live key of a user (the user was deleted or disabled); returns the revoked keys' ids. */
export async function revokeApiKeysOfUser(executor: Executor, userId: string): Promise<string[]> {
  const rows = await executor
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id })
  return rows.map((r) => r.id)
}

export async function touchApiKey(executor: Executor, id: string): Promise<void> {
  await executor.update(apiKeys).set({ lastUsedAt: sql`now()` }).where(eq(apiKeys.id, id))
}

// ---- revoked tokens ----------------------------------------------------------------------

/** True when this call revoked it; false when it was revoked already (a refresh token used twice). */
export async function revokeToken(executor: Executor, jti: string, expiresAt: Date): Promise<boolean> {
  const rows = await executor
    .insert(revokedTokens)
    .values({ jti, expiresAt })
    .onConflictDoNothing()
    .returning({ jti: revokedTokens.jti })
  return rows.length === 1
}

export async function unexpiredRevokedTokens(executor: Executor): Promise<Array<{ jti: string; expiresAt: Date }>> {
  return executor.select().from(revokedTokens).where(gt(revokedTokens.expiresAt, sql`now()`))
}

export async function deleteExpiredRevokedTokens(executor: Executor): Promise<void> {
  await executor.delete(revokedTokens).where(lte(revokedTokens.expiresAt, sql`now()`))
}

// ---- signing keys ------------------------------------------------------------------------

export async function findActiveSigningKey(executor: Executor, realm: string): Promise<SigningKeyRow | undefined> {
  const [row] = await executor
    .select()
    .from(signingKeys)
    .where(and(eq(signingKeys.realm, realm), isNull(signingKeys.retiredAt)))
    .limit(1)
  return row
}

/** Keys whose tokens may still be live: the active one and those retired less than `graceSeconds` ago. */
export async function publishedSigningKeys(executor: Executor, realm: string, graceSeconds: number): Promise<SigningKeyRow[]> {
  return executor
    .select()
    .from(signingKeys)
    .where(
      and(
        eq(signingKeys.realm, realm),
        sql`(${signingKeys.retiredAt} is null or ${signingKeys.retiredAt} > now() - ${graceSeconds} * interval '1 second')`,
      ),
    )
    .orderBy(desc(signingKeys.createdAt))
}

/** False when the realm got an active key from someone else first. */
export async function insertSigningKey(
  executor: Executor,
  key: { kid: string; realm: string; alg: string; publicJwk: unknown; privateJwkCiphertext: string },
): Promise<boolean> {
  const rows = await executor.insert(signingKeys).values(key).onConflictDoNothing().returning({ kid: signingKeys.kid })
  return rows.length === 1
}

// ---- audit -------------------------------------------------------------------------------

export type NewAuditEntry = Omit<AuditRow, 'id' | 'createdAt' | 'clientRequestId' | 'actorTenantId'> &
  Partial<Pick<AuditRow, 'clientRequestId' | 'actorTenantId'>>

export async function insertAuditEntry(executor: Executor, entry: NewAuditEntry): Promise<void> {
  await executor.insert(auditLog).values(entry)
}

export interface AuditFilter {
  tenantId?: string
  actorId?: string
  action?: string
  resourceKind?: string
  createdFrom?: Date
  createdTo?: Date
  limit: number
  offset: number
}

export async function listAuditEntries(executor: Executor, filter: AuditFilter): Promise<{ rows: AuditRow[]; total: number }> {
  const conditions: SQL[] = []
  if (filter.tenantId) conditions.push(eq(auditLog.tenantId, filter.tenantId))
  if (filter.actorId) conditions.push(eq(auditLog.actorId, filter.actorId))
  if (filter.action) conditions.push(eq(auditLog.action, filter.action))
  if (filter.resourceKind) conditions.push(eq(auditLog.resourceKind, filter.resourceKind))
  if (filter.createdFrom) conditions.push(gte(auditLog.createdAt, filter.createdFrom))
  if (filter.createdTo) conditions.push(lte(auditLog.createdAt, filter.createdTo))
  const where = conditions.length > 0 ? and(...conditions) : undefined
  const [rows, [totalRow]] = await Promise.all([
    executor
      .select()
      .from(auditLog)
      .where(where)
      .orderBy(desc(auditLog.createdAt), desc(auditLog.id))
      .limit(filter.limit)
      .offset(filter.offset),
    executor.select({ n: count() }).from(auditLog).where(where),
  ])
  return { rows, total: totalRow?.n ?? 0 }
}
