import { AppError, ConflictError, NotFoundError } from '../../platform/errors.js'

export class UserNotFoundError extends NotFoundError {
  constructor() {
    super('user not found', 'USER_NOT_FOUND')
  }
}

export class DuplicateEmailError extends ConflictError {
  constructor() {
    super('DUPLICATE_EMAIL', 'a user with this email already exists in the tenant')
  }
}

export class DuplicateTagError extends ConflictError {
  constructor() {
    super('DUPLICATE_TAG', 'a user with this tag already exists in the tenant')
  }
}

/** A tenant always keeps one active admin: nobody could administer it otherwise. */
export class LastAdminError extends ConflictError {
  constructor() {
    super('LAST_ADMIN', "this is the tenant's last active admin: promote another user first")
  }
}

/** Only a super_admin hands out or takes away super_admin. */
export class RoleNotAllowedError extends AppError {
  constructor() {
    super('ROLE_NOT_ALLOWED', 403, 'only a super_admin may grant, change or remove the super_admin role')
  }
}

/** Unknown, used, expired, or its user is no longer invitable: one answer for all, it tells nothing. */
export class InvalidInviteError extends AppError {
  constructor() {
    super('INVALID_INVITE', 400, 'the invite is unknown, used or expired')
  }
}

/** Only an invited user (who has not set a password yet) can be sent a new invite. */
export class UserNotInvitedError extends ConflictError {
  constructor(status: string) {
    super('USER_NOT_INVITED', `only an invited user can be sent an invite; this user is ${status}`)
  }
}

/** With Keycloak, users are invited by Keycloak itself (its required-actions email). */
export class InviteUnavailableError extends ConflictError {
  constructor() {
    super('INVITE_UNAVAILABLE', "invites are sent by Keycloak when users live there: use the realm's required-actions email")
  }
}
