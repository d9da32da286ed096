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
