import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'

const key = (fill: number) => Buffer.alloc(32, fill).toString('base64')

describe('configuration', () => {
  it('runs on embedded parts when nothing is set', () => {
    const config = loadConfig({})
    expect(config.port).toBe(8080)
    expect(config.parts).toEqual({
      database: 'pglite',
      cache: 'memory',
      blob: 'filesystem',
      workflows: 'embedded',
      events: 'in-process',
      identity: 'embedded',
    })
    expect(Object.isFrozen(config.database)).toBe(true)
  })

  it('switches each part to the real service when its variable is set', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u@db/x',
      REDIS_URL: 'redis://cache:6379',
      S3_ENDPOINT: 'http://minio:9000',
      S3_ACCESS_KEY: 'a',
      S3_SECRET_KEY: 'b',
      VAULT_KEYS: `k1:${key(1)}`,
      DAPR_GRPC_PORT: '50001',
      DAPR_HTTP_PORT: '3500',
      APP_API_TOKEN: 'sidecar-to-app-token',
    })
    expect(config.parts).toEqual({ database: 'postgres', cache: 'redis', blob: 's3', workflows: 'dapr', events: 'dapr', identity: 'embedded' })
    expect(config.s3).toMatchObject({ bucket: 'modelplane', region: 'us-east-1' })
  })

  it('names every invalid variable in one error', () => {
    try {
      loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', CORS_ORIGINS: 'https://a.example' })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      const message = (err as Error).message
      expect(message).toContain('PORT')
      expect(message).toContain('LOG_LEVEL')
      expect(message).not.toContain('CORS_ORIGINS')
    }
  })

  it('keeps finished workflow runs 30 days unless told otherwise, and 0 keeps them for good', () => {
    expect(loadConfig({}).workflowRetentionDays).toBe(30)
    expect(loadConfig({ WORKFLOW_RETENTION_DAYS: '7' }).workflowRetentionDays).toBe(7)
    expect(loadConfig({ WORKFLOW_RETENTION_DAYS: '0' }).workflowRetentionDays).toBe(0)
    for (const bad of ['-1', '1.5', 'week', '3651']) {
      expect(() => loadConfig({ WORKFLOW_RETENTION_DAYS: bad })).toThrow(/WORKFLOW_RETENTION_DAYS/)
    }
  })

  it('never echoes a secret value in its error', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://root:hunter2@db/x' })).toThrow(/DATABASE_URL/)
    expect(() => loadConfig({ DATABASE_URL: 'mysql://root:hunter2@db/x' })).not.toThrow(/hunter2/)
  })

  it('requires a managed vault key with a shared database', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres://u@db/x' })).toThrow(/VAULT_KEYS/)
  })

  it('refuses malformed vault keys and half an S3 configuration', () => {
    expect(() => loadConfig({ VAULT_KEYS: 'k1:short' })).toThrow(/VAULT_KEYS/)
    expect(() => loadConfig({ VAULT_KEYS: `a:${key(1)},a:${key(2)}` })).toThrow(/twice/)
    expect(() => loadConfig({ S3_ENDPOINT: 'http://minio:9000' })).toThrow(/S3_ACCESS_KEY/)
  })

  it('treats empty variables as unset and parses the CORS list', () => {
    const config = loadConfig({ PORT: '', CORS_ORIGINS: 'https://a.example, https://b.example' })
    expect(config.port).toBe(8080)
    expect(config.corsOrigins).toEqual(['https://a.example', 'https://b.example'])
    expect(loadConfig({ CORS_ORIGINS: '*' }).corsOrigins).toBe(true)
  })

  it("takes Keycloak's issuer base from KEYCLOAK_URL unless KEYCLOAK_ISSUER_URL names another, and refuses it alone", () => {
    expect(loadConfig({ KEYCLOAK_URL: 'http://keycloak:8080/' }).auth).toMatchObject({
      keycloakUrl: 'http://keycloak:8080',
      keycloakIssuerUrl: 'http://keycloak:8080',
    })
    expect(loadConfig({ KEYCLOAK_URL: 'http://keycloak:8080', KEYCLOAK_ISSUER_URL: 'http://localhost:8081/' }).auth).toMatchObject({
      keycloakUrl: 'http://keycloak:8080',
      keycloakIssuerUrl: 'http://localhost:8081',
    })
    expect(() => loadConfig({ KEYCLOAK_ISSUER_URL: 'http://localhost:8081' })).toThrow(/KEYCLOAK_ISSUER_URL/)
  })
})
