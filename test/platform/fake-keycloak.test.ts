import { randomBytes } from 'node:crypto'
import KcAdminClient from '@keycloak/keycloak-admin-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenVerifier } from '../../src/platform/auth/verifier.js'
import { type FakeKeycloak, startFakeKeycloak } from '../helpers/keycloak.js'

// The stand-in is only worth something if the real admin client and real OIDC calls work against it
// the way they work against Keycloak; these tests drive both.

let fake: FakeKeycloak

beforeAll(async () => {
  fake = await startFakeKeycloak()
})

afterAll(async () => {
  await fake.close()
})

const uniqueRealm = () => `tenant-${randomBytes(4).toString('hex')}`

async function adminClient(): Promise<KcAdminClient> {
  const client = new KcAdminClient({ baseUrl: fake.url, realmName: 'master' })
  await client.auth({ grantType: 'client_credentials', ...fake.adminCredentials })
  return client
}

async function tokenRequest(realm: string, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${fake.url}/realms/${realm}/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

/** A realm with role `viewer` and an enabled user holding it, built through the real admin client. */
async function tenantWithViewer(admin: KcAdminClient, realm: string) {
  await admin.realms.create({ realm, enabled: true })
  await admin.roles.create({ realm, name: 'viewer', description: 'may look' })
  const role = await admin.roles.findOneByName({ realm, name: 'viewer' })
  const { id } = await admin.users.create({
    realm,
    username: 'Alice',
    email: 'alice@example.test',
    enabled: true,
    credentials: [{ type: 'password', value: 'correct horse', temporary: false }],
  })
  await admin.users.addRealmRoleMappings({ realm, id, roles: [{ id: role!.id!, name: role!.name! }] })
  return { id, role: role! }
}

describe('admin API through @keycloak/keycloak-admin-client', () => {
  it('creates a realm, a role and a user with that role, who can then log in and holds the role in the token', async () => {
    const admin = await adminClient()
    const realm = uniqueRealm()
    const { id } = await tenantWithViewer(admin, realm)

    expect(fake.realmsCreated()).toContain(realm)
    expect((await admin.realms.findOne({ realm }))?.enabled).toBe(true)
    const [user] = await admin.users.find({ realm, username: 'alice', exact: true })
    expect(user).toMatchObject({ id, username: 'alice', email: 'alice@example.test', enabled: true })

    const login = await tokenRequest(realm, { grant_type: 'password', client_id: 'admin-cli', username: 'alice', password: 'correct horse' })
    expect(login.status).toBe(200)
    const verifier = createTokenVerifier({ issuerBase: fake.url, isRealmAllowed: (name) => name === realm })
    const verified = await verifier.verify(String(login.body.access_token))
    expect(verified).toMatchObject({ realm, subject: id, roles: ['viewer'], preferredUsername: 'alice', azp: 'admin-cli' })
  })

  it('updates, unmaps and deletes a user', async () => {
    const admin = await adminClient()
    const realm = uniqueRealm()
    const { id, role } = await tenantWithViewer(admin, realm)

    await admin.users.update({ realm, id }, { firstName: 'Alice', lastName: 'Liddell', enabled: false })
    expect(await admin.users.findOne({ realm, id })).toMatchObject({ firstName: 'Alice', lastName: 'Liddell', enabled: false })

    await admin.users.delRealmRoleMappings({ realm, id, roles: [{ id: role.id!, name: role.name! }] })
    expect(fake.adminUsers(realm)[0]!.roles).toEqual([])

    await admin.users.del({ realm, id })
    expect(await admin.users.findOne({ realm, id })).toBeNull()
    expect(fake.adminUsers(realm)).toEqual([])
  })

  it('answers like Keycloak to the usual mistakes: duplicate user, role mapped with a wrong id, disabled by default', async () => {
    const admin = await adminClient()
    const realm = uniqueRealm()
    const { id } = await tenantWithViewer(admin, realm)

    await expect(admin.users.create({ realm, username: 'ALICE', enabled: true })).rejects.toMatchObject({ response: { status: 409 } })
    await expect(admin.users.addRealmRoleMappings({ realm, id, roles: [{ id: 'not-its-id', name: 'viewer' }] })).rejects.toMatchObject({
      response: { status: 404 },
    })
    const { id: bobId } = await admin.users.create({ realm, username: 'bob' })
    expect(fake.adminUsers(realm).find((user) => user.id === bobId)?.enabled).toBe(false)
  })

  it('fails admin calls on demand and changes nothing while failing', async () => {
    const admin = await adminClient()
    const realm = uniqueRealm()
    await admin.realms.create({ realm, enabled: true })

    fake.failAdminCalls(({ method, path }) => method === 'POST' && path.endsWith('/users'))
    try {
      await expect(admin.users.create({ realm, username: 'carol', enabled: true })).rejects.toMatchObject({ response: { status: 500 } })
      await admin.roles.create({ realm, name: 'still-works' })
    } finally {
      fake.failAdminCalls(false)
    }
    expect(fake.adminUsers(realm)).toEqual([])
    expect(fake.adminRoles(realm)).toContain('still-works')
  })

  it('refuses admin calls without a token of realm master', async () => {
    const realm = uniqueRealm()
    await fake.addRealm(realm)
    const foreign = await fake.mint(realm)

    for (const authorization of [undefined, `Bearer ${foreign}`]) {
      const response = await fetch(`${fake.url}/admin/realms/${realm}/users`, { headers: authorization ? { authorization } : {} })
      expect(response.status).toBe(401)
    }
  })
})

describe('OpenID Connect endpoints', () => {
  it('publishes discovery and keys for a realm', async () => {
    const realm = uniqueRealm()
    await fake.addRealm(realm)
    const discovery = (await (await fetch(`${fake.issuer(realm)}/.well-known/openid-configuration`)).json()) as Record<string, string>
    expect(discovery).toMatchObject({
      issuer: fake.issuer(realm),
      jwks_uri: `${fake.issuer(realm)}/protocol/openid-connect/certs`,
      token_endpoint: `${fake.issuer(realm)}/protocol/openid-connect/token`,
      end_session_endpoint: `${fake.issuer(realm)}/protocol/openid-connect/logout`,
    })
    const jwks = (await (await fetch(discovery.jwks_uri!)).json()) as { keys: Array<Record<string, string>> }
    expect(jwks.keys.map((key) => [key.alg, key.use])).toEqual([
      ['RS256', 'sig'],
      ['ES256', 'sig'],
    ])
    expect(fake.jwksRequests(realm)).toBe(1)
  })

  it('refuses a wrong password with 401 invalid_grant and a temporary password as not fully set up', async () => {
    const realm = uniqueRealm()
    await fake.addRealm(realm)
    fake.addUser(realm, { username: 'dave', password: 'right' })
    fake.addUser(realm, { username: 'erin', password: 'temp', requiredActions: ['UPDATE_PASSWORD'] })

    const wrong = await tokenRequest(realm, { grant_type: 'password', client_id: 'admin-cli', username: 'dave', password: 'wrong' })
    expect(wrong).toEqual({ status: 401, body: { error: 'invalid_grant', error_description: 'Invalid user credentials' } })
    const temporary = await tokenRequest(realm, { grant_type: 'password', client_id: 'admin-cli', username: 'erin', password: 'temp' })
    expect(temporary.body.error_description).toBe('Account is not fully set up')
  })

  it('refreshes a session until logout ends it', async () => {
    const realm = uniqueRealm()
    await fake.addRealm(realm)
    fake.addClient(realm, { clientId: 'web', secret: 'web-secret' })
    fake.addUser(realm, { username: 'frank', password: 'pw', roles: ['editor'] })
    const client = { client_id: 'web', client_secret: 'web-secret' }

    const login = await tokenRequest(realm, { grant_type: 'password', username: 'frank', password: 'pw', ...client })
    expect(login.body).toMatchObject({ token_type: 'Bearer', expires_in: 300, refresh_expires_in: 1800 })
    const refreshToken = String(login.body.refresh_token)
    const refreshed = await tokenRequest(realm, { grant_type: 'refresh_token', refresh_token: refreshToken, ...client })
    expect(refreshed.status).toBe(200)
    expect(fake.activeSessions(realm)).toBe(1)

    const logout = await fetch(`${fake.issuer(realm)}/protocol/openid-connect/logout`, {
      method: 'POST',
      body: new URLSearchParams({ refresh_token: refreshToken, ...client }),
    })
    expect(logout.status).toBe(204)
    expect(fake.activeSessions(realm)).toBe(0)
    const afterLogout = await tokenRequest(realm, { grant_type: 'refresh_token', refresh_token: refreshToken, ...client })
    expect(afterLogout).toMatchObject({ status: 400, body: { error: 'invalid_grant' } })
  })

  it('refuses a confidential client with the wrong secret', async () => {
    const realm = uniqueRealm()
    await fake.addRealm(realm)
    fake.addClient(realm, { clientId: 'svc', secret: 's3cret', serviceAccountRoles: ['robot'] })

    const wrong = await tokenRequest(realm, { grant_type: 'client_credentials', client_id: 'svc', client_secret: 'nope' })
    expect(wrong).toMatchObject({ status: 401, body: { error: 'invalid_client' } })
    const right = await tokenRequest(realm, { grant_type: 'client_credentials', client_id: 'svc', client_secret: 's3cret' })
    expect(right.status).toBe(200)
    expect(right.body.refresh_token).toBeUndefined()
  })
})

describe('user PUT and user-profile validation as in Keycloak 26', () => {
  it('clears an email, first or last name that a PUT leaves out, and keeps what it sends', async () => {
    const admin = await adminClient()
    const realm = uniqueRealm()
    const { id } = await tenantWithViewer(admin, realm)
    await admin.users.update({ realm, id }, { email: 'alice@example.test', firstName: 'Alice', lastName: 'Liddell' })

    // A partial PUT, as the API used to send: Keycloak 24.0.4+ wipes the profile fields it lacks.
    await admin.users.update({ realm, id }, { enabled: false })
    const partial = await admin.users.findOne({ realm, id })
    expect(partial).toMatchObject({ username: 'alice', enabled: false })
    expect(partial).not.toHaveProperty('email')
    expect(partial).not.toHaveProperty('firstName')
    expect(partial).not.toHaveProperty('lastName')

    // Read, change, send back whole: nothing is lost.
    await admin.users.update({ realm, id }, { email: 'alice@example.test', firstName: 'Alice', lastName: 'Liddell' })
    const whole = (await admin.users.findOne({ realm, id }))!
    await admin.users.update({ realm, id }, { ...whole, enabled: true })
    expect(await admin.users.findOne({ realm, id })).toMatchObject({ email: 'alice@example.test', firstName: 'Alice', lastName: 'Liddell', enabled: true })
  })

  it("refuses usernames with characters Keycloak prohibits (an email such as o'brien@…) with 400 and the field", async () => {
    const realm = uniqueRealm()
    await (await adminClient()).realms.create({ realm, enabled: true })
    const create = (rep: Record<string, unknown>) =>
      fetch(`${fake.url}/admin/realms/${realm}/users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(rep),
      })
    const adminToken = String((await tokenRequest('master', { grant_type: 'client_credentials', ...asForm(fake.adminCredentials) })).body.access_token)

    for (const username of ["o'brien@example.test", 'two words', 'a/b', 'x!y', 'a#b', 'c$d', 'p%q', 'a&b', 'a*b', 'a=b', 'a?b', 'a^b', 'a{b}', 'a|b', 'a~b']) {
      const response = await create({ username, email: 'someone@example.test', enabled: true })
      expect(response.status, username).toBe(400)
      expect(await response.json()).toEqual({ field: 'username', errorMessage: 'error-username-invalid-character', params: ['username'] })
    }
    const tooShort = await create({ username: 'ab', enabled: true })
    expect(await tooShort.json()).toMatchObject({ field: 'username', errorMessage: 'error-invalid-length' })
    // Several failures come as a list.
    const several = await create({ username: 'a b', firstName: 'Smith (Ops)', enabled: true })
    expect(several.status).toBe(400)
    expect(await several.json()).toEqual({
      errors: [
        { field: 'username', errorMessage: 'error-username-invalid-character', params: ['username'] },
        { field: 'firstName', errorMessage: 'error-person-name-invalid-character', params: ['firstName'] },
      ],
    })
    // The same address is a valid email, and an opaque username is a valid username.
    const fine = await create({ username: randomBytes(8).toString('hex'), email: "o'brien@example.test", firstName: "Miles O'Brien", enabled: true })
    expect(fine.status).toBe(201)
    expect(fake.adminUsers(realm).map((u) => u.email)).toEqual(["o'brien@example.test"])
  })

  it("keeps an existing user's username read-only unless the realm allows editing it", async () => {
    const admin = await adminClient()
    const locked = uniqueRealm()
    const { id } = await tenantWithViewer(admin, locked)
    await expect(admin.users.update({ realm: locked, id }, { username: 'alice2', email: 'alice@example.test' })).rejects.toMatchObject({
      response: { status: 400 },
      responseData: { field: 'username', errorMessage: 'error-user-attribute-read-only' },
    })
    expect(fake.adminUsers(locked)[0]!.username).toBe('alice')
    // Sending it back unchanged is no edit.
    await admin.users.update({ realm: locked, id }, { username: 'ALICE', email: 'alice@example.test' })

    const open = uniqueRealm()
    await admin.realms.create({ realm: open, enabled: true, editUsernameAllowed: true })
    const { id: bob } = await admin.users.create({ realm: open, username: 'bob', enabled: true })
    await admin.users.update({ realm: open, id: bob }, { username: 'robert' })
    expect(fake.adminUsers(open)[0]!.username).toBe('robert')
  })
})

describe('realms imported with clients, and Keycloak behind two names', () => {
  it("gives a realm created with clients those clients, with Keycloak's defaults for what they leave out", async () => {
    const admin = await adminClient()
    const realm = uniqueRealm()
    await admin.realms.create({
      realm,
      enabled: true,
      clients: [
        { clientId: 'login', secret: 'login-secret', directAccessGrantsEnabled: true },
        { clientId: 'browser-only', secret: 'other-secret' },
      ],
    })
    fake.addUser(realm, { username: 'gina', password: 'pw' })

    const ok = await tokenRequest(realm, { grant_type: 'password', client_id: 'login', client_secret: 'login-secret', username: 'gina', password: 'pw' })
    expect(ok.status).toBe(200)
    const noSecret = await tokenRequest(realm, { grant_type: 'password', client_id: 'login', username: 'gina', password: 'pw' })
    expect(noSecret).toMatchObject({ status: 401, body: { error: 'invalid_client' } })
    const noGrant = await tokenRequest(realm, { grant_type: 'password', client_id: 'browser-only', client_secret: 'other-secret', username: 'gina', password: 'pw' })
    expect(noGrant).toMatchObject({ status: 400, body: { error: 'unauthorized_client' } })
  })

  it('names its frontend URL as issuer while serving keys at its own address; the verifier must fetch keys there', async () => {
    const behind = await startFakeKeycloak({ frontendUrl: 'http://localhost:1' })
    try {
      const realm = uniqueRealm()
      await behind.addRealm(realm)
      behind.addUser(realm, { username: 'hank', password: 'pw' })
      const login = await fetch(`${behind.url}/realms/${realm}/protocol/openid-connect/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'password', client_id: 'admin-cli', username: 'hank', password: 'pw' }),
      })
      const accessToken = String(((await login.json()) as Record<string, unknown>).access_token)
      const discovery = (await (await fetch(`${behind.url}/realms/${realm}/.well-known/openid-configuration`)).json()) as Record<string, string>
      expect(discovery.issuer).toBe(`http://localhost:1/realms/${realm}`)
      expect(discovery.jwks_uri).toBe(`${behind.url}/realms/${realm}/protocol/openid-connect/certs`)

      const split = createTokenVerifier({ issuerBase: 'http://localhost:1', keysBase: behind.url, isRealmAllowed: () => true, fetchTimeoutMs: 1000 })
      expect(await split.verify(accessToken)).toMatchObject({ realm, issuer: `http://localhost:1/realms/${realm}`, preferredUsername: 'hank' })
      expect(behind.jwksRequests(realm)).toBe(1)
      // Keys looked for under the issuer's name are not there (nothing listens at localhost:1).
      const naive = createTokenVerifier({ issuerBase: 'http://localhost:1', isRealmAllowed: () => true, fetchTimeoutMs: 1000 })
      await expect(naive.verify(accessToken)).rejects.toMatchObject({ code: 'IDENTITY_PROVIDER_UNAVAILABLE' })
      // And an issuer base of the inner address refuses the token outright.
      const inner = createTokenVerifier({ issuerBase: behind.url, isRealmAllowed: () => true })
      await expect(inner.verify(accessToken)).rejects.toMatchObject({ status: 401 })
    } finally {
      await behind.close()
    }
  })
})

function asForm(credentials: { clientId: string; clientSecret: string }): Record<string, string> {
  return { client_id: credentials.clientId, client_secret: credentials.clientSecret }
}
