import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose'
import { UnauthenticatedError, UnavailableError } from '../errors.js'

export interface TokenVerifierOptions {
  /** Issuers are `${issuerBase}/realms/<realm>`: KEYCLOAK_ISSUER_URL in Keycloak mode, the API's PUBLIC_URL in embedded mode. */
  issuerBase: string
  /**
   * Where remote keys are fetched: `${keysBase}/realms/<realm>/protocol/openid-connect/certs`;
   * default issuerBase. Keycloak mode passes KEYCLOAK_URL: the name tokens carry (a browser's
   * localhost:8081) need not reach Keycloak from this process.
   */
  keysBase?: string
  /** Only realms this says yes to are ever trusted or fetched (KEYCLOAK_REALMS or the tenants table). */
  isRealmAllowed(realm: string): boolean | Promise<boolean>
  /** When set, `aud` (string or array) must contain it (KEYCLOAK_AUDIENCE). */
  audience?: string
  /**
   * Embedded mode: the realm's public keys straight from the database, no HTTP. When absent, keys
   * come from the realm's certs endpoint under keysBase, one cached remote key set per realm.
   */
  localKeys?(realm: string): Promise<JSONWebKeySet>
  /** Allowed clock skew for `exp` and `nbf`; default 30. */
  clockToleranceSeconds?: number
  /** Time limit of one JWKS download; default 5000. */
  fetchTimeoutMs?: number
}

export interface VerifiedToken {
  realm: string
  issuer: string
  subject: string
  /** `jti` */
  tokenId?: string
  expiresAt: Date
  /** `iat`, when the token has one: a user's session cut-off refuses tokens issued before it. */
  issuedAt?: Date
  /** `realm_access.roles` */
  roles: string[]
  /** `resource_access.<client>.roles` */
  clientRoles: Record<string, string[]>
  azp?: string
  email?: string
  emailVerified?: boolean
  name?: string
  preferredUsername?: string
  claims: JWTPayload
}

export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>
  /** Drops the cached keys of a realm (e.g. the realm was deleted). */
  forget(realm: string): void
}

/** Keycloak signs access tokens with RS256 by default and ES256 when configured; nothing else is accepted. */
const ACCEPTED_ALGORITHMS = ['RS256', 'ES256']
const REALM_NAME = /^[A-Za-z0-9_-]{1,64}$/
/** Far above any real access token, far below what would make decoding costly. */
const MAX_TOKEN_LENGTH = 16 * 1024
/** Keycloak marks access tokens `typ: "Bearer"`; refresh, ID and logout tokens carry other values. */
const ACCESS_TOKEN_TYPE = 'Bearer'

/**
 * After a key set download, an unknown `kid` triggers no new download for this long. So a rotated
 * key is picked up at the latest 5 s after the previous download (at once if that was longer ago),
 * while a flood of tokens with invented kids costs Keycloak at most one request per realm every
 * 5 s (concurrent misses share that one request).
 */
const REMOTE_KEYS_COOLDOWN_MS = 5_000
/** Even without an unknown kid, keys are downloaded again after this long, so a key Keycloak removed stops being trusted. */
const REMOTE_KEYS_MAX_AGE_MS = 5 * 60_000
const DEFAULT_FETCH_TIMEOUT_MS = 5_000
/** Keys read from the database are reused this long; a kid miss reloads at once, so rotation never waits for it. */
const LOCAL_KEYS_MAX_AGE_MS = 10_000

/** Key lookup for one realm, as jose's jwtVerify takes it. */
interface KeySource {
  keyFor(realm: string): JWTVerifyGetKey
  forget(realm: string): void
}

/** Raised inside key lookup when the keys themselves could not be obtained (Keycloak down, bad key set). */
class KeysUnavailable extends Error {}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const issuerBase = options.issuerBase.replace(/\/+$/, '')
  const clockTolerance = options.clockToleranceSeconds ?? 30
  const keys = options.localKeys
    ? databaseKeySource(options.localKeys)
    : remoteKeySource((options.keysBase ?? issuerBase).replace(/\/+$/, ''), options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS)

  /** The realm named by an untrusted `iss`, or a refusal; nothing is fetched for a realm that fails here. */
  async function trustedRealm(issuer: unknown): Promise<string> {
    const prefix = `${issuerBase}/realms/`
    if (typeof issuer !== 'string' || !issuer.startsWith(prefix)) throw new UnauthenticatedError('token issuer not trusted')
    const realm = issuer.slice(prefix.length)
    if (!REALM_NAME.test(realm) || !(await options.isRealmAllowed(realm))) {
      throw new UnauthenticatedError('token issuer not trusted')
    }
    return realm
  }

  async function verify(token: string): Promise<VerifiedToken> {
    const untrusted = decodeUntrusted(token)
    const realm = await trustedRealm(untrusted.iss)
    const issuer = `${issuerBase}/realms/${realm}`
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, keys.keyFor(realm), {
        algorithms: ACCEPTED_ALGORITHMS,
        issuer,
        ...(options.audience === undefined ? {} : { audience: options.audience }),
        clockTolerance,
        requiredClaims: ['sub', 'exp'],
      }))
    } catch (error) {
      throw refusal(error)
    }
    if (payload.typ !== undefined && payload.typ !== ACCESS_TOKEN_TYPE) throw new UnauthenticatedError('token is not an access token')
    return toVerifiedToken(realm, issuer, payload)
  }

  return { verify, forget: (realm) => keys.forget(realm) }
}

/**
 * Reads header and claims without trusting them, only to pick the realm and to refuse unacceptable
 * algorithms (`none`, HS256 keyed with a public key) before any key is looked up.
 */
