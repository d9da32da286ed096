import { randomBytes } from 'node:crypto'
import { base64url, decodeJwt, decodeProtectedHeader, exportSPKI, generateKeyPair, importJWK, SignJWT } from 'jose'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { UnauthenticatedError } from '../../src/platform/errors.js'
import { createTokenVerifier, type TokenVerifierOptions } from '../../src/platform/auth/verifier.js'
import { type FakeKeycloak, startFakeKeycloak } from '../helpers/keycloak.js'

let keycloak: FakeKeycloak

beforeAll(async () => {
  keycloak = await startFakeKeycloak()
})

afterAll(async () => {
  await keycloak.close()
})

afterEach(() => {
  vi.useRealTimers()
})

/** A fresh realm per test, so key caches and request counts never leak between tests. */
async function newRealm(): Promise<string> {
  const realm = `tenant-${randomBytes(4).toString('hex')}`
  await keycloak.addRealm(realm)
  return realm
}

function verifierFor(realms: string[], options: Partial<TokenVerifierOptions> = {}) {
  return createTokenVerifier({ issuerBase: keycloak.url, isRealmAllowed: (realm) => realms.includes(realm), ...options })
}

async function expectRefused(attempt: Promise<unknown>, message: string): Promise<void> {
  const error = await attempt.then(
    () => undefined,
    (reason: unknown) => reason,
  )
  expect(error).toBeInstanceOf(UnauthenticatedError)
  expect(error).toMatchObject({ status: 401, code: 'UNAUTHENTICATED', message })
}

const encodeSegment = (value: object) => base64url.encode(JSON.stringify(value))
const randomKid = () => randomBytes(12).toString('base64url')

/** Keycloak publishes new keys before signing with them; these tests step the clock past the refetch cooldown (5 s). */
function freezeClock(): void {
  vi.useFakeTimers({ toFake: ['Date'] })
}
function advanceClock(ms: number): void {
  vi.setSystemTime(Date.now() + ms)
}

describe('valid tokens', () => {
  it('yields the realm, user and roles of a Keycloak access token', async () => {
    const realm = await newRealm()
    const token = await keycloak.mint(realm, {
      sub: 'user-1',
      email: 'ann@example.test',
      preferred_username: 'ann',
      name: 'Ann Example',
      realm_access: { roles: ['cluster-admin', 'viewer'] },
      resource_access: { 'modelplane-api': { roles: ['deploy'] }, account: { roles: ['view-profile'] } },
    })

    const verified = await verifierFor([realm]).verify(token)

    expect(verified).toMatchObject({
      realm,
      issuer: keycloak.issuer(realm),
      subject: 'user-1',
      roles: ['cluster-admin', 'viewer'],
      clientRoles: { 'modelplane-api': ['deploy'], account: ['view-profile'] },
      azp: 'modelplane-web',
      email: 'ann@example.test',
      emailVerified: true,
      name: 'Ann Example',
      preferredUsername: 'ann',
      tokenId: decodeJwt(token).jti,
    })
    expect(verified.expiresAt.getTime()).toBe(decodeJwt(token).exp! * 1000)
  })

  it('accepts ES256 tokens', async () => {
    const realm = await newRealm()
    const verified = await verifierFor([realm]).verify(await keycloak.mint(realm, { sub: 'es-user' }, { alg: 'ES256' }))
    expect(verified.subject).toBe('es-user')
  })

  it('accepts a token whose aud array contains the configured audience', async () => {
    const realm = await newRealm()
    const token = await keycloak.mint(realm, { aud: ['account', 'modelplane-api'] })
    await expect(verifierFor([realm], { audience: 'modelplane-api' }).verify(token)).resolves.toMatchObject({ realm })
  })

  it('tolerates 30 s of clock skew on exp', async () => {
    const realm = await newRealm()
    await expect(verifierFor([realm]).verify(await keycloak.mint(realm, {}, { expiresInSeconds: -10 }))).resolves.toMatchObject({ realm })
  })
})

