import { AppError, ConflictError, NotFoundError, ValidationError } from '../../platform/errors.js'
import type { VerificationFailure } from './providers.js'

export const ModelErrorCode = {
  MODEL_NOT_FOUND: 'MODEL_NOT_FOUND',
  VERSION_NOT_FOUND: 'MODEL_VERSION_NOT_FOUND',
  CREDENTIAL_NOT_FOUND: 'CREDENTIAL_NOT_FOUND',
  PROVIDER_NOT_FOUND: 'PROVIDER_NOT_FOUND',
  MODEL_NAME_TAKEN: 'MODEL_NAME_TAKEN',
  CREDENTIAL_NAME_TAKEN: 'CREDENTIAL_NAME_TAKEN',
  MODEL_IN_USE: 'MODEL_IN_USE',
  VERSION_IN_USE: 'MODEL_VERSION_IN_USE',
  CREDENTIAL_IN_USE: 'CREDENTIAL_IN_USE',
  VERSION_NOT_READY: 'MODEL_VERSION_NOT_READY',
  VERSION_IS_DEFAULT: 'MODEL_VERSION_IS_DEFAULT',
  CREDENTIAL_VERIFICATION_FAILED: 'CREDENTIAL_VERIFICATION_FAILED',
  MODEL_NOT_FOUND_AT_PROVIDER: 'MODEL_NOT_FOUND_AT_PROVIDER',
  USE_IMPORT: 'MODEL_SOURCE_NEEDS_IMPORT',
} as const

export const modelNotFound = () => new NotFoundError('model not found', ModelErrorCode.MODEL_NOT_FOUND)
export const versionNotFound = () => new NotFoundError('model version not found', ModelErrorCode.VERSION_NOT_FOUND)
export const credentialNotFound = () => new NotFoundError('credential not found', ModelErrorCode.CREDENTIAL_NOT_FOUND)

export const providerUnknown = (field: string, id: string) =>
  new ValidationError(`no provider "${id}": GET /v1/model-providers lists them`, [{ field, message: 'unknown provider' }])

export const modelNameTaken = (name: string) =>
  new ConflictError(ModelErrorCode.MODEL_NAME_TAKEN, `a model named "${name}" already exists in the tenant`, {
    fields: [{ field: 'name', message: 'already taken' }],
  })

export const credentialNameTaken = (name: string) =>
  new ConflictError(ModelErrorCode.CREDENTIAL_NAME_TAKEN, `a credential named "${name}" already exists in the tenant`, {
    fields: [{ field: 'name', message: 'already taken' }],
  })

type Users = Array<{ kind: string; count: number }>
const listed = (users: Users) => users.map((u) => `${u.count} ${u.kind}`).join(', ')

export const modelInUse = (users: Users) =>
  new ConflictError(ModelErrorCode.MODEL_IN_USE, `the model is still used by ${listed(users)}; remove them first`, { users })

export const versionInUse = (users: Users) =>
  new ConflictError(ModelErrorCode.VERSION_IN_USE, `the version is still used by ${listed(users)}; remove them first`, { users })

export const credentialInUse = (models: number) =>
  new ConflictError(ModelErrorCode.CREDENTIAL_IN_USE, `the credential is used by ${models} model(s); delete them or move them to another credential first`, {
    models,
  })

export const versionNotReady = (status: string, purpose: 'the default' | 'served' = 'the default') =>
  new ConflictError(ModelErrorCode.VERSION_NOT_READY, `the version is ${status}: only a ready version can be ${purpose}`, { status })

export const versionIsDefault = () =>
  new ConflictError(
    ModelErrorCode.VERSION_IS_DEFAULT,
    "the version is the model's default: promote another version first (the last version of a model may be deleted)",
  )

/** Nothing was stored. The provider's status and message are passed on; the secret never is. */
export const credentialVerificationFailed = (failure: VerificationFailure) =>
  new AppError(ModelErrorCode.CREDENTIAL_VERIFICATION_FAILED, 422, `the provider refused the credential or could not be asked: ${failure.message}`, {
    reason: failure.reason,
    providerStatus: failure.providerStatus,
    providerMessage: failure.message,
  })

