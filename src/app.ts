import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify'
import type { Redis } from 'ioredis'
import pino, { type Logger } from 'pino'
import type { Config } from './config.js'
import { type BlobStore, createBlobStore } from './platform/blob/index.js'
import { registerBlobRoutes } from './platform/blob/routes.js'
import { type Cache, createCache } from './platform/cache/index.js'
import { registerDaprAppSide } from './platform/dapr.js'
import { type DatabaseHandle, openDatabase } from './platform/db/client.js'
import { migrate } from './platform/db/migrate.js'
import { createEventBus } from './platform/events/index.js'
import { registerBodyGuards } from './platform/http/body-guards.js'
import { registerErrorHandling } from './platform/http/error-handler.js'
import { registerHealthRoutes } from './platform/http/health.js'
import { registerInputGuards } from './platform/http/input-guards.js'
import { registerMetrics } from './platform/http/metrics.js'
import { registerOpenApi } from './platform/http/openapi.js'
import { registerResponseHeaders } from './platform/http/security-headers.js'
import { lazySerializerFactory } from './platform/http/lazy-schemas.js'
import { clientRequestIdOf, newRequestId } from './platform/http/request-id.js'
import { clientErrorHandler, serverLimitOptions } from './platform/http/server-limits.js'
import { registerValidation } from './platform/http/validation.js'
import { loggerOptions } from './platform/logger.js'
import { registerAuthGuard } from './platform/auth/guard.js'
import { type AuthService, createAuth } from './modules/auth/index.js'
import { type ClusterService, createClusterOps } from './modules/cluster_ops/index.js'
import { type CredentialService, createModelOps, type ModelService, type UploadService } from './modules/model_ops/index.js'
import { createEndpointOps, type AppValidator, type EndpointService } from './modules/endpoint_ops/index.js'
import { createUserAdmin, type UserAdminService, type UserImport } from './modules/user_admin/index.js'
import { createWorkflowOps, type WorkflowOpsOptions, type WorkflowService } from './modules/workflow_ops/index.js'
import type { Platform } from './platform/platform.js'
import { createSweeps } from './platform/sweeps/index.js'
import { createChangeFeed } from './platform/db/changes.js'
import { createVault, resolveVaultKeys } from './platform/vault.js'

/** Tests (and embedders) may hand in ready-made parts instead of having them built from config. */
export interface AppOverrides {
  logger?: Logger
  database?: DatabaseHandle
  cache?: Cache
  blob?: BlobStore
  /** The embedded workflow hub's name and tuning, stream heartbeats (tests isolate their hubs, and with them their sweeps). */
  workflows?: WorkflowOpsOptions
  /** The apps' code validator (its Python checker); one handed in is not closed with the app. */
  appValidator?: AppValidator
}

/** The modules' services, for routes and tests; each module's routes get theirs directly. */
export interface Services {
  auth: AuthService
  userAdmin: UserAdminService
  userImport: UserImport
  workflows: WorkflowService
  clusters: ClusterService
  models: ModelService
  modelCredentials: CredentialService
  modelUploads: UploadService
  endpoints: EndpointService
}

declare module 'fastify' {
  interface FastifyInstance {
    platform: Platform
    services: Services
  }
  interface FastifyContextConfig {
    /** Reachable without credentials (health, docs, metrics, login, JWKS, signed blob URLs). */
    public?: boolean
  }
}

/** Trusts the `hops` nearest addresses of the chain (the socket's peer first), as proxy-addr does for a number. */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops
}

/**
 * Fastify closes idle keep-alive connections once, as the server starts closing; a connection
 * whose answer was still going out then became idle a moment later and stayed open until its
 * keep-alive ran out (72 s), holding the shutdown (and its SHUTDOWN_TIMEOUT_MS) that long. While
 * closing, idle connections are closed again every 100 ms until the server has closed.
 */
function closeLingeringConnections(app: FastifyInstance): void {
  app.addHook('preClose', (done) => {
    const server = app.server
    if (!server.listening) return done()
    const sweep = setInterval(() => server.closeIdleConnections(), 100)
    sweep.unref()
    server.once('close', () => clearInterval(sweep))
    done()
  })
}