describe('refused tokens', () => {
  it('refuses an expired token', async () => {
    const realm = await newRealm()
    await expectRefused(verifierFor([realm]).verify(await keycloak.mint(realm, {}, { expiresInSeconds: -60 })), 'token expired')
  })

  it('refuses a token not valid before a time beyond the tolerance', async () => {
    const realm = await newRealm()
    await expectRefused(verifierFor([realm]).verify(await keycloak.mint(realm, {}, { notBeforeSeconds: 120 })), 'token not yet valid')
  })

  it('refuses a token signed by another key under the realm key id', async () => {
    const realm = await newRealm()
    const { privateKey } = await generateKeyPair('RS256')
    const forged = await keycloak.mint(realm, {}, { key: privateKey })
    expect(decodeProtectedHeader(forged).kid).toBe(keycloak.jwks(realm).keys[0]!.kid)
    await expectRefused(verifierFor([realm]).verify(forged), 'token signature invalid')
  })

  it('refuses a refresh token and an ID token', async () => {
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    await expectRefused(verifier.verify(await keycloak.mint(realm, { typ: 'Refresh' })), 'token is not an access token')
    await expectRefused(verifier.verify(await keycloak.mint(realm, { typ: 'ID' })), 'token is not an access token')
  })

  it('refuses a token of the wrong audience when an audience is configured', async () => {
    const realm = await newRealm()
    const token = await keycloak.mint(realm, { aud: 'account' })
    await expectRefused(verifierFor([realm], { audience: 'modelplane-api' }).verify(token), 'token audience not accepted')
  })

  it('refuses a token without sub or exp', async () => {
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    await expectRefused(verifier.verify(await keycloak.mint(realm, { sub: undefined })), 'token lacks the sub claim')
    await expectRefused(verifier.verify(await keycloak.mint(realm, { exp: undefined })), 'token lacks the exp claim')
  })

  it('refuses malformed and oversized tokens', async () => {
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    for (const token of ['', 'abc', 'a.b.c', `${'x'.repeat(20_000)}.y.z`]) await expectRefused(verifier.verify(token), 'token malformed')
  })

  it('answers 503 IDENTITY_PROVIDER_UNAVAILABLE, not 401, when the realm keys cannot be fetched', async () => {
    const down = await startFakeKeycloak()
    const realm = 'tenant-unreachable'
    await down.addRealm(realm)
    const token = await down.mint(realm)
    await down.close()
    const verifier = createTokenVerifier({ issuerBase: down.url, isRealmAllowed: () => true, fetchTimeoutMs: 1000 })
    const error = await verifier.verify(token).then(
      () => undefined,
      (reason: unknown) => reason,
    )
    expect(error).toMatchObject({ status: 503, code: 'IDENTITY_PROVIDER_UNAVAILABLE' })
  })
})

describe('security', () => {
  it('refuses alg none before the allow-list or any key is consulted', async () => {
    const realm = await newRealm()
    const claims = decodeJwt(await keycloak.mint(realm))
    const unsigned = `${encodeSegment({ alg: 'none', typ: 'JWT', kid: keycloak.jwks(realm).keys[0]!.kid })}.${encodeSegment(claims)}.`

    const isRealmAllowed = vi.fn(() => true)
    await expectRefused(createTokenVerifier({ issuerBase: keycloak.url, isRealmAllowed }).verify(unsigned), 'token algorithm not accepted')
    // Refused on the header alone: not even the allow-list (a database read in embedded mode) was asked.
    expect(isRealmAllowed).not.toHaveBeenCalled()
    expect(keycloak.jwksRequests(realm)).toBe(0)
  })

  it('refuses HS256 keyed with the realm public key before the allow-list or any key is consulted', async () => {
    const realm = await newRealm()
    const publicJwk = keycloak.jwks(realm).keys[0]!
    const publicKey = await importJWK(publicJwk, 'RS256')
    if (publicKey instanceof Uint8Array) throw new Error('expected an RSA public key')
    const publicPem = await exportSPKI(publicKey)
    const claims = decodeJwt(await keycloak.mint(realm, { realm_access: { roles: ['platform-admin'] } }))
    const forged = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: publicJwk.kid! })
      .sign(new TextEncoder().encode(publicPem))

    const isRealmAllowed = vi.fn(() => true)
    await expectRefused(createTokenVerifier({ issuerBase: keycloak.url, isRealmAllowed }).verify(forged), 'token algorithm not accepted')
    expect(isRealmAllowed).not.toHaveBeenCalled()
    expect(keycloak.jwksRequests(realm)).toBe(0)
  })

  it('refuses a token of a realm not on the allow-list without contacting that realm', async () => {
    const allowed = await newRealm()
    const stranger = await newRealm()
    const token = await keycloak.mint(stranger)

    await expectRefused(verifierFor([allowed]).verify(token), 'token issuer not trusted')
    expect(keycloak.requests().filter((request) => request.path.startsWith(`/realms/${stranger}/`))).toEqual([])
  })

  it('refuses an allowed realm name issued by another host without contacting it', async () => {
    const realm = await newRealm()
    const impostor = await startFakeKeycloak()
    try {
      await impostor.addRealm(realm)
      const token = await impostor.mint(realm)

      await expectRefused(verifierFor([realm]).verify(token), 'token issuer not trusted')
      expect(impostor.requests()).toEqual([])
      expect(keycloak.jwksRequests(realm)).toBe(0)
    } finally {
      await impostor.close()
    }
  })

  it('refuses an issuer with more path after the realm without asking the allow-list', async () => {
    const realm = await newRealm()
    const isRealmAllowed = vi.fn(() => true)
    const token = await keycloak.mint(realm, { iss: `${keycloak.issuer(realm)}/../other` })

    await expectRefused(createTokenVerifier({ issuerBase: keycloak.url, isRealmAllowed }).verify(token), 'token issuer not trusted')
    expect(isRealmAllowed).not.toHaveBeenCalled()
    expect(keycloak.jwksRequests(realm)).toBe(0)
  })

  it('refuses an unknown key id after fetching the keys again once', async () => {
    freezeClock()
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    await verifier.verify(await keycloak.mint(realm))
    advanceClock(6_000)

    await expectRefused(verifier.verify(await keycloak.mint(realm, {}, { kid: randomKid() })), 'token signing key unknown')
    expect(keycloak.jwksRequests(realm)).toBe(2)
  })
})

