import fs from 'node:fs'
import { isIP } from 'node:net'
import path from 'node:path'
import { Ajv } from 'ajv'
import Type, { type Static } from 'typebox'

/**
 * Every environment variable the process reads, in one schema. Parsed once at start;
 * a bad value stops the process with a message that names the variable.
 * `.env.sample` documents each one and must stay in step with this list.
 */
const Port = Type.Integer({ minimum: 1, maximum: 65535 })
const Bool = Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')])

const EnvSchema = Type.Object({
  NODE_ENV: Type.Optional(Type.String({ maxLength: 32 })),
  PORT: Type.Optional(Port),
  HOST: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  LOG_LEVEL: Type.Optional(Type.String({ pattern: '^(fatal|error|warn|info|debug|trace|silent)$' })),
  DATA_DIR: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', maxLength: 4096 })),
  DATABASE_POOL_MAX: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  MIGRATE_ON_START: Type.Optional(Bool),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', maxLength: 4096 })),
  S3_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  S3_PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  S3_ACCESS_KEY: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  S3_SECRET_KEY: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  S3_BUCKET: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' })),
  S3_REGION: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  VAULT_KEYS: Type.Optional(Type.String({ minLength: 1, maxLength: 16384 })),
  CORS_ORIGINS: Type.Optional(Type.String({ maxLength: 8192 })),
  BODY_LIMIT_BYTES: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024 })),
  RATE_LIMIT_MAX: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  RATE_LIMIT_WINDOW_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  TRUST_PROXY: Type.Optional(Type.String({ maxLength: 4096 })),
  REQUEST_TIMEOUT_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
  HEADERS_TIMEOUT_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 600 })),
  KEEP_ALIVE_TIMEOUT_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
  CONNECTION_IDLE_TIMEOUT_SECONDS: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
  MAX_HEADER_BYTES: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1024 * 1024 })),
  MAX_CONNECTIONS: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  UPLOAD_MIN_BYTES_PER_SECOND: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 * 1024 * 1024 })),
  UPLOAD_RATE_WINDOW_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
  DAPR_HTTP_PORT: Type.Optional(Port),
  DAPR_GRPC_PORT: Type.Optional(Port),
  WORKFLOW_HUB_THREAD: Type.Optional(Bool),
  WORKFLOW_RETENTION_DAYS: Type.Optional(Type.Integer({ minimum: 0, maximum: 3650 })),
  DAPR_HOST: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  APP_API_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 1024 })),
  DAPR_API_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 1024 })),
  DAPR_PUBSUB_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}$' })),
  SHUTDOWN_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
  KEYCLOAK_URL: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  KEYCLOAK_ISSUER_URL: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
  KEYCLOAK_REALMS: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}(\\s*,\\s*[A-Za-z0-9_-]{1,64})*$', maxLength: 8192 })),
  KEYCLOAK_AUDIENCE: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  KEYCLOAK_CLIENT_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  KEYCLOAK_CLIENT_SECRET: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  KEYCLOAK_ADMIN_CLIENT_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  KEYCLOAK_ADMIN_CLIENT_SECRET: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  ADMIN_EMAIL: Type.Optional(Type.String({ pattern: '^[^@\\s]+@[^@\\s]+$', maxLength: 254 })),
  ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 8, maxLength: 256 })),
  DAPR_TRUSTED_APPS: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}=[a-z_]{1,32}(\\s*,\\s*[A-Za-z0-9_.-]{1,128}=[a-z_]{1,32})*$', maxLength: 8192 }),
  ),
  ACCESS_TOKEN_TTL_SECONDS: Type.Optional(Type.Integer({ minimum: 30, maximum: 86_400 })),
  REFRESH_TOKEN_TTL_SECONDS: Type.Optional(Type.Integer({ minimum: 60, maximum: 30 * 86_400 })),
  LOGIN_RATE_LIMIT_MAX: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  LOGIN_RATE_LIMIT_WINDOW_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  LOGIN_LOCKOUT_THRESHOLD: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
  LOGIN_LOCKOUT_BASE_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  LOGIN_LOCKOUT_MAX_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  LOGIN_LOCKOUT_WINDOW_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86_400 })),
  // Endpoints (endpoint_ops): reconcile loop, rollouts, weights.
  ENDPOINT_RECONCILE_INTERVAL_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  ENDPOINT_RECONCILE_CONCURRENCY: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  // Fractions allowed (0.2 = 200 ms) so that tests need not wait.
  ENDPOINT_ROLLOUT_POLL_SECONDS: Type.Optional(Type.Number({ minimum: 0.05, maximum: 300 })),
  ENDPOINT_ROLLOUT_TIMEOUT_MINUTES: Type.Optional(Type.Number({ minimum: 0.01, maximum: 1440 })),
  ENDPOINT_TEARDOWN_TIMEOUT_MINUTES: Type.Optional(Type.Number({ minimum: 0.01, maximum: 1440 })),
  ENDPOINT_WEIGHT_URL_TTL_HOURS: Type.Optional(Type.Number({ minimum: 0.01, maximum: 168 })),
  // Apps (user FastAPI code served by the runner image, deploy/runner/).
  APP_RUNNER_IMAGE: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9._:/-]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$', maxLength: 512 })),
  APP_IDLE_MINUTES: Type.Optional(Type.Number({ minimum: 0.01, maximum: 525_600 })),
  APPS_DOMAIN: Type.Optional(Type.String({ pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?\\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 200 })),
  APP_CPU_REQUEST: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?m?$', maxLength: 16 })),
  APP_CPU_LIMIT: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?m?$', maxLength: 16 })),
  APP_MEMORY_REQUEST: Type.Optional(Type.String({ pattern: '^[0-9]+(Ki|Mi|Gi)$', maxLength: 16 })),
  APP_MEMORY_LIMIT: Type.Optional(Type.String({ pattern: '^[0-9]+(Ki|Mi|Gi)$', maxLength: 16 })),
  // Clusters (cluster_ops) and the periodic sweeps that keep them current.
  CLUSTER_SYNC_INTERVAL_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  // A fraction is allowed (0.05 = 3 s), so tests and drills need not wait minutes.
  CLUSTER_ERROR_AFTER_MINUTES: Type.Optional(Type.Number({ minimum: 0.01, maximum: 7 * 1440 })),
  CLUSTER_REQUEST_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 100, maximum: 300_000 })),
  CLUSTER_SYNC_CONCURRENCY: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  CLUSTER_MAX_CALLS_PER_CLUSTER: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  CLUSTER_DENIED_CIDRS: Type.Optional(Type.String({ maxLength: 8192 })),
  // Models (model_ops): the hub, the providers' APIs, and every other address a user names.
  MODEL_HUB_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2048 })),
  MODEL_PROVIDER_TIMEOUT_MS: Type.Optional(Type.Integer({ minimum: 100, maximum: 300_000 })),
  MODEL_IMPORT_PART_MB: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  MODEL_IMPORT_MAX_DOWNLOAD_BYTES: Type.Optional(Type.Integer({ minimum: 1024, maximum: 2 ** 50 })),
  MODEL_IMPORT_MAX_EXPANDED_BYTES: Type.Optional(Type.Integer({ minimum: 1024, maximum: 2 ** 50 })),
  MODEL_IMPORT_MAX_EXPANSION_RATIO: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
  OUTBOUND_DENIED_CIDRS: Type.Optional(Type.String({ maxLength: 8192 })),
  // Uploads of model versions straight into the object store (S3 multipart or the filesystem store's own).
  MODEL_UPLOAD_MAX_FILE_BYTES: Type.Optional(Type.Integer({ minimum: 1, maximum: 5 * 1024 ** 4 })),
  MODEL_UPLOAD_MAX_VERSION_BYTES: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 ** 5 })),
  MODEL_UPLOAD_PART_BYTES: Type.Optional(Type.Integer({ minimum: 5 * 1024 * 1024, maximum: 5 * 1024 ** 3 })),
  // As short as a second, so that tests and drills see an upload expire.
  MODEL_UPLOAD_URL_EXPIRY_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86_400 })),
  MODEL_UPLOAD_ORPHAN_AFTER_SECONDS: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86_400 })),
  OUTBOUND_CA_FILE: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  SWEEP_POLL_MS: Type.Optional(Type.Integer({ minimum: 50, maximum: 60_000 })),
  // Replicas (see sharedParts below).
  BLOB_DIR: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  SINGLE_REPLICA: Type.Optional(Bool),
})

