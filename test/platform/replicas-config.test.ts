import path from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { loggerOptions } from '../../src/platform/logger.js'
import { tempDir, testConfig } from '../helpers/app.js'
import { TEST_DATABASE_URL, TEST_VAULT_KEYS } from '../helpers/env.js'
import { startCommand } from '../helpers/process.js'
import { uniqueHub } from '../helpers/workflow.js'

/**
 * The shared-parts rule (src/config.ts): with DATABASE_URL, every part replicas must share is
 * shared, or the operator says SINGLE_REPLICA=true and the process says at start what is not.
 */

const SHARED_DB = { DATABASE_URL: 'postgres://u@db/x', VAULT_KEYS: TEST_VAULT_KEYS }
const REDIS = { REDIS_URL: 'redis://cache:6379' }
const S3 = { S3_ENDPOINT: 'http://minio:9000', S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b' }

function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems.join('\n')
  }
  throw new Error('the configuration was accepted')
}

describe('replicas: what a shared database requires', () => {
  it('refuses DATABASE_URL without REDIS_URL, naming it and the way out', () => {
    const problems = problemsOf({ ...SHARED_DB, ...S3 })
    expect(problems).toMatch(/^REDIS_URL .*required when DATABASE_URL is set/m)
    expect(problems).toContain('SINGLE_REPLICA=true')
    expect(problems).not.toMatch(/S3_ENDPOINT|BLOB_DIR/)
  })

  it('refuses DATABASE_URL without S3_ENDPOINT or BLOB_DIR, naming both', () => {
    const problems = problemsOf({ ...SHARED_DB, ...REDIS })
    expect(problems).toMatch(/^S3_ENDPOINT or BLOB_DIR .*required when DATABASE_URL is set/m)
    expect(problems).not.toContain('REDIS_URL')
  })

  it('names every missing part in one error', () => {
    const problems = problemsOf(SHARED_DB)
    expect(problems).toContain('REDIS_URL')
    expect(problems).toContain('S3_ENDPOINT or BLOB_DIR')
  })

  it('starts with Redis and either S3 or a declared shared BLOB_DIR, with nothing to warn about', () => {
    expect(loadConfig({ ...SHARED_DB, ...REDIS, ...S3 }).unsharedParts).toEqual([])
    const config = loadConfig({ ...SHARED_DB, ...REDIS, BLOB_DIR: '/mnt/shared/blobs', DATA_DIR: '/var/lib/mp' })
    expect(config.unsharedParts).toEqual([])
    expect(config.blobDir).toBe('/mnt/shared/blobs')
    expect(config.parts.blob).toBe('filesystem')
  })

  it('refuses a BLOB_DIR inside DATA_DIR, and BLOB_DIR together with S3', () => {
    expect(problemsOf({ ...SHARED_DB, ...REDIS, DATA_DIR: '/var/lib/mp', BLOB_DIR: '/var/lib/mp/objects' })).toMatch(
      /^BLOB_DIR: must be outside DATA_DIR/m,
    )
    expect(problemsOf({ ...SHARED_DB, ...REDIS, ...S3, BLOB_DIR: '/mnt/shared/blobs' })).toMatch(
      /BLOB_DIR and S3_ENDPOINT: set one/,
    )
  })

  it('asks nothing of the embedded database, which one process owns', () => {
    const config = loadConfig({ DATA_DIR: '/var/lib/mp' })
    expect(config.unsharedParts).toEqual([])
    expect(config.blobDir).toBe(path.join('/var/lib/mp', 'objects'))
  })

  it('accepts SINGLE_REPLICA=true and lists what is not shared', () => {
    const config = loadConfig({ ...SHARED_DB, SINGLE_REPLICA: 'true' })
    expect(config.unsharedParts).toHaveLength(2)
    expect(config.unsharedParts[0]).toMatch(/^REDIS_URL /)
    expect(config.unsharedParts[1]).toMatch(/^S3_ENDPOINT or BLOB_DIR /)
  })

  it('with SINGLE_REPLICA=true, starts and warns naming what is not shared', async () => {
    const lines: Array<{ level: number; msg: string; notShared?: string[] }> = []
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
        done()
      },
    })
    const app = await buildApp(testConfig({ LOG_LEVEL: 'warn', REDIS_URL: undefined, SINGLE_REPLICA: 'true' }), {
      logger: pino(loggerOptions('warn'), sink),
      workflows: { hub: uniqueHub('single') },
    })
    try {
      await app.ready()
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
      const warning = lines.find((l) => l.msg.startsWith('SINGLE_REPLICA=true'))
      expect(warning?.level).toBe(40)
      expect(warning?.notShared?.join('\n')).toMatch(/^REDIS_URL /m)
      expect(warning?.notShared?.join('\n')).toMatch(/^S3_ENDPOINT or BLOB_DIR /m)
    } finally {
      await app.close()
    }
  })

  it('stops the real server before it touches anything, with the message on stderr', async () => {
    const server = startCommand(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      DATA_DIR: tempDir(),
      DATABASE_URL: TEST_DATABASE_URL,
      VAULT_KEYS: TEST_VAULT_KEYS,
      BLOB_DIR: tempDir(),
    })
    // A server that did start is stopped here, not left behind, and the test fails on its exit code.
    const stop = setTimeout(() => server.child.kill('SIGKILL'), 20_000)
    try {
      expect(await server.exited).toBe(1)
    } finally {
      clearTimeout(stop)
    }
    expect(server.output()).toMatch(/invalid configuration:\n {2}- REDIS_URL .*required when DATABASE_URL is set/)
    expect(server.output()).not.toContain('modelplane ready')
  }, 30_000)
})
