import { ConflictError, NotFoundError, ValidationError } from '../../platform/errors.js'

export const EndpointErrorCode = {
  NOT_FOUND: 'ENDPOINT_NOT_FOUND',
  NAME_TAKEN: 'ENDPOINT_NAME_TAKEN',
  BUSY: 'ENDPOINT_BUSY',
  DELETED: 'ENDPOINT_DELETED',
  WORKER_NOT_FOUND: 'WORKER_NOT_FOUND',
  AUTOSCALE_UNAVAILABLE: 'AUTOSCALE_UNAVAILABLE',
} as const

export const endpointNotFound = (what = 'endpoint') => new NotFoundError(`${what} not found`, EndpointErrorCode.NOT_FOUND)

export const endpointNameTaken = (name: string, what = 'endpoint') =>
  new ConflictError(EndpointErrorCode.NAME_TAKEN, `an ${what} named "${name}" already exists in the tenant`, {
    fields: [{ field: 'name', message: 'already taken' }],
  })

/** One change at a time: a deploy, an update or a teardown runs to its end before the next. */
export const endpointBusy = (phase: string, action: string, workflowId: string | null) =>
  new ConflictError(
    EndpointErrorCode.BUSY,
    `the endpoint is ${phase}${workflowId ? ` (workflow ${workflowId})` : ''}: it cannot be ${action} now`,
    { phase, workflowId },
  )

export const endpointDeleted = () => new ConflictError(EndpointErrorCode.DELETED, 'the endpoint has been deleted')

export const workerNotFound = () => new NotFoundError('no such worker of this endpoint', EndpointErrorCode.WORKER_NOT_FOUND)

export const nothingToUpdate = (fields: string) => new ValidationError(`the request changes nothing: send ${fields}`)
