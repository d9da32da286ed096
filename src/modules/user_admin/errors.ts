import { AppError, ConflictError, NotFoundError } from '../../platform/errors.js'

/** The rank rule's refusals (src/modules/auth/rank.ts), thrown here too. */
export { RankTooLowError, RoleNotAllowedError } from '../auth/errors.js'

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

/** Unknown, used, expired, or its user is no longer invitable: one answer for all, it tells nothing. */
export class InvalidInviteError extends AppError {
  constructor() {
    super('INVALID_INVITE', 400, 'the invite is unknown, used or expired')
  }
}

/** Only an invited user who has never set a password can be sent a new invite. */
export class UserNotInvitedError extends ConflictError {
  constructor(status: string) {
    super(
      'USER_NOT_INVITED',
      status === 'invited'
        ? 'this user has had a password: reset their credentials instead of inviting them'
        : `only an invited user can be sent an invite; this user is ${status}`,
    )
  }
}

/**
 * `invited` is the state of a user who never had a password. Putting a user who has one back into
 * it would let the admin who then invites them choose their password: a takeover.
 */
export class UserHasPasswordError extends ConflictError {
  constructor() {
    super(
      'USER_HAS_PASSWORD',
      'this user has had a password and cannot be made invited again: reset their credentials (POST /ai/admin/users/{UserID}/reset-credentials)',
    )
  }
}

/** A credential reset is for a user who has credentials; an invited user is sent an invite. */
export class UserInvitedError extends ConflictError {
  constructor() {
    super('USER_INVITED', 'this user has not set a password yet: send an invite (POST /ai/admin/users/{UserID}/invite)')
  }
}

/** With Keycloak, users are invited by Keycloak itself (its required-actions email). */
export class InviteUnavailableError extends ConflictError {
  constructor() {
    super('INVITE_UNAVAILABLE', "invites are sent by Keycloak when users live there: use the realm's required-actions email")
  }
}
