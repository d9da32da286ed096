import { existsSync, readFileSync } from 'node:fs'

/**
 * Named object fixtures: `test/fixtures/kube/nodes/<name>.json` (nodes copied in shape from real
 * clusters), else `test/fixtures/kube/<name>.json` (objects recorded from kube-apiserver, such as
 * `node-a100-as-stored`). Files are read once; each call hands out a fresh copy.
 */

const FIXTURES = new URL('../../fixtures/kube/', import.meta.url)
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/

const texts = new Map<string, string>()

function fixtureText(name: string): string {
  let text = texts.get(name)
  if (text === undefined) {
    if (!NAME.test(name)) throw new Error(`fixture names are lowercase words and dashes, got ${JSON.stringify(name.slice(0, 64))}`)
    const file = [new URL(`nodes/${name}.json`, FIXTURES), new URL(`${name}.json`, FIXTURES)].find((u) => existsSync(u))
    if (!file) throw new Error(`no node fixture named ${name} under test/fixtures/kube/nodes/ or test/fixtures/kube/`)
    text = readFileSync(file, 'utf8')
    texts.set(name, text)
  }
  return text
}

/**
 * A node fixture ready to store: server-set fields (uid, resourceVersion, managedFields times
 * stay as recorded) are dropped where they would collide between clusters built from one file.
 */
export function nodeFixture(name: string): Record<string, unknown> & { metadata: Record<string, unknown> & { name: string } } {
  const node = JSON.parse(fixtureText(name)) as Record<string, unknown> & { metadata: Record<string, unknown> & { name: string } }
  delete node.metadata.uid
  delete node.metadata.resourceVersion
  return node
}
