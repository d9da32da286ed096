import fs from 'node:fs'
import path from 'node:path'
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { decodeJwt } from 'jose'
import type { Logger } from 'pino'
import type { Config } from '../../config.js'
import type { AuditEntry, Authenticator, Principal } from '../../platform/auth/principal.js'
import type { TokenVerifier, VerifiedToken } from '../../platform/auth/verifier.js'
import type { Cache } from '../../platform/cache/types.js'
import { type Database, type Executor, transaction } from '../../platform/db/client.js'
import { AppError, ForbiddenError, UnauthenticatedError } from '../../platform/errors.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { type PageResult, pageRequest, pageResult } from '../../platform/http/pagination.js'
import * as crud from './crud.js'
import {
  ApiKeyNotFoundError,
  InvalidCredentialsError,
  PasswordChangeUnavailableError,
  PasswordUnchangedError,
  ReservedRealmError,
  ScopeNotAllowedError,
  SessionRequiredError,
  SuperuserRequiredError,
  TenantExistsError,
  TenantNotFoundError,
  WrongCurrentPasswordError,
} from './errors.js'
import type { Issuer } from './issuer.js'
import type { KeycloakClient } from './keycloak.js'
import { createLoginLockout } from './lockout.js'
import { hashPassword, verifyPassword, DUMMY_HASH } from './passwords.js'
import { PERMISSIONS, SEEDED_ROLES, strongestRole } from './permissions.js'
import { assertMayActOn, assertMayGrant, permissionsBeyond, type Ranked } from './rank.js'
import { API_KEY_MAX_DAYS } from './schema.js'
import type { ApiKeyRow, AuditRow, TenantRow, UserRow } from './tables.js'

/** How long a resolved principal is reused in-process; changes reach it sooner through invalidation. */
const PRINCIPAL_TTL_MS = 30_000
/**
 * How long a token found not revoked is taken as such without asking the cache again. A
 * revocation on this replica counts at once, and other replicas hear of it on the invalidation
 * channel at once; this is the bound when that message is lost.
 */
const REVOCATION_RECHECK_MS = 1_000
const MAX_CACHED = 10_000
/** A key's last_used_at is written at most this often per key. */
const TOUCH_INTERVAL_MS = 60_000
const INVALIDATION_CHANNEL = 'mp:auth:invalidate'
const REVOKED_PREFIX = 'mp:revoked:'
/**
 * A revoked login session (`sid`) is kept in the revocation store beside token ids, under this
 * prefix. Token ids are UUIDs, so the two never collide.
 */
const SESSION_KEY_PREFIX = 'sid:'
/** The verifier accepts access tokens this long past `exp`; a session's revocation outlives them by it. */
const CLOCK_SKEW_SECONDS = 30
/**
 * Keycloak mode: how long a session revoked here is refused. Keycloak can keep renewing a session it
 * was not told about (logout without the refresh token) up to the realm's SSO session maximum:
 * 10 h in deploy/keycloak/modelplane-realm.json (`ssoSessionMaxLifespan`).
 */
const KEYCLOAK_SESSION_MAX_SECONDS = 36_000
const API_KEY = /^mp_([a-f0-9]{8})_([A-Za-z0-9_-]{43})$/
const DAY_MS = 86_400_000
/** The realm every embedded install starts with, and where service principals act. */
export const LOCAL_REALM = 'local'
/**
 * Realm names no tenant may take: `master` is Keycloak's administration realm (the API's own admin
 * client signs in there, and its admins rule every realm). Compared case-insensitively, so no
 * look-alike slips through either.
 */
export const RESERVED_REALMS: readonly string[] = ['master']

/** The first admin of a new tenant, as the tenant's creator asked for it. */
export interface InitialAdminInput {
  email: string
  name: string
}

/**
 * How the new tenant's first admin signs in, answered once: an invite token (embedded mode) or a
 * temporary password Keycloak makes them change at first sign-in (Keycloak mode).
 */
export interface InitialAdminGrant {
  userId: string
  email: string
  invite?: { token: string; expiresAt: string }
  temporaryPassword?: string
  requiredActions?: string[]
}

/** User administration creates the first admin, as the tenant's creator (auth is built before it, so it is handed in). */
export type InitialAdminProvisioner = (
  creator: Principal,
  tenant: { id: string; realm: string },
  admin: InitialAdminInput,
) => Promise<InitialAdminGrant>

export interface AuthServiceDeps {
  db: Database
  cache: Cache
  log: Logger
  auth: Config['auth']
  mode: 'embedded' | 'keycloak'
  verifier: TokenVerifier
  issuer: Issuer
  keycloak?: KeycloakClient
  /** Where a generated first-admin password is written (DATA_DIR). */
  dataDir: string
}

/** The request a login came in, for its audit entry. */
export interface LoginRequest {
  requestId: string
  clientRequestId: string | null
}

export interface TokenResponse {
  accessToken: string
  refreshToken: string
  expiresIn: number
  tokenType: 'Bearer'
}

export interface TenantView {
  id: string
  realm: string
  displayName: string
  status: 'active' | 'disabled'
  createdAt: string
  updatedAt: string
}

export interface ApiKeyView {
  id: string
  name: string
  prefix: string
  scopes: string[]
  expiresAt: string | null
  lastUsedAt: string | null
  createdAt: string
}

interface Cached<T> {
  value: T
  until: number
}

/**
 * A bounded map with expiry: caches here are hints, the database is the truth. lru-cache evicts
 * the least recently used entry when full (a map cleared when full dropped every principal at once).
 */
function expiringMap<T>() {
  // Boxed: lru-cache holds no null, and "known to be absent" (null) is worth caching too.
  const cache = new LRUCache<string, { value: T }>({ max: MAX_CACHED, ttl: PRINCIPAL_TTL_MS })
  return {
    get: (key: string): T | undefined => cache.get(key)?.value,
    set(key: string, value: T, ttlMs = PRINCIPAL_TTL_MS): void {
      if (ttlMs > 0) cache.set(key, { value }, { ttl: ttlMs })
    },
    deleteWhere(test: (value: T, key: string) => boolean): void {
      const doomed: string[] = []
      cache.forEach((entry, key) => {
        if (test(entry.value, key)) doomed.push(key)
      })
      for (const key of doomed) cache.delete(key)
    },
    clear: () => cache.clear(),
  }
}