/** S3 takes at most 10,000 parts an object: a file larger than that many parts could never be completed. */
function uploadLimits(env: Env, problems: string[]): Config['models']['uploads'] {
  const partBytes = env.MODEL_UPLOAD_PART_BYTES ?? 64 * 1024 * 1024
  const maxFileBytes = env.MODEL_UPLOAD_MAX_FILE_BYTES ?? Math.min(500 * 1024 ** 3, partBytes * 10_000)
  if (maxFileBytes > partBytes * 10_000) {
    problems.push(`MODEL_UPLOAD_MAX_FILE_BYTES: at most 10,000 parts of MODEL_UPLOAD_PART_BYTES (${partBytes * 10_000} bytes)`)
  }
  return {
    maxFileBytes,
    maxVersionBytes: env.MODEL_UPLOAD_MAX_VERSION_BYTES ?? 2 * 1024 ** 4,
    partBytes,
    urlExpirySeconds: env.MODEL_UPLOAD_URL_EXPIRY_SECONDS ?? 6 * 3600,
    orphanAfterMs: (env.MODEL_UPLOAD_ORPHAN_AFTER_SECONDS ?? 3600) * 1000,
  }
}

/** Never echoed back in an error: they hold credentials. */
const SECRET_VARS = new Set([
  'DATABASE_URL',
  'REDIS_URL',
  'S3_ACCESS_KEY',
  'S3_SECRET_KEY',
  'VAULT_KEYS',
  'APP_API_TOKEN',
  'DAPR_API_TOKEN',
  'KEYCLOAK_CLIENT_SECRET',
  'KEYCLOAK_ADMIN_CLIENT_SECRET',
  'ADMIN_PASSWORD',
])

