import { AppError, NotFoundError, ValidationError } from '../../platform/errors.js'

export const AppTemplateErrorCode = {
  NOT_FOUND: 'APP_TEMPLATE_NOT_FOUND',
  GLOBAL_NEEDS_SUPERUSER: 'APP_TEMPLATE_GLOBAL_NEEDS_SUPERUSER',
} as const

/** Also for a template of another tenant, or of another user for a caller without admin rank: they cannot tell it exists. */
export const appTemplateNotFound = () => new NotFoundError('app template not found', AppTemplateErrorCode.NOT_FOUND)

export const globalTemplateNeedsSuperuser = (action: string) =>
  new AppError(
    AppTemplateErrorCode.GLOBAL_NEEDS_SUPERUSER,
    403,
    `the global templates serve every tenant: only a superuser may ${action} them; save a template of your own instead`,
  )

export const noTemplateChange = () => new ValidationError('the request changes nothing: send name, description, code or files')

export const codeOrFiles = () =>
  new ValidationError('send the code as `code` (one file) or as `files`, not both and not neither', [
    { field: 'body.code', message: 'exactly one of code and files' },
  ])