/** `providerMessage`: what the provider said of it (Azure: why the deployment cannot be used), secrets cut out. */
export const modelNotFoundAtProvider = (uri: string, provider: string, providerMessage?: string) =>
  new AppError(ModelErrorCode.MODEL_NOT_FOUND_AT_PROVIDER, 422, `${provider} has no model "${uri}" for this credential${providerMessage ? `: ${providerMessage}` : ''}`, {
    fields: [{ field: 'uri', message: 'not a model (or, on Azure OpenAI, a deployment) the provider has for this credential' }],
    ...(providerMessage ? { providerMessage } : {}),
  })

export const sourceNeedsImport = (source: string) =>
  new AppError(ModelErrorCode.USE_IMPORT, 400, `a ${source} model is created by importing it: POST /v1/models/import`, {
    fields: [{ field: 'source', message: 'use POST /v1/models/import' }],
  })

export const nothingToUpdate = (fields: string) => new ValidationError(`the request changes nothing: send ${fields}`)

// ---- uploads ------------------------------------------------------------------------------------

export const UploadErrorCode = {
  UPLOAD_NOT_FOUND: 'MODEL_UPLOAD_NOT_FOUND',
  NOT_UPLOADABLE: 'MODEL_NOT_UPLOADABLE',
  TOO_LARGE: 'MODEL_UPLOAD_TOO_LARGE',
  NOT_OPEN: 'MODEL_UPLOAD_NOT_OPEN',
  EXPIRED: 'MODEL_UPLOAD_EXPIRED',
  FILES_MISMATCH: 'MODEL_UPLOAD_FILES_MISMATCH',
  PART_MISSING: 'MODEL_UPLOAD_PART_MISSING',
  PART_MISMATCH: 'MODEL_UPLOAD_PART_MISMATCH',
  HASH_MISMATCH: 'MODEL_UPLOAD_HASH_MISMATCH',
  SIZE_MISMATCH: 'MODEL_UPLOAD_SIZE_MISMATCH',
  ABORTED: 'MODEL_UPLOAD_ABORTED',
  LABEL_TAKEN: 'MODEL_VERSION_LABEL_TAKEN',
} as const

export const uploadNotFound = () => new NotFoundError('upload not found', UploadErrorCode.UPLOAD_NOT_FOUND)

export const notUploadable = (source: string) =>
  new ConflictError(UploadErrorCode.NOT_UPLOADABLE, `a ${source} model takes no uploaded versions: create a model with source "upload"`, { source })

export const uploadTooLarge = (message: string, fields: Array<{ field: string; message: string }>, limit: number) =>
  new AppError(UploadErrorCode.TOO_LARGE, 400, message, { fields, limit })

export const uploadNotOpen = (status: string) =>
  new ConflictError(UploadErrorCode.NOT_OPEN, `the upload is ${status}: only an open upload can be completed or aborted`, { status })

export const uploadExpired = () =>
  new AppError(UploadErrorCode.EXPIRED, 410, 'the upload expired before it was completed: its parts are dropped; start a new upload')

export const uploadFilesMismatch = (message: string, fields: Array<{ field: string; message: string }>) =>
  new AppError(UploadErrorCode.FILES_MISMATCH, 400, message, { fields })

export const uploadPartMissing = (path: string, partNumber: number) =>
  new AppError(UploadErrorCode.PART_MISSING, 400, `part ${partNumber} of ${path} is not in the store: PUT it through its URL, then complete again`, {
    path,
    partNumber,
  })

export const uploadPartMismatch = (path: string, partNumber: number, reason: 'etag' | 'size', expected: string | number, stored: string | number) =>
  new AppError(
    UploadErrorCode.PART_MISMATCH,
    400,
    reason === 'etag'
      ? `part ${partNumber} of ${path}: the ETag sent is not the one the store holds (the part was sent again, or the ETag is wrong)`
      : `part ${partNumber} of ${path} is ${stored} bytes in the store; it must be ${expected}`,
    { path, partNumber, reason, expected, stored },
  )

export const versionLabelTaken = (label: string) =>
  new ConflictError(UploadErrorCode.LABEL_TAKEN, `the model already has a version labelled "${label}"`, { fields: [{ field: 'body.label', message: 'already taken' }] })
