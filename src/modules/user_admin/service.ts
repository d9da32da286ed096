import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Principal } from '../../platform/auth/principal.js'
import { type Database, type Executor, transaction } from '../../platform/db/client.js'
import type { Raw } from '../../platform/db/raw.js'
import { ValidationError } from '../../platform/errors.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { pageRequest, parseSort } from '../../platform/http/pagination.js'
import type { Vault } from '../../platform/vault.js'
import type { AuthService, InitialAdminGrant, InitialAdminInput, KeycloakClient } from '../auth/index.js'
import { assertMayActOn, assertMayGrant } from '../auth/rank.js'
import * as crud from './crud.js'
import { ADMIN_ROLES, type AdminUserRow, type InvitePurpose, type UserStatus } from './crud.js'
import {
  InvalidInviteError,
  InviteUnavailableError,
  LastAdminError,
  UserHasPasswordError,
  UserInvitedError,
  UserNotFoundError,
  UserNotInvitedError,
} from './errors.js'
import { LIMITS, SORT_FIELDS } from './schema.js'
import type { ListTotals } from './totals.js'

const INVITE_TTL_MS = 7 * 86_400_000
/** A reset token opens an existing account: it lives shorter than an invite. */
const RESET_TTL_MS = 3 * 86_400_000

export interface UserAdminDeps {
  db: Database
  /** The same database, for the statements kept in plain SQL. */
  raw: Raw
  vault: Pick<Vault, 'encrypt'>
  log: Logger
  mode: 'embedded' | 'keycloak'
  auth: Pick<
    AuthService,
    'invalidateUser' | 'revokeApiKeysOfUser' | 'endSessionsOfUser' | 'hashPassword' | 'addUserGrant' | 'removeUserGrant' | 'extraGrantsOf' | 'getTenant'
  >
  keycloak?: Pick<KeycloakClient, 'createUser' | 'updateUser' | 'deleteUser' | 'resetCredentials'>
  totals: Pick<ListTotals, 'get' | 'forget'>
}

type WritableStatus = 'active' | 'invited' | 'disabled'

export interface AiUserCreateInput {
  email: string
  name?: string
  role: string
  tag?: string
  status?: WritableStatus
  attributes?: Record<string, unknown>
  secrets?: Record<string, string>
}

export interface AiUserUpdateInput {
  email?: string
  name?: string
  role?: string
  tag?: string | null
  status?: WritableStatus
  attributes?: Record<string, unknown>
  secrets?: Record<string, string | null>
}

export interface AiUserListInput {
  q?: string
  email?: string
  role?: string
  status?: UserStatus
  tag?: string
  createdFrom?: string
  createdTo?: string
  sort?: string
  page?: number
  limit?: number
}

export interface AiUserView {
  id: string
  email: string
  name: string
  role: string
  status: UserStatus
  tag: string | null
  attributes: Record<string, unknown>
  secretNames: string[]
  createdAt: string
  updatedAt: string
}

/**
 * What a credential reset answers, once: embedded mode, the reset token for POST
 * /v1/auth/accept-invite; Keycloak mode, a temporary password Keycloak makes the user change.
 */
export interface CredentialResetView {
  userId: string
  revokedApiKeys: number
  token?: string
  expiresAt?: string
  temporaryPassword?: string
}