function decodeUntrusted(token: string): JWTPayload {
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new UnauthenticatedError('token malformed')
  }
  let alg: unknown
  let payload: JWTPayload
  try {
    alg = decodeProtectedHeader(token).alg
    payload = decodeJwt(token)
  } catch {
    throw new UnauthenticatedError('token malformed')
  }
  if (typeof alg !== 'string' || !ACCEPTED_ALGORITHMS.includes(alg)) throw new UnauthenticatedError('token algorithm not accepted')
  return payload
}

/** One remote key set per realm, created on first use and reused, so concurrent requests share one download. */
function remoteKeySource(keysBase: string, timeoutMs: number): KeySource {
  const sets = new Map<string, JWTVerifyGetKey>()
  return {
    keyFor(realm) {
      let set = sets.get(realm)
      if (!set) {
        const url = new URL(`${keysBase}/realms/${realm}/protocol/openid-connect/certs`)
        set = createRemoteJWKSet(url, {
          cooldownDuration: REMOTE_KEYS_COOLDOWN_MS,
          cacheMaxAge: REMOTE_KEYS_MAX_AGE_MS,
          timeoutDuration: timeoutMs,
        })
        sets.set(realm, set)
      }
      return reportingUnavailableKeys(set)
    },
    forget: (realm) => void sets.delete(realm),
  }
}

/** Keys from the database, kept briefly per realm; a kid miss on a not-just-loaded set reloads once. */
function databaseKeySource(load: (realm: string) => Promise<JSONWebKeySet>): KeySource {
  const cached = new Map<string, { lookup: JWTVerifyGetKey; loadedAt: number }>()
  // Concurrent misses of one realm share a load rather than each querying the database.
  const pending = new Map<string, Promise<JWTVerifyGetKey>>()

  function reload(realm: string): Promise<JWTVerifyGetKey> {
    let loading = pending.get(realm)
    if (!loading) {
      loading = load(realm)
        .then((jwks) => {
          const lookup = createLocalJWKSet(jwks)
          cached.set(realm, { lookup, loadedAt: Date.now() })
          return lookup
        })
        .finally(() => pending.delete(realm))
      pending.set(realm, loading)
    }
    return loading
  }

  return {
    keyFor(realm) {
      return reportingUnavailableKeys(async (header, token) => {
        const entry = cached.get(realm)
        if (!entry || Date.now() - entry.loadedAt > LOCAL_KEYS_MAX_AGE_MS) return (await reload(realm))(header, token)
        try {
          return await entry.lookup(header, token)
        } catch (error) {
          if (!(error instanceof errors.JWKSNoMatchingKey)) throw error
          return (await reload(realm))(header, token)
        }
      })
    },
    forget: (realm) => void cached.delete(realm),
  }
}

/** Separates "no key for this token" (the token's fault) from "could not get the keys" (ours). */
function reportingUnavailableKeys(lookup: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await lookup(header, token)
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error
      throw new KeysUnavailable()
    }
  }
}

/**
 * Maps a verification failure to a short message that is safe to return and never quotes the token.
 * Keys that cannot be fetched are the identity provider's outage, not the caller's fault: 503, so
 * clients retry instead of sending their users to log in again.
 */
function refusal(error: unknown): UnauthenticatedError | UnavailableError {
  if (error instanceof errors.JWTExpired) return new UnauthenticatedError('token expired')
  if (error instanceof errors.JWTClaimValidationFailed) return new UnauthenticatedError(claimRefusal(error.claim, error.reason))
  if (error instanceof errors.JWSSignatureVerificationFailed) return new UnauthenticatedError('token signature invalid')
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return new UnauthenticatedError('token signing key unknown')
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new UnauthenticatedError('token algorithm not accepted')
  if (error instanceof KeysUnavailable) {
    return new UnavailableError('IDENTITY_PROVIDER_UNAVAILABLE', 'the identity provider\'s signing keys cannot be fetched; retry shortly')
  }
  return new UnauthenticatedError('token invalid')
}

function claimRefusal(claim: string, reason: string): string {
  if (reason === 'missing') return `token lacks the ${claim} claim`
  switch (claim) {
    case 'nbf':
      return 'token not yet valid'
    case 'aud':
      return 'token audience not accepted'
    case 'iss':
      return 'token issuer not trusted'
    default:
      return 'token claims invalid'
  }
}

function toVerifiedToken(realm: string, issuer: string, claims: JWTPayload): VerifiedToken {
  if (typeof claims.sub !== 'string' || claims.sub.length === 0) throw new UnauthenticatedError('token claims invalid')
  return {
    realm,
    issuer,
    subject: claims.sub,
    tokenId: optionalString(claims.jti),
    expiresAt: new Date(claims.exp! * 1000),
    issuedAt: typeof claims.iat === 'number' ? new Date(claims.iat * 1000) : undefined,
    roles: stringList(asRecord(claims.realm_access)?.roles),
    clientRoles: clientRoles(claims.resource_access),
    azp: optionalString(claims.azp),
    email: optionalString(claims.email),
    emailVerified: typeof claims.email_verified === 'boolean' ? claims.email_verified : undefined,
    name: optionalString(claims.name),
    preferredUsername: optionalString(claims.preferred_username),
    claims,
  }
}

/** `resource_access` is `{ <clientId>: { roles: [...] } }`; anything not of that shape is ignored. */
function clientRoles(resourceAccess: unknown): Record<string, string[]> {
  const entries = Object.entries(asRecord(resourceAccess) ?? {})
    .map(([client, access]) => [client, stringList(asRecord(access)?.roles)] as const)
    .filter(([, roles]) => roles.length > 0)
  // fromEntries defines own properties, so a client named "__proto__" cannot reach the prototype.
  return Object.fromEntries(entries)
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}
