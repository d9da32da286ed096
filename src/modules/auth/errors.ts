import { AppError, ConflictError, DependencyError, NotFoundError, UnauthenticatedError } from '../../platform/errors.js'

/** One message for unknown user and wrong password alike: a login never tells which. */
export class InvalidCredentialsError extends UnauthenticatedError {
  constructor() {
    super('invalid credentials')
  }
}

export class TenantNotFoundError extends NotFoundError {
  constructor() {
    super('tenant not found', 'TENANT_NOT_FOUND')
  }
}

export class ApiKeyNotFoundError extends NotFoundError {
  constructor() {
    super('API key not found', 'API_KEY_NOT_FOUND')
  }
}

export class TenantExistsError extends ConflictError {
  constructor(realm: string) {
    super('TENANT_EXISTS', `a tenant with realm "${realm}" already exists`)
  }
}

export class IdentityProviderError extends DependencyError {
  constructor(message = 'the identity provider did not accept the request') {
    super('IDENTITY_PROVIDER_ERROR', message)
  }
}

/** Scopes asked for an API key must be permissions the caller holds. */
export class ScopeNotAllowedError extends AppError {
  constructor(scopes: string[]) {
    super('SCOPE_NOT_ALLOWED', 403, 'an API key cannot carry permissions its owner does not have', { scopes })
  }
}

/**
 * Keycloak's user-profile validation refused a value the API's own schema accepts (say a name with
 * a character Keycloak forbids in names): the caller's input, so a 400 naming the field, not a 502.
 */
export class IdentityProviderRejectedError extends AppError {
  constructor(problems: Array<{ field: string; message: string }>) {
    super('IDENTITY_PROVIDER_REJECTED', 400, 'the identity provider refused these values', { fields: problems })
  }
}

/** Keycloak refused a user because one with that username or email exists in the realm. */
export class KeycloakConflictError extends ConflictError {
  constructor() {
    super('DUPLICATE_EMAIL', 'a user with this email already exists in the identity provider')
  }
}

/** The target outranks the caller (or is a superuser, or the action needs strictly higher rank). */
export class RankTooLowError extends AppError {
  constructor(message = 'this user ranks above you: only someone of higher rank may do this') {
    super('RANK_TOO_LOW', 403, message)
  }
}

/** A role (or the superuser flag) above the caller's own rank cannot be handed out by the caller. */
export class RoleNotAllowedError extends AppError {
  constructor(message = 'you may only assign roles of your own rank or lower') {
    super('ROLE_NOT_ALLOWED', 403, message)
  }
}

/** A permission can be granted only by someone who holds it. */
export class GrantNotAllowedError extends AppError {
  constructor(permissions: string[]) {
    super('GRANT_NOT_ALLOWED', 403, 'you may only grant permissions you hold yourself', { permissions })
  }
}

/** Managing API keys takes a user's own session: a key cannot mint, list or revoke keys. */
export class SessionRequiredError extends AppError {
  constructor() {
    super('SESSION_REQUIRED', 403, 'API keys are managed with a user session (log in), not with an API key')
  }
}

/** Tenants are the platform's to make: creating, changing and listing all of them takes a superuser, not a role. */
export class SuperuserRequiredError extends AppError {
  constructor() {
    super('SUPERUSER_REQUIRED', 403, 'only a superuser may create, change or list all tenants')
  }
}

/** A realm name that would give a tenant power over the identity provider itself. */
export class ReservedRealmError extends AppError {
  constructor(realm: string) {
    super('REALM_RESERVED', 400, `the realm name "${realm}" is reserved`, { fields: [{ field: 'body.realm', message: 'reserved realm name' }] })
  }
}

/**
 * Too many wrong passwords for one account: refused before any password is checked, alike for
 * accounts that exist and that do not. The route sends `Retry-After` from `retryAfterSeconds`.
 */
export class LoginLockedError extends AppError {
  constructor(readonly retryAfterSeconds: number) {
    super('LOGIN_LOCKED', 429, 'too many failed logins for this account; try again later', { retryAfterSeconds })
  }
}

/** A password change whose current password is wrong: 403, not 401, since the session itself is fine. */
export class WrongCurrentPasswordError extends AppError {
  constructor() {
    super('INVALID_CURRENT_PASSWORD', 403, 'the current password is not right')
  }
}

export class PasswordUnchangedError extends AppError {
  constructor() {
    super('PASSWORD_UNCHANGED', 400, 'the new password must differ from the current one')
  }
}

/** Keycloak mode: passwords are Keycloak's, changed in its account console. */
export class PasswordChangeUnavailableError extends ConflictError {
  constructor(accountConsole: string) {
    super('PASSWORD_CHANGE_UNAVAILABLE', `passwords are managed by Keycloak: change yours at ${accountConsole}`, { accountConsole })
  }
}