export async function buildApp(
  config: Readonly<Config>,
  overrides: AppOverrides = {},
): Promise<FastifyInstance> {
  const log = overrides.logger ?? pino(loggerOptions(config.logLevel))
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    genReqId: newRequestId,
    // The client's own X-Request-Id goes beside ours in every log line of the request.
    childLoggerFactory: (logger, bindings, options, raw) => {
      const clientRequestId = clientRequestIdOf(raw.headers)
      return logger.child(clientRequestId ? { ...bindings, clientRequestId } : bindings, options)
    },
    bodyLimit: config.bodyLimitBytes,
    // A hop count as a function: Fastify supports numbers, its types do not.
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
    ...serverLimitOptions(config.http),
    clientErrorHandler: clientErrorHandler(log as FastifyBaseLogger),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    return503OnClosing: true,
    schemaController: { compilersFactory: { buildSerializer: lazySerializerFactory() } },
    // Malformed URLs and over-long path parameters fail before routing; answer them in the envelope too.
    frameworkErrors: (error, request, frameworkReply) => {
      const reply = frameworkReply as FastifyReply
      const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400
      reply.header('x-request-id', request.id)
      return reply.status(status).send({
        errorCode: status === 414 ? 'URI_TOO_LONG' : 'BAD_URL',
        message: status === 414 ? 'a path parameter is longer than allowed' : 'the URL is not valid',
        details: { fields: [] },
        requestId: request.id,
      })
    },
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>()

  if (config.http.maxConnections > 0) app.server.maxConnections = config.http.maxConnections
  registerResponseHeaders(app, { documentPrefix: '/docs' })
  closeLingeringConnections(app)
  registerInputGuards(app)
  registerBodyGuards(app, config.http)
  registerValidation(app)
  registerErrorHandling(app)

  if (config.unsharedParts.length > 0) {
    // SINGLE_REPLICA=true on a shared database: allowed, and said out loud (see config.ts, sharedParts).
    log.warn(
      { notShared: config.unsharedParts },
      'SINGLE_REPLICA=true: these parts are not shared, so a second process on this database would not see them',
    )
  }
  // Parts first: a part that cannot start stops the process before it serves anything.
  const owned: Array<() => Promise<unknown>> = []
  const database =
    overrides.database ??
    (await openDatabase({ url: config.database.url, dataDir: config.dataDir, poolMax: config.database.poolMax, log }))
  if (!overrides.database) owned.push(() => database.close())
  if (config.database.migrateOnStart) await migrate(database)

  const cache = overrides.cache ?? (await createCache({ url: config.redis.url, log }))
  if (!overrides.cache) owned.push(() => cache.close())

  const vault = createVault(resolveVaultKeys(config.vaultKeys, config.dataDir, log))
  const blob =
    overrides.blob ??
    (await createBlobStore({
      s3: config.s3,
      dataDir: config.dataDir,
      dir: config.blobDir,
      publicUrl: config.publicUrl,
      signingKey: vault.deriveKey('blob-url-signing'),
      log,
    }))
  if (!overrides.blob) owned.push(() => blob.close())

  const events = createEventBus({ database, dapr: config.dapr, enabled: config.parts.events === 'dapr', log })

  // Ecosystem plugins.
  await app.register(cors, {
    // `*` answers a literal `*`, never the caller's origin reflected back.
    origin: config.corsOrigins === true ? '*' : config.corsOrigins,
    // Credentials go to listed origins only: `*` with credentials would let any site act as the user.
    credentials: config.corsOrigins !== true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'idempotency-key', 'if-match', 'x-request-id', 'x-api-key'],
    exposedHeaders: ['etag', 'location', 'x-request-id', 'x-client-request-id', 'retry-after', 'www-authenticate'],
    maxAge: 600,
  })
  let rateLimitRedis: Redis | undefined
  // Registered for the login limit alone too: routes with a limit of their own keep it when the API's is off.
  if (config.rateLimit.max > 0 || config.loginRateLimit.max > 0) {
    if (config.redis.url) {
      const { Redis } = await import('ioredis')
      rateLimitRedis = new Redis(config.redis.url, { connectionName: 'modelplane-ratelimit', maxRetriesPerRequest: 1 })
      rateLimitRedis.on('error', (err) => log.warn({ err: { message: err.message } }, 'rate-limit redis error'))
      owned.push(() => rateLimitRedis!.quit())
    }
    await app.register(rateLimit, {
      global: config.rateLimit.max > 0,
      max: config.rateLimit.max,
      timeWindow: config.rateLimit.windowSeconds * 1000,
      redis: rateLimitRedis,
      nameSpace: 'mp:rl:',
      // A rate-limit store outage must not take the API down with it.
      skipOnError: true,
    })
  }
  // Built before any route: the guard needs its authenticator, and roles and the first admin exist before the first request.
  const auth = createAuth({ config, log, database, cache, vault })
  await auth.service.start()
  owned.push(() => auth.service.stop())
  registerAuthGuard(app, {
    authenticator: auth.service.authenticator,
    audit: { record: (entry) => auth.service.recordAudit(entry) },
    daprAppToken: config.dapr.appApiToken,
    publicPrefixes: ['/docs'],
  })
  await registerOpenApi(app, config)

  const metrics = registerMetrics(app)
  // A test's hub scopes its sweeps too: apps of other test files on the database leave its work alone.
  const sweeps = createSweeps({ database, log: log.child({ part: 'sweeps' }), pollMs: config.sweepPollMs, scope: overrides.workflows?.hub })
  // Listening before any module reads: what is kept from a read is only ever compared with changes heard after it.
  const changes = createChangeFeed({ database, log: log.child({ part: 'changes' }) })
  await changes.start()
  owned.push(() => changes.stop())
  const platform: Platform = { config, log, database, cache, blob, vault, events, metrics, sweeps, changes }
  app.decorate('platform', platform)
  // Modules declare their workflows on workflows.service while they are built; the engine starts on ready.
  const workflows = createWorkflowOps(platform, overrides.workflows, auth.service.authenticator)
  const userAdmin = createUserAdmin(platform, auth, workflows.service)
  const clusterOps = createClusterOps(platform, workflows.service)
  const modelOps = createModelOps(platform, workflows.service)
  const endpointOps = createEndpointOps(
    platform,
    { workflows: workflows.service, clusters: clusterOps.service, models: modelOps.models },
    { ...(overrides.appValidator ? { validator: overrides.appValidator } : {}) },
  )
  // Providers and runtimes are seeded before the first request, like auth's roles: rows reference them.
  await modelOps.start()
  owned.push(async () => modelOps.stop())
  await endpointOps.start()
  owned.push(() => endpointOps.stop())
  app.decorate('services', {
    auth: auth.service,
    userAdmin: userAdmin.service,
    userImport: userAdmin.imports,
    workflows: workflows.service,
    clusters: clusterOps.service,
    models: modelOps.models,
    modelCredentials: modelOps.credentials,
    modelUploads: modelOps.uploads,
    endpoints: endpointOps.service,
  })

  registerHealthRoutes(
    app,
    [
      { name: 'database', check: () => database.ping() },
      { name: 'cache', check: () => cache.ping() },
      { name: 'blob', check: () => blob.ping() },
      { name: 'workflows', check: () => workflows.check() },
    ],
    metrics,
  )
  await registerDaprAppSide(app, { events, config })
  if (blob.kind === 'filesystem') await registerBlobRoutes(app, blob, vault.deriveKey('blob-url-signing'))
  auth.routes(app, { initialAdmin: userAdmin.service.createInitialAdmin })
  userAdmin.routes(app)
  workflows.routes(app)
  clusterOps.routes(app)
  modelOps.routes(app)
  endpointOps.routes(app)

  app.addHook('onReady', async () => {
    await events.start()
    await userAdmin.start()
    await workflows.start()
    sweeps.start()
  })
  // Stop taking work first, then release parts in reverse order of creation.
  app.addHook('onClose', async () => {
    // Periodic work first, then the engine: both still write to the database and publish events.
    await sweeps.stop()
    await workflows.stop()
    await userAdmin.stop()
    await events.stop()
    for (const close of owned.reverse()) {
      try {
        await close()
      } catch (err) {
        log.warn({ err }, 'closing a part failed')
      }
    }
  })
  return app
}
