import { ConflictError, ValidationError } from '../../platform/errors.js'

/** The catalog's own codes beside those in errors.ts (RUNTIME_NOT_FOUND, RUNTIME_NAME_TAKEN, RUNTIME_GLOBAL_NEEDS_SUPERUSER). */
export const RuntimeErrorCode = {
  RUNTIME_IN_USE: 'RUNTIME_IN_USE',
} as const

type Users = Array<{ kind: string; count: number }>
const listed = (users: Users) => users.map((u) => `${u.count} ${u.kind}`).join(' and ')

/** Endpoints refer to a runtime by name: it is neither deleted nor renamed under them. */
export const runtimeInUse = (users: Users, what: 'deleted' | 'renamed') =>
  new ConflictError(RuntimeErrorCode.RUNTIME_IN_USE, `the runtime cannot be ${what}: ${listed(users)} use it; remove them first`, { users })

export const invalidRuntime = (problems: Array<{ field: string; message: string }>) =>
  new ValidationError(`the runtime was refused: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems)

export const invalidServingSettings = (problems: Array<{ field: string; message: string }>) =>
  new ValidationError(`the serving settings were refused: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems)

export const nothingToUpdate = () => new ValidationError('name at least one field to change', [])