export function userView(row: AdminUserRow): AiUserView {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: row.role,
    status: row.status as UserStatus,
    tag: row.tag,
    attributes: (row.attributes ?? {}) as Record<string, unknown>,
    secretNames: row.secretNames,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

const etagOfRow = (row: { updatedAt: Date; version: number }) => etagOf(row.updatedAt, row.version)
const sha256Hex = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex')
const isAdminRole = (role: string) => (ADMIN_ROLES as readonly string[]).includes(role)
const secretContext = (userId: string, name: string) => `user:${userId}:secret:${name}`

/** Nesting depth of a JSON value, stopping as soon as it passes `limit`. */
function depthOf(value: unknown, limit: number, depth = 0): number {
  if (depth > limit || value === null || typeof value !== 'object') return depth
  let deepest = depth + 1
  for (const child of Object.values(value as object)) {
    deepest = Math.max(deepest, depthOf(child, limit, depth + 1))
    if (deepest > limit) break
  }
  return deepest
}

/** The JSON-schema checks cannot bound a value's size and depth; these do, naming the key. */
function assertAttributeValues(attributes: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null) continue
    const json = JSON.stringify(value) ?? ''
    // jsonb cannot hold NUL in a string: a 400 here instead of an error from the database.
    if (json.includes('\\u0000')) {
      throw new ValidationError(`attribute "${key}" contains a NUL character`, [{ field: `body.attributes.${key}`, message: 'no NUL characters' }])
    }
    const bytes = Buffer.byteLength(json, 'utf8')
    if (bytes > LIMITS.attributeValueBytes) {
      throw new ValidationError(`attribute "${key}" is larger than ${LIMITS.attributeValueBytes} bytes`, [
        { field: `body.attributes.${key}`, message: `at most ${LIMITS.attributeValueBytes} bytes of JSON` },
      ])
    }
    if (depthOf(value, LIMITS.attributeDepth) > LIMITS.attributeDepth) {
      throw new ValidationError(`attribute "${key}" is nested deeper than ${LIMITS.attributeDepth}`, [
        { field: `body.attributes.${key}`, message: `nested at most ${LIMITS.attributeDepth} deep` },
      ])
    }
  }
}

function assertAttributeTotals(merged: Record<string, unknown>): void {
  const keys = Object.keys(merged).length
  const bytes = Buffer.byteLength(JSON.stringify(merged), 'utf8')
  if (keys > LIMITS.attributeKeys || bytes > LIMITS.attributesTotalBytes) {
    throw new ValidationError(
      `attributes may hold at most ${LIMITS.attributeKeys} keys and ${LIMITS.attributesTotalBytes} bytes`,
      [{ field: 'body.attributes', message: `${keys} keys, ${bytes} bytes after the merge` }],
    )
  }
}

/**
 * Key-by-key merge: a value replaces, null removes. Built through a Map, so a key such as
 * "__proto__" can only ever be an own property.
 */
function mergeKeys<T>(current: Record<string, T>, changes: Record<string, T | null>, seal: (key: string, value: T) => T): Record<string, T> {
  const merged = new Map(Object.entries(current))
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) merged.delete(key)
    else merged.set(key, seal(key, value))
  }
  return Object.fromEntries(merged)
}

