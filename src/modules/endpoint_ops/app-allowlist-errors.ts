import { AppError, ValidationError } from '../../platform/errors.js'

export const AppAllowlistErrorCode = {
  ADMIN_REQUIRED: 'APP_ALLOWLIST_ADMIN_REQUIRED',
  GLOBAL_NEEDS_SUPERUSER: 'APP_ALLOWLIST_GLOBAL_NEEDS_SUPERUSER',
} as const

export const allowlistAdminRequired = () =>
  new AppError(AppAllowlistErrorCode.ADMIN_REQUIRED, 403, "only a tenant's admins (the admin role or above) may change what its apps may import")

export const globalAllowlistNeedsSuperuser = () =>
  new AppError(AppAllowlistErrorCode.GLOBAL_NEEDS_SUPERUSER, 403, 'the global allow-list serves every tenant without a list of its own: only a superuser may change it')

export const invalidAllowlistEntries = (problems: Array<{ index: number; message: string }>) =>
  new ValidationError(`${problems.length === 1 ? 'an entry is' : `${problems.length} entries are`} not valid: ${problems[0]!.message}`, problems.map((p) => ({ field: `body.entries.${p.index}`, message: p.message })))