type Env = Static<typeof EnvSchema>

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface VaultKey {
  id: string
  key: Buffer
}

export interface Config {
  env: string
  port: number
  host: string
  publicUrl: string
  logLevel: LogLevel
  dataDir: string
  database: { url?: string; poolMax: number; migrateOnStart: boolean }
  redis: { url?: string }
  s3?: {
    endpoint: string
    /** The address clients outside the cluster use; signed URLs are signed for it. */
    publicEndpoint?: string
    accessKey: string
    secretKey: string
    bucket: string
    region: string
  }
  /** Keys from VAULT_KEYS, newest first; empty when the embedded key file should be used. */
  vaultKeys: VaultKey[]
  corsOrigins: string[] | true | false
  bodyLimitBytes: number
  rateLimit: { max: number; windowSeconds: number }
  /** Per client address on login, refresh and password change; applies even when `rateLimit` is off. 0 turns it off. */
  loginRateLimit: { max: number; windowSeconds: number }
  /** Fastify's trustProxy: false (none), a hop count, or the proxies' addresses and CIDRs. */
  trustProxy: false | number | string[]
  /** Limits on connections and on how fast a request must arrive (see platform/http/server-limits.ts). */
  http: {
    requestTimeoutMs: number
    headersTimeoutMs: number
    keepAliveTimeoutMs: number
    /** A socket with no traffic either way for this long is closed; 0 never. */
    connectionIdleTimeoutMs: number
    maxHeaderBytes: number
    /** 0: no limit. */
    maxConnections: number
    /** Signed uploads have no deadline; they must move at least this many bytes per window instead. */
    uploadMinBytesPerSecond: number
    uploadRateWindowMs: number
  }
  dapr: {
    httpPort?: number
    grpcPort?: number
    host: string
    appApiToken?: string
    apiToken?: string
    pubsubName: string
  }
  shutdownTimeoutMs: number
  /** The embedded workflow hub on PostgreSQL runs in a worker thread of its own (see workflow_ops/hub/thread.ts). */
  workflowHubThread: boolean
  /** Finished workflow runs (record, steps, engine history) are deleted this many days after they end; 0 keeps them. */
  workflowRetentionDays: number
  auth: {
    /** Keycloak's base URL as this process reaches it (token, JWKS and admin calls); unset runs the embedded issuer. */
    keycloakUrl?: string
    /**
     * The base URL Keycloak names in `iss` (its frontend hostname): tokens are issued for
     * `${keycloakIssuerUrl}/realms/<realm>`. Differs from keycloakUrl when the app reaches Keycloak by
     * an inner name (http://keycloak:8080) while browsers use another (http://localhost:8081).
     */
    keycloakIssuerUrl?: string
    /** Realms whose tokens are trusted; undefined means "the tenants table decides". */
    realms?: readonly string[]
    audience?: string
    /** The client the API uses for the password grant and logout in Keycloak mode. */
    clientId: string
    clientSecret?: string
    /** Service account in realm `master` for the admin client (creating realms and roles). */
    adminClientId?: string
    adminClientSecret?: string
    adminEmail: string
    adminPassword?: string
    /** Dapr app id → role name. */
    daprTrustedApps: Readonly<Record<string, string>>
    accessTokenTtlSeconds: number
    refreshTokenTtlSeconds: number
    /**
     * Per account (tenant, lower-cased email): after `threshold` failed passwords within
     * `windowSeconds` of the first, the account is locked for `baseSeconds`, doubling with each
     * further failure up to `maxSeconds`. Threshold 0 turns it off.
     */
    loginLockout: { threshold: number; baseSeconds: number; maxSeconds: number; windowSeconds: number }
  }
  clusters: {
    /** Each cluster is re-read (nodes, pods' requests, reachability) this often by one replica. */
    syncIntervalMs: number
    /** Unreachable this long: `not_available` becomes `error`. */
    errorAfterMs: number
    /** Every call to a cluster's API server gives up after this long. */
    requestTimeoutMs: number
    /** Clusters one replica syncs at once. */
    syncConcurrency: number
    /** Calls in flight to one cluster at once. */
    maxCallsPerCluster: number
    /** API server addresses refused in uploaded kubeconfigs and at connect time. */
    deniedCidrs: readonly string[]
  }
  endpoints: {
    /** Each running endpoint is re-read and re-applied (drift repair) this often by one replica. */
    reconcileIntervalMs: number
    reconcileConcurrency: number
    /** Between two looks at a rollout (a durable timer). */
    rolloutPollMs: number
    /** A rollout not complete after this long has failed. */
    rolloutTimeoutMs: number
    teardownTimeoutMs: number
    /** Lifetime of the presigned URLs the weight download uses (S3 allows 7 days at most). */
    weightUrlTtlSeconds: number
  }
  apps: {
    /** The runner image, pinned by tag or digest (never `latest`): it runs every app. */
    runnerImage: string
    /** An app without traffic this long is scaled to zero (not deleted). */
    idleMinutes: number
    /** Apps are served at `<app>.<domain>`; null: the cluster's serving settings' host suffix, else no route. */
    domain: string | null
    /** The runner container's requests and limits when an app names none. */
    resources: { cpuRequest: string; cpuLimit: string; memoryRequest: string; memoryLimit: string }
  }
  models: {
    /** Hugging Face's HTTP API or a mirror of it, without a trailing slash. */
    hubUrl: string
    /** Every call to a provider or the hub (credential checks, model lists) gives up after this long. */
    providerTimeoutMs: number
    /**
     * Addresses refused for every outbound call to an address a user supplies (provider base URLs,
     * later model URLs), checked on the resolved address at connect time. Default: CLUSTER_DENIED_CIDRS.
     */
    deniedCidrs: readonly string[]
    /** PEM roots trusted beside the system's for outbound calls (a private mirror or gateway), or undefined. */
    extraCaPem: string | undefined
    /** An import fetches and stores a larger file in parts of this size: what a crash or a dropped connection costs. */
    importPartBytes: number
    uploads: {
      maxFileBytes: number
      maxVersionBytes: number
      /** Every part but a file's last is this long; at most 10,000 parts a file (S3's limit). */
      partBytes: number
      /** Part URLs are valid this long, and an upload not completed by then expires and is swept. */
      urlExpirySeconds: number
      /** A multipart upload under models/ that no upload knows is aborted once it is this old. */
      orphanAfterMs: number
    }
    /** A `url` import reads at most this many bytes, whether or not the server states a length. */
    importMaxDownloadBytes: number
    /** What an archive of a `url` import may unpack to in all (default: twice the download bound). */
    importMaxExpandedBytes: number
    /** Unpacked bytes per archive byte beyond which an archive is a compression bomb. */
    importMaxExpansionRatio: number
  }
  /** How often a replica looks for due sweep work (cluster syncs, later endpoint reconciles). */
  sweepPollMs: number
  /**
   * The filesystem object store's folder: BLOB_DIR (declared shared by the operator) or
   * DATA_DIR/objects (this process's own). Unused with S3.
   */
  blobDir: string
  /**
   * With DATABASE_URL: what is not shared between replicas, each naming its variable (empty when
   * everything is, and always empty on the embedded database, which one process owns). Non-empty
   * only with SINGLE_REPLICA=true, which the process announces at start as a warning.
   */
  unsharedParts: readonly string[]
  /** Which side of each adapter pair runs; derived, never set directly. */
  parts: {
    database: 'pglite' | 'postgres'
    cache: 'memory' | 'redis'
    blob: 'filesystem' | 's3'
    workflows: 'embedded' | 'dapr'
    events: 'in-process' | 'dapr'
    identity: 'embedded' | 'keycloak'
  }
}

