/**
 * The `Status` bodies a Kubernetes API server answers failures with, worded as kube-apiserver
 * words them (../../fixtures and /work/shared/fixtures/kube-apiserver-1.26/error-*.json): clients
 * and our error mapping read `reason`, `code` and `details`, and users read `message`.
 */
export interface StatusCause {
  reason: string
  message: string
  field: string
}

export interface StatusDetails {
  name?: string
  group?: string
  kind?: string
  uid?: string
  causes?: StatusCause[]
}

export interface KubeStatus {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, never>
  status: 'Failure' | 'Success'
  message?: string
  reason?: string
  details?: StatusDetails
  code: number
}

/** Thrown anywhere below the router; the router answers with its body and code. */
export class KubeStatusError extends Error {
  readonly status: KubeStatus

  constructor(code: number, reason: string | undefined, message: string, details?: StatusDetails) {
    super(message)
    this.name = 'KubeStatusError'
    // Keys in kube-apiserver's order (code last), so bodies read like the recordings.
    this.status = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      ...(reason ? { reason } : {}),
      ...(details ? { details } : {}),
      code,
    }
  }
}

/** What a failure is about: `deployments.apps "web"` in messages, {name, group, kind} in details. */
export interface Subject {
  group: string
  resource: string
  name?: string
}

function qualified(s: Subject): string {
  return s.group ? `${s.resource}.${s.group}` : s.resource
}

function subjectDetails(s: Subject): StatusDetails {
  const details: StatusDetails = {}
  if (s.name !== undefined) details.name = s.name
  if (s.group) details.group = s.group
  details.kind = s.resource
  return details
}

export function unauthorized(): KubeStatusError {
  return new KubeStatusError(401, 'Unauthorized', 'Unauthorized')
}

export function notFound(s: Subject & { name: string }): KubeStatusError {
  return new KubeStatusError(404, 'NotFound', `${qualified(s)} "${s.name}" not found`, subjectDetails(s))
}

/** A path the server has no handler for (an unknown group, version or resource). */
export function pathNotFound(): KubeStatusError {
  return new KubeStatusError(404, 'NotFound', 'the server could not find the requested resource', {})
}

export function alreadyExists(s: Subject & { name: string }): KubeStatusError {
  return new KubeStatusError(409, 'AlreadyExists', `${qualified(s)} "${s.name}" already exists`, subjectDetails(s))
}

/** An update that named a resourceVersion that is no longer the stored one. */
export function conflict(s: Subject & { name: string }): KubeStatusError {
  return new KubeStatusError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(s)} "${s.name}": the object has been modified; please apply your changes to the latest version and try again`,
    subjectDetails(s),
  )
}

export function methodNotAllowed(): KubeStatusError {
  return new KubeStatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {})
}

export function badRequest(message: string): KubeStatusError {
  return new KubeStatusError(400, 'BadRequest', message)
}

export function tooLarge(limit: number): KubeStatusError {
  return new KubeStatusError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`)
}

/** 422 names the Kind (Kind.group outside core) in its message, and the Kind in details, as kube-apiserver does. */
export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): KubeStatusError {
  const summary = causes.map((c) => `${c.field}: ${c.message}`).join(', ')
  const listed = causes.length > 1 ? `[${summary}]` : summary
  const details: StatusDetails = { name }
  if (group) details.group = group
  details.kind = kind
  details.causes = causes
  const qualifiedKind = group ? `${kind}.${group}` : kind
  return new KubeStatusError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${listed}`, details)
}

/** The request's user may not do this; the message names the verb, resource and scope. */
export function forbidden(a: {
  user: string
  verb: string
  group: string
  resource: string
  subresource?: string
  namespace?: string
  name?: string
}): KubeStatusError {
  const what = a.name ? `${qualified(a)} "${a.name}"` : qualified(a)
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope'
  return new KubeStatusError(
    403,
    'Forbidden',
    `${what} is forbidden: User "${a.user}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" ${scope}`,
    subjectDetails(a),
  )
}

/** Refused on a path that is not a resource (discovery, /version) */
export function forbiddenPath(user: string, verb: string, path: string): KubeStatusError {
  return new KubeStatusError(403, 'Forbidden', `forbidden: User "${user}" cannot ${verb} path "${path}"`, {})
}

/** Creating in a namespace whose deletion has begun. */
export function namespaceTerminating(s: Subject & { name: string }, namespace: string): KubeStatusError {
  return new KubeStatusError(
    403,
    'Forbidden',
    `${qualified(s)} "${s.name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
    subjectDetails(s),
  )
}
