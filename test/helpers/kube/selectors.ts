import { badRequest } from './status.js'

/**
 * Label and field selectors as the API server parses them: label selectors with `=`, `==`, `!=`,
 * `in (…)`, `notin (…)`, `key` and `!key`, comma meaning AND; field selectors with `=`, `==`, `!=`
 * on the few fields each resource declares. Malformed selectors are a 400, as they are there.
 */

export type Labels = Readonly<Record<string, string>> | undefined
export type LabelMatcher = (labels: Labels) => boolean
export type FieldMatcher = (fields: Readonly<Record<string, string>>) => boolean

const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/

function checkKey(key: string): string {
  const name = key.slice(key.indexOf('/') + 1)
  if (!QUALIFIED_NAME.test(key) || name.length > 63 || key.length > 317) {
    throw badRequest(`unable to parse requirement: key: Invalid value: ${JSON.stringify(key)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`)
  }
  return key
}

function checkValue(value: string): string {
  if (!LABEL_VALUE.test(value) || value.length > 63) {
    throw badRequest(`unable to parse requirement: values[0]: Invalid value: ${JSON.stringify(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`)
  }
  return value
}

/** Splits at commas that are not inside parentheses. */
function splitRequirements(text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '(') depth++
    else if (c === ')') depth--
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts.map((p) => p.trim())
}

function labelRequirement(part: string): LabelMatcher {
  let m = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part)
  if (m) {
    const key = checkKey(m[1]!)
    const values = new Set(m[3]!.split(',').map((v) => checkValue(v.trim())))
    return m[2] === 'in'
      ? (labels) => labels?.[key] !== undefined && values.has(labels[key])
      : (labels) => labels?.[key] === undefined || !values.has(labels[key])
  }
  m = /^!\s*([^\s=!()]+)$/.exec(part)
  if (m) {
    const key = checkKey(m[1]!)
    return (labels) => labels?.[key] === undefined
  }
  m = /^([^\s=!()]+)\s*(==|=|!=)\s*([^\s=!()]*)$/.exec(part)
  if (m) {
    const key = checkKey(m[1]!)
    const value = checkValue(m[3]!)
    return m[2] === '!='
      ? (labels) => labels?.[key] !== value
      : (labels) => labels?.[key] === value
  }
  m = /^([^\s=!()]+)$/.exec(part)
  if (m) {
    const key = checkKey(m[1]!)
    return (labels) => labels?.[key] !== undefined
  }
  throw badRequest(`unable to parse requirement: found '${part.slice(0, 64)}', expected: in, notin, =, ==, !=, gt, lt`)
}

/** A matcher for a labelSelector; an empty selector matches everything. */
export function parseLabelSelector(text: string | undefined): LabelMatcher | undefined {
  if (!text?.trim()) return undefined
  const requirements = splitRequirements(text).map(labelRequirement)
  return (labels) => requirements.every((r) => r(labels))
}

/** A matcher for a fieldSelector over the fields the resource allows. */
export function parseFieldSelector(text: string | undefined, allowed: readonly string[]): FieldMatcher | undefined {
  if (!text?.trim()) return undefined
  const requirements = text.split(',').map((part): FieldMatcher => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part)
    if (!m) throw badRequest(`invalid selector: '${text.slice(0, 256)}'; can't understand '${part.slice(0, 64)}'`)
    const [, field, op, value] = m as unknown as [string, string, string, string]
    if (!allowed.includes(field)) throw badRequest(`field label not supported: ${field}`)
    return op === '!=' ? (fields) => (fields[field] ?? '') !== value : (fields) => (fields[field] ?? '') === value
  })
  return (fields) => requirements.every((r) => r(fields))
}

// Selectable boolean fields read "false" when absent, as the API server's field sets do.
const BOOLEAN_FIELDS = new Set(['spec.unschedulable', 'spec.hostNetwork'])
// Field labels that are not the object's path.
const FIELD_PATHS: Record<string, string> = { source: 'source.component' }

/** The values of an object's selectable fields, kept beside it so lists need not parse it. */
export function selectableValues(obj: object, fields: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const field of fields) {
    let value: unknown = obj
    for (const step of (FIELD_PATHS[field] ?? field).split('.')) {
      value = value && typeof value === 'object' ? (value as Record<string, unknown>)[step] : undefined
    }
    if (value === undefined || value === null) out[field] = BOOLEAN_FIELDS.has(field) ? 'false' : ''
    else out[field] = String(value)
  }
  return out
}
