import fs from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from './helpers/app.js'
import { freePort, type Started, startCommand } from './helpers/process.js'
import { waitFor } from './helpers/wait.js'

/**
 * The README's first command on a machine with nothing else installed: no DATABASE_URL, no Redis,
 * no S3. The real entry point runs on PGlite, the in-process cache and the filesystem store.
 */
describe('quick start on embedded parts', () => {
  let server: Started | undefined
  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGKILL')
      await server.exited
    }
  })

  it('serves a ready API with docs, then shuts down cleanly on SIGTERM', async () => {
    const port = await freePort()
    const dataDir = tempDir()
    server = startCommand(process.execPath, ['scripts/start.mjs'], {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
    })
    const base = `http://127.0.0.1:${port}`
    await waitFor(
      async () => {
        try {
          return (await fetch(`${base}/readyz`)).status === 200
        } catch {
          return false
        }
      },
      45_000,
      'the API did not become ready',
    )
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { checks: Record<string, { status: string }> }
    expect(ready.checks.database?.status).toBe('up')
    expect((await fetch(`${base}/docs/`)).status).toBe(200)
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string }
    expect(doc.openapi).toBe('3.1.0')
    expect(server.output()).toContain('modelplane ready')
    expect(server.output()).toMatch(/VAULT_KEYS is not set/)

    // The first admin's generated password is in a file only this user can read, never in the log.
    const file = path.join(dataDir, 'initial-admin-password')
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    const password = fs.readFileSync(file, 'utf8').trim()
    expect(password.length).toBeGreaterThanOrEqual(20)
    expect(server.output()).toContain(file)
    expect(server.output()).not.toContain(password)
    const login = await fetch(`${base}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@modelplane.local', password, tenant: 'local' }),
    })
    expect(login.status, await login.clone().text()).toBe(200)

    // A second process on the same folder refuses before it opens the embedded database.
    const second = startCommand(process.execPath, ['scripts/start.mjs'], {
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
    })
    expect(await second.exited).toBe(1)
    expect(second.output()).toContain(`DATA_DIR ${dataDir} is in use by another modelplane process (pid ${server.child.pid}`)
    expect(second.output()).not.toContain('modelplane ready')
    // ...and the first one still serves, its database intact.
    expect((await fetch(`${base}/readyz`)).status).toBe(200)

    server.child.kill('SIGTERM')
    expect(await server.exited).toBe(0)
    expect(server.output()).toContain('shutting down')
    // The lock went with it: the folder can be opened again.
    expect(fs.existsSync(path.join(dataDir, 'modelplane.lock'))).toBe(false)
  }, 90_000)

  it('says it is creating the embedded database on a first start, and SIGTERM to `npm start` stops the server', async () => {
    const port = await freePort()
    const dataDir = tempDir()
    const npm = startCommand('npm', ['start', '--silent'], {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
    })
    server = npm
    const base = `http://127.0.0.1:${port}`
    const answers = async () => {
      try {
        return (await fetch(`${base}/healthz`)).status === 200
      } catch {
        return false
      }
    }
    await waitFor(answers, 45_000, 'the API did not become ready under npm start')
    expect(npm.output()).toContain('creating the embedded database (first start only')
    npm.child.kill('SIGTERM')
    await npm.exited
    // The server behind npm stops too (it used to keep serving, orphaned) and lets go of the folder.
    await waitFor(async () => !(await answers()), 20_000, 'the server kept serving after npm start got SIGTERM')
    await waitFor(() => !fs.existsSync(path.join(dataDir, 'modelplane.lock')), 20_000, 'the data folder stayed locked')
  }, 90_000)
})
