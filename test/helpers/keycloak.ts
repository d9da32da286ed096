/**
 * A Keycloak stand-in for tests: one node:http server on 127.0.0.1 that serves, per realm, the
 * JWKS, the discovery document, the token and logout endpoints, and the part of the Admin REST
 * API that @keycloak/keycloak-admin-client uses to manage realms, realm roles and users. State is
 * in memory and readable for assertions.
 *
 * Where it follows Keycloak on purpose (so tests catch the same mistakes Keycloak would):
 * - users created through the admin API are disabled unless `enabled: true` is sent, and
 *   `realmRoles` in the user representation is ignored: roles come only from role mappings;
 * - role mappings must name an existing role with its matching `id`, or the call answers 404;
 * - usernames are stored lower-case; duplicate username or email answers 409;
 * - wrong user credentials answer 401 `invalid_grant`, a bad refresh token 400 `invalid_grant`;
 * - refresh tokens are HS512 (a realm secret) with `typ: "Refresh"`; client_credentials gives no
 *   refresh token;
 * - a realm with `revokeRefreshToken: true` refuses a refresh token older than the one last used in
 *   its session ("Stale token") and one used more than `refreshTokenMaxReuse` times, both 400
 *   `invalid_grant`; the session itself lives on;
 * - every realm has a public `admin-cli` client allowed to use the password grant;
 * - a user PUT replaces `email`, `firstName` and `lastName`: one left out is cleared, as Keycloak does
 *   since 24.0.4 (keycloak/keycloak#28220); other fields left out keep their value;
 * - user-profile validation as Keycloak 26 answers it (400, `{field, errorMessage, params}`, or
 *   `{errors: [...]}` for several): usernames 3-255 characters without `<>&"'`, whitespace,
 *   `$%!#?§,;:*~/\|^=[]{}()` or backquote; first and last names without `<>&"$%!#?§;*~/\|^=[]{}()`;
 *   emails of one `@` with a local part of at most 64 characters; an existing user's username is
 *   read-only unless the realm has `editUsernameAllowed: true` (`error-user-attribute-read-only`);
 * - a realm created through the admin API gets the `clients` of its representation (confidential
 *   unless `publicClient: true`, direct access grants only with `directAccessGrantsEnabled: true`);
 * - with `frontendUrl` (KC_HOSTNAME), tokens name `${frontendUrl}/realms/<realm>` as issuer while
 *   every endpoint is served at `url`, as Keycloak behind two names does.
 * Where it is simpler: no default roles are mapped to new users, composites do not exist, every
 * realm publishes one RS256 signer and one ES256 key from the start, and any valid token of realm
 * `master` may call the admin API.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import http from 'node:http'
import { type AddressInfo } from 'node:net'
import {
  createLocalJWKSet,
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  jwtVerify,
  type KeyObject,
  SignJWT,
} from 'jose'

export type SigningAlgorithm = 'RS256' | 'ES256'

export interface MintOptions {
  /** Lifetime from now; negative gives an already expired token. Default 300. */
  expiresInSeconds?: number
  /** Sets `nbf` this many seconds from now. */
  notBeforeSeconds?: number
  alg?: SigningAlgorithm
  /** Header `kid`; default the realm's current key of `alg`. */
  kid?: string
  /** Sign with this key instead of the realm's (the header still names the realm's kid unless `kid` is given). */
  key?: CryptoKey | KeyObject
}

export interface FakeUserInput {
  id?: string
  username: string
  email?: string
  firstName?: string
  lastName?: string
  password?: string
  roles?: string[]
  enabled?: boolean
  emailVerified?: boolean
  requiredActions?: string[]
}

export interface FakeUser {
  id: string
  username: string
  email?: string
  firstName?: string
  lastName?: string
  /** Plain text: this is a stand-in, and tests assert what the API set. */
  password?: string
  enabled: boolean
  emailVerified: boolean
  requiredActions: string[]
  attributes: Record<string, string[]>
  /** Realm role names mapped to the user. */
  roles: string[]
  createdTimestamp: number
}

export interface FakeClientInput {
  clientId: string
  /** Absent: a public client. */
  secret?: string
  /** Present: service accounts are enabled (client_credentials), and its tokens carry these realm roles. */
  serviceAccountRoles?: string[]
  /** Password grant; default true. */
  directAccessGrants?: boolean
}

export interface AdminCall {
  method: string
  path: string
}

export interface FakeKeycloakOptions {
  /** The hostname tokens carry (Keycloak's KC_HOSTNAME), e.g. http://localhost:8081; default `url`. */
  frontendUrl?: string
}

export interface FakeClientView {
  clientId: string
  publicClient: boolean
  directAccessGrants: boolean
  /** Present for confidential clients. */
  secret?: string
  serviceAccount: boolean
}