/** A token without `iat` predates nothing we can tell, so under a cut-off it is refused. */
function issuedBeforeCutoff(issuedAt: Date | undefined, cutoff: Date | undefined): boolean {
  if (!cutoff) return false
  return !issuedAt || issuedAt.getTime() < cutoff.getTime()
}

function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex')
}

export function tenantView(row: TenantRow): TenantView {
  return {
    id: row.id,
    realm: row.realm,
    displayName: row.displayName,
    status: row.status === 'disabled' ? 'disabled' : 'active',
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

function apiKeyView(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
  }
}

function auditView(row: AuditRow) {
  return {
    id: row.id,
    tenantId: row.tenantId,
    actorKind: row.actorKind,
    actorId: row.actorId,
    action: row.action,
    resourceKind: row.resourceKind,
    resourceId: row.resourceId,
    requestId: row.requestId,
    actorTenantId: row.actorTenantId,
    outcome: row.outcome,
    method: row.method,
    path: row.path,
    createdAt: row.createdAt.toISOString(),
  }
}

export function createAuthService(deps: AuthServiceDeps) {
  const { db, cache, log, auth, mode, verifier, issuer, keycloak, dataDir } = deps

  /** The user-derived part of a principal, shared by all of a user's tokens. */
  const userPrincipals = expiringMap<Principal>()
  const apiKeyPrincipals = expiringMap<{ row: ApiKeyRow; principal: Principal }>()
  const tenantsByRealm = expiringMap<TenantRow | null>()
  /**
   * Signature checks are the hot path's main cost, and a client sends the same token for minutes:
   * a token string verified once is reused until it expires (at most PRINCIPAL_TTL_MS, so a key
   * withdrawn from the JWKS stops being honoured soon after). Keyed by a hash of the token.
   * Revocation is still checked on every request (see isRevoked).
   */
  const verifiedTokens = expiringMap<VerifiedToken>()
  /** Token ids (jti) by what is known of them: revoked (until they expire), or not revoked a moment ago. */
  const revokedTokens = expiringMap<true>()
  const notRevokedTokens = expiringMap<true>()
  const lastTouched = new Map<string, number>()
  const lockout = createLoginLockout(cache, auth.loginLockout)
  /**
   * Embedded mode: no token of a session is minted after its revocation, so the revocation must
   * outlive the newest refresh or access token minted before it, and nothing more.
   */
  const sessionRevocationSeconds =
    mode === 'keycloak'
      ? KEYCLOAK_SESSION_MAX_SECONDS
      : Math.max(auth.refreshTokenTtlSeconds, auth.accessTokenTtlSeconds) + CLOCK_SKEW_SECONDS
  let rolePermissions: Cached<Map<string, Set<string>>> | undefined
  let unsubscribe: (() => Promise<void>) | undefined

  // ---- lookups with in-process caching ----------------------------------------------------

  async function tenantByRealm(realm: string): Promise<TenantRow | undefined> {
    const cached = tenantsByRealm.get(realm)
    if (cached !== undefined) return cached ?? undefined
    const row = await crud.findTenantByRealm(db, realm)
    tenantsByRealm.set(realm, row ?? null, row ? PRINCIPAL_TTL_MS : 5_000)
    return row
  }

  async function isRealmAllowed(realm: string): Promise<boolean> {
    if (auth.realms) return auth.realms.includes(realm)
    const tenant = await tenantByRealm(realm)
    return tenant?.status === 'active'
  }

  async function grantsOfRole(role: string): Promise<Set<string>> {
    if (!rolePermissions || rolePermissions.until < Date.now()) {
      const byRole = new Map<string, Set<string>>()
      for (const { role: r, permission } of await crud.roleGrants(db)) {
        let set = byRole.get(r)
        if (!set) byRole.set(r, (set = new Set()))
        set.add(permission)
      }
      rolePermissions = { value: byRole, until: Date.now() + PRINCIPAL_TTL_MS }
    }
    return rolePermissions.value.get(role) ?? new Set()
  }

  async function permissionsOf(user: UserRow): Promise<Set<string>> {
    if (user.isSuperuser) return new Set(PERMISSIONS)
    const permissions = new Set(await grantsOfRole(user.role))
    for (const extra of await crud.userExtraGrants(db, user.id)) permissions.add(extra)
    return permissions
  }

  function assertUsable(user: UserRow | undefined, tenant: TenantRow): asserts user is UserRow {
    if (tenant.status !== 'active') throw new UnauthenticatedError('the tenant is disabled')
    if (!user) throw new UnauthenticatedError('unknown user')
    if (user.status !== 'active') throw new UnauthenticatedError('the account is not active')
  }

  async function userPrincipal(user: UserRow, tenant: TenantRow): Promise<Principal> {
    return {
      kind: 'user',
      id: user.id,
      userId: user.id,
      tenantId: tenant.id,
      realm: tenant.realm,
      role: user.role,
      permissions: await permissionsOf(user),
      isSuperuser: user.isSuperuser,
      sessionsValidAfter: user.sessionsValidAfter ?? undefined,
    }
  }

  /** Keycloak mode: the user row follows the token (created on first sight, refreshed when it changed). */
  async function syncUserFromToken(token: VerifiedToken, tenant: TenantRow): Promise<UserRow | undefined> {
    const role =
      strongestRole([...token.roles, ...(token.clientRoles[auth.clientId] ?? [])]) ?? 'none'
    const email = (token.email ?? token.preferredUsername ?? `${token.subject}@${token.realm}`).slice(0, 254)
    const existing = await crud.findUserByAuthId(db, tenant.id, token.subject)
    // No `name` claim (no first or last name in Keycloak) keeps the stored name: users this API
    // creates have an opaque username (see createUser in keycloak.ts), which is no name.
    const name = (token.name ?? existing?.name ?? token.preferredUsername ?? '').slice(0, 200)
    if (!existing) {
      const created = await crud.insertUser(db, {
        tenantId: tenant.id,
        authId: token.subject,
        email,
        name,
        role,
        // The platform realm's super_admins administer every tenant; elsewhere the role stays in its realm.
        isSuperuser: role === 'super_admin' && tenant.realm === LOCAL_REALM,
      })
      if (!created) {
        log.warn({ realm: tenant.realm }, 'a token user collides with an existing account of the tenant')
        throw new UnauthenticatedError('the account cannot be linked')
      }
      log.info({ userId: created.id, realm: tenant.realm }, 'user created on first sight of their token')
      return created
    }
    if (existing.status !== 'active' && existing.status !== 'invited') return existing
    if (existing.email !== email || existing.name !== name || existing.role !== role || existing.status === 'invited') {
      return crud.updateUserIdentity(db, existing.id, { email, name, role, status: 'active' })
    }
    return existing
  }

  /** `key` is a token id, or a session's key (sessionKey); `expiresAt` bounds how long a "revoked" is remembered here. */
  /** What this process already knows of a token id or session key; undefined: ask the cache. */
  function knownRevocation(key: string | undefined): boolean | undefined {
    if (!key) return false
    if (revokedTokens.get(key)) return true
    if (notRevokedTokens.get(key)) return false
    return undefined
  }

  async function isRevoked(key: string | undefined, expiresAt: Date): Promise<boolean> {
    const known = knownRevocation(key)
    if (known !== undefined || !key) return known ?? false
    const revoked = (await cache.get(`${REVOKED_PREFIX}${key}`)) !== null
    if (revoked) revokedTokens.set(key, true, Math.max(0, expiresAt.getTime() - Date.now()))
    else notRevokedTokens.set(key, true, REVOCATION_RECHECK_MS)
    return revoked
  }

  function sessionKey(sessionId: string | undefined): string | undefined {
    return sessionId ? `${SESSION_KEY_PREFIX}${sessionId}` : undefined
  }

  /** Every token of the login session is refused from now on: its access tokens and its refresh token. */
  async function revokeSession(sessionId: string): Promise<void> {
    await revoke(sessionKey(sessionId)!, new Date(Date.now() + sessionRevocationSeconds * 1000))
  }

  /** Revoked here at once; on other replicas when they hear of it, or REVOCATION_RECHECK_MS later at most. */
  function knowRevoked(jti: string, expiresAtMs: number): void {
    notRevokedTokens.deleteWhere((_, key) => key === jti)
    if (expiresAtMs > Date.now()) revokedTokens.set(jti, true, expiresAtMs - Date.now())
  }

  async function revoke(jti: string, expiresAt: Date): Promise<boolean> {
    const ttl = Math.ceil((expiresAt.getTime() - Date.now()) / 1000)
    if (ttl > 0) await cache.set(`${REVOKED_PREFIX}${jti}`, '1', ttl)
    const first = await crud.revokeToken(db, jti, expiresAt)
    knowRevoked(jti, expiresAt.getTime())
    await invalidate(`revoked:${expiresAt.getTime()}:${jti}`)
    return first
  }

  async function tenantForToken(realm: string): Promise<TenantRow> {
    let tenant = await tenantByRealm(realm)
    // A realm on KEYCLOAK_REALMS without a tenant row yet gets one the first time someone of it calls.
    if (!tenant && auth.realms?.includes(realm)) {
      tenant = await crud.ensureTenant(db, realm, realm)
      tenantsByRealm.set(realm, tenant)
    }
    if (!tenant) throw new UnauthenticatedError('token issuer not trusted')
    return tenant
  }

  // ---- the authenticator the guard calls --------------------------------------------------

  const authenticator: Authenticator = {
    async fromBearerToken(token) {
      const tokenKey = createHash('sha256').update(token).digest('base64url')
      let verified = verifiedTokens.get(tokenKey)
      if (!verified || verified.expiresAt.getTime() <= Date.now()) {
        verified = await verifier.verify(token)
        verifiedTokens.set(tokenKey, verified, Math.min(PRINCIPAL_TTL_MS, verified.expiresAt.getTime() - Date.now()))
      }
      const sessionId = typeof verified.claims.sid === 'string' && verified.claims.sid.length > 0 ? verified.claims.sid : undefined
      // Both answers are memoized in-process (REVOCATION_RECHECK_MS): on most requests they are known
      // here, and the check stays synchronous (no promise per request on the hot path).
      const sessionRevocationKey = sessionKey(sessionId)
      let tokenRevoked = knownRevocation(verified.tokenId)
      let sessionRevoked = knownRevocation(sessionRevocationKey)
      if (tokenRevoked === undefined || sessionRevoked === undefined) {
        ;[tokenRevoked, sessionRevoked] = await Promise.all([
          isRevoked(verified.tokenId, verified.expiresAt),
          isRevoked(sessionRevocationKey, verified.expiresAt),
        ])
      }
      if (tokenRevoked || sessionRevoked) throw new UnauthenticatedError('the token has been revoked')
      const key = `${verified.realm}|${verified.subject}`
      let base = userPrincipals.get(key)
      if (!base) {
        const tenant = await tenantForToken(verified.realm)
        const user =
          mode === 'keycloak'
            ? await syncUserFromToken(verified, tenant)
            : await crud.findUserByAuthId(db, tenant.id, verified.subject)
        assertUsable(user, tenant)
        base = await userPrincipal(user, tenant)
        userPrincipals.set(key, base)
      }
      if (issuedBeforeCutoff(verified.issuedAt, base.sessionsValidAfter)) {
        throw new UnauthenticatedError('the session has ended; log in again')
      }
      return { ...base, tokenId: verified.tokenId, expiresAt: verified.expiresAt, tokenIssuedAt: verified.issuedAt, sessionId }
    },

    async fromSession(ref) {
      if (ref.tokenExpiresAt.getTime() <= Date.now()) throw new UnauthenticatedError('token expired')
      const tokenKey = ref.tokenId
      const sessionRevocationKey = sessionKey(ref.sessionId)
      const [tokenRevoked, sessionRevoked] = await Promise.all([
        isRevoked(tokenKey, ref.tokenExpiresAt),
        isRevoked(sessionRevocationKey, ref.tokenExpiresAt),
      ])
      if (tokenRevoked || sessionRevoked) throw new UnauthenticatedError('the token has been revoked')
      // Cached beside the token principals: a change of the user drops it with them (deleteWhere by userId).
      const key = `user-id|${ref.userId}`
      let base = userPrincipals.get(key)
      if (!base) {
        const [user, tenant] = await Promise.all([crud.findUserById(db, ref.userId), crud.findTenantById(db, ref.tenantId)])
        if (!tenant || user?.tenantId !== tenant.id) throw new UnauthenticatedError('unknown user')
        assertUsable(user, tenant)
        base = await userPrincipal(user, tenant)
        userPrincipals.set(key, base)
      }
      if (issuedBeforeCutoff(ref.issuedAt, base.sessionsValidAfter)) throw new UnauthenticatedError('the session has ended; log in again')
      return { ...base, tokenId: ref.tokenId, expiresAt: ref.tokenExpiresAt, tokenIssuedAt: ref.issuedAt, sessionId: ref.sessionId }
    },

    async fromApiKey(key) {
      const match = API_KEY.exec(key)
      if (!match) throw new UnauthenticatedError('invalid API key')
      const [, prefix, secret] = match as unknown as [string, string, string]
      let entry = apiKeyPrincipals.get(prefix)
      if (!entry) {
        const row = await crud.findApiKeyByPrefix(db, prefix)
        if (!row || row.revokedAt) throw new UnauthenticatedError('invalid API key')
        const [user, tenant] = await Promise.all([crud.findUserById(db, row.userId), crud.findTenantById(db, row.tenantId)])
        if (!tenant) throw new UnauthenticatedError('invalid API key')
        assertUsable(user, tenant)
        const owner = await userPrincipal(user, tenant)
        // A key never carries more than its owner holds today: a demoted owner demotes their keys.
        const permissions = new Set(row.scopes.filter((s) => owner.permissions.has(s)))
        entry = { row, principal: { ...owner, kind: 'api_key', id: row.id, permissions } }
        apiKeyPrincipals.set(prefix, entry)
      }
      const presented = Buffer.from(sha256Hex(secret), 'hex')
      const stored = Buffer.from(entry.row.keyHash, 'hex')
      if (presented.length !== stored.length || !timingSafeEqual(presented, stored)) {
        throw new UnauthenticatedError('invalid API key')
      }
      // Keys made before expiry was capped have none stored: they get the cap, counted from creation.
      const expiresAt = entry.row.expiresAt?.getTime() ?? entry.row.createdAt.getTime() + API_KEY_MAX_DAYS * DAY_MS
      if (expiresAt <= Date.now()) throw new UnauthenticatedError('the API key has expired')
      touch(entry.row.id)
      return entry.principal
    },

    async fromDaprApp(appId) {
      const role = auth.daprTrustedApps[appId]
      if (!role) return undefined
      const key = `dapr|${appId}`
      const cached = userPrincipals.get(key)
      if (cached) return cached
      const tenant = await crud.findDefaultTenant(db)
      if (!tenant) return undefined
      const principal: Principal = {
        kind: 'service',
        id: `dapr:${appId}`,
        tenantId: tenant.id,
        realm: tenant.realm,
        role,
        permissions: await grantsOfRole(role),
        isSuperuser: false,
      }
      userPrincipals.set(key, principal)
      return principal
    },
  }

  function touch(apiKeyId: string): void {
    const now = Date.now()
    if ((lastTouched.get(apiKeyId) ?? 0) > now - TOUCH_INTERVAL_MS) return
    if (lastTouched.size >= MAX_CACHED) lastTouched.clear()
    lastTouched.set(apiKeyId, now)
    // `err`, not its message: the serializer keeps a failed query's bound values out of the log.
    crud.touchApiKey(db, apiKeyId).catch((err: Error) => log.warn({ apiKeyId, err }, 'recording API key use failed'))
  }

  // ---- invalidation across replicas ----------------------------------------------------

  function dropLocal(message: string): void {
    const [kind, id] = message.split(':', 2) as [string, string | undefined]
    if (kind === 'revoked') {
      // revoked:<expires at, ms>:<jti>; a jti may itself hold colons.
      const rest = message.slice('revoked:'.length)
      const at = rest.indexOf(':')
      if (at > 0) knowRevoked(rest.slice(at + 1), Number(rest.slice(0, at)))
    } else if (kind === 'user') {
      userPrincipals.deleteWhere((p) => p.userId === id)
      apiKeyPrincipals.deleteWhere((e) => e.row.userId === id)
    } else if (kind === 'key') {
      apiKeyPrincipals.deleteWhere((e) => e.row.id === id)
    } else {
      userPrincipals.clear()
      apiKeyPrincipals.clear()
      tenantsByRealm.clear()
      verifiedTokens.clear()
      rolePermissions = undefined
    }
  }

  /** Drops cached principals here at once and on every replica shortly after. */
  async function invalidate(message: string): Promise<void> {
    dropLocal(message)
    await cache.publish(INVALIDATION_CHANNEL, message).catch((err: Error) =>
      log.warn({ error: err.message }, 'publishing an auth invalidation failed'),
    )
  }

  // ---- start-up -----------------------------------------------------------------------------

  async function start(): Promise<void> {
    unsubscribe = await cache.subscribe(INVALIDATION_CHANNEL, dropLocal)
    await crud.seedRoles(db, SEEDED_ROLES)
    if (mode === 'embedded') await ensureBootstrapAdmin()
    // Keycloak mode: the platform realm (where superusers live) is a tenant even when no allow-list
    // names it, or nobody could sign in to create the others.
    else for (const realm of auth.realms ?? [LOCAL_REALM]) await crud.ensureTenant(db, realm, realm)
    // In memory the revocations die with the process; the table brings them back.
    if (cache.kind === 'memory') {
      for (const { jti, expiresAt } of await crud.unexpiredRevokedTokens(db)) {
        const ttl = Math.ceil((expiresAt.getTime() - Date.now()) / 1000)
        if (ttl > 0) await cache.set(`${REVOKED_PREFIX}${jti}`, '1', ttl)
      }
    }
    await crud.deleteExpiredRevokedTokens(db)
  }

  async function ensureBootstrapAdmin(): Promise<void> {
    const tenant = await crud.ensureTenant(db, LOCAL_REALM, 'Local')
    if (await crud.findLiveUserByEmail(db, tenant.id, auth.adminEmail)) return
    const generated = !auth.adminPassword
    const password = auth.adminPassword ?? randomBytes(18).toString('base64url')
    const created = await crud.insertUser(db, {
      tenantId: tenant.id,
      authId: randomUUID(),
      email: auth.adminEmail,
      name: 'Administrator',
      role: 'super_admin',
      isSuperuser: true,
      passwordHash: await hashPassword(password),
    })
    if (!created) return // another replica created it first
    if (generated) {
      // Never in the log (logs are shipped and kept): in a file only this user can read, once.
      const file = path.join(dataDir, 'initial-admin-password')
      fs.mkdirSync(dataDir, { recursive: true })
      fs.writeFileSync(file, `${password}\n`, { mode: 0o600 })
      log.warn(
        { email: auth.adminEmail, tenant: LOCAL_REALM, file },
        'ADMIN_PASSWORD is not set: created the first admin with a generated password, written to the file named here ' +
          '(log in, change it and delete the file, or set ADMIN_PASSWORD before the first start)',
      )
    } else {
      log.info({ email: auth.adminEmail, tenant: LOCAL_REALM }, 'created the first admin')
    }
  }

  // ---- login, refresh, logout ----------------------------------------------------------------

  /**
   * Locked accounts are refused before anything else (no password hashed, no Keycloak call);
   * wrong passwords count toward the lock, a right one clears it.
   */
  async function login(input: { email: string; password: string; tenant: string }, request?: LoginRequest): Promise<TokenResponse> {
    const attempt: { userId?: string } = {}
    let outcome = 500
    try {
      await lockout.assertOpen(input.tenant, input.email)
      let tokens: TokenResponse
      try {
        tokens = await checkCredentials(input, attempt)
      } catch (err) {
        if (err instanceof InvalidCredentialsError) await lockout.recordFailure(input.tenant, input.email)
        throw err
      }
      await lockout.reset(input.tenant, input.email)
      outcome = 200
      return tokens
    } catch (err) {
      outcome = err instanceof AppError ? err.status : 500
      throw err
    } finally {
      if (request) void auditLogin(input, attempt.userId, outcome, request)
    }
  }

  /**
   * Every login attempt the handler saw lands in the audit log of the tenant it named (when such a
   * tenant exists), with its outcome (200, 401, 429 for a locked account) and the account: its user
   * id when there is one, otherwise a hash of tenant and email (a mistyped email may be a password).
   * Attempts refused by the per-address rate limit never reach here, or a flood would fill the log.
   */
  async function auditLogin(
    input: { email: string; tenant: string },
    knownUserId: string | undefined,
    outcome: number,
    request: LoginRequest,
  ): Promise<void> {
    try {
      const tenant = await tenantByRealm(input.tenant)
      const userId = knownUserId ?? (tenant ? (await crud.findLiveUserByEmail(db, tenant.id, input.email))?.id : undefined)
      const account = createHash('sha256').update(`${input.tenant}\n${input.email.toLowerCase()}`).digest('base64url').slice(0, 22)
      writeAudit({
        tenantId: tenant?.id ?? null,
        actorTenantId: null,
        actorKind: userId ? 'user' : 'anonymous',
        actorId: userId ?? `account:${account}`,
        action: 'login',
        resourceKind: 'session',
        resourceId: null,
        requestId: request.requestId.slice(0, 128),
        clientRequestId: request.clientRequestId,
        outcome,
        method: 'POST',
        path: '/v1/auth/login',
      })
    } catch (err) {
      log.error({ requestId: request.requestId, err }, 'writing the audit log failed')
    }
  }

  async function checkCredentials(
    input: { email: string; password: string; tenant: string },
    attempt: { userId?: string },
  ): Promise<TokenResponse> {
    if (mode === 'keycloak') {
      if (!(await isRealmAllowed(input.tenant))) throw new InvalidCredentialsError()
      const tokens = await keycloak!.passwordGrant(input.tenant, input.email, input.password)
      const tenant = await tenantByRealm(input.tenant)
      const subject = decodeJwt(tokens.accessToken).sub
      if (tenant && subject) attempt.userId = (await crud.findUserByAuthId(db, tenant.id, subject))?.id
      return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresIn: tokens.expiresIn, tokenType: 'Bearer' }
    }
    const tenant = await tenantByRealm(input.tenant)
    const user = tenant ? await crud.findLiveUserByEmail(db, tenant.id, input.email) : undefined
    attempt.userId = user?.id
    // Hash something whether or not the user exists: timing must not tell which.
    const ok = await verifyPassword(input.password, user?.passwordHash ?? DUMMY_HASH)
    if (!ok || !tenant || tenant.status !== 'active' || !user || user.status !== 'active' || !user.passwordHash) {
      throw new InvalidCredentialsError()
    }
    // A cut-off is the next whole second (iat has whole seconds): a login within it — right after
    // redeeming a credential reset — is minted as of the cut-off, or its own tokens would be refused.
    const cutoff = user.sessionsValidAfter
    const pair = await issuer.mintPair(
      { realm: tenant.realm, authId: user.authId, email: user.email, name: user.name, role: user.role },
      undefined,
      cutoff && cutoff.getTime() > Date.now() ? { issuedAt: cutoff } : {},
    )
    log.info({ userId: user.id, tenantId: tenant.id }, 'user logged in')
    return { accessToken: pair.accessToken, refreshToken: pair.refreshToken, expiresIn: pair.expiresIn, tokenType: 'Bearer' }
  }

  async function refresh(refreshToken: string): Promise<TokenResponse> {
    if (mode === 'keycloak') {
      const { realm, sessionId } = untrustedClaims(refreshToken)
      if (!realm || !(await isRealmAllowed(realm))) throw new UnauthenticatedError('invalid refresh token')
      // Keycloak still knows a session logged out here without its refresh token: refuse it ourselves.
      // (The claim is unverified, but all it can do is get its bearer refused.)
      if (await isRevoked(sessionKey(sessionId), new Date(Date.now() + REVOCATION_RECHECK_MS))) {
        throw new UnauthenticatedError('invalid refresh token')
      }
      const tokens = await keycloak!.refreshGrant(realm, refreshToken)
      return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresIn: tokens.expiresIn, tokenType: 'Bearer' }
    }
    const claims = await issuer.verifyRefresh(refreshToken)
    const tenant = await tenantByRealm(claims.realm)
    if (!tenant) throw new UnauthenticatedError('invalid refresh token')
    if (await isRevoked(sessionKey(claims.sessionId), claims.expiresAt)) throw new UnauthenticatedError('invalid refresh token')
    // Rotation: the first use revokes it; a second use (a stolen copy, or a replay) finds it revoked.
    if (!(await revoke(claims.tokenId, claims.expiresAt))) {
      // Reuse detection (OAuth 2.0 Security BCP): one of two parties holding this token is not its
      // owner, and which one cannot be told. The whole session ends, so the thief's newer tokens die
      // with the owner's; the owner logs in again.
      await revokeSession(claims.sessionId)
      log.warn({ tenantId: tenant.id }, 'a rotated refresh token was presented again: its session is revoked')
      throw new UnauthenticatedError('invalid refresh token')
    }
    const user = await crud.findUserByAuthId(db, tenant.id, claims.subject)
    if (!user || user.status !== 'active' || tenant.status !== 'active') throw new UnauthenticatedError('invalid refresh token')
    if (issuedBeforeCutoff(claims.issuedAt, user.sessionsValidAfter ?? undefined)) throw new UnauthenticatedError('invalid refresh token')
    const pair = await issuer.mintPair(
      { realm: tenant.realm, authId: user.authId, email: user.email, name: user.name, role: user.role },
      claims.sessionId,
    )
    return { accessToken: pair.accessToken, refreshToken: pair.refreshToken, expiresIn: pair.expiresIn, tokenType: 'Bearer' }
  }

  /** Realm and session of a Keycloak token, read without verifying it: only to route it, or to refuse it. */
  function untrustedClaims(token: string): { realm?: string; sessionId?: string } {
    try {
      const { iss, sid } = decodeJwt(token)
      // Keycloak writes its frontend name into `iss`, which may not be the address this process calls.
      const prefix = `${auth.keycloakIssuerUrl}/realms/`
      return {
        realm: typeof iss === 'string' && iss.startsWith(prefix) ? iss.slice(prefix.length) : undefined,
        sessionId: typeof sid === 'string' && sid.length > 0 ? sid : undefined,
      }
    } catch {
      return {}
    }
  }

  async function logout(principal: Principal, refreshToken?: string): Promise<void> {
    if (principal.kind !== 'user' || !principal.tokenId || !principal.expiresAt) {
      throw new ForbiddenError('only a user session can log out; delete an API key instead')
    }
    await revoke(principal.tokenId, principal.expiresAt)
    // The session of the access token ends with it: its refresh token dies without being sent here.
    // (Keycloak mode without the refresh token: Keycloak's session lives on, but every token of it is refused here.)
    if (principal.sessionId) await revokeSession(principal.sessionId)
    if (refreshToken) {
      if (mode === 'keycloak') await keycloak!.logout(principal.realm, refreshToken)
      else {
        const claims = await issuer.verifyRefresh(refreshToken).catch(() => undefined)
        if (claims && claims.realm === principal.realm) {
          await revoke(claims.tokenId, claims.expiresAt)
          if (claims.sessionId !== principal.sessionId) await revokeSession(claims.sessionId)
        }
      }
    }
    log.info({ userId: principal.userId, tenantId: principal.tenantId }, 'user logged out')
  }

  /**
   * Embedded mode: the signed-in user replaces their password. Every session of theirs ends (the
   * caller's too), and the caller gets a new pair minted at the cut-off so they stay signed in.
   * API keys are left alone. A wrong current password counts toward the account's login lock.
   */
  async function changePassword(
    principal: Principal,
    input: { currentPassword: string; newPassword: string },
  ): Promise<TokenResponse> {
    if (principal.kind !== 'user' || !principal.userId) {
      throw new ForbiddenError('only a signed-in user changes their password, not an API key or a service')
    }
    if (mode === 'keycloak') throw new PasswordChangeUnavailableError(`${auth.keycloakIssuerUrl}/realms/${principal.realm}/account`)
    const user = await crud.findUserById(db, principal.userId)
    if (!user || user.status !== 'active' || !user.passwordHash) throw new UnauthenticatedError('the account is not active')
    await lockout.assertOpen(principal.realm, user.email)
    if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
      await lockout.recordFailure(principal.realm, user.email)
      throw new WrongCurrentPasswordError()
    }
    // After the check, so that a wrong current password counts toward the lock whatever else the request holds.
    if (input.newPassword.normalize('NFKC') === input.currentPassword.normalize('NFKC')) throw new PasswordUnchangedError()
    const passwordHash = await hashPassword(input.newPassword)
    const cutoff = await transaction(db, async (tx) => {
      if (!(await crud.setPasswordHash(tx, user.id, passwordHash))) throw new UnauthenticatedError('the account is not active')
      return crud.endSessionsOf(tx, user.id)
    })
    await invalidate(`user:${user.id}`)
    await lockout.reset(principal.realm, user.email)
    const pair = await issuer.mintPair(
      { realm: principal.realm, authId: user.authId, email: user.email, name: user.name, role: user.role },
      undefined,
      { issuedAt: cutoff },
    )
    log.info({ userId: user.id, tenantId: principal.tenantId }, 'password changed; the other sessions of the user ended')
    return { accessToken: pair.accessToken, refreshToken: pair.refreshToken, expiresIn: pair.expiresIn, tokenType: 'Bearer' }
  }

  async function me(principal: Principal) {
    const [user, tenant] = await Promise.all([
      principal.userId ? crud.findUserById(db, principal.userId) : Promise.resolve(undefined),
      crud.findTenantById(db, principal.tenantId),
    ])
    return {
      kind: principal.kind,
      user: user
        ? { id: user.id, email: user.email, name: user.name, status: user.status, isSuperuser: user.isSuperuser }
        : null,
      tenant: tenantView(tenant!),
      role: principal.role,
      permissions: [...principal.permissions].sort(),
    }
  }

  // ---- API keys -------------------------------------------------------------------------------

  /**
   * Key management takes the user's own session: a leaked key must not be able to mint a fresh key
   * (outliving its own revocation), list its siblings or revoke the owner's other keys.
   */
  function sessionUserOf(principal: Principal): string {
    if (principal.kind !== 'user' || !principal.userId) throw new SessionRequiredError()
    return principal.userId
  }

  async function createApiKey(
    principal: Principal,
    input: { name: string; scopes: string[]; expiresInDays?: number },
  ): Promise<ApiKeyView & { key: string }> {
    const userId = sessionUserOf(principal)
    const scopes = [...new Set(input.scopes)].sort()
    const beyond = permissionsBeyond(principal, scopes)
    if (beyond.length > 0) throw new ScopeNotAllowedError(beyond)
    // The schema caps the days; the min() keeps the cap when the service is called without it.
    const days = Math.min(input.expiresInDays ?? API_KEY_MAX_DAYS, API_KEY_MAX_DAYS)
    const prefix = randomBytes(4).toString('hex')
    const secret = randomBytes(32).toString('base64url')
    const row = await crud.insertApiKey(db, {
      tenantId: principal.tenantId,
      userId,
      name: input.name,
      prefix,
      keyHash: sha256Hex(secret),
      scopes,
      expiresAt: new Date(Date.now() + days * DAY_MS),
    })
    log.info({ apiKeyId: row.id, userId }, 'API key created')
    return { ...apiKeyView(row), key: `mp_${prefix}_${secret}` }
  }

  async function listApiKeys(principal: Principal, query: { page?: number; limit?: number }): Promise<PageResult<ApiKeyView>> {
    const userId = sessionUserOf(principal)
    const page = pageRequest(query)
    const { rows, total } = await crud.listLiveApiKeys(db, { userId, limit: page.limit, offset: page.offset })
    return pageResult(rows.map(apiKeyView), total, page)
  }

  async function deleteApiKey(principal: Principal, id: string): Promise<void> {
    const userId = sessionUserOf(principal)
    const row = await crud.revokeApiKey(db, id, userId)
    if (!row) throw new ApiKeyNotFoundError()
    await invalidate(`key:${row.id}`)
    log.info({ apiKeyId: row.id, userId }, 'API key revoked')
  }

  // ---- extra grants ------------------------------------------------------------------------------

  /**
   * Grants one permission beyond the user's role. The caller has found the target in a tenant the
   * actor may see (another tenant's user is the caller's 404); the rank rule is checked here, so no
   * path grants without it: the target ranks no higher than the actor, and the actor holds the permission.
   */
  async function addUserGrant(actor: Principal, target: Ranked & { id: string }, permission: string): Promise<void> {
    assertMayActOn(actor, target)
    assertMayGrant(actor, { permissions: [permission] })
    await crud.addUserGrant(db, target.id, permission)
    await invalidate(`user:${target.id}`)
    log.info({ userId: target.id, permission, by: actor.id }, 'permission granted')
  }

  /** Takes an extra grant back, under the same rule as granting it; false when the user did not have it. */
  async function removeUserGrant(actor: Principal, target: Ranked & { id: string }, permission: string): Promise<boolean> {
    assertMayActOn(actor, target)
    assertMayGrant(actor, { permissions: [permission] })
    const removed = await crud.removeUserGrant(db, target.id, permission)
    if (removed) await invalidate(`user:${target.id}`)
    log.info({ userId: target.id, permission, by: actor.id, removed }, 'permission grant removed')
    return removed
  }

  /** The user's grants beyond their role, sorted. */
  const extraGrantsOf = async (userId: string): Promise<string[]> => (await crud.userExtraGrants(db, userId)).sort()

  // ---- tenants ----------------------------------------------------------------------------------

  /** Another tenant's row is "not found" unless the caller may act across tenants. */
  async function visibleTenant(principal: Principal, id: string): Promise<TenantRow> {
    if (!principal.isSuperuser && principal.tenantId !== id) throw new TenantNotFoundError()
    const row = await crud.findTenantById(db, id)
    if (!row) throw new TenantNotFoundError()
    return row
  }

  /** The flag, never a role: a `super_admin` of one tenant rules that tenant and nothing beyond it. */
  function assertSuperuser(principal: Principal): void {
    if (!principal.isSuperuser) throw new SuperuserRequiredError()
  }

  /** A superuser lists every tenant; anyone else (holding tenant:manage) their own alone. */
  async function listTenants(principal: Principal, query: { page?: number; limit?: number }): Promise<PageResult<TenantView>> {
    const page = pageRequest(query)
    const { rows, total } = await crud.listTenants(db, {
      onlyId: principal.isSuperuser ? undefined : principal.tenantId,
      limit: page.limit,
      offset: page.offset,
    })
    return pageResult(rows.map(tenantView), total, page)
  }

  /**
   * Superusers only. With `initialAdmin`, the tenant's first admin is created through user
   * administration right after the tenant; if that fails the tenant (and its Keycloak realm) is
   * taken back, so a tenant never exists that nobody can administer without database access.
   */
  async function createTenant(
    principal: Principal,
    input: { realm: string; displayName: string; initialAdmin?: InitialAdminInput },
    provisionAdmin?: InitialAdminProvisioner,
  ): Promise<{ tenant: TenantView; etag: string; initialAdmin?: InitialAdminGrant }> {
    assertSuperuser(principal)
    if (RESERVED_REALMS.includes(input.realm.toLowerCase())) throw new ReservedRealmError(input.realm)
    if (input.initialAdmin && !provisionAdmin) throw new Error('createTenant: an initial admin needs a provisioner')
    if (await crud.findTenantByRealm(db, input.realm)) throw new TenantExistsError(input.realm)
    // Keycloak first: when it refuses, nothing has been written here.
    if (mode === 'keycloak') await keycloak!.createRealm(input.realm, input.displayName)
    const row = await crud.insertTenant(db, { realm: input.realm, displayName: input.displayName })
    if (!row) throw new TenantExistsError(input.realm)
    let initialAdmin: InitialAdminGrant | undefined
    if (input.initialAdmin) {
      try {
        initialAdmin = await provisionAdmin!(principal, { id: row.id, realm: row.realm }, input.initialAdmin)
      } catch (err) {
        await crud.deleteTenant(db, row.id).catch((undo: Error) =>
          log.error({ tenantId: row.id, error: undo.message }, 'taking back a tenant without its admin failed: delete it by hand'),
        )
        if (mode === 'keycloak') await keycloak!.deleteRealm(row.realm)
        throw err
      }
    }
    tenantsByRealm.set(row.realm, row)
    await invalidate('tenant:*')
    log.info({ tenantId: row.id, realm: row.realm, initialAdmin: initialAdmin?.userId }, 'tenant created')
    return { tenant: tenantView(row), etag: etagOf(row.updatedAt), ...(initialAdmin ? { initialAdmin } : {}) }
  }

  /** A superuser reads any tenant; anyone else their own (another tenant is "not found"). */
  async function getTenant(principal: Principal, id: string): Promise<{ tenant: TenantView; etag: string }> {
    const row = await visibleTenant(principal, id)
    return { tenant: tenantView(row), etag: etagOf(row.updatedAt) }
  }

  /** Superusers only; for anyone else another tenant is "not found" and their own is forbidden. */
  async function updateTenant(
    principal: Principal,
    id: string,
    changes: { displayName?: string; status?: 'active' | 'disabled' },
    ifMatch: string[] | undefined,
  ): Promise<{ tenant: TenantView; etag: string }> {
    await visibleTenant(principal, id)
    assertSuperuser(principal)
    const row = await transaction(db, async (tx) => {
      const current = await crud.findTenantByIdForUpdate(tx, id)
      if (!current) throw new TenantNotFoundError()
      assertIfMatch(ifMatch, etagOf(current.updatedAt))
      return crud.updateTenant(tx, id, changes)
    })
    await invalidate('tenant:*')
    log.info({ tenantId: id }, 'tenant updated')
    return { tenant: tenantView(row), etag: etagOf(row.updatedAt) }
  }

  // ---- audit -----------------------------------------------------------------------------------

  function writeAudit(row: Parameters<typeof crud.insertAuditEntry>[1]): void {
    crud.insertAuditEntry(db, row).catch((err: Error) => log.error({ requestId: row.requestId, err }, 'writing the audit log failed'))
  }

  function recordAudit(entry: AuditEntry): void {
    const p = entry.principal
    // A superuser acting on another tenant: the row is that tenant's (its admins see it), and names the actor's own.
    const actedOn = entry.actedOnTenantId ?? p.tenantId
    writeAudit({
      tenantId: actedOn,
      actorTenantId: actedOn === p.tenantId ? null : p.tenantId,
      actorKind: p.kind,
      actorId: p.id,
      action: entry.action.slice(0, 128),
      resourceKind: entry.resourceKind?.slice(0, 64) ?? null,
      resourceId: entry.resourceId,
      requestId: entry.requestId.slice(0, 128),
      clientRequestId: entry.clientRequestId,
      outcome: entry.outcome,
      method: entry.method,
      path: entry.path.slice(0, 512),
    })
  }

  async function listAudit(
    principal: Principal,
    query: {
      page?: number
      limit?: number
      tenantId?: string
      actor?: string
      action?: string
      resourceKind?: string
      createdFrom?: string
      createdTo?: string
    },
  ) {
    const page = pageRequest(query)
    // Only a superuser looks into other tenants; everyone else sees their own whatever they ask.
    const tenantId = principal.isSuperuser ? query.tenantId : principal.tenantId
    const { rows, total } = await crud.listAuditEntries(db, {
      tenantId,
      actorId: query.actor,
      action: query.action,
      resourceKind: query.resourceKind,
      createdFrom: query.createdFrom ? new Date(query.createdFrom) : undefined,
      createdTo: query.createdTo ? new Date(query.createdTo) : undefined,
      limit: page.limit,
      offset: page.offset,
    })
    return pageResult(rows.map(auditView), total, page)
  }

  /** Creates a user with a password in the embedded issuer's realm (bootstrap, tests, user admin). */
  async function createLocalUser(input: {
    realm: string
    email: string
    name?: string
    role: string
    password: string
    isSuperuser?: boolean
  }): Promise<UserRow> {
    const tenant = await crud.ensureTenant(db, input.realm, input.realm)
    const row = await crud.insertUser(db, {
      tenantId: tenant.id,
      authId: randomUUID(),
      email: input.email,
      name: input.name ?? '',
      role: input.role,
      isSuperuser: input.isSuperuser ?? false,
      passwordHash: await hashPassword(input.password),
    })
    if (!row) throw new Error(`a user ${input.email} already exists in ${input.realm}`)
    return row
  }

  return {
    start,
    async stop() {
      await unsubscribe?.()
    },
    authenticator,
    isRealmAllowed,
    login,
    refresh,
    logout,
    changePassword,
    me,
    createApiKey,
    listApiKeys,
    deleteApiKey,
    listTenants,
    createTenant,
    getTenant,
    updateTenant,
    recordAudit,
    listAudit,
    createLocalUser,
    /** For user administration: a changed or disabled user loses cached access at once, everywhere. */
    invalidateUser: (userId: string) => invalidate(`user:${userId}`),
    /**
     * For user administration, inside its transaction: revokes the user's API keys. Their access
     * tokens die with their status (every principal is resolved from an active user row); call
     * invalidateUser after the commit so cached principals go too, here and on every replica.
     */
    revokeApiKeysOfUser: (userId: string, executor: Executor = db) => crud.revokeApiKeysOfUser(executor, userId),
    /**
     * Inside the caller's transaction: every token of the user issued until now (and in the rest of
     * this second) is refused from then on, refresh tokens included. Call invalidateUser after the
     * commit so cached principals learn the cut-off here and on every replica.
     */
    endSessionsOfUser: (userId: string, executor: Executor = db) => crud.endSessionsOf(executor, userId),
    /** The embedded issuer's password hashing, for user administration's invites. */
    hashPassword,
    addUserGrant,
    removeUserGrant,
    extraGrantsOf,
    jwks: (realm: string) => issuer.publicKeys(realm),
    discovery: (realm: string) => issuer.discovery(realm),
  }
}

export type AuthService = ReturnType<typeof createAuthService>
