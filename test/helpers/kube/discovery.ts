import { type ApiGroup, type Catalog } from './catalog.js'

/**
 * The discovery documents (/version, /api, /apis, /api/v1, /apis/<group>[/<version>]) and the
 * CustomResourceDefinitions behind CRD-backed groups. Legacy (unaggregated) discovery only:
 * client-node and kubectl before 1.26 ask for nothing else.
 */

export interface VersionInfo {
  major: string
  minor: string
  gitVersion: string
  gitCommit: string
  gitTreeState: string
  buildDate: string
  goVersion: string
  compiler: string
  platform: string
}

export const DEFAULT_GIT_VERSION = 'v1.26.5'

/** /version for a gitVersion such as 'v1.29.4+k3s1', 'v1.28.9-eks-036c24b' or 'v1.27.6+f67aeb3'. */
export function versionInfo(gitVersion: string): VersionInfo {
  const m = /^v(\d+)\.(\d+)\.\d+(.*)$/.exec(gitVersion)
  if (!m) throw new Error(`gitVersion must look like v1.29.4, got ${JSON.stringify(gitVersion.slice(0, 64))}`)
  // Vendor builds with a pre-release suffix (EKS, GKE) report minor as "28+"; build metadata (+k3s1) does not.
  const minor = m[3]!.startsWith('-') ? `${m[2]}+` : m[2]!
  return {
    major: m[1]!,
    minor,
    gitVersion,
    gitCommit: '636f2be6157d45217eb99744b72cc51e5e9c7e10',
    gitTreeState: 'clean',
    buildDate: '2026-11-30T09:52:27Z',
    goVersion: 'go1.19.8',
    compiler: 'gc',
    platform: 'linux/amd64',
  }
}

export function apiVersions(hostPort: string) {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: hostPort }],
  }
}

function groupEntry(g: ApiGroup) {
  const versions = g.versions.map((v) => ({ groupVersion: `${g.name}/${v.version}`, version: v.version }))
  return { name: g.name, versions, preferredVersion: versions[0]! }
}

// Serialized documents per catalog: hundreds of clusters share a few catalogs.
const documents = new WeakMap<Catalog, Map<string, string | null>>()

function cached(catalog: Catalog, key: string, make: () => object | null): string | null {
  let docs = documents.get(catalog)
  if (!docs) {
    docs = new Map()
    documents.set(catalog, docs)
  }
  if (!docs.has(key)) {
    const doc = make()
    docs.set(key, doc && JSON.stringify(doc))
  }
  return docs.get(key)!
}

/** /apis */
export function apiGroupList(catalog: Catalog): string {
  return cached(catalog, '/apis', () => ({ kind: 'APIGroupList', apiVersion: 'v1', groups: catalog.groups.map(groupEntry) }))!
}

/** /apis/<group>, or null when the group is not served. */
export function apiGroup(catalog: Catalog, name: string): string | null {
  return cached(catalog, `/apis/${name}`, () => {
    const g = catalog.groups.find((x) => x.name === name)
    return g ? { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(g) } : null
  })
}

/** /api/v1 or /apis/<group>/<version>, or null when not served. */
export function resourceList(catalog: Catalog, groupName: string, version: string): string | null {
  return cached(catalog, `${groupName}/${version}`, () => {
    if (groupName === '') {
      // Recorded: the core list carries no apiVersion.
      return version === 'v1' ? { kind: 'APIResourceList', groupVersion: 'v1', resources: catalog.core.resources } : null
    }
    const gv = catalog.groups.find((x) => x.name === groupName)?.versions.find((v) => v.version === version)
    return gv ? { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: `${groupName}/${version}`, resources: gv.resources } : null
  })
}

/** The CustomResourceDefinition objects (without server-set metadata) behind the CRD-backed groups. */
export function customResourceDefinitions(catalog: Catalog): object[] {
  return catalog.groups
    .filter((g) => g.crd)
    .flatMap((g) =>
      g.versions[0]!.resources
        .filter((r) => !r.name.includes('/'))
        .map((r) => ({
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name: `${r.name}.${g.name}` },
          spec: {
            group: g.name,
            names: {
              plural: r.name,
              singular: r.singularName,
              kind: r.kind,
              listKind: `${r.kind}List`,
              ...(r.shortNames ? { shortNames: r.shortNames } : {}),
            },
            scope: r.namespaced ? 'Namespaced' : 'Cluster',
            versions: g.versions.map((v, i) => ({
              name: v.version,
              served: true,
              storage: i === 0,
              schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
              subresources: g.versions[0]!.resources.some((s) => s.name === `${r.name}/status`) ? { status: {} } : {},
            })),
            conversion: { strategy: 'None' },
          },
          status: {
            conditions: [
              { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found' },
              { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
            ],
            acceptedNames: { plural: r.name, singular: r.singularName, kind: r.kind, listKind: `${r.kind}List` },
            storedVersions: [g.versions[0]!.version],
          },
        })),
    )
}
