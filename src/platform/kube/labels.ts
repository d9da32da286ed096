import { shortHash } from './names.js'

export const MANAGED_BY = 'app.kubernetes.io/managed-by'
export const MANAGER = 'modelplane'
export const TENANT_LABEL = 'modelplane.io/tenant'

export type OwnerKey = 'modelplane.io/endpoint-id' | 'modelplane.io/app-id'

export interface ManagedLabelsInput {
  name: string
  instance: string
  tenantId: string
  owner?: { key: OwnerKey; id: string }
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/

/**
 * A valid label value for any text: kept as is when already valid, otherwise cleaned and, when
 * too long or changed, cut with a hash of the original so that two texts stay two values.
 */
export function labelValue(text: string): string {
  if (text.length <= 63 && LABEL_VALUE.test(text)) return text
  const cleaned = text
    .slice(0, 1_000)
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '')
  const cut = cleaned.slice(0, 54).replace(/[^A-Za-z0-9]+$/, '')
  return cut ? `${cut}-${shortHash(text)}` : shortHash(text)
}

/**
 * The labels on everything modelplane writes into a cluster. Teardown finds objects by them, so
 * ids are never altered: an id that is not a valid label value is a bug and throws.
 */
export function managedLabels(input: ManagedLabelsInput): Record<string, string> {
  const labels: Record<string, string> = {
    [MANAGED_BY]: MANAGER,
    'app.kubernetes.io/name': labelValue(input.name),
    'app.kubernetes.io/instance': labelValue(input.instance),
    [TENANT_LABEL]: idValue(input.tenantId),
  }
  if (input.owner) labels[input.owner.key] = idValue(input.owner.id)
  return labels
}

/** The selector of what one tenant (and, given, one owner) has in a cluster, ours only. */
export function managedSelector(tenantId: string, owner?: { key: OwnerKey; id: string }): string {
  return labelSelector({
    [MANAGED_BY]: MANAGER,
    [TENANT_LABEL]: idValue(tenantId),
    ...(owner ? { [owner.key]: idValue(owner.id) } : {}),
  })
}

/** `k1=v1,k2=v2` in key order, for `labelSelector` query parameters. */
export function labelSelector(match: Record<string, string>): string {
  return Object.keys(match)
    .sort()
    .map((key) => {
      const value = match[key]!
      if (!/^([a-z0-9.-]+\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(key) || key.length > 317) {
        throw new Error(`not a label key: ${key.slice(0, 100)}`)
      }
      if (value.length > 63 || !LABEL_VALUE.test(value)) throw new Error(`not a label value: ${value.slice(0, 100)}`)
      return `${key}=${value}`
    })
    .join(',')
}

function idValue(id: string): string {
  if (id === '' || id.length > 63 || !LABEL_VALUE.test(id)) throw new Error(`not usable as a label value: ${id.slice(0, 100)}`)
  return id
}
