import { randomUUID } from 'node:crypto'
import {
  createLocalJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose'
import type { Database } from '../../platform/db/client.js'
import { UnauthenticatedError } from '../../platform/errors.js'
import type { Vault } from '../../platform/vault.js'
import * as crud from './crud.js'

/**
 * The embedded issuer: Keycloak-shaped tokens for realms of this process, signed with one RS256
 * key per realm. Keys live in the database (private halves sealed by the vault), so every replica
 * signs and verifies with the same ones. The one verifier that checks Keycloak's tokens checks
 * these too, through `localKeys`.
 */
const ALG = 'RS256'
const REALM_NAME = /^[A-Za-z0-9_-]{1,64}$/
/** The azp Keycloak would put in tokens for this API's own client. */
const CLIENT_ID = 'modelplane'

export interface TokenSubject {
  realm: string
  authId: string
  email: string
  name: string
  role: string
}

export interface TokenPair {
  accessToken: string
  refreshToken: string
  expiresIn: number
  refreshExpiresIn: number
}

export interface RefreshClaims {
  realm: string
  subject: string
  tokenId: string
  sessionId: string
  expiresAt: Date
  issuedAt?: Date
}

export interface IssuerOptions {
  db: Database
  vault: Vault
  /** PUBLIC_URL: issuers are `${issuerBase}/realms/<realm>`. */
  issuerBase: string
  accessTtlSeconds: number
  refreshTtlSeconds: number
}

interface SigningKey {
  kid: string
  privateKey: Awaited<ReturnType<typeof importJWK>>
}

export function createIssuer(options: IssuerOptions) {
  const { db, vault } = options
  const issuerBase = options.issuerBase.replace(/\/+$/, '')
  // One promise per realm: concurrent first logins share one key lookup or creation.
  const active = new Map<string, Promise<SigningKey>>()

  const issuerOf = (realm: string) => `${issuerBase}/realms/${realm}`

  async function loadOrCreateKey(realm: string): Promise<SigningKey> {
    let row = await crud.findActiveSigningKey(db, realm)
    if (!row) {
      const { publicKey, privateKey } = await generateKeyPair(ALG, { extractable: true })
      const kid = randomUUID()
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' }
      const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: ALG }
      await crud.insertSigningKey(db, {
        kid,
        realm,
        alg: ALG,
        publicJwk,
        privateJwkCiphertext: vault.encrypt(JSON.stringify(privateJwk), `signing-key:${kid}`),
      })
      // Another replica may have won the race: whichever key is active now is the one.
      row = await crud.findActiveSigningKey(db, realm)
    }
    const privateJwk = JSON.parse(vault.decrypt(row!.privateJwkCiphertext, `signing-key:${row!.kid}`)) as JWK
    return { kid: row!.kid, privateKey: await importJWK(privateJwk, ALG) }
  }

  function signingKey(realm: string): Promise<SigningKey> {
    let key = active.get(realm)
    if (!key) {
      key = loadOrCreateKey(realm)
      key.catch(() => active.delete(realm))
      active.set(realm, key)
    }
    return key
  }

  /** The realm's public keys, as its JWKS endpoint shows them and the verifier reads them. */
  async function publicKeys(realm: string): Promise<JSONWebKeySet> {
    const rows = await crud.publishedSigningKeys(db, realm, options.refreshTtlSeconds)
    return { keys: rows.map((r) => r.publicJwk as JWK) }
  }

  /** `issuedAt` (default now) is rounded down to the second, as `iat` holds whole seconds; `exp` counts from it. */
  async function sign(realm: string, claims: Record<string, unknown>, ttlSeconds: number, issuedAt = new Date()): Promise<string> {
    const key = await signingKey(realm)
    const iat = Math.floor(issuedAt.getTime() / 1000)
    return new SignJWT(claims)
      .setProtectedHeader({ alg: ALG, typ: 'JWT', kid: key.kid })
      .setIssuer(issuerOf(realm))
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttlSeconds)
      .setJti(randomUUID())
      .sign(key.privateKey)
  }

  /**
   * An access and a refresh token with the claims Keycloak puts in its own. `issuedAt` mints them
   * as of a given instant: right after a session cut-off (the next whole second), a pair minted
   * "now" would fall before it and be refused.
   */
  async function mintPair(
    subject: TokenSubject,
    sessionId: string = randomUUID(),
    minting: { issuedAt?: Date } = {},
  ): Promise<TokenPair> {
    const common = { sub: subject.authId, azp: CLIENT_ID, sid: sessionId, scope: 'openid email profile' }
    const accessToken = await sign(
      subject.realm,
      {
        ...common,
        aud: 'account',
        typ: 'Bearer',
        realm_access: { roles: [subject.role] },
        email: subject.email,
        email_verified: true,
        name: subject.name,
        preferred_username: subject.email,
      },
      options.accessTtlSeconds,
      minting.issuedAt,
    )
    // Keycloak's refresh tokens name the realm itself as audience; typ keeps them out of the verifier.
    const refreshToken = await sign(
      subject.realm,
      { ...common, aud: issuerOf(subject.realm), typ: 'Refresh' },
      options.refreshTtlSeconds,
      minting.issuedAt,
    )
    return {
      accessToken,
      refreshToken,
      expiresIn: options.accessTtlSeconds,
      refreshExpiresIn: options.refreshTtlSeconds,
    }
  }

  /** Checks a refresh token of this issuer: signature, expiry, type. Revocation is the caller's. */
  async function verifyRefresh(token: string): Promise<RefreshClaims> {
    const refused = new UnauthenticatedError('invalid refresh token')
    let iss: unknown
    try {
      iss = decodeJwt(token).iss
    } catch {
      throw refused
    }
    const prefix = `${issuerBase}/realms/`
    if (typeof iss !== 'string' || !iss.startsWith(prefix)) throw refused
    const realm = iss.slice(prefix.length)
    if (!REALM_NAME.test(realm)) throw refused
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(await publicKeys(realm)), {
        algorithms: [ALG],
        issuer: iss,
        audience: iss,
        requiredClaims: ['sub', 'exp', 'jti'],
      })
      if (payload.typ !== 'Refresh') throw refused
      return {
        realm,
        subject: payload.sub!,
        tokenId: payload.jti!,
        sessionId: typeof payload.sid === 'string' ? payload.sid : randomUUID(),
        expiresAt: new Date(payload.exp! * 1000),
        issuedAt: typeof payload.iat === 'number' ? new Date(payload.iat * 1000) : undefined,
      }
    } catch {
      throw refused
    }
  }

  function discovery(realm: string) {
    const issuer = issuerOf(realm)
    const oidc = `${issuer}/protocol/openid-connect`
    return {
      issuer,
      jwks_uri: `${oidc}/certs`,
      token_endpoint: `${issuerBase}/v1/auth/login`,
      end_session_endpoint: `${issuerBase}/v1/auth/logout`,
      grant_types_supported: ['password', 'refresh_token'],
      response_types_supported: ['token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [ALG],
      token_endpoint_auth_methods_supported: ['none'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'jti', 'email', 'name', 'preferred_username', 'realm_access'],
    }
  }

  return { issuerOf, publicKeys, mintPair, verifyRefresh, discovery, signingKey }
}

export type Issuer = ReturnType<typeof createIssuer>
