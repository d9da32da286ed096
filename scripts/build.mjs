// Transpiles src/ to dist/ file by file (no bundling, no type checking: `npm run typecheck` does that).
// esbuild takes a fraction of a second, so `npm start` can rebuild every time and never run stale code.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export async function buildDist() {
  const sources = fs
    .readdirSync(path.join(root, 'src'), { recursive: true })
    .map(String)
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .map((file) => path.join(root, 'src', file))

  fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true })
  await build({
    entryPoints: sources,
    outdir: path.join(root, 'dist'),
    outbase: path.join(root, 'src'),
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildDist()
