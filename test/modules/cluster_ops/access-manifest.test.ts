import fs from 'node:fs'
import { parseAllDocuments } from 'yaml'
import { describe, expect, it } from 'vitest'
import { describeAccess, REQUIRED_ACCESS } from '../../../src/modules/cluster_ops/inspect.js'

interface Rule {
  apiGroups: string[]
  resources: string[]
  verbs: string[]
}

describe('deploy/cluster-access/modelplane-access.yaml', () => {
  const docs = parseAllDocuments(fs.readFileSync('deploy/cluster-access/modelplane-access.yaml', 'utf8')).map((d) => d.toJS())
  const role = docs.find((d) => d?.kind === 'ClusterRole') as { rules: Rule[] }

  it('grants every permission registration checks, so a cluster set up from it registers', () => {
    const missing = REQUIRED_ACCESS.filter((access) => {
      const resource = access.subresource ? `${access.resource}/${access.subresource}` : access.resource
      return !role.rules.some((r) => r.apiGroups.includes(access.group) && r.resources.includes(resource) && r.verbs.includes(access.verb))
    }).map(describeAccess)
    expect(missing).toEqual([])
  })

  it('grants nothing registration does not check (no wildcards, no cluster-admin)', () => {
    const granted = role.rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g}/${res}`))))
    const needed = new Set(
      REQUIRED_ACCESS.map((a) => `${a.verb} ${a.group}/${a.subresource ? `${a.resource}/${a.subresource}` : a.resource}`),
    )
    expect(granted.filter((g) => !needed.has(g))).toEqual([])
  })
})