export interface FakeKeycloak {
  /** Base URL, e.g. http://127.0.0.1:PORT */
  url: string
  /** Confidential client of realm `master` whose client_credentials tokens may call the admin API. */
  adminCredentials: { clientId: string; clientSecret: string }
  issuer(realm: string): string
  /** Creates an enabled realm with fresh keys and these realm settings (e.g. revokeRefreshToken); does nothing when it exists. */
  addRealm(realm: string, settings?: Record<string, unknown>): Promise<void>
  /** The realm's settings: as given to addRealm, or to the admin API when it created the realm. */
  realmSettings(realm: string): Record<string, unknown>
  /** Registers a user (creating missing roles) and returns it; the password grant accepts it. */
  addUser(realm: string, user: FakeUserInput): FakeUser
  addClient(realm: string, client: FakeClientInput): void
  /** Signs an access token shaped like Keycloak's; a claim given as `undefined` is left out. */
  mint(realm: string, claims?: Record<string, unknown>, options?: MintOptions): Promise<string>
  /** A new RS256 key becomes the signer; the old one leaves the JWKS. */
  rotateKey(realm: string): Promise<void>
  /** The realm's published key set, as the certs endpoint serves it. */
  jwks(realm: string): JSONWebKeySet
  jwksRequests(realm: string): number
  /** Every request seen, in order; paths without a trailing slash. */
  requests(): AdminCall[]
  /** Admin calls answer 500 while this is on, or for the calls the predicate picks. */
  failAdminCalls(on: boolean | ((call: AdminCall) => boolean)): void
  /** Realms created through the admin API, in order. */
  realmsCreated(): string[]
  realmNames(): string[]
  adminUsers(realm: string): FakeUser[]
  adminRoles(realm: string): string[]
  /** The realm's clients, `admin-cli` included. */
  adminClients(realm: string): FakeClientView[]
  /** Login sessions (password grant) not yet ended by logout or user deletion. */
  activeSessions(realm: string): number
  /**
   * What Keycloak's login page does for a user whose required actions include UPDATE_PASSWORD (a
   * temporary password): they sign in with the current password and must choose a new one, which
   * clears the action. Throws as the page would refuse: wrong password, or no such action pending.
   */
  updatePasswordAtLogin(realm: string, username: string, current: string, next: string): void
  /** Sets a user's password as the user would in Keycloak's own pages (no required action left). */
  setPassword(realm: string, userId: string, password: string): void
  close(): Promise<void>
}

const ACCESS_TOKEN_SECONDS = 300
const REFRESH_TOKEN_SECONDS = 1800
const ACCOUNT_ROLES = ['manage-account', 'manage-account-links', 'view-profile']
const MAX_BODY_BYTES = 1024 * 1024

interface SigningKey {
  kid: string
  alg: SigningAlgorithm
  privateKey: CryptoKey
  publicJwk: JWK
}

interface Role {
  id: string
  name: string
  description?: string
}

interface Client {
  clientId: string
  secret?: string
  directAccessGrants: boolean
  serviceAccount?: { id: string; roles: string[] }
}

interface Session {
  id: string
  clientId: string
  userId: string
  /** Refresh token ids issued in this session → order of issue. */
  refreshTokens: Map<string, number>
  /** The refresh token last used, and how often (Keycloak's "current refresh token" of the session). */
  current?: { tokenId: string; uses: number }
}

interface Realm {
  id: string
  name: string
  enabled: boolean
  /** What the admin API was given, echoed back by GET (minus roles/users/clients). */
  representation: Record<string, unknown>
  keys: Record<SigningAlgorithm, SigningKey>
  refreshSecret: Uint8Array
  roles: Map<string, Role>
  users: Map<string, FakeUser>
  clients: Map<string, Client>
  sessions: Map<string, Session>
}

interface Call {
  params: Record<string, string>
  query: URLSearchParams
  headers: http.IncomingHttpHeaders
  json: unknown
  form: URLSearchParams
}

interface Reply {
  status: number
  body?: unknown
  headers?: Record<string, string>
}

interface Route {
  method: string
  pattern: string[]
  admin: boolean
  handle(call: Call): Reply | Promise<Reply>
}

/** A Keycloak-style error answer, thrown from handlers. */
class Problem extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(`fake keycloak ${status}`)
  }
}

const oauthError = (status: number, error: string, description: string) =>
  new Problem(status, { error, error_description: description })

