import { randomBytes, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import KcAdminClient from '@keycloak/keycloak-admin-client'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config.js'
import { REALM_SESSION_POLICY } from '../../src/modules/auth/keycloak.js'
import { SEEDED_ROLES } from '../../src/modules/auth/permissions.js'
import { buildTestApp } from '../helpers/app.js'
import { bearer, uniqueRealm } from '../helpers/auth.js'
import { type FakeKeycloak, startFakeKeycloak } from '../helpers/keycloak.js'

/**
 * No Docker engine runs here, so the real stack is checked on paper: docker-compose.yml, the realm
 * file and the Dapr components are read as Docker Compose and Keycloak would read them, the app's
 * environment goes through the app's own configuration, and the names, ports, secrets and clients
 * that must agree across services are compared. The last part imports the realm file into the
 * Keycloak stand-in (answering under the compose file's browser-facing name) and signs in through
 * an app configured as the compose file configures it.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8')

interface Service {
  image?: string
  build?: unknown
  command?: string[]
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  healthcheck?: { test: string[] | string }
  depends_on?: Record<string, { condition: string }>
  network_mode?: string
}

/** What deploy/start_dev.sh generates into deploy/.env.dev, in the same shapes. */
const generated: Record<string, string> = {
  VAULT_KEYS: `k1:${randomBytes(32).toString('base64')}`,
  APP_API_TOKEN: randomBytes(36).toString('base64url'),
  DAPR_API_TOKEN: randomBytes(36).toString('base64url'),
  MODELPLANE_API_CLIENT_SECRET: randomBytes(36).toString('base64url'),
  KEYCLOAK_ADMIN_CLIENT_SECRET: randomBytes(36).toString('base64url'),
}

/**
 * Compose's interpolation: `$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
 * `${VAR?error}`. Variables come from `env`; a required one missing is an error, as for compose.
 */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^}])*))?\}/g, (match, name?: string, op?: string, arg?: string) => {
    if (match === '$$') return '$'
    const value = env[name!]
    const set = op?.startsWith(':') ? value !== undefined && value !== '' : value !== undefined
    if (op?.endsWith('?') && !set) throw new Error(`compose would refuse: ${name} is required (${arg})`)
    if (op?.endsWith('-') && !set) return arg ?? ''
    return value ?? ''
  })
}

function interpolateDeep<T>(value: T, env: Record<string, string>): T {
  if (typeof value === 'string') return interpolate(value, env) as T
  if (Array.isArray(value)) return value.map((item) => interpolateDeep(item, env)) as T
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateDeep(item, env)])) as T
  }
  return value
}

const rawCompose = parse(read('docker-compose.yml')) as { services: Record<string, Service>; volumes?: Record<string, unknown> }
const compose = interpolateDeep(rawCompose, generated)
const services = compose.services
const appEnv = services.app!.environment!
const keycloakEnv = services.keycloak!.environment!

/** Keycloak replaces `${VAR}` in an imported realm file with its own environment. */
const realmFile = JSON.parse(read('deploy/keycloak/modelplane-realm.json').replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
  const value = keycloakEnv[name]
  if (value === undefined) throw new Error(`the realm file needs ${name}, which the keycloak service does not have`)
  return value
})) as {
  realm: string
  loginWithEmailAllowed?: boolean
  duplicateEmailsAllowed?: boolean
  editUsernameAllowed?: boolean
  roles: { realm: Array<{ name: string }> }
  clients: Array<Record<string, unknown>>
} & Record<string, unknown>

/** The container port published on the host for `service`, from `ports` ("127.0.0.1:8081:8080"). */
function hostPortOf(service: string, containerPort: number): number | undefined {
  for (const mapping of services[service]?.ports ?? []) {
    const parts = mapping.split(':')
    if (Number(parts.at(-1)) === containerPort) return Number(parts.at(-2))
  }
  return undefined
}

function flag(service: string, name: string): string | undefined {
  const command = services[service]?.command ?? []
  for (const [index, arg] of command.entries()) {
    if (arg === name) return command[index + 1]
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1)
  }
  return undefined
}

