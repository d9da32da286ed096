import { type ResourceType } from './catalog.js'
import { type KubeObject } from './store.js'
import { type StatusCause, invalid } from './status.js'

/**
 * The checks kube-apiserver makes on every object's metadata before storing it, with its
 * wording: names (an RFC 1123 subdomain for most kinds, an RFC 1123 label for namespaces, an
 * RFC 1035 label for services) and label keys and values. Kind-specific spec validation is not
 * modelled.
 */

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const SUBDOMAIN_MESSAGE = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
const LABEL_1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const LABEL_1123_MESSAGE = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
const LABEL_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const LABEL_1035_MESSAGE = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/
const LABEL_NAME_MESSAGE = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
const LABEL_VALUE_MESSAGE = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"

function invalidValue(field: string, value: string, message: string): StatusCause {
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${message}`, field }
}

function nameRule(type: ResourceType): { pattern: RegExp; message: string; max: number } {
  if (type.group === '' && type.resource === 'namespaces') return { pattern: LABEL_1123, message: LABEL_1123_MESSAGE, max: 63 }
  if (type.group === '' && type.resource === 'services') return { pattern: LABEL_1035, message: LABEL_1035_MESSAGE, max: 63 }
  return { pattern: SUBDOMAIN, message: SUBDOMAIN_MESSAGE, max: 253 }
}

function labelCauses(labels: unknown): StatusCause[] {
  if (labels === undefined) return []
  if (!labels || typeof labels !== 'object') return [invalidValue('metadata.labels', String(labels), 'must be a map of strings')]
  const causes: StatusCause[] = []
  for (const [key, value] of Object.entries(labels as Record<string, unknown>)) {
    const slash = key.indexOf('/')
    const prefix = slash >= 0 ? key.slice(0, slash) : ''
    const name = key.slice(slash + 1)
    if (slash >= 0 && (!SUBDOMAIN.test(prefix) || prefix.length > 253)) causes.push(invalidValue('metadata.labels', key, `prefix part ${SUBDOMAIN_MESSAGE}`))
    if (name.length > 63) causes.push(invalidValue('metadata.labels', key, 'name part must be no more than 63 characters'))
    else if (!LABEL_NAME.test(name)) causes.push(invalidValue('metadata.labels', key, LABEL_NAME_MESSAGE))
    const text = typeof value === 'string' ? value : JSON.stringify(value)
    if (typeof value !== 'string' || text.length > 63) causes.push(invalidValue('metadata.labels', text, 'must be no more than 63 characters'))
    else if (!LABEL_VALUE.test(text)) causes.push(invalidValue('metadata.labels', text, LABEL_VALUE_MESSAGE))
  }
  return causes
}

/** Throws the 422 kube-apiserver would answer for this object's metadata, if any. */
export function validateMetadata(type: ResourceType, obj: KubeObject): void {
  const name = obj.metadata.name
  const causes: StatusCause[] = []
  const rule = nameRule(type)
  if (!name) {
    causes.push({ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' })
  } else if (name.length > rule.max) {
    causes.push(invalidValue('metadata.name', name, `must be no more than ${rule.max} characters`))
  } else if (!rule.pattern.test(name)) {
    causes.push(invalidValue('metadata.name', name, rule.message))
  }
  causes.push(...labelCauses(obj.metadata.labels))
  if (causes.length > 0) throw invalid(type.kind, type.group, String(name ?? ''), causes)
}