const VAULT_KEY_ID = /^[A-Za-z0-9_-]{1,32}$/

function parseVaultKeys(raw: string | undefined, problems: string[]): VaultKey[] {
  if (!raw) return []
  const keys: VaultKey[] = []
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const sep = entry.indexOf(':')
    const id = sep > 0 ? entry.slice(0, sep) : ''
    const material = sep > 0 ? Buffer.from(entry.slice(sep + 1), 'base64') : Buffer.alloc(0)
    if (!VAULT_KEY_ID.test(id) || material.length !== 32) {
      problems.push('VAULT_KEYS: each entry must be "<id>:<base64 of 32 bytes>" (id of letters, digits, _ or -)')
      return []
    }
    if (keys.some((k) => k.id === id)) {
      problems.push(`VAULT_KEYS: key id "${id}" appears twice`)
      return []
    }
    keys.push({ id, key: material })
  }
  return keys
}

function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

function bool(v: string | undefined, fallback: boolean): boolean {
  if (v === undefined) return fallback
  return v === 'true' || v === '1'
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function isAddressOrCidr(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true
  const [address = '', prefix, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)
}

/**
 * The proxies whose X-Forwarded-For is believed. `true` (believe every hop) is refused: the
 * left-most address of that header is whatever the client wrote, so every request could claim a
 * new address and walk past the rate limit.
 */
function parseTrustProxy(raw: string | undefined, problems: string[]): Config['trustProxy'] {
  if (raw === undefined || raw === 'false') return false
  if (raw === 'true') {
    problems.push(
      'TRUST_PROXY: "true" is not accepted: it believes every address in X-Forwarded-For, which the client writes ' +
        'itself, so a forged header would walk past every rate limit. Set the number of proxies in front of the ' +
        'app (e.g. TRUST_PROXY=1) or their addresses/CIDRs (e.g. TRUST_PROXY=10.0.0.0/8,127.0.0.1)',
    )
    return false
  }
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw)
    if (hops >= 1 && hops <= 32) return hops
    problems.push(`TRUST_PROXY: a hop count must be 1-32 (got ${JSON.stringify(raw)})`)
    return false
  }
  const entries = list(raw)
  const bad = entries.filter((e) => !isAddressOrCidr(e))
  if (entries.length === 0 || bad.length > 0) {
    problems.push(
      `TRUST_PROXY: expected a hop count (1-32) or comma-separated proxy addresses/CIDRs ` +
        `(e.g. 10.0.0.0/8,127.0.0.1); not an address or CIDR: ${JSON.stringify(bad.join(',').slice(0, 200))}`,
    )
    return false
  }
  return entries
}