describe('docker-compose.yml, on paper', () => {
  it('fails to interpolate without a secret that start_dev.sh generates, and start_dev.sh and stop_dev.sh know every one', () => {
    const required = [...read('docker-compose.yml').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):?\?/g)].map((m) => m[1]!)
    expect(new Set(required)).toEqual(new Set(Object.keys(generated)))
    const startScript = read('deploy/start_dev.sh')
    const stopScript = read('deploy/stop_dev.sh')
    for (const name of new Set(required)) {
      expect(startScript, name).toContain(`ensure_secret ${name} `)
      expect(stopScript, name).toContain(`${name}=unused`)
      const { [name]: _left, ...without } = generated
      expect(() => interpolateDeep(rawCompose, without), name).toThrow(name)
    }
  })

  it('pins every image to an exact version: no latest, no floating major or minor tag, no variable', () => {
    const images = Object.entries(rawCompose.services).filter(([, service]) => service.build === undefined)
    expect(images.length).toBeGreaterThan(5)
    for (const [name, service] of images) {
      const image = service.image ?? ''
      expect(image, name).not.toContain('$')
      const [, repository = '', tag = ''] = /^([^@]+):([^:/@]+)$/.exec(image) ?? []
      // PostgreSQL numbers releases major.minor since 10 (15.13 is one release); the others major.minor.patch.
      const exact = repository === 'postgres' ? /^\d+\.\d+$/ : /^(\d+\.\d+\.\d+([-.][A-Za-z0-9.]+)?|RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)$/
      expect(tag, `${name}: ${image}`).toMatch(exact)
    }
    const dapr = ['placement', 'scheduler', 'daprd'].map((name) => services[name]!.image!.split(':')[1])
    expect(new Set(dapr).size, 'the Dapr control plane and sidecar run one version').toBe(1)
  })

  it("loads the app's environment with the app's configuration: every part real, every Keycloak client and secret set", () => {
    const config = loadConfig(appEnv)
    expect(config.parts).toEqual({ database: 'postgres', cache: 'redis', blob: 's3', workflows: 'dapr', events: 'dapr', identity: 'keycloak' })
    for (const name of [
      'DATABASE_URL',
      'REDIS_URL',
      'S3_ENDPOINT',
      'S3_PUBLIC_URL',
      'S3_ACCESS_KEY',
      'S3_SECRET_KEY',
      'S3_BUCKET',
      'VAULT_KEYS',
      'KEYCLOAK_URL',
      'KEYCLOAK_ISSUER_URL',
      'KEYCLOAK_CLIENT_ID',
      'KEYCLOAK_CLIENT_SECRET',
      'KEYCLOAK_ADMIN_CLIENT_ID',
      'KEYCLOAK_ADMIN_CLIENT_SECRET',
      'DAPR_HTTP_PORT',
      'DAPR_GRPC_PORT',
      'APP_API_TOKEN',
      'DAPR_API_TOKEN',
      'PUBLIC_URL',
    ]) {
      expect(appEnv[name], name).toBeTruthy()
    }
    expect(config.vaultKeys).toHaveLength(1)
    expect(config.auth).toMatchObject({ clientSecret: generated.MODELPLANE_API_CLIENT_SECRET, adminClientSecret: generated.KEYCLOAK_ADMIN_CLIENT_SECRET })
  })

  it('points the app at the services by their names, with the credentials those services were given', () => {
    const config = loadConfig(appEnv)
    const database = new URL(config.database.url!)
    expect([database.hostname, database.port, database.pathname]).toEqual(['postgres', '5432', `/${services.postgres!.environment!.POSTGRES_DB}`])
    expect([decodeURIComponent(database.username), decodeURIComponent(database.password)]).toEqual([
      services.postgres!.environment!.POSTGRES_USER,
      services.postgres!.environment!.POSTGRES_PASSWORD,
    ])
    expect(new URL(config.redis.url!).host).toBe('redis:6379')
    expect(new URL(config.s3!.endpoint).host).toBe('minio:9000')
    expect([config.s3!.accessKey, config.s3!.secretKey]).toEqual([services.minio!.environment!.MINIO_ROOT_USER, services.minio!.environment!.MINIO_ROOT_PASSWORD])
    expect(new URL(config.s3!.publicEndpoint!).port).toBe(String(hostPortOf('minio', 9000)))
    expect(new URL(config.publicUrl).port).toBe(String(hostPortOf('app', config.port)))

    // The sidecar: same tokens, the ports the app expects, the app's port, the pub/sub the app names.
    expect(services.daprd!.network_mode).toBe('service:app')
    expect(services.daprd!.environment).toMatchObject({ APP_API_TOKEN: config.dapr.appApiToken, DAPR_API_TOKEN: config.dapr.apiToken })
    expect([flag('daprd', '--dapr-http-port'), flag('daprd', '--dapr-grpc-port'), flag('daprd', '--app-port')]).toEqual([
      String(config.dapr.httpPort),
      String(config.dapr.grpcPort),
      String(config.port),
    ])
    expect(flag('daprd', '--placement-host-address')).toBe(`placement:${flag('placement', '--port')}`)
    expect(flag('daprd', '--scheduler-host-address')).toBe(`scheduler:${flag('scheduler', '--port')}`)
    const component = (file: string) => parse(read(`.dapr/components/${file}`)) as { metadata: { name: string }; spec: { metadata: Array<{ name: string; value: string }> } }
    expect(component('pubsub.yaml').metadata.name).toBe(config.dapr.pubsubName)
    expect(component('statestore.yaml').spec.metadata).toContainEqual({ name: 'actorStateStore', value: 'true' })
  })

  it('has Keycloak named one way for the app and another for browsers, and the app told both', () => {
    const config = loadConfig(appEnv)
    // The app calls the keycloak service on its container port (start-dev serves HTTP on 8080).
    const inner = new URL(config.auth.keycloakUrl!)
    expect([inner.hostname, inner.port, inner.pathname]).toEqual(['keycloak', '8080', '/'])
    // Tokens carry KC_HOSTNAME, which must be where the host publishes that same port.
    expect(config.auth.keycloakIssuerUrl).toBe(keycloakEnv.KC_HOSTNAME!.replace(/\/+$/, ''))
    const outer = new URL(keycloakEnv.KC_HOSTNAME!)
    expect(Number(outer.port)).toBe(hostPortOf('keycloak', 8080))
    expect(keycloakEnv.KC_HOSTNAME_BACKCHANNEL_DYNAMIC).toBe('true')
  })

  it("imports a realm whose login client is the app's, confidential with the app's secret and allowed the password grant", () => {
    expect(services.keycloak!.command).toContain('--import-realm')
    expect(services.keycloak!.volumes).toContain('./deploy/keycloak:/opt/keycloak/data/import:ro')
    const config = loadConfig(appEnv)
    const login = realmFile.clients.find((client) => client.clientId === config.auth.clientId)
    expect(login).toMatchObject({ enabled: true, publicClient: false, directAccessGrantsEnabled: true, secret: config.auth.clientSecret })
    // Users sign in with their email (usernames are opaque ids), so emails must log in and be unique.
    expect(realmFile.loginWithEmailAllowed).toBe(true)
    expect(realmFile.duplicateEmailsAllowed).toBe(false)
    expect(realmFile).toMatchObject(REALM_SESSION_POLICY)
    expect(realmFile.roles.realm.map((role) => role.name).sort()).toEqual(Object.keys(SEEDED_ROLES).sort())
  })

  it("gives the app Keycloak's bootstrap service account of realm master as its admin client", () => {
    const config = loadConfig(appEnv)
    expect(keycloakEnv.KC_BOOTSTRAP_ADMIN_CLIENT_ID).toBe(config.auth.adminClientId)
    expect(keycloakEnv.KC_BOOTSTRAP_ADMIN_CLIENT_SECRET).toBe(config.auth.adminClientSecret)
  })

  it('has a healthcheck on every service the app waits for, and on the Dapr control plane and sidecar', () => {
    const waitsFor = Object.entries(services.app!.depends_on ?? {})
    expect(waitsFor.map(([name]) => name).sort()).toEqual(['keycloak', 'minio', 'postgres', 'redis'])
    for (const [name, { condition }] of waitsFor) {
      expect(condition, name).toBe('service_healthy')
      expect(services[name]!.healthcheck, name).toBeDefined()
    }
    for (const name of ['placement', 'scheduler', 'daprd', 'app']) expect(services[name]!.healthcheck, name).toBeDefined()
    expect(services.daprd!.depends_on).toMatchObject({ placement: { condition: 'service_healthy' }, scheduler: { condition: 'service_healthy' } })

    // Dapr's images have no shell or tools: each probe runs a binary from a volume it mounts, asking its own port.
    const probes: Array<[string, string]> = [
      ['placement', `http://127.0.0.1:${flag('placement', '--healthz-port')}/healthz`],
      ['scheduler', `http://127.0.0.1:${flag('scheduler', '--healthz-port')}/healthz`],
      ['daprd', `http://127.0.0.1:${flag('daprd', '--dapr-http-port')}/v1.0/healthz`],
    ]
    for (const [name, url] of probes) {
      const test = services[name]!.healthcheck!.test as string[]
      expect(test[0], name).toBe('CMD')
      expect(test.at(-1), name).toBe(url)
      const mounts = (services[name]!.volumes ?? []).map((volume) => volume.split(':')[1]!)
      expect(mounts.some((mount) => test[1]!.startsWith(`${mount}/`)), `${name} runs ${test[1]} from a mounted volume`).toBe(true)
      expect(services[name]!.depends_on?.['probe-tools']).toEqual({ condition: 'service_completed_successfully' })
    }
  })
})

