import { AppError, ConflictError, NotFoundError, ValidationError } from '../../platform/errors.js'

export const ClusterErrorCode = {
  NOT_FOUND: 'CLUSTER_NOT_FOUND',
  KUBECONFIG_INVALID: 'KUBECONFIG_INVALID',
  ALREADY_REGISTERED: 'CLUSTER_ALREADY_REGISTERED',
  NAME_TAKEN: 'CLUSTER_NAME_TAKEN',
  IN_USE: 'CLUSTER_IN_USE',
  BUSY: 'CLUSTER_BUSY',
  DELETED: 'CLUSTER_DELETED',
  /** A new kubeconfig reaches another cluster than the registered one. */
  MISMATCH: 'CLUSTER_MISMATCH',
} as const

export const clusterNotFound = () => new NotFoundError('cluster not found', ClusterErrorCode.NOT_FOUND)

export const kubeconfigInvalid = (reason: string, path: string) =>
  new AppError(ClusterErrorCode.KUBECONFIG_INVALID, 400, `the kubeconfig was refused: ${reason}`, {
    fields: [{ field: path ? `kubeconfig.${path}` : 'kubeconfig', message: reason }],
  })

export const clusterAlreadyRegistered = (clusterId: string) =>
  new ConflictError(ClusterErrorCode.ALREADY_REGISTERED, 'this API server is already registered in the tenant', { clusterId })

export const clusterNameTaken = (name: string) =>
  new ConflictError(ClusterErrorCode.NAME_TAKEN, `a cluster named "${name}" already exists in the tenant`, {
    fields: [{ field: 'name', message: 'already taken' }],
  })

export const clusterInUse = (users: Array<{ kind: string; count: number }>) =>
  new ConflictError(
    ClusterErrorCode.IN_USE,
    `the cluster still runs ${users.map((u) => `${u.count} ${u.kind}`).join(', ')}; delete them first or pass force=true to tear them down`,
    { users },
  )

export const clusterBusy = (status: string, action: string) =>
  new ConflictError(ClusterErrorCode.BUSY, `the cluster is ${status}: it cannot be ${action} now`, { status })

export const clusterDeleted = () => new ConflictError(ClusterErrorCode.DELETED, 'the cluster has been deleted')

export const nothingToUpdate = () => new ValidationError('the request changes nothing: send name, labels or kubeconfig')
