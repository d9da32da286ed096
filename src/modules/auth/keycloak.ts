import { randomBytes, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../../config.js'
import { IdentityProviderError, IdentityProviderRejectedError, InvalidCredentialsError, KeycloakConflictError } from './errors.js'
import { SEEDED_ROLES } from './permissions.js'

/**
 * The Keycloak side of auth: the realm's token and logout endpoints for the API's own client,
 * and the admin client for creating realms. Never called inside a transaction.
 */
const TIMEOUT_MS = 5_000
/**
 * Refresh tokens rotate and a used one is refused (as the embedded issuer does), so a stolen
 * refresh token is good for one refresh at most. deploy/keycloak/modelplane-realm.json sets the same.
 */
export const REALM_SESSION_POLICY = { revokeRefreshToken: true, refreshTokenMaxReuse: 0 } as const

export interface KeycloakTokens {
  accessToken: string
  refreshToken: string
  expiresIn: number
  refreshExpiresIn: number
}

/** Keycloak's user-profile attributes, as the fields of the API's request body they come from. */
const FIELD_OF_ATTRIBUTE: Record<string, string> = { email: 'body.email', username: 'body.email', firstName: 'body.name', lastName: 'body.name' }

/**
 * The problems of a Keycloak 400 from user-profile validation (`{field, errorMessage}` or
 * `{errors: [...]}`), or undefined when the 400 is about something else (then it is our fault).
 */
function profileProblems(data: unknown): Array<{ field: string; message: string }> | undefined {
  const body = (typeof data === 'object' && data !== null ? data : {}) as { field?: unknown; errorMessage?: unknown; errors?: unknown }
  const entries = Array.isArray(body.errors) ? (body.errors as Array<typeof body>) : [body]
  const problems = entries
    .filter((e) => typeof e?.field === 'string' && typeof e.errorMessage === 'string' && FIELD_OF_ATTRIBUTE[e.field as string])
    .map((e) => ({ field: FIELD_OF_ATTRIBUTE[e.field as string]!, message: `${String(e.field)}: ${String(e.errorMessage)}` }))
  return problems.length > 0 && problems.length === entries.length ? problems : undefined
}

export function createKeycloakClient(auth: Config['auth'] & { keycloakUrl: string }, log: Logger) {
  const base = auth.keycloakUrl
  const oidc = (realm: string) => `${base}/realms/${encodeURIComponent(realm)}/protocol/openid-connect`

  function clientForm(fields: Record<string, string>): URLSearchParams {
    const form = new URLSearchParams({ client_id: auth.clientId, ...fields })
    if (auth.clientSecret) form.set('client_secret', auth.clientSecret)
    return form
  }

  async function post(url: string, form: URLSearchParams): Promise<Response> {
    try {
      return await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
    } catch (err) {
      log.warn({ error: (err as Error).message }, 'keycloak unreachable')
      throw new IdentityProviderError('the identity provider is unreachable')
    }
  }

  async function tokens(realm: string, form: URLSearchParams): Promise<KeycloakTokens> {
    const response = await post(`${oidc(realm)}/token`, form)
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>
    // Keycloak answers 401 for bad credentials and 400 invalid_grant for bad/expired refresh tokens.
    if (response.status === 400 || response.status === 401) throw new InvalidCredentialsError()
    if (!response.ok || typeof body.access_token !== 'string') {
      log.warn({ realm, status: response.status }, 'keycloak token endpoint failed')
      throw new IdentityProviderError()
    }
    return {
      accessToken: body.access_token,
      refreshToken: typeof body.refresh_token === 'string' ? body.refresh_token : '',
      expiresIn: Number(body.expires_in ?? 0),
      refreshExpiresIn: Number(body.refresh_expires_in ?? 0),
    }
  }

  /** An admin client authenticated with the admin service account (client credentials). */
  async function adminClient() {
    if (!auth.adminClientId || !auth.adminClientSecret) {
      throw new IdentityProviderError('KEYCLOAK_ADMIN_CLIENT_ID/SECRET are not configured: Keycloak cannot be administered')
    }
    // Loaded only in Keycloak mode, and only when something is administered.
    const { default: KcAdminClient } = await import('@keycloak/keycloak-admin-client')
    const admin = new KcAdminClient({ baseUrl: base, realmName: 'master', timeout: TIMEOUT_MS })
    try {
      await admin.auth({ grantType: 'client_credentials', clientId: auth.adminClientId, clientSecret: auth.adminClientSecret })
    } catch (err) {
      log.warn({ error: (err as Error).message?.slice(0, 300) }, 'keycloak admin login failed')
      throw new IdentityProviderError()
    }
    return admin
  }

  /** The API's client in a realm it creates: it signs users in with their password and logs them out, nothing else. */
  function loginClient() {
    return {
      clientId: auth.clientId,
      name: 'modelplane API',
      enabled: true,
      protocol: 'openid-connect',
      publicClient: auth.clientSecret === undefined,
      ...(auth.clientSecret === undefined ? {} : { clientAuthenticatorType: 'client-secret', secret: auth.clientSecret }),
      directAccessGrantsEnabled: true,
      standardFlowEnabled: false,
      implicitFlowEnabled: false,
      serviceAccountsEnabled: false,
    }
  }

  const statusOf = (err: unknown) => (err as { response?: { status?: number } }).response?.status

  /** Runs one admin operation; any failure becomes IdentityProviderError (409 → KeycloakConflictError). */
  async function administer<T>(what: string, realm: string, fn: (admin: Awaited<ReturnType<typeof adminClient>>) => Promise<T>): Promise<T> {
    const admin = await adminClient()
    try {
      return await fn(admin)
    } catch (err) {
      if (err instanceof IdentityProviderError) throw err
      const status = statusOf(err)
      log.warn({ realm, status, error: (err as Error).message?.slice(0, 300) }, `keycloak: ${what} failed`)
      if (status === 409) throw new KeycloakConflictError()
      const problems = status === 400 ? profileProblems((err as { responseData?: unknown }).responseData) : undefined
      if (problems) throw new IdentityProviderRejectedError(problems)
      throw new IdentityProviderError()
    }
  }

  async function realmRole(admin: Awaited<ReturnType<typeof adminClient>>, realm: string, name: string) {
    const role = await admin.roles.findOneByName({ realm, name })
    if (!role?.id) throw new IdentityProviderError(`the realm has no role "${name}"`)
    return { id: role.id, name }
  }

  return {
    /**
     * Creates an enabled or disabled user with one realm role; returns Keycloak's id. A half-made user is taken back.
     * The username is an opaque id, never the email: Keycloak's user profile refuses usernames with
     * characters an email may hold (`o'brien@…`), and an existing user's username is read-only unless
     * the realm allows editing it. Users sign in with their email (realms allow login with email by default).
     * With `temporaryPassword` the user signs in with it once and Keycloak makes them choose their own
     * (a temporary credential sets the UPDATE_PASSWORD required action); the admin API has no way to
     * hand back an execute-actions link without sending mail.
     */
    createUser: (realm: string, user: { email: string; name: string; enabled: boolean; role: string; temporaryPassword?: string }) =>
      administer('creating a user', realm, async (admin) => {
        const { id } = await admin.users.create({
          realm,
          username: randomUUID(),
          email: user.email,
          firstName: user.name,
          enabled: user.enabled,
          ...(user.temporaryPassword ? { requiredActions: ['UPDATE_PASSWORD'] } : {}),
        })
        try {
          await admin.users.addRealmRoleMappings({ realm, id, roles: [await realmRole(admin, realm, user.role)] })
          if (user.temporaryPassword) {
            await admin.users.resetPassword({ realm, id, credential: { type: 'password', value: user.temporaryPassword, temporary: true } })
          }
        } catch (err) {
          await admin.users.del({ realm, id }).catch(() => undefined)
          throw err
        }
        return id
      }),

    /**
     * Changes what is given; `role` replaces the user's realm role `fromRole`. Keycloak's PUT replaces
     * the user's profile (since 24.0.4 an email, first or last name left out is cleared), so the
     * current representation is read, changed and sent back whole. The username stays as it is.
     * Keycloak has no conditional PUT: an edit made in Keycloak between the read and the write is lost.
     */
    updateUser: (
      realm: string,
      id: string,
      changes: { email?: string; name?: string; enabled?: boolean; role?: { from: string; to: string } },
    ) =>
      administer('updating a user', realm, async (admin) => {
        const changed: Record<string, unknown> = {}
        if (changes.email !== undefined) changed.email = changes.email
        if (changes.name !== undefined) changed.firstName = changes.name
        if (changes.enabled !== undefined) changed.enabled = changes.enabled
        if (Object.keys(changed).length > 0) {
          const current = await admin.users.findOne({ realm, id })
          if (!current) throw new IdentityProviderError('the user no longer exists in the identity provider')
          await admin.users.update({ realm, id }, { ...current, ...changed })
        }
        if (changes.role && changes.role.from !== changes.role.to) {
          const [from, to] = await Promise.all([realmRole(admin, realm, changes.role.from).catch(() => undefined), realmRole(admin, realm, changes.role.to)])
          await admin.users.addRealmRoleMappings({ realm, id, roles: [to] })
          if (from) await admin.users.delRealmRoleMappings({ realm, id, roles: [from] })
        }
      }),

    /** Deletes the user (and so their sessions); a user Keycloak no longer has counts as deleted. */
    deleteUser: (realm: string, id: string) =>
      administer('deleting a user', realm, async (admin) => {
        try {
          await admin.users.del({ realm, id })
        } catch (err) {
          if (statusOf(err) !== 404) throw err
        }
      }),

    /**
     * A credential reset: ends every Keycloak session of the user first (so a failure after it leaves
     * nobody logged in with the old credentials), then sets a temporary password, which makes
     * Keycloak demand UPDATE_PASSWORD at the next login. Answers the temporary password, once.
     */
    resetCredentials: (realm: string, id: string) =>
      administer('resetting credentials', realm, async (admin) => {
        await admin.users.logout({ realm, id })
        const temporaryPassword = randomBytes(18).toString('base64url')
        await admin.users.resetPassword({ realm, id, credential: { type: 'password', value: temporaryPassword, temporary: true } })
        return temporaryPassword
      }),

    passwordGrant: (realm: string, username: string, password: string) =>
      tokens(realm, clientForm({ grant_type: 'password', username, password, scope: 'openid' })),

    refreshGrant: (realm: string, refreshToken: string) =>
      tokens(realm, clientForm({ grant_type: 'refresh_token', refresh_token: refreshToken })),

    /** Ends the Keycloak session of the refresh token; a failure is logged, the caller is logged out anyway. */
    async logout(realm: string, refreshToken: string): Promise<void> {
      try {
        const response = await post(`${oidc(realm)}/logout`, clientForm({ refresh_token: refreshToken }))
        if (!response.ok) log.warn({ realm, status: response.status }, 'keycloak logout refused')
      } catch (err) {
        log.warn({ realm, error: (err as Error).message }, 'keycloak logout failed')
      }
    },

    /** Takes back a realm whose tenant could not be finished; a failure is logged (the realm is then left to delete by hand). */
    async deleteRealm(realm: string): Promise<void> {
      try {
        await administer('deleting a realm', realm, (admin) => admin.realms.del({ realm }))
      } catch {
        log.error({ realm }, 'taking back the keycloak realm failed: delete it by hand')
      }
    },

    /**
     * Creates the realm with the seeded roles and the API's own login client (KEYCLOAK_CLIENT_ID,
     * confidential with KEYCLOAK_CLIENT_SECRET when set, password grant only), in one import, so
     * `POST /v1/auth/login` works in the new tenant at once. Throws IdentityProviderError on any failure.
     */
    async createRealm(realm: string, displayName: string): Promise<void> {
      if (!auth.adminClientId || !auth.adminClientSecret) {
        throw new IdentityProviderError('KEYCLOAK_ADMIN_CLIENT_ID/SECRET are not configured: realms cannot be created')
      }
      // Loaded only in Keycloak mode, and only when a tenant is created.
      const { default: KcAdminClient } = await import('@keycloak/keycloak-admin-client')
      const admin = new KcAdminClient({ baseUrl: base, realmName: 'master', timeout: TIMEOUT_MS })
      let created = false
      try {
        await admin.auth({ grantType: 'client_credentials', clientId: auth.adminClientId, clientSecret: auth.adminClientSecret })
        await admin.realms.create({
          realm,
          displayName,
          enabled: true,
          ...REALM_SESSION_POLICY,
          roles: { realm: Object.entries(SEEDED_ROLES).map(([name, role]) => ({ name, description: role.description })) },
          clients: [loginClient()],
        })
        created = true
      } catch (err) {
        // A half-made realm would block creating the tenant again: take it back, best effort.
        if (created) await admin.realms.del({ realm }).catch(() => undefined)
        log.warn({ realm, error: (err as Error).message?.slice(0, 300) }, 'creating the keycloak realm failed')
        throw new IdentityProviderError('the identity provider could not create the realm')
      }
    },
  }
}

export type KeycloakClient = ReturnType<typeof createKeycloakClient>