export async function startFakeKeycloak(options: FakeKeycloakOptions = {}): Promise<FakeKeycloak> {
  const realms = new Map<string, Realm>()
  const seen: AdminCall[] = []
  const certsFetches = new Map<string, number>()
  const created: string[] = []
  let adminFailure: (call: AdminCall) => boolean = () => false
  let url = ''
  const issuer = (realm: string) => `${options.frontendUrl?.replace(/\/+$/, '') ?? url}/realms/${realm}`

  // ---- realms, keys, tokens -------------------------------------------------------------------

  async function newKey(alg: SigningAlgorithm): Promise<SigningKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg)
    const kid = randomBytes(16).toString('base64url')
    return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } }
  }

  async function createRealm(name: string, representation: Record<string, unknown>, enabled: boolean): Promise<Realm> {
    const [rsa, ec] = await Promise.all([newKey('RS256'), newKey('ES256')])
    const realm: Realm = {
      id: randomUUID(),
      name,
      enabled,
      representation,
      keys: { RS256: rsa, ES256: ec },
      refreshSecret: randomBytes(64),
      roles: new Map(),
      users: new Map(),
      clients: new Map(),
      sessions: new Map(),
    }
    realm.clients.set('admin-cli', { clientId: 'admin-cli', directAccessGrants: true })
    realms.set(name, realm)
    return realm
  }

  function realmOf(name: string | undefined): Realm {
    const realm = name === undefined ? undefined : realms.get(name)
    if (!realm) throw new Problem(404, { error: 'Realm does not exist' })
    return realm
  }

  function publishedKeys(realm: Realm): JSONWebKeySet {
    return { keys: [realm.keys.RS256.publicJwk, realm.keys.ES256.publicJwk] }
  }

  async function sign(realm: Realm, payload: JWTPayload, options: MintOptions = {}): Promise<string> {
    const alg = options.alg ?? 'RS256'
    const own = realm.keys[alg]
    return new SignJWT(payload)
      .setProtectedHeader({ alg, typ: 'JWT', kid: options.kid ?? own.kid })
      .sign(options.key ?? own.privateKey)
  }

  /** The claims Keycloak puts into a user's access token, before overrides. */
  function userClaims(realm: Realm, user: Pick<FakeUser, 'id' | 'username' | 'email' | 'emailVerified' | 'firstName' | 'lastName' | 'roles'>, clientId: string, sessionId: string): JWTPayload {
    const now = Math.floor(Date.now() / 1000)
    const name = [user.firstName, user.lastName].filter(Boolean).join(' ')
    return {
      exp: now + ACCESS_TOKEN_SECONDS,
      iat: now,
      jti: randomUUID(),
      iss: issuer(realm.name),
      aud: 'account',
      sub: user.id,
      typ: 'Bearer',
      azp: clientId,
      sid: sessionId,
      acr: '1',
      realm_access: { roles: [...user.roles] },
      resource_access: { account: { roles: ACCOUNT_ROLES } },
      scope: 'openid email profile',
      email_verified: user.emailVerified,
      ...(name ? { name } : {}),
      preferred_username: user.username,
      ...(user.firstName ? { given_name: user.firstName } : {}),
      ...(user.lastName ? { family_name: user.lastName } : {}),
      ...(user.email ? { email: user.email } : {}),
    }
  }

  async function mint(realmName: string, claims: Record<string, unknown> = {}, options: MintOptions = {}): Promise<string> {
    const realm = realms.get(realmName)
    if (!realm) throw new Error(`fake keycloak: no realm ${realmName}`)
    const suffix = randomBytes(4).toString('hex')
    const base = userClaims(
      realm,
      {
        id: randomUUID(),
        username: `user-${suffix}`,
        email: `user-${suffix}@example.test`,
        emailVerified: true,
        firstName: 'Test',
        lastName: `User ${suffix}`,
        roles: [`default-roles-${realmName}`, 'offline_access', 'uma_authorization'],
      },
      'modelplane-web',
      randomUUID(),
    )
    const now = Math.floor(Date.now() / 1000)
    if (options.expiresInSeconds !== undefined) base.exp = now + options.expiresInSeconds
    if (options.notBeforeSeconds !== undefined) base.nbf = now + options.notBeforeSeconds
    const payload: Record<string, unknown> = { ...base, ...claims }
    for (const [claim, value] of Object.entries(payload)) if (value === undefined) delete payload[claim]
    return sign(realm, payload, options)
  }

  async function issueTokens(realm: Realm, claims: JWTPayload, session?: Session): Promise<Reply> {
    const body: Record<string, unknown> = {
      access_token: await sign(realm, claims),
      expires_in: ACCESS_TOKEN_SECONDS,
      refresh_expires_in: 0,
      token_type: 'Bearer',
      'not-before-policy': 0,
      scope: 'openid email profile',
    }
    if (session) {
      const now = Math.floor(Date.now() / 1000)
      const tokenId = randomUUID()
      session.refreshTokens.set(tokenId, session.refreshTokens.size)
      body.refresh_token = await new SignJWT({ typ: 'Refresh', azp: session.clientId, sid: session.id, scope: 'openid email profile' })
        .setProtectedHeader({ alg: 'HS512', typ: 'JWT' })
        .setIssuer(issuer(realm.name))
        .setAudience(issuer(realm.name))
        .setSubject(session.userId)
        .setJti(tokenId)
        .setIssuedAt(now)
        .setExpirationTime(now + REFRESH_TOKEN_SECONDS)
        .sign(realm.refreshSecret)
      body.refresh_expires_in = REFRESH_TOKEN_SECONDS
      body.session_state = session.id
    }
    return { status: 200, body }
  }

  // ---- OpenID Connect endpoints -----------------------------------------------------------------

  /** Client authentication as Keycloak takes it: HTTP Basic (form-encoded parts) or client_id/client_secret in the form. */
  function authenticateClient(realm: Realm, call: Call): Client {
    let clientId = call.form.get('client_id') ?? undefined
    let secret = call.form.get('client_secret') ?? undefined
    const basic = /^Basic (.+)$/i.exec(call.headers.authorization ?? '')
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      const formDecode = (part: string) => decodeURIComponent(part.replaceAll('+', ' '))
      clientId = formDecode(decoded.slice(0, colon))
      secret = formDecode(decoded.slice(colon + 1))
    }
    const client = clientId === undefined ? undefined : realm.clients.get(clientId)
    if (!client || (client.secret !== undefined && client.secret !== secret)) {
      throw oauthError(401, 'invalid_client', 'Invalid client or Invalid client credentials')
    }
    return client
  }

  function requireEnabledRealm(realm: Realm): void {
    if (!realm.enabled) throw oauthError(403, 'access_denied', 'Realm not enabled')
  }

  async function passwordGrant(realm: Realm, client: Client, form: URLSearchParams): Promise<Reply> {
    if (!client.directAccessGrants) throw oauthError(400, 'unauthorized_client', 'Client not allowed for direct access grants')
    const login = (form.get('username') ?? '').toLowerCase()
    const user = [...realm.users.values()].find((candidate) => candidate.username === login || candidate.email?.toLowerCase() === login)
    if (!user || user.password === undefined || user.password !== form.get('password')) {
      throw oauthError(401, 'invalid_grant', 'Invalid user credentials')
    }
    if (!user.enabled) throw oauthError(400, 'invalid_grant', 'Account disabled')
    if (user.requiredActions.length > 0) throw oauthError(400, 'invalid_grant', 'Account is not fully set up')
    const session: Session = { id: randomUUID(), clientId: client.clientId, userId: user.id, refreshTokens: new Map() }
    realm.sessions.set(session.id, session)
    return issueTokens(realm, userClaims(realm, user, client.clientId, session.id), session)
  }

  /** The session a refresh token belongs to, if the token is genuine, of this client, and the session lives. */
  async function sessionOfRefreshToken(realm: Realm, client: Client, token: string | null): Promise<Session> {
    return (await refreshTokenOf(realm, client, token)).session
  }

  async function refreshTokenOf(realm: Realm, client: Client, token: string | null): Promise<{ session: Session; tokenId: string }> {
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token ?? '', realm.refreshSecret, { issuer: issuer(realm.name), algorithms: ['HS512'] }))
    } catch {
      throw oauthError(400, 'invalid_grant', 'Invalid refresh token')
    }
    if (payload.typ !== 'Refresh' || payload.azp !== client.clientId) throw oauthError(400, 'invalid_grant', 'Invalid refresh token')
    const session = realm.sessions.get(String(payload.sid))
    if (!session) throw oauthError(400, 'invalid_grant', 'Session not active')
    return { session, tokenId: String(payload.jti) }
  }

  /** Keycloak's refresh token rotation (TokenManager's token reuse check), when the realm turns it on. */
  function checkRefreshTokenReuse(realm: Realm, session: Session, tokenId: string): void {
    if (realm.representation.revokeRefreshToken !== true) return
    const order = session.refreshTokens.get(tokenId) ?? -1
    const current = session.current
    if (current && current.tokenId !== tokenId && order < (session.refreshTokens.get(current.tokenId) ?? -1)) {
      throw oauthError(400, 'invalid_grant', 'Stale token')
    }
    if (!current || current.tokenId !== tokenId) session.current = { tokenId, uses: 0 }
    const maxReuse = typeof realm.representation.refreshTokenMaxReuse === 'number' ? realm.representation.refreshTokenMaxReuse : 0
    if (session.current!.uses > maxReuse) throw oauthError(400, 'invalid_grant', 'Maximum allowed refresh token reuse exceeded')
    session.current!.uses += 1
  }

  async function refreshGrant(realm: Realm, client: Client, form: URLSearchParams): Promise<Reply> {
    const { session, tokenId } = await refreshTokenOf(realm, client, form.get('refresh_token'))
    checkRefreshTokenReuse(realm, session, tokenId)
    const user = realm.users.get(session.userId)
    if (!user?.enabled) throw oauthError(400, 'invalid_grant', 'Session not active')
    return issueTokens(realm, userClaims(realm, user, client.clientId, session.id), session)
  }

  async function clientCredentialsGrant(realm: Realm, client: Client): Promise<Reply> {
    if (!client.serviceAccount || client.secret === undefined) {
      throw oauthError(401, 'unauthorized_client', 'Client not enabled to retrieve service account')
    }
    const claims = userClaims(
      realm,
      { id: client.serviceAccount.id, username: `service-account-${client.clientId}`, emailVerified: false, roles: client.serviceAccount.roles },
      client.clientId,
      randomUUID(),
    )
    return issueTokens(realm, { ...claims, client_id: client.clientId })
  }

  async function token(call: Call): Promise<Reply> {
    const realm = realmOf(call.params.realm)
    requireEnabledRealm(realm)
    const client = authenticateClient(realm, call)
    switch (call.form.get('grant_type')) {
      case 'password':
        return passwordGrant(realm, client, call.form)
      case 'refresh_token':
        return refreshGrant(realm, client, call.form)
      case 'client_credentials':
        return clientCredentialsGrant(realm, client)
      default:
        throw oauthError(400, 'unsupported_grant_type', 'Unsupported grant_type')
    }
  }

  async function logout(call: Call): Promise<Reply> {
    const realm = realmOf(call.params.realm)
    const client = authenticateClient(realm, call)
    const session = await sessionOfRefreshToken(realm, client, call.form.get('refresh_token'))
    realm.sessions.delete(session.id)
    return { status: 204 }
  }

  function discovery(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const base = issuer(realm.name)
    const oidc = `${base}/protocol/openid-connect`
    // Backchannel endpoints at the address asked (KC_HOSTNAME_BACKCHANNEL_DYNAMIC), browser ones at the frontend name.
    const backchannel = `${url}/realms/${realm.name}/protocol/openid-connect`
    return {
      status: 200,
      body: {
        issuer: base,
        authorization_endpoint: `${oidc}/auth`,
        token_endpoint: `${backchannel}/token`,
        introspection_endpoint: `${backchannel}/token/introspect`,
        userinfo_endpoint: `${backchannel}/userinfo`,
        end_session_endpoint: `${oidc}/logout`,
        jwks_uri: `${backchannel}/certs`,
        grant_types_supported: ['authorization_code', 'refresh_token', 'password', 'client_credentials'],
        response_types_supported: ['code'],
        subject_types_supported: ['public', 'pairwise'],
        id_token_signing_alg_values_supported: ['RS256', 'ES256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        scopes_supported: ['openid', 'email', 'profile', 'offline_access'],
      },
    }
  }

  function certs(call: Call): Reply {
    const name = call.params.realm!
    certsFetches.set(name, (certsFetches.get(name) ?? 0) + 1)
    return { status: 200, body: publishedKeys(realmOf(name)) }
  }

  // ---- admin API ----------------------------------------------------------------------------------

  async function requireAdminToken(call: Call): Promise<void> {
    const master = realms.get('master')!
    const bearer = /^Bearer (.+)$/i.exec(call.headers.authorization ?? '')
    try {
      const { payload } = await jwtVerify(bearer?.[1] ?? '', createLocalJWKSet(publishedKeys(master)), { issuer: issuer('master') })
      if (payload.typ !== 'Bearer') throw new Error('not an access token')
    } catch {
      throw new Problem(401, { error: 'HTTP 401 Unauthorized' })
    }
  }

  const roleView = (realm: Realm, role: Role) => ({
    id: role.id,
    name: role.name,
    ...(role.description === undefined ? {} : { description: role.description }),
    composite: false,
    clientRole: false,
    containerId: realm.id,
    attributes: {},
  })

  const userView = (user: FakeUser) => ({
    id: user.id,
    username: user.username,
    ...(user.firstName === undefined ? {} : { firstName: user.firstName }),
    ...(user.lastName === undefined ? {} : { lastName: user.lastName }),
    ...(user.email === undefined ? {} : { email: user.email }),
    emailVerified: user.emailVerified,
    enabled: user.enabled,
    createdTimestamp: user.createdTimestamp,
    attributes: user.attributes,
    requiredActions: user.requiredActions,
    totp: false,
    notBefore: 0,
  })

  const location = (...segments: string[]) => ({ Location: `${url}/${segments.map(encodeURIComponent).join('/')}` })

  function ensureRole(realm: Realm, name: string, description?: string): Role {
    let role = realm.roles.get(name)
    if (!role) {
      role = { id: randomUUID(), name, ...(description === undefined ? {} : { description }) }
      realm.roles.set(name, role)
    }
    return role
  }

  async function adminCreateRealm(call: Call): Promise<Reply> {
    const rep = record(call.json)
    const name = rep.realm
    if (typeof name !== 'string' || name.length === 0) throw new Problem(400, { errorMessage: 'Realm name cannot be empty' })
    if (realms.has(name)) throw new Problem(409, { errorMessage: `Conflict detected. See logs for details` })
    const { roles, users: _users, clients, ...representation } = rep
    const realm = await createRealm(name, representation, rep.enabled === true)
    for (const role of asArray(record(roles).realm)) {
      const { name: roleName, description } = record(role)
      if (typeof roleName === 'string') ensureRole(realm, roleName, typeof description === 'string' ? description : undefined)
    }
    for (const client of asArray(clients)) importClient(realm, record(client))
    created.push(name)
    return { status: 201, headers: location('admin', 'realms', name) }
  }

  /**
   * A client of a realm representation, with Keycloak's defaults for what it leaves out:
   * confidential (a generated secret unless one is given), no direct access grants, no service account.
   */
  function importClient(realm: Realm, rep: Record<string, unknown>): void {
    if (typeof rep.clientId !== 'string' || rep.clientId.length === 0) throw new Problem(400, { errorMessage: 'Client id is missing' })
    if (realm.clients.has(rep.clientId)) throw new Problem(409, { errorMessage: `Client ${rep.clientId} already exists` })
    const confidential = rep.publicClient !== true
    realm.clients.set(rep.clientId, {
      clientId: rep.clientId,
      ...(confidential ? { secret: typeof rep.secret === 'string' ? rep.secret : randomBytes(16).toString('hex') } : {}),
      directAccessGrants: rep.directAccessGrantsEnabled === true,
      ...(confidential && rep.serviceAccountsEnabled === true ? { serviceAccount: { id: randomUUID(), roles: [] } } : {}),
    })
  }

  function adminGetRealm(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    return { status: 200, body: { ...realm.representation, id: realm.id, realm: realm.name, enabled: realm.enabled } }
  }

  function adminDeleteRealm(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    if (realm.name === 'master') throw new Problem(400, { error: 'master realm cannot be removed' })
    realms.delete(realm.name)
    return { status: 204 }
  }

  function adminCreateRole(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const { name, description } = record(call.json)
    if (typeof name !== 'string' || name.length === 0) throw new Problem(400, { errorMessage: 'Role name is missing' })
    if (realm.roles.has(name)) throw new Problem(409, { errorMessage: `Role with name ${name} already exists` })
    ensureRole(realm, name, typeof description === 'string' ? description : undefined)
    return { status: 201, headers: location('admin', 'realms', realm.name, 'roles', name) }
  }

  function adminGetRole(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const role = realm.roles.get(call.params.name!)
    if (!role) throw new Problem(404, { error: 'Could not find role' })
    return { status: 200, body: roleView(realm, role) }
  }

  function adminListRoles(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    return { status: 200, body: [...realm.roles.values()].map((role) => roleView(realm, role)) }
  }

  function userOf(realm: Realm, id: string | undefined): FakeUser {
    const user = id === undefined ? undefined : realm.users.get(id)
    if (!user) throw new Problem(404, { error: 'User not found' })
    return user
  }

  function requireUnique(realm: Realm, self: string | undefined, username?: string, email?: string): void {
    for (const other of realm.users.values()) {
      if (other.id === self) continue
      if (username !== undefined && other.username === username) throw new Problem(409, { errorMessage: 'User exists with same username' })
      if (email !== undefined && other.email?.toLowerCase() === email.toLowerCase()) {
        throw new Problem(409, { errorMessage: 'User exists with same email' })
      }
    }
  }

  /** Applies the password of a `credentials` array or a single credential, as create, update and reset-password do. */
  function applyCredential(user: FakeUser, credential: unknown): void {
    const { type, value, temporary } = record(credential)
    if (type !== 'password' || typeof value !== 'string') return
    user.password = value
    user.requiredActions = user.requiredActions.filter((action) => action !== 'UPDATE_PASSWORD')
    if (temporary === true) user.requiredActions.push('UPDATE_PASSWORD')
  }

  /**
   * Copies a user representation. `email`, `firstName` and `lastName` are user-profile attributes
   * that the representation replaces: absent or empty clears them (Keycloak 24.0.4 and later). Other
   * fields left out keep their value.
   */
  function applyUserRepresentation(user: FakeUser, rep: Record<string, unknown>): void {
    if (typeof rep.username === 'string') user.username = rep.username.toLowerCase()
    user.email = nonEmpty(rep.email)
    user.firstName = nonEmpty(rep.firstName)
    user.lastName = nonEmpty(rep.lastName)
    if (typeof rep.enabled === 'boolean') user.enabled = rep.enabled
    if (typeof rep.emailVerified === 'boolean') user.emailVerified = rep.emailVerified
    if (Array.isArray(rep.requiredActions)) user.requiredActions = rep.requiredActions.filter((a): a is string => typeof a === 'string')
    if (rep.attributes !== undefined) user.attributes = record(rep.attributes) as Record<string, string[]>
    for (const credential of asArray(rep.credentials)) applyCredential(user, credential)
  }

  /** Keycloak 26's default user profile: every failing attribute is reported, one error unwrapped. */
  function validateUserProfile(realm: Realm, existing: FakeUser | undefined, rep: Record<string, unknown>): void {
    const errors: Array<{ field: string; errorMessage: string; params: string[] }> = []
    const fail = (field: string, errorMessage: string) => errors.push({ field, errorMessage, params: [field] })
    if (typeof rep.username === 'string') {
      const username = rep.username.toLowerCase()
      if (existing && username !== existing.username && realm.representation.editUsernameAllowed !== true) {
        fail('username', 'error-user-attribute-read-only')
      } else if (username.length < 3 || username.length > 255) fail('username', 'error-invalid-length')
      else if (!USERNAME_ALLOWED.test(username)) fail('username', 'error-username-invalid-character')
    }
    const email = nonEmpty(rep.email)
    if (email !== undefined && !isEmailKeycloakTakes(email)) fail('email', 'error-invalid-email')
    for (const field of ['firstName', 'lastName'] as const) {
      const value = nonEmpty(rep[field])
      if (value !== undefined && !PERSON_NAME_ALLOWED.test(value)) fail(field, 'error-person-name-invalid-character')
    }
    if (errors.length === 1) throw new Problem(400, errors[0]!)
    if (errors.length > 1) throw new Problem(400, { errors })
  }

  function adminCreateUser(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const rep = record(call.json)
    if (typeof rep.username !== 'string' || rep.username.length === 0) throw new Problem(400, { errorMessage: 'error-user-attribute-required' })
    validateUserProfile(realm, undefined, rep)
    requireUnique(realm, undefined, rep.username.toLowerCase(), typeof rep.email === 'string' ? rep.email : undefined)
    const user = blankUser(randomUUID(), rep.username)
    applyUserRepresentation(user, rep)
    realm.users.set(user.id, user)
    return { status: 201, headers: location('admin', 'realms', realm.name, 'users', user.id) }
  }

  /** The user search of GET /users and /users/count: field filters (substring unless exact=true), `search`, `enabled`. */
  function matchingUsers(realm: Realm, query: URLSearchParams): FakeUser[] {
    const exact = query.get('exact') === 'true'
    const matches = (value: string | undefined, wanted: string) =>
      exact ? value?.toLowerCase() === wanted.toLowerCase() : (value ?? '').toLowerCase().includes(wanted.toLowerCase())
    const fields = ['username', 'email', 'firstName', 'lastName'] as const
    const search = query.get('search')?.replaceAll('*', '').replaceAll('"', '')
    return [...realm.users.values()]
      .filter((user) => fields.every((field) => !query.has(field) || matches(user[field], query.get(field)!)))
      .filter((user) => !search || fields.some((field) => (user[field] ?? '').toLowerCase().includes(search.toLowerCase())))
      .filter((user) => !query.has('enabled') || String(user.enabled) === query.get('enabled'))
      .sort((a, b) => a.username.localeCompare(b.username))
  }

  function adminFindUsers(call: Call): Reply {
    const first = Number(call.query.get('first') ?? 0)
    const max = Number(call.query.get('max') ?? 100)
    const found = matchingUsers(realmOf(call.params.realm), call.query)
    return { status: 200, body: found.slice(first, first + max).map(userView) }
  }

  function adminCountUsers(call: Call): Reply {
    return { status: 200, body: matchingUsers(realmOf(call.params.realm), call.query).length }
  }

  function adminGetUser(call: Call): Reply {
    return { status: 200, body: userView(userOf(realmOf(call.params.realm), call.params.id)) }
  }

  function adminUpdateUser(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const user = userOf(realm, call.params.id)
    const rep = record(call.json)
    validateUserProfile(realm, user, rep)
    requireUnique(realm, user.id, typeof rep.username === 'string' ? rep.username.toLowerCase() : undefined, typeof rep.email === 'string' ? rep.email : undefined)
    applyUserRepresentation(user, rep)
    return { status: 204 }
  }

  function adminResetPassword(call: Call): Reply {
    const user = userOf(realmOf(call.params.realm), call.params.id)
    applyCredential(user, call.json)
    return { status: 204 }
  }

  /** POST /users/{id}/logout: Keycloak removes every session of the user (refresh tokens stop working) and answers 204. */
  function adminLogoutUser(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const user = userOf(realm, call.params.id)
    for (const session of realm.sessions.values()) if (session.userId === user.id) realm.sessions.delete(session.id)
    return { status: 204 }
  }

  function adminDeleteUser(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const user = userOf(realm, call.params.id)
    realm.users.delete(user.id)
    for (const session of realm.sessions.values()) if (session.userId === user.id) realm.sessions.delete(session.id)
    return { status: 204 }
  }

  /** Keycloak resolves each mapped role by name and insists the id matches, else 404. */
  function rolesOfMappingBody(realm: Realm, body: unknown): Role[] {
    return asArray(body).map((item) => {
      const { id, name } = record(item)
      const role = typeof name === 'string' ? realm.roles.get(name) : undefined
      if (!role || role.id !== id) throw new Problem(404, { error: 'Role not found' })
      return role
    })
  }

  function adminListRoleMappings(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const user = userOf(realm, call.params.id)
    return { status: 200, body: user.roles.map((name) => roleView(realm, realm.roles.get(name)!)) }
  }

  function adminAddRoleMappings(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const user = userOf(realm, call.params.id)
    for (const role of rolesOfMappingBody(realm, call.json)) if (!user.roles.includes(role.name)) user.roles.push(role.name)
    return { status: 204 }
  }

  function adminDeleteRoleMappings(call: Call): Reply {
    const realm = realmOf(call.params.realm)
    const user = userOf(realm, call.params.id)
    // No body removes every mapping, as in Keycloak.
    const removed = call.json === undefined ? [...user.roles] : rolesOfMappingBody(realm, call.json).map((role) => role.name)
    user.roles = user.roles.filter((name) => !removed.includes(name))
    return { status: 204 }
  }

  // ---- HTTP plumbing --------------------------------------------------------------------------------

  const route = (method: string, path: string, handle: Route['handle']): Route => ({
    method,
    pattern: path.split('/').filter(Boolean),
    admin: path.startsWith('/admin/'),
    handle,
  })

  const oidc = '/realms/:realm/protocol/openid-connect'
  const users = '/admin/realms/:realm/users'
  const routes: Route[] = [
    route('GET', '/realms/:realm/.well-known/openid-configuration', discovery),
    route('GET', `${oidc}/certs`, certs),
    route('POST', `${oidc}/token`, token),
    route('POST', `${oidc}/logout`, logout),
    route('POST', '/admin/realms', adminCreateRealm),
    route('GET', '/admin/realms/:realm', adminGetRealm),
    route('DELETE', '/admin/realms/:realm', adminDeleteRealm),
    route('GET', '/admin/realms/:realm/roles', adminListRoles),
    route('POST', '/admin/realms/:realm/roles', adminCreateRole),
    route('GET', '/admin/realms/:realm/roles/:name', adminGetRole),
    route('GET', users, adminFindUsers),
    route('POST', users, adminCreateUser),
    route('GET', `${users}/count`, adminCountUsers),
    route('GET', `${users}/:id`, adminGetUser),
    route('PUT', `${users}/:id`, adminUpdateUser),
    route('DELETE', `${users}/:id`, adminDeleteUser),
    route('PUT', `${users}/:id/reset-password`, adminResetPassword),
    route('POST', `${users}/:id/logout`, adminLogoutUser),
    route('GET', `${users}/:id/role-mappings/realm`, adminListRoleMappings),
    route('POST', `${users}/:id/role-mappings/realm`, adminAddRoleMappings),
    route('DELETE', `${users}/:id/role-mappings/realm`, adminDeleteRoleMappings),
  ]

  function findRoute(method: string, segments: string[]): { route: Route; params: Record<string, string> } | undefined {
    let pathMatched = false
    for (const candidate of routes) {
      const params = matchPattern(candidate.pattern, segments)
      if (!params) continue
      pathMatched = true
      if (candidate.method === method) return { route: candidate, params }
    }
    if (pathMatched) throw new Problem(405, { error: 'HTTP 405 Method Not Allowed' })
    return undefined
  }

  async function dispatch(req: http.IncomingMessage): Promise<Reply> {
    const target = new URL(req.url ?? '/', url)
    const method = req.method ?? 'GET'
    // The admin client asks for collections with a trailing slash (POST /admin/realms/x/users/);
    // Keycloak treats both spellings alike, and so do the log and the failure predicate.
    const path = target.pathname.length > 1 ? target.pathname.replace(/\/+$/, '') : target.pathname
    seen.push({ method, path })
    const found = findRoute(method, path.split('/').filter(Boolean).map(decodeURIComponent))
    if (!found) throw new Problem(404, { error: 'Unable to find matching target resource method' })
    const raw = await readBody(req)
    const call: Call = { params: found.params, query: target.searchParams, headers: req.headers, ...parseBody(raw, req.headers['content-type']) }
    if (found.route.admin) {
      await requireAdminToken(call)
      if (adminFailure({ method, path })) throw new Problem(500, { error: 'unknown_error' })
    }
    return found.route.handle(call)
  }

  const server = http.createServer((req, res) => {
    dispatch(req)
      .catch((error: unknown) => {
        if (error instanceof Problem) return { status: error.status, body: error.body }
        return { status: 500, body: { error: 'unknown_error', detail: String(error) } }
      })
      .then((reply) => send(res, reply))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const master = await createRealm('master', {}, true)
  const adminCredentials = { clientId: 'modelplane-admin', clientSecret: randomBytes(16).toString('hex') }
  master.clients.set(adminCredentials.clientId, {
    clientId: adminCredentials.clientId,
    secret: adminCredentials.clientSecret,
    directAccessGrants: false,
    serviceAccount: { id: randomUUID(), roles: ['admin'] },
  })

  function existingRealm(name: string): Realm {
    const realm = realms.get(name)
    if (!realm) throw new Error(`fake keycloak: no realm ${name}`)
    return realm
  }

  return {
    url,
    adminCredentials,
    issuer,
    async addRealm(name, settings = {}) {
      if (!realms.has(name)) await createRealm(name, { ...settings }, true)
    },
    realmSettings: (realmName) => structuredClone(existingRealm(realmName).representation),
    addUser(realmName, input) {
      const realm = existingRealm(realmName)
      const user = blankUser(input.id ?? randomUUID(), input.username)
      Object.assign(user, {
        email: input.email,
        firstName: input.firstName,
        lastName: input.lastName,
        password: input.password,
        enabled: input.enabled ?? true,
        emailVerified: input.emailVerified ?? true,
        requiredActions: input.requiredActions ?? [],
        roles: [...new Set(input.roles ?? [])],
      })
      for (const role of user.roles) ensureRole(realm, role)
      realm.users.set(user.id, user)
      return structuredClone(user)
    },
    addClient(realmName, input) {
      const realm = existingRealm(realmName)
      realm.clients.set(input.clientId, {
        clientId: input.clientId,
        ...(input.secret === undefined ? {} : { secret: input.secret }),
        directAccessGrants: input.directAccessGrants ?? true,
        ...(input.serviceAccountRoles === undefined ? {} : { serviceAccount: { id: randomUUID(), roles: [...input.serviceAccountRoles] } }),
      })
    },
    mint,
    async rotateKey(realmName) {
      existingRealm(realmName).keys.RS256 = await newKey('RS256')
    },
    jwks: (realmName) => structuredClone(publishedKeys(existingRealm(realmName))),
    jwksRequests: (realmName) => certsFetches.get(realmName) ?? 0,
    requests: () => seen.map((call) => ({ ...call })),
    failAdminCalls(on) {
      adminFailure = typeof on === 'function' ? on : () => on
    },
    realmsCreated: () => [...created],
    realmNames: () => [...realms.keys()],
    adminUsers: (realmName) => [...existingRealm(realmName).users.values()].map((user) => structuredClone(user)),
    adminRoles: (realmName) => [...existingRealm(realmName).roles.keys()],
    adminClients: (realmName) =>
      [...existingRealm(realmName).clients.values()].map((client) => ({
        clientId: client.clientId,
        publicClient: client.secret === undefined,
        directAccessGrants: client.directAccessGrants,
        ...(client.secret === undefined ? {} : { secret: client.secret }),
        serviceAccount: client.serviceAccount !== undefined,
      })),
    activeSessions: (realmName) => existingRealm(realmName).sessions.size,
    updatePasswordAtLogin(realmName, username, current, next) {
      const login = username.toLowerCase()
      const user = [...existingRealm(realmName).users.values()].find((u) => u.username === login || u.email?.toLowerCase() === login)
      if (!user || user.password === undefined || user.password !== current) throw new Error('fake keycloak: invalid username or password')
      if (!user.requiredActions.includes('UPDATE_PASSWORD')) throw new Error('fake keycloak: no password update is pending')
      user.password = next
      user.requiredActions = user.requiredActions.filter((action) => action !== 'UPDATE_PASSWORD')
    },
    setPassword(realmName, userId, password) {
      const user = existingRealm(realmName).users.get(userId)
      if (!user) throw new Error(`fake keycloak: no user ${userId}`)
      user.password = password
      user.requiredActions = user.requiredActions.filter((action) => action !== 'UPDATE_PASSWORD')
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())))
    },
  }
}

