import { type Identity, mayAccess, mayGetPath } from './auth.js'
import { type KubeObject, kubeTime } from './store.js'
import { badRequest, invalid } from './status.js'

/**
 * SelfSubjectAccessReview: "may I?" answered from the caller's own rights, in the shape
 * kube-apiserver answers it (ssar-allowed.json / ssar-denied.json): the spec echoed, the
 * managedFields the request's fields produce, and `status.allowed`.
 */

type Attributes = Record<string, unknown>

const RESOURCE_KEYS = ['namespace', 'verb', 'group', 'version', 'resource', 'subresource', 'name']
const MAX_ATTRIBUTE_LENGTH = 1024

function text(attrs: Attributes, key: string): string {
  const value = attrs[key]
  if (value === undefined || value === null) return ''
  if (typeof value !== 'string' || value.length > MAX_ATTRIBUTE_LENGTH) {
    throw badRequest(`SelfSubjectAccessReview in version "v1" cannot be handled as a SelfSubjectAccessReview: spec.${key} must be a string`)
  }
  return value
}

/** f:spec entries naming the attributes the caller sent, as the field manager records them. */
function fieldsOf(spec: Record<string, Attributes>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [section, attrs] of Object.entries(spec)) {
    const fields: Record<string, unknown> = { '.': {} }
    for (const key of Object.keys(attrs).sort()) fields[`f:${key}`] = {}
    out[`f:${section}`] = fields
  }
  return { 'f:spec': out }
}

export function answerSelfSubjectAccessReview(identity: Identity, body: KubeObject) {
  const spec = body.spec as { resourceAttributes?: Attributes; nonResourceAttributes?: Attributes } | undefined
  const resourceAttributes = spec?.resourceAttributes
  const nonResourceAttributes = spec?.nonResourceAttributes
  if (!resourceAttributes === !nonResourceAttributes) {
    throw invalid('SelfSubjectAccessReview', 'authorization.k8s.io', '', [{
      reason: 'FieldValueInvalid',
      message: 'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified',
      field: 'spec.resourceAttributes',
    }])
  }
  let allowed: boolean
  if (resourceAttributes) {
    const namespace = text(resourceAttributes, 'namespace')
    const name = text(resourceAttributes, 'name')
    const subresource = text(resourceAttributes, 'subresource')
    allowed = mayAccess(identity, {
      verb: text(resourceAttributes, 'verb'),
      group: text(resourceAttributes, 'group'),
      resource: text(resourceAttributes, 'resource'),
      ...(subresource ? { subresource } : {}),
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
    })
  } else {
    const verb = text(nonResourceAttributes!, 'verb')
    allowed = verb === 'get' && mayGetPath(identity, text(nonResourceAttributes!, 'path'))
  }
  const echoed: Record<string, Attributes> = resourceAttributes
    ? { resourceAttributes: pick(resourceAttributes) }
    : { nonResourceAttributes: { path: nonResourceAttributes!.path, verb: nonResourceAttributes!.verb } }
  return {
    kind: 'SelfSubjectAccessReview',
    apiVersion: 'authorization.k8s.io/v1',
    metadata: {
      creationTimestamp: null,
      managedFields: [
        {
          manager: 'unknown',
          operation: 'Update',
          apiVersion: 'authorization.k8s.io/v1',
          time: kubeTime(),
          fieldsType: 'FieldsV1',
          fieldsV1: fieldsOf(echoed),
        },
      ],
    },
    spec: echoed,
    status: { allowed },
  }
}

function pick(attrs: Attributes): Attributes {
  const out: Attributes = {}
  for (const key of RESOURCE_KEYS) if (attrs[key] !== undefined && attrs[key] !== '') out[key] = attrs[key]
  return out
}