export function createUserAdminService(deps: UserAdminDeps) {
  const { db, raw, vault, log, mode, auth, keycloak, totals } = deps

  async function liveUser(principal: Principal, id: string): Promise<AdminUserRow> {
    const row = await crud.findLiveUser(raw, principal.tenantId, id)
    if (!row) throw new UserNotFoundError()
    return row
  }

  async function reread(principal: Principal, id: string) {
    const row = await liveUser(principal, id)
    return { user: userView(row), etag: etagOfRow(row) }
  }

  async function list(principal: Principal, query: AiUserListInput) {
    const page = pageRequest(query)
    const sort = parseSort(query.sort, SORT_FIELDS, { field: 'createdAt', direction: 'desc' })
    const filter: crud.UserListFilter = {
      tenantId: principal.tenantId,
      q: query.q,
      email: query.email,
      role: query.role,
      status: query.status,
      tag: query.tag,
      createdFrom: query.createdFrom ? new Date(query.createdFrom) : undefined,
      createdTo: query.createdTo ? new Date(query.createdTo) : undefined,
      sort,
      limit: page.limit,
      offset: page.offset,
    }
    const pageRows = crud.listUsersPage(db, filter)
    // A search's count reads every matching row, while most searches fit on one page: its count
    // waits for the page, and a page that is not full tells the total by itself. Other filters
    // count from an index, as cheaply in parallel with the page.
    const count = filter.q
      ? async () => {
          const rows = await pageRows
          const endSeen = rows.length < filter.limit && (rows.length > 0 || filter.offset === 0)
          return endSeen ? filter.offset + rows.length : crud.countUsers(db, filter)
        }
      : () => crud.countUsers(db, filter)
    const [rows, { total, totalExact }] = await Promise.all([
      pageRows,
      totals.get(filter.tenantId, crud.filterKey(filter), crud.totalCap(filter), count),
    ])
    return { items: rows.map(userView), total, totalExact, page: page.page, limit: page.limit }
  }

  /**
   * Keycloak mode: Keycloak first (the user's id there becomes auth_id), then the row; when the
   * row cannot be written (a duplicate email or tag) the Keycloak user is deleted again.
   * Embedded mode: the row and a one-time invite, in one transaction.
   */
  async function create(principal: Principal, input: AiUserCreateInput, options: { temporaryPassword?: string } = {}) {
    assertMayGrant(principal, { role: input.role })
    if (input.attributes) {
      assertAttributeValues(input.attributes)
      assertAttributeTotals(input.attributes)
    }
    const id = randomUUID()
    const status: WritableStatus = input.status ?? (mode === 'embedded' ? 'invited' : 'active')
    const name = input.name ?? ''
    const authId = keycloak
      ? await keycloak.createUser(principal.realm, { email: input.email, name, enabled: status !== 'disabled', role: input.role, ...options })
      : randomUUID()
    const secrets = mergeKeys<string>({}, input.secrets ?? {}, (key, value) => vault.encrypt(value, secretContext(id, key)))
    let invite: { token: string; expiresAt: string } | undefined
    try {
      await transaction(db, async (tx) => {
        await crud.insertUser(tx, {
          id,
          tenantId: principal.tenantId,
          authId,
          email: input.email,
          name,
          role: input.role,
          status,
          tag: input.tag ?? null,
          attributes: input.attributes ?? {},
          secrets,
        })
        if (mode === 'embedded') invite = await issueInvite(tx, id, 'invite')
      })
    } catch (err) {
      if (keycloak) {
        await keycloak.deleteUser(principal.realm, authId).catch((undo: Error) =>
          log.error({ realm: principal.realm, authId, error: undo.message }, 'taking back the keycloak user failed: delete it by hand'),
        )
      }
      throw err
    }
    totals.forget(principal.tenantId)
    log.info({ userId: id, tenantId: principal.tenantId }, 'user created')
    const { user, etag } = await reread(principal, id)
    return { user: invite ? { ...user, invite } : user, etag }
  }

  /**
   * Read-modify-write under the row lock. Identity changes (email, name, role, status) go to
   * Keycloak first, outside any transaction, and are put back when the database write fails.
   */
  async function update(principal: Principal, id: string, input: AiUserUpdateInput, ifMatch: string[] | undefined) {
    const before = await liveUser(principal, id)
    assertIfMatch(ifMatch, etagOfRow(before))
    // Before Keycloak is told anything; checked again on the locked row.
    assertMayActOn(principal, before)
    if (input.role !== undefined) assertMayGrant(principal, { role: input.role })
    if (input.status === 'invited' && before.status !== 'invited' && before.hasPassword) throw new UserHasPasswordError()
    if (input.attributes) assertAttributeValues(input.attributes)
    const losesAdmin =
      isAdminRole(before.role) &&
      before.status === 'active' &&
      ((input.role !== undefined && !isAdminRole(input.role)) || (input.status !== undefined && input.status !== 'active'))
    // Cheap early answer; the authoritative check is in the transaction, under the tenant's admin lock.
    if (losesAdmin && (await crud.countActiveAdmins(db, principal.tenantId, id)) === 0) throw new LastAdminError()

    const identity = {
      email: input.email !== undefined && input.email !== before.email ? input.email : undefined,
      name: input.name !== undefined && input.name !== before.name ? input.name : undefined,
      enabled: input.status !== undefined && (input.status === 'disabled') !== (before.status === 'disabled') ? input.status !== 'disabled' : undefined,
      role: input.role !== undefined && input.role !== before.role ? { from: before.role, to: input.role } : undefined,
    }
    const mirrored = keycloak !== undefined && Object.values(identity).some((v) => v !== undefined)
    if (mirrored) await keycloak!.updateUser(principal.realm, before.authId, identity)

    const disables = input.status === 'disabled'
    try {
      await transaction(db, async (tx) => {
        if (losesAdmin) await crud.lockTenantAdmins(tx, principal.tenantId)
        const current = await crud.lockLiveUser(tx, principal.tenantId, id)
        if (!current) throw new UserNotFoundError()
        assertIfMatch(ifMatch, etagOfRow(current))
        assertMayActOn(principal, current)
        if (input.status === 'invited' && current.status !== 'invited' && (current.passwordHash !== null || (await crud.hasCredentialResets(tx, id)))) {
          throw new UserHasPasswordError()
        }
        if (losesAdmin && (await crud.countActiveAdmins(tx, principal.tenantId, id)) === 0) throw new LastAdminError()
        const changes: crud.UserChanges = {}
        if (input.email !== undefined) changes.email = input.email
        if (input.name !== undefined) changes.name = input.name
        if (input.role !== undefined) changes.role = input.role
        if (input.status !== undefined) changes.status = input.status
        if (input.tag !== undefined) changes.tag = input.tag
        if (input.attributes) {
          changes.attributes = mergeKeys<unknown>((current.attributes ?? {}) as Record<string, unknown>, input.attributes, (_k, v) => v)
          assertAttributeTotals(changes.attributes)
        }
        if (input.secrets) {
          changes.secrets = mergeKeys<string>((current.secrets ?? {}) as Record<string, string>, input.secrets, (key, value) =>
            vault.encrypt(value, secretContext(id, key)),
          )
          if (Object.keys(changes.secrets).length > LIMITS.secrets) {
            throw new ValidationError(`a user holds at most ${LIMITS.secrets} secrets`, [{ field: 'body.secrets', message: 'too many secrets after the merge' }])
          }
        }
        await crud.updateUser(tx, id, changes)
        // A disabled user's keys die with the change, and stay dead when the user is enabled again;
        // so do their sessions (an old refresh token must not come back to life with the account).
        if (disables) {
          await auth.revokeApiKeysOfUser(id, tx)
          await auth.endSessionsOfUser(id, tx)
        }
      })
    } catch (err) {
      if (mirrored) {
        const undo = {
          email: identity.email !== undefined ? before.email : undefined,
          name: identity.name !== undefined ? before.name : undefined,
          enabled: identity.enabled !== undefined ? before.status !== 'disabled' : undefined,
          role: identity.role ? { from: identity.role.to, to: identity.role.from } : undefined,
        }
        await keycloak!.updateUser(principal.realm, before.authId, undo).catch((e: Error) =>
          log.error({ userId: id, error: e.message }, 'putting the keycloak user back failed: it differs from the database'),
        )
      }
      throw err
    }
    totals.forget(principal.tenantId)
    if (input.role !== undefined || input.status !== undefined || input.email !== undefined) await auth.invalidateUser(id)
    log.info({ userId: id, tenantId: principal.tenantId }, 'user updated')
    return reread(principal, id)
  }

  /**
   * Soft delete: status `deleted` frees the email and tag (the unique indexes skip deleted rows),
   * the user's API keys are revoked in the same transaction, and cached principals are dropped on
   * every replica once it commits. Keycloak goes first (deleting the user ends their sessions); a
   * user Keycloak no longer has counts as deleted there, so a retry after a failed database write converges.
   */
  async function remove(principal: Principal, id: string, ifMatch: string[] | undefined): Promise<void> {
    const before = await liveUser(principal, id)
    assertIfMatch(ifMatch, etagOfRow(before))
    assertMayActOn(principal, before)
    const losesAdmin = isAdminRole(before.role) && before.status === 'active'
    if (losesAdmin && (await crud.countActiveAdmins(db, principal.tenantId, id)) === 0) throw new LastAdminError()
    if (keycloak) await keycloak.deleteUser(principal.realm, before.authId)
    const revoked = await transaction(db, async (tx) => {
      if (losesAdmin) await crud.lockTenantAdmins(tx, principal.tenantId)
      const current = await crud.lockLiveUser(tx, principal.tenantId, id)
      if (!current) throw new UserNotFoundError()
      assertIfMatch(ifMatch, etagOfRow(current))
      assertMayActOn(principal, current)
      if (losesAdmin && (await crud.countActiveAdmins(tx, principal.tenantId, id)) === 0) throw new LastAdminError()
      await crud.updateUser(tx, id, { status: 'deleted' })
      await crud.closeInvitesOf(tx, id)
      await auth.endSessionsOfUser(id, tx)
      return auth.revokeApiKeysOfUser(id, tx)
    })
    totals.forget(principal.tenantId)
    await auth.invalidateUser(id)
    log.info({ userId: id, tenantId: principal.tenantId, revokedApiKeys: revoked.length }, 'user deleted')
  }

  /**
   * Embedded mode: a new one-time invite for a user who has not accepted one (an imported user, who
   * gets none, or one whose invite expired or was lost). Earlier invites stop working. Never for a
   * user who has a password: whoever holds the invite chooses the password.
   */
  async function invite(principal: Principal, id: string): Promise<{ token: string; expiresAt: string }> {
    if (mode !== 'embedded') throw new InviteUnavailableError()
    const invite = await transaction(db, async (tx) => {
      const current = await crud.lockLiveUser(tx, principal.tenantId, id)
      if (!current) throw new UserNotFoundError()
      assertMayActOn(principal, current)
      if (current.status !== 'invited' || current.passwordHash !== null) throw new UserNotInvitedError(current.status)
      await crud.closeInvitesOf(tx, id)
      return issueInvite(tx, id, 'invite')
    })
    log.info({ userId: id, tenantId: principal.tenantId }, 'invite issued')
    return invite
  }

  /**
   * Takes an account back from whoever may hold its credentials, with strictly higher rank than its
   * user: every session and API key of the user ends, the password is cleared, and the user sets a
   * new one with a one-time reset token (embedded) or Keycloak's temporary password (Keycloak mode).
   * The user stays `active` throughout: with no password they cannot log in until they redeem it.
   */
  async function resetCredentials(principal: Principal, id: string): Promise<CredentialResetView> {
    const before = await liveUser(principal, id)
    assertMayActOn(principal, before, { strictly: true })
    if (before.status === 'invited') throw new UserInvitedError()
    // Keycloak first, outside the transaction: when it refuses, nothing has changed here.
    const temporaryPassword = keycloak ? await keycloak.resetCredentials(principal.realm, before.authId) : undefined
    const { revoked, reset } = await transaction(db, async (tx) => {
      const current = await crud.lockLiveUser(tx, principal.tenantId, id)
      if (!current) throw new UserNotFoundError()
      assertMayActOn(principal, current, { strictly: true })
      if (current.status === 'invited') throw new UserInvitedError()
      await auth.endSessionsOfUser(id, tx)
      const revokedKeys = await auth.revokeApiKeysOfUser(id, tx)
      await crud.closeInvitesOf(tx, id)
      await crud.clearPassword(tx, id)
      return { revoked: revokedKeys, reset: mode === 'embedded' ? await issueInvite(tx, id, 'reset') : undefined }
    })
    await auth.invalidateUser(id)
    log.info({ userId: id, tenantId: principal.tenantId, by: principal.id, revokedApiKeys: revoked.length }, 'credentials reset')
    return { userId: id, revokedApiKeys: revoked.length, ...reset, ...(temporaryPassword ? { temporaryPassword } : {}) }
  }

  /** Grants one permission beyond the user's role; the rank rule is the auth service's. */
  async function grant(principal: Principal, id: string, permission: string): Promise<{ userId: string; grants: string[] }> {
    const target = await liveUser(principal, id)
    await auth.addUserGrant(principal, target, permission)
    return { userId: id, grants: await auth.extraGrantsOf(id) }
  }

  async function revokeGrant(principal: Principal, id: string, permission: string): Promise<void> {
    const target = await liveUser(principal, id)
    await auth.removeUserGrant(principal, target, permission)
  }

  /**
   * The principal as it acts on `tenant` (a tenant id): unchanged when absent or the caller's own;
   * another tenant only for a superuser. For anyone else, and for an unknown id, 404 TENANT_NOT_FOUND:
   * another tenant's existence is not told.
   */
  async function actingIn(principal: Principal, tenant: string | undefined): Promise<Principal> {
    if (tenant === undefined || tenant === principal.tenantId) return principal
    const { tenant: target } = await auth.getTenant(principal, tenant)
    return { ...principal, tenantId: target.id, realm: target.realm }
  }

  /**
   * The first admin of a tenant its creator (a superuser) just made, created as that superuser would
   * through POST /ai/admin/users?tenant=…. Embedded mode: invited, with a one-time invite. Keycloak
   * mode: active in the new realm with a temporary password Keycloak makes them change at first sign-in.
   */
  async function createInitialAdmin(
    creator: Principal,
    tenant: { id: string; realm: string },
    admin: InitialAdminInput,
  ): Promise<InitialAdminGrant> {
    const temporaryPassword = keycloak ? randomBytes(18).toString('base64url') : undefined
    const { user } = await create(
      { ...creator, tenantId: tenant.id, realm: tenant.realm },
      { email: admin.email, name: admin.name, role: 'admin' },
      { temporaryPassword },
    )
    const grant = { userId: user.id, email: user.email }
    if (temporaryPassword) return { ...grant, temporaryPassword, requiredActions: ['UPDATE_PASSWORD'] }
    return 'invite' in user ? { ...grant, invite: user.invite } : grant
  }

  /** A one-time invite or reset token for the user: stored hashed, its token answered once. */
  async function issueInvite(tx: Executor, userId: string, purpose: InvitePurpose): Promise<{ token: string; expiresAt: string }> {
    const token = randomBytes(32).toString('base64url')
    const expiresAt = new Date(Date.now() + (purpose === 'reset' ? RESET_TTL_MS : INVITE_TTL_MS))
    await crud.insertInvite(tx, { userId, tokenHash: sha256Hex(token), expiresAt, purpose })
    return { token, expiresAt: expiresAt.toISOString() }
  }

  /**
   * Embedded mode: the invited user (or one whose credentials were reset) sets their password with
   * the one-time token and is active. A token never replaces a password that is set.
   */
  async function acceptInvite(input: { token: string; password: string }): Promise<void> {
    // Hash before the transaction: scrypt takes tens of milliseconds and must not hold a lock.
    const passwordHash = await auth.hashPassword(input.password)
    const userId = await transaction(db, async (tx) => {
      const invite = await crud.lockOpenInvite(tx, sha256Hex(input.token))
      if (!invite) throw new InvalidInviteError()
      if (!(await crud.activateWithPassword(tx, invite.userId, passwordHash, invite.purpose))) throw new InvalidInviteError()
      await crud.closeInvitesOf(tx, invite.userId)
      return invite.userId
    })
    await auth.invalidateUser(userId)
    log.info({ userId }, 'invite accepted')
  }

  return { list, get: reread, create, update, remove, invite, resetCredentials, grant, revokeGrant, acceptInvite, actingIn, createInitialAdmin }
}

export type UserAdminService = ReturnType<typeof createUserAdminService>