/** Empty strings count as unset, so `FOO=` in an env file means "use the default". */
function withoutEmpty(source: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key]
    if (value !== undefined && value.trim() !== '') out[key] = value.trim()
  }
  return out
}

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const raw = withoutEmpty(source)
  const converted: Record<string, unknown> = { ...raw }
  const problems: string[] = []
  // ajv rather than typebox/value: the HTTP layer loads ajv anyway, and start-up time counts.
  const validate = new Ajv({ coerceTypes: true, allErrors: true, strict: false }).compile(EnvSchema)
  if (!validate(converted)) {
    const seen = new Set<string>()
    for (const error of validate.errors ?? []) {
      const name = error.instancePath.replace(/^\//, '')
      if (seen.has(name)) continue
      seen.add(name)
      const shown = SECRET_VARS.has(name) ? '(value hidden)' : `(got ${JSON.stringify(raw[name] ?? null)})`
      problems.push(`${name}: ${error.message} ${shown}`)
    }
    throw new ConfigError(problems)
  }
  const env = converted as Env

  const s3Fields = [env.S3_ENDPOINT, env.S3_ACCESS_KEY, env.S3_SECRET_KEY]
  if (s3Fields.some(Boolean) && !s3Fields.every(Boolean)) {
    problems.push('S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY must be set together')
  }
  if (Boolean(env.KEYCLOAK_ADMIN_CLIENT_ID) !== Boolean(env.KEYCLOAK_ADMIN_CLIENT_SECRET)) {
    problems.push('KEYCLOAK_ADMIN_CLIENT_ID and KEYCLOAK_ADMIN_CLIENT_SECRET must be set together')
  }
  if (env.KEYCLOAK_ISSUER_URL && !env.KEYCLOAK_URL) {
    problems.push('KEYCLOAK_ISSUER_URL: only means something with KEYCLOAK_URL (the address the app calls Keycloak at)')
  }
  if ((env.LOGIN_LOCKOUT_BASE_SECONDS ?? 30) > (env.LOGIN_LOCKOUT_MAX_SECONDS ?? 900)) {
    problems.push('LOGIN_LOCKOUT_MAX_SECONDS must be at least LOGIN_LOCKOUT_BASE_SECONDS (defaults 900 and 30)')
  }
  const vaultKeys = parseVaultKeys(env.VAULT_KEYS, problems)
  const trustProxy = parseTrustProxy(env.TRUST_PROXY, problems)
  if ((env.DAPR_HTTP_PORT || env.DAPR_GRPC_PORT) && !env.APP_API_TOKEN) {
    problems.push(
      'APP_API_TOKEN: required when Dapr is on (DAPR_HTTP_PORT or DAPR_GRPC_PORT): without it anyone who can ' +
        'reach this port could deliver events to /dapr/*; set the token the sidecar sends (its APP_API_TOKEN)',
    )
  }
  if (env.DATABASE_URL && vaultKeys.length === 0) {
    problems.push(
      'VAULT_KEYS: required when DATABASE_URL is set (secrets in a shared database need a managed key); ' +
        'generate one with: node -e "console.log(\'k1:\'+require(\'crypto\').randomBytes(32).toString(\'base64\'))"',
    )
  }
  const unsharedParts = sharedParts(env, problems)
  if (problems.length > 0) throw new ConfigError(problems)

  const port = env.PORT ?? 8080
  const host = env.HOST ?? '0.0.0.0'
  const corsRaw = env.CORS_ORIGINS?.trim()
  const corsOrigins =
    corsRaw === undefined
      ? false
      : corsRaw === '*'
        ? true
        : corsRaw
            .split(',')
            .map((o) => o.trim())
            .filter(Boolean)

  const config: Config = {
    env: env.NODE_ENV ?? 'development',
    port,
    host,
    publicUrl: (env.PUBLIC_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    logLevel: (env.LOG_LEVEL as LogLevel | undefined) ?? 'info',
    dataDir: path.resolve(env.DATA_DIR ?? './.data'),
    database: {
      url: env.DATABASE_URL,
      poolMax: env.DATABASE_POOL_MAX ?? 20,
      migrateOnStart: bool(env.MIGRATE_ON_START, true),
    },
    redis: { url: env.REDIS_URL },
    s3: env.S3_ENDPOINT
      ? {
          endpoint: env.S3_ENDPOINT,
          publicEndpoint: env.S3_PUBLIC_URL,
          accessKey: env.S3_ACCESS_KEY!,
          secretKey: env.S3_SECRET_KEY!,
          bucket: env.S3_BUCKET ?? 'modelplane',
          region: env.S3_REGION ?? 'us-east-1',
        }
      : undefined,
    vaultKeys,
    blobDir: env.BLOB_DIR ? path.resolve(env.BLOB_DIR) : path.join(path.resolve(env.DATA_DIR ?? './.data'), 'objects'),
    unsharedParts,
    corsOrigins,
    bodyLimitBytes: env.BODY_LIMIT_BYTES ?? 1024 * 1024,
    rateLimit: { max: env.RATE_LIMIT_MAX ?? 600, windowSeconds: env.RATE_LIMIT_WINDOW_SECONDS ?? 60 },
    loginRateLimit: { max: env.LOGIN_RATE_LIMIT_MAX ?? 20, windowSeconds: env.LOGIN_RATE_LIMIT_WINDOW_SECONDS ?? 60 },
    trustProxy,
    http: {
      requestTimeoutMs: (env.REQUEST_TIMEOUT_SECONDS ?? 30) * 1000,
      headersTimeoutMs: (env.HEADERS_TIMEOUT_SECONDS ?? 20) * 1000,
      keepAliveTimeoutMs: (env.KEEP_ALIVE_TIMEOUT_SECONDS ?? 72) * 1000,
      connectionIdleTimeoutMs: (env.CONNECTION_IDLE_TIMEOUT_SECONDS ?? 120) * 1000,
      maxHeaderBytes: env.MAX_HEADER_BYTES ?? 16 * 1024,
      maxConnections: env.MAX_CONNECTIONS ?? 10_000,
      uploadMinBytesPerSecond: env.UPLOAD_MIN_BYTES_PER_SECOND ?? 16 * 1024,
      uploadRateWindowMs: (env.UPLOAD_RATE_WINDOW_SECONDS ?? 30) * 1000,
    },
    dapr: {
      httpPort: env.DAPR_HTTP_PORT,
      grpcPort: env.DAPR_GRPC_PORT,
      host: env.DAPR_HOST ?? '127.0.0.1',
      appApiToken: env.APP_API_TOKEN,
      apiToken: env.DAPR_API_TOKEN,
      pubsubName: env.DAPR_PUBSUB_NAME ?? 'pubsub',
    },
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS ?? 10_000,
    workflowHubThread: bool(env.WORKFLOW_HUB_THREAD, true),
    workflowRetentionDays: env.WORKFLOW_RETENTION_DAYS ?? 30,
    auth: {
      keycloakUrl: env.KEYCLOAK_URL?.replace(/\/+$/, ''),
      keycloakIssuerUrl: (env.KEYCLOAK_ISSUER_URL ?? env.KEYCLOAK_URL)?.replace(/\/+$/, ''),
      realms: env.KEYCLOAK_REALMS ? list(env.KEYCLOAK_REALMS) : undefined,
      audience: env.KEYCLOAK_AUDIENCE,
      clientId: env.KEYCLOAK_CLIENT_ID ?? 'modelplane-api',
      clientSecret: env.KEYCLOAK_CLIENT_SECRET,
      adminClientId: env.KEYCLOAK_ADMIN_CLIENT_ID,
      adminClientSecret: env.KEYCLOAK_ADMIN_CLIENT_SECRET,
      adminEmail: (env.ADMIN_EMAIL ?? 'admin@modelplane.local').toLowerCase(),
      adminPassword: env.ADMIN_PASSWORD,
      daprTrustedApps: Object.fromEntries(
        list(env.DAPR_TRUSTED_APPS ?? '').map((pair) => pair.split('=').map((s) => s.trim()) as [string, string]),
      ),
      accessTokenTtlSeconds: env.ACCESS_TOKEN_TTL_SECONDS ?? 300,
      refreshTokenTtlSeconds: env.REFRESH_TOKEN_TTL_SECONDS ?? 1800,
      loginLockout: {
        threshold: env.LOGIN_LOCKOUT_THRESHOLD ?? 5,
        baseSeconds: env.LOGIN_LOCKOUT_BASE_SECONDS ?? 30,
        maxSeconds: env.LOGIN_LOCKOUT_MAX_SECONDS ?? 900,
        windowSeconds: env.LOGIN_LOCKOUT_WINDOW_SECONDS ?? 3600,
      },
    },
    clusters: {
      syncIntervalMs: (env.CLUSTER_SYNC_INTERVAL_SECONDS ?? 300) * 1000,
      errorAfterMs: Math.round((env.CLUSTER_ERROR_AFTER_MINUTES ?? 15) * 60_000),
      requestTimeoutMs: env.CLUSTER_REQUEST_TIMEOUT_MS ?? 10_000,
      syncConcurrency: env.CLUSTER_SYNC_CONCURRENCY ?? 8,
      maxCallsPerCluster: env.CLUSTER_MAX_CALLS_PER_CLUSTER ?? 4,
      deniedCidrs: deniedCidrs('CLUSTER_DENIED_CIDRS', env.CLUSTER_DENIED_CIDRS, problems),
    },
    models: {
      hubUrl: (env.MODEL_HUB_URL ?? 'https://huggingface.co').replace(/\/+$/, ''),
      providerTimeoutMs: env.MODEL_PROVIDER_TIMEOUT_MS ?? 10_000,
      deniedCidrs:
        env.OUTBOUND_DENIED_CIDRS === undefined
          ? deniedCidrs('CLUSTER_DENIED_CIDRS', env.CLUSTER_DENIED_CIDRS, [])
          : deniedCidrs('OUTBOUND_DENIED_CIDRS', env.OUTBOUND_DENIED_CIDRS, problems),
      extraCaPem: readCaFile(env.OUTBOUND_CA_FILE, problems),
      importPartBytes: (env.MODEL_IMPORT_PART_MB ?? 16) * 1024 * 1024,
      uploads: uploadLimits(env, problems),
      importMaxDownloadBytes: env.MODEL_IMPORT_MAX_DOWNLOAD_BYTES ?? 256 * 2 ** 30,
      importMaxExpandedBytes: env.MODEL_IMPORT_MAX_EXPANDED_BYTES ?? 2 * (env.MODEL_IMPORT_MAX_DOWNLOAD_BYTES ?? 256 * 2 ** 30),
      importMaxExpansionRatio: env.MODEL_IMPORT_MAX_EXPANSION_RATIO ?? 50,
    },
    endpoints: {
      reconcileIntervalMs: (env.ENDPOINT_RECONCILE_INTERVAL_SECONDS ?? 60) * 1000,
      reconcileConcurrency: env.ENDPOINT_RECONCILE_CONCURRENCY ?? 8,
      rolloutPollMs: Math.round((env.ENDPOINT_ROLLOUT_POLL_SECONDS ?? 5) * 1000),
      rolloutTimeoutMs: Math.round((env.ENDPOINT_ROLLOUT_TIMEOUT_MINUTES ?? 30) * 60_000),
      teardownTimeoutMs: Math.round((env.ENDPOINT_TEARDOWN_TIMEOUT_MINUTES ?? 10) * 60_000),
      weightUrlTtlSeconds: Math.round((env.ENDPOINT_WEIGHT_URL_TTL_HOURS ?? 24) * 3600),
    },
    apps: {
      runnerImage: runnerImage(env.APP_RUNNER_IMAGE, problems),
      idleMinutes: env.APP_IDLE_MINUTES ?? 1440,
      domain: env.APPS_DOMAIN ?? null,
      resources: {
        cpuRequest: env.APP_CPU_REQUEST ?? '100m',
        cpuLimit: env.APP_CPU_LIMIT ?? '1',
        memoryRequest: env.APP_MEMORY_REQUEST ?? '128Mi',
        memoryLimit: env.APP_MEMORY_LIMIT ?? '512Mi',
      },
    },
    sweepPollMs: env.SWEEP_POLL_MS ?? 1_000,
    parts: {
      database: env.DATABASE_URL ? 'postgres' : 'pglite',
      cache: env.REDIS_URL ? 'redis' : 'memory',
      blob: env.S3_ENDPOINT ? 's3' : 'filesystem',
      workflows: env.DAPR_GRPC_PORT ? 'dapr' : 'embedded',
      events: env.DAPR_HTTP_PORT ? 'dapr' : 'in-process',
      identity: env.KEYCLOAK_URL ? 'keycloak' : 'embedded',
    },
  }
  return deepFreeze(config)
}

/**
 * Link-local and cloud metadata addresses: a kubeconfig naming one would turn the API into a proxy
 * into the control plane's own network (169.254.169.254 answers instance credentials on most clouds).
 */
export const DEFAULT_DENIED_CIDRS = ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '100.100.100.200/32'] as const

