import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/**
 * `src/app.ts` builds the app from the platform and the modules; nothing it builds may import it
 * back (modules once imported it for the `Platform` type, a cycle through the composition root).
 * Only the process entry, `src/server.ts`, imports it.
 */

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')
const APP = join(SRC, 'app.ts')
const IMPORT = /(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

/** The source files a file imports by relative path, as .ts paths. */
function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const found: string[] = []
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1] ?? match[2]!
    if (spec.startsWith('.')) found.push(resolve(dirname(file), spec).replace(/\.js$/, '.ts'))
  }
  return found
}

describe('the composition root', () => {
  it('is imported by the process entry only; the Platform type comes from src/platform/platform.ts', () => {
    const files = sourceFiles(SRC)
    expect(files.length).toBeGreaterThan(50)
    const importers = files.filter((f) => localImports(f).includes(APP)).map((f) => relative(SRC, f))
    expect(importers).toEqual(['server.ts'])
    const platformUsers = files.filter((f) => localImports(f).includes(join(SRC, 'platform/platform.ts'))).map((f) => relative(SRC, f))
    expect(platformUsers).toEqual(expect.arrayContaining(['modules/cluster_ops/index.ts', 'modules/workflow_ops/index.ts']))
  })
})
