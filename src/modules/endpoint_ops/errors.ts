import { AppError, ConflictError, NotFoundError, ValidationError } from '../../platform/errors.js'

export const EndpointErrorCode = {
  INSUFFICIENT_CAPACITY: 'INSUFFICIENT_CAPACITY',
  NO_SUITABLE_RUNTIME: 'NO_SUITABLE_RUNTIME',
  RUNTIME_UNSUITABLE: 'RUNTIME_UNSUITABLE',
  AUTOSCALING_UNAVAILABLE: 'AUTOSCALING_UNAVAILABLE',
  MODEL_NOT_DEPLOYABLE: 'MODEL_NOT_DEPLOYABLE',
  CLUSTER_NOT_READY: 'CLUSTER_NOT_READY',
  RUNTIME_NOT_FOUND: 'RUNTIME_NOT_FOUND',
  RUNTIME_NAME_TAKEN: 'RUNTIME_NAME_TAKEN',
  RUNTIME_GLOBAL: 'RUNTIME_GLOBAL_NEEDS_SUPERUSER',
} as const

export interface CapacityShortfall {
  deviceType: string
  devicesPerReplica: number
  memoryPerDeviceGiB: number | null
  replicas: number
  largestFree: { devices: number; node: string } | null
}

export const insufficientCapacity = (message: string, shortfall: CapacityShortfall, rejected: Array<{ node: string; reasons: string[] }>) =>
  new ConflictError(EndpointErrorCode.INSUFFICIENT_CAPACITY, message, { shortfall, rejected: rejected.slice(0, 50) })

export const noSuitableRuntime = (message: string) => new ConflictError(EndpointErrorCode.NO_SUITABLE_RUNTIME, message)

export const runtimeUnsuitable = (message: string, field = 'body.runtime') =>
  new AppError(EndpointErrorCode.RUNTIME_UNSUITABLE, 400, message, { fields: [{ field, message }] })

export const autoscalingUnavailable = (message: string) =>
  new ConflictError(EndpointErrorCode.AUTOSCALING_UNAVAILABLE, message, { fields: [{ field: 'body.autoscale', message }] })

export const modelNotDeployable = (message: string) => new ConflictError(EndpointErrorCode.MODEL_NOT_DEPLOYABLE, message)

export const clusterNotReady = (status: string) =>
  new ConflictError(EndpointErrorCode.CLUSTER_NOT_READY, `the cluster is ${status}: endpoints are planned on available clusters only`, { status })

export const runtimeNotFound = () => new NotFoundError('runtime not found', EndpointErrorCode.RUNTIME_NOT_FOUND)

export const unknownRuntime = (name: string) =>
  new AppError(EndpointErrorCode.RUNTIME_NOT_FOUND, 400, `no enabled runtime named "${name}": GET /v1/runtimes lists them`, {
    fields: [{ field: 'body.runtime', message: 'unknown or disabled runtime' }],
  })

export const runtimeNameTaken = (name: string) =>
  new ConflictError(EndpointErrorCode.RUNTIME_NAME_TAKEN, `a runtime named "${name}" already exists`, { fields: [{ field: 'body.name', message: 'already taken' }] })

export const globalRuntimeNeedsSuperuser = () =>
  new AppError(
    EndpointErrorCode.RUNTIME_GLOBAL,
    403,
    'the shared runtimes serve every tenant: only a superuser may add or change them; add a runtime of your tenant instead',
  )

export const badRequest = (message: string, field: string) => new ValidationError(message, [{ field, message }])