/** The runner image of this release; a moving tag would change every app's code under it. */
export const DEFAULT_APP_RUNNER_IMAGE = 'ghcr.io/modelplane/app-runner:0.1.0'

function runnerImage(raw: string | undefined, problems: string[]): string {
  if (raw === undefined) return DEFAULT_APP_RUNNER_IMAGE
  if (/:latest$/.test(raw)) problems.push('APP_RUNNER_IMAGE: pin a version tag or a digest, not "latest"')
  return raw
}

function deniedCidrs(variable: string, raw: string | undefined, problems: string[]): string[] {
  if (raw === undefined) return [...DEFAULT_DENIED_CIDRS]
  if (raw.trim().toLowerCase() === 'none') return []
  const out: string[] = []
  for (const entry of list(raw)) {
    const [address, bits] = entry.split('/')
    const family = isIP(address ?? '')
    const prefix = Number(bits)
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
      problems.push(`${variable}: "${entry.slice(0, 64)}" is not an address/prefix (e.g. 169.254.0.0/16), or "none"`)
      continue
    }
    out.push(`${address}/${prefix}`)
  }
  return out
}

function readCaFile(file: string | undefined, problems: string[]): string | undefined {
  if (file === undefined) return undefined
  try {
    const pem = fs.readFileSync(file, 'utf8')
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) problems.push('OUTBOUND_CA_FILE: holds no PEM certificate')
    return pem
  } catch (err) {
    problems.push(`OUTBOUND_CA_FILE: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    return undefined
  }
}

// ---- replicas: the shared-parts rule ------------------------------------------------------

/**
 * DATABASE_URL is the operator saying "this state is shared", and a replica started on it (a
 * second pod, or a replacement without the first one's disk) must find everything else the first
 * one left: the objects a running workflow staged, revoked sessions, login failures, rate-limit
 * counts, progress announcements. So with DATABASE_URL every such part must be shared too, or
 * the operator must say SINGLE_REPLICA=true. Redis is required rather than letting PostgreSQL
 * LISTEN/NOTIFY carry the fan-out: the counters (lockout, rate limits) and revocation keys would
 * still need a shared store. Returns what is not shared (for the start-up warning); pushes a
 * problem per missing variable otherwise.
 */
function sharedParts(env: Env, problems: string[]): string[] {
  const dataDir = path.resolve(env.DATA_DIR ?? './.data')
  if (env.BLOB_DIR && env.S3_ENDPOINT) {
    problems.push('BLOB_DIR and S3_ENDPOINT: set one object store, not both')
  }
  if (env.BLOB_DIR && isInside(path.resolve(env.BLOB_DIR), dataDir)) {
    // The very mistake this rule exists for: a folder of this replica's own, declared shared.
    problems.push(`BLOB_DIR: must be outside DATA_DIR (${dataDir}), which is this replica's own folder`)
  }
  if (!env.DATABASE_URL) return []
  const unshared: string[] = []
  if (!env.REDIS_URL) {
    unshared.push(
      'REDIS_URL (revoked sessions, login lockouts, rate limits and workflow progress stay in this process)',
    )
  }
  if (!env.S3_ENDPOINT && !env.BLOB_DIR) {
    unshared.push(
      `S3_ENDPOINT or BLOB_DIR (objects, workflow staging included, and signed blob URLs stay in ${path.join(dataDir, 'objects')})`,
    )
  }
  if (bool(env.SINGLE_REPLICA, false)) return unshared
  for (const part of unshared) {
    problems.push(
      `${part}: required when DATABASE_URL is set, so that every replica sees it; ` +
        'set it, or SINGLE_REPLICA=true if exactly one process will ever use this database',
    )
  }
  return []
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child)
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative))
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
