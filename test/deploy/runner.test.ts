import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/**
 * The app runner's entrypoint (deploy/runner/entrypoint.py) is Python: its tests are Python's
 * unittest, run here with the system interpreter and Debian's FastAPI, Starlette and uvicorn
 * (.ci/run installs python3-fastapi, python3-uvicorn and python3-httpx). On CI they always run;
 * on a machine without those packages they are skipped with the command that installs them.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const RUNNER = path.join(ROOT, 'deploy/runner')
const PYTHON = '/usr/bin/python3'
/** The test methods of deploy/runner/tests: fewer ran means some were not found. */
const EXPECTED_TESTS = 25

const probe = spawnSync(PYTHON, ['-c', 'import fastapi, uvicorn, httpx'], { encoding: 'utf8' })
const missing = probe.status === 0 ? undefined : (probe.error?.message ?? probe.stderr.trim().split('\n').at(-1))
const skip = Boolean(missing) && !process.env.CI
if (skip) {
  // eslint-disable-next-line no-console -- the reason a test is skipped belongs in the run's output
  console.warn(`skipping the runner's Python tests: ${missing}. Install: apt-get install python3-fastapi python3-uvicorn python3-httpx`)
}

describe.skipIf(skip)('the app runner entrypoint', () => {
  it('passes its Python tests with the system interpreter', () => {
    expect(missing, 'python3-fastapi, python3-uvicorn and python3-httpx must be installed on CI').toBeUndefined()
    const run = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-s', 'tests', '-v'], {
      cwd: RUNNER,
      encoding: 'utf8',
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      timeout: 240_000,
    })
    const output = `${run.stdout}\n${run.stderr}`
    const ran = Number(/^Ran (\d+) tests? in /m.exec(output)?.[1] ?? 0)
    expect(run.status, output).toBe(0)
    expect(output).toMatch(/^OK$/m)
    expect(ran, output).toBeGreaterThanOrEqual(EXPECTED_TESTS)
  }, 300_000)
})