describe('the compose set-up against the Keycloak stand-in', () => {
  let kc: FakeKeycloak
  let app: FastifyInstance

  beforeAll(async () => {
    // Keycloak answers under the compose file's browser-facing name; the app reaches it at another address.
    kc = await startFakeKeycloak({ frontendUrl: keycloakEnv.KC_HOSTNAME })
    // What KC_BOOTSTRAP_ADMIN_CLIENT_ID/SECRET make in realm master (replacing the stand-in's own admin client if the ids match).
    const bootstrap = { clientId: keycloakEnv.KC_BOOTSTRAP_ADMIN_CLIENT_ID!, clientSecret: keycloakEnv.KC_BOOTSTRAP_ADMIN_CLIENT_SECRET! }
    kc.addClient('master', { clientId: bootstrap.clientId, secret: bootstrap.clientSecret, serviceAccountRoles: ['admin'], directAccessGrants: false })
    // What --import-realm does with deploy/keycloak/modelplane-realm.json.
    const importer = new KcAdminClient({ baseUrl: kc.url, realmName: 'master' })
    await importer.auth({ grantType: 'client_credentials', ...bootstrap })
    await importer.realms.create(realmFile)

    const fromCompose = Object.fromEntries(Object.entries(appEnv).filter(([name]) => name.startsWith('KEYCLOAK_') || name === 'PUBLIC_URL'))
    app = await buildTestApp({
      ...fromCompose,
      // keycloak:8080, as the app's network resolves it; the test's own PostgreSQL and Redis stay.
      KEYCLOAK_URL: kc.url,
    })
  })

  afterAll(async () => {
    await app?.close()
    await kc?.close()
  })

  const login = (realm: string, email: string, password: string) =>
    app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password, tenant: realm } })

  it('signs a user of the imported realm in with the login client, verifies the token under KC_HOSTNAME, and creates a tenant one can sign in to', async () => {
    expect(realmFile.realm).toBe('local')
    const email = `su-${randomUUID().slice(0, 8)}@example.test`
    const password = `pw-${randomUUID()}`
    kc.addUser('local', { username: randomUUID(), email, password, roles: ['super_admin'] })

    const session = await login('local', email, password)
    expect(session.statusCode, session.body).toBe(200)
    const me = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(session.json().accessToken) })
    expect(me.statusCode, me.body).toBe(200)
    expect(me.json()).toMatchObject({ role: 'super_admin', tenant: { realm: 'local' }, user: { email } })
    // A refresh token is routed to its realm by the issuer it names (localhost:8081), not by the address called.
    const refreshed = await app.inject({ method: 'POST', url: '/v1/auth/refresh', payload: { refreshToken: session.json().refreshToken } })
    expect(refreshed.statusCode, refreshed.body).toBe(200)

    // The admin client of the compose file creates the realm, its roles and the login client, then the first admin.
    const realm = uniqueRealm('compose')
    const adminEmail = `first-${randomUUID().slice(0, 8)}@example.test`
    const tenant = await app.inject({
      method: 'POST',
      url: '/v1/tenants',
      headers: bearer(session.json().accessToken),
      payload: { realm, displayName: 'Compose Co', initialAdmin: { email: adminEmail, name: 'First' } },
    })
    expect(tenant.statusCode, tenant.body).toBe(201)
    const chosen = `chosen-${randomUUID()}`
    kc.updatePasswordAtLogin(realm, adminEmail, tenant.json().initialAdmin.temporaryPassword, chosen)
    const first = await login(realm, adminEmail, chosen)
    expect(first.statusCode, first.body).toBe(200)
    const firstMe = await app.inject({ method: 'GET', url: '/v1/auth/me', headers: bearer(first.json().accessToken) })
    expect(firstMe.json()).toMatchObject({ role: 'admin', tenant: { realm }, user: { email: adminEmail } })
  })
})