/** Keycloak's username-prohibited-characters validator, as a pattern of what is allowed. */
const USERNAME_ALLOWED = /^[^<>&"'\s\v$%!#?§,;:*~/\\|^=[\]{}()`\p{Cc}]+$/u
/** Keycloak's person-name-prohibited-characters validator (first and last names). */
const PERSON_NAME_ALLOWED = /^[^<>&"\v$%!#?§;*~/\\|^=[\]{}()\p{Cc}]+$/u

/** The shape Keycloak's email validator insists on, as far as the API can reach it: one @, a local part of 1-64 characters, no whitespace. */
function isEmailKeycloakTakes(email: string): boolean {
  const at = email.lastIndexOf('@')
  return at > 0 && at <= 64 && at < email.length - 1 && !email.slice(0, at).includes('@') && !/\s/.test(email)
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined
}

function blankUser(id: string, username: string): FakeUser {
  // Keycloak creates users disabled unless the representation says `enabled: true`.
  return {
    id,
    username: username.toLowerCase(),
    enabled: false,
    emailVerified: false,
    requiredActions: [],
    attributes: {},
    roles: [],
    createdTimestamp: Date.now(),
  }
}

function matchPattern(pattern: string[], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined
  const params: Record<string, string> = {}
  for (const [index, part] of pattern.entries()) {
    const segment = segments[index]!
    if (part.startsWith(':')) params[part.slice(1)] = segment
    else if (part !== segment) return undefined
  }
  return params
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new Problem(413, { error: 'request too large' })
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function parseBody(raw: string, contentType: string | undefined): { json: unknown; form: URLSearchParams } {
  if (raw.length === 0) return { json: undefined, form: new URLSearchParams() }
  if (contentType?.startsWith('application/x-www-form-urlencoded')) return { json: undefined, form: new URLSearchParams(raw) }
  try {
    return { json: JSON.parse(raw), form: new URLSearchParams() }
  } catch {
    throw new Problem(400, { error: 'invalid JSON body' })
  }
}

function send(res: http.ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { ...reply.headers }
  if (reply.body === undefined) {
    res.writeHead(reply.status, headers).end()
    return
  }
  res.writeHead(reply.status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(reply.body))
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {}
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}