describe('key caching', () => {
  it('fetches a realm JWKS once for 200 concurrent verifications', async () => {
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    const tokens = await Promise.all(Array.from({ length: 200 }, (_, index) => keycloak.mint(realm, { sub: `user-${index}` })))

    const verified = await Promise.all(tokens.map((token) => verifier.verify(token)))

    expect(verified.map((token) => token.subject)).toEqual(tokens.map((_, index) => `user-${index}`))
    expect(keycloak.jwksRequests(realm)).toBe(1)
  })

  it('picks up a rotated key with one more fetch once the cooldown has passed, and drops the removed key', async () => {
    freezeClock()
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    const oldToken = await keycloak.mint(realm)
    await verifier.verify(oldToken)
    await keycloak.rotateKey(realm)
    const newToken = await keycloak.mint(realm, { sub: 'after-rotation' })

    // Inside the cooldown the new kid is not fetched: the price of not letting bogus kids hammer Keycloak.
    await expectRefused(verifier.verify(newToken), 'token signing key unknown')
    expect(keycloak.jwksRequests(realm)).toBe(1)

    advanceClock(6_000)
    await expect(verifier.verify(newToken)).resolves.toMatchObject({ subject: 'after-rotation' })
    expect(keycloak.jwksRequests(realm)).toBe(2)
    await expectRefused(verifier.verify(oldToken), 'token signing key unknown')
    expect(keycloak.jwksRequests(realm)).toBe(2)
  })

  it('lets a burst of bogus key ids cause at most one extra fetch', async () => {
    freezeClock()
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    const valid = await keycloak.mint(realm)
    await verifier.verify(valid)
    advanceClock(6_000)

    const burst = await Promise.all(Array.from({ length: 100 }, () => keycloak.mint(realm, {}, { kid: randomKid() })))
    const outcomes = await Promise.allSettled(burst.map((token) => verifier.verify(token)))
    expect(outcomes.every((outcome) => outcome.status === 'rejected')).toBe(true)
    // A slower trickle within the cooldown (here 4.5 s) triggers nothing either.
    for (let index = 0; index < 50; index += 1) {
      advanceClock(90)
      await expectRefused(verifier.verify(await keycloak.mint(realm, {}, { kid: randomKid() })), 'token signing key unknown')
    }

    expect(keycloak.jwksRequests(realm)).toBe(2)
    await expect(verifier.verify(valid)).resolves.toMatchObject({ realm })
  })

  it('fetches the keys again after forget(realm)', async () => {
    const realm = await newRealm()
    const verifier = verifierFor([realm])
    await verifier.verify(await keycloak.mint(realm))
    verifier.forget(realm)
    await verifier.verify(await keycloak.mint(realm))
    expect(keycloak.jwksRequests(realm)).toBe(2)
  })
})

describe('embedded issuer (localKeys)', () => {
  // The embedded issuer signs for the API's own PUBLIC_URL, which nothing could fetch from here.
  const publicUrl = 'https://api.modelplane.invalid'

  async function embeddedSetup() {
    const realm = await newRealm()
    const loads: string[] = []
    const verifier = createTokenVerifier({
      issuerBase: publicUrl,
      isRealmAllowed: (name) => name === realm,
      localKeys: async (name) => {
        loads.push(name)
        return keycloak.jwks(name)
      },
    })
    const mint = (claims: Record<string, unknown> = {}, kid?: string) =>
      keycloak.mint(realm, { iss: `${publicUrl}/realms/${realm}`, ...claims }, kid === undefined ? {} : { kid })
    return { realm, loads, verifier, mint }
  }

  it('verifies with keys from the database, without HTTP', async () => {
    const { realm, loads, verifier, mint } = await embeddedSetup()
    const requestsBefore = keycloak.requests().length

    await expect(verifier.verify(await mint({ sub: 'a' }))).resolves.toMatchObject({ realm, subject: 'a', issuer: `${publicUrl}/realms/${realm}` })
    await expect(verifier.verify(await mint({ sub: 'b' }))).resolves.toMatchObject({ subject: 'b' })

    expect(loads).toEqual([realm])
    expect(keycloak.requests()).toHaveLength(requestsBefore)
  })

  it('accepts a freshly rotated key at once by reloading on the kid miss', async () => {
    const { loads, verifier, mint } = await embeddedSetup()
    await verifier.verify(await mint())
    await keycloak.rotateKey(loads[0]!)

    await expect(verifier.verify(await mint({ sub: 'rotated' }))).resolves.toMatchObject({ subject: 'rotated' })
    expect(loads).toHaveLength(2)
  })

  it('reloads only once for an unknown kid, then refuses', async () => {
    const { loads, verifier, mint } = await embeddedSetup()
    await verifier.verify(await mint())

    await expectRefused(verifier.verify(await mint({}, randomKid())), 'token signing key unknown')
    expect(loads).toHaveLength(2)
  })
})
