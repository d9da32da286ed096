import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, RouteOptions } from 'fastify'
import type { Config } from '../../config.js'
import { ErrorEnvelope } from './schemas.js'

const ERROR_REF = { $ref: 'ErrorEnvelope#' }

/**
 * Every documented route must say what it is (operationId, tags, summary); routes that fail
 * say so in the error envelope, which this hook adds as the 4xx/5xx response of each route.
 * A route missing its description fails at start-up, not in review.
 */
function documentRoute(route: RouteOptions): void {
  const schema = (route.schema ??= {}) as Record<string, unknown>
  if (schema.hide) return
  const missing = ['operationId', 'tags', 'summary'].filter((k) => !schema[k])
  if (missing.length > 0) {
    throw new Error(`route ${route.method} ${route.url} is missing ${missing.join(', ')} in its schema`)
  }
  const response = (schema.response ??= {}) as Record<string, unknown>
  response['4xx'] ??= ERROR_REF
  response['5xx'] ??= ERROR_REF
}

/**
 * The document's servers, the first of which Swagger UI selects. It is relative (PUBLIC_URL's path
 * alone, `/` without one), so it resolves against the address the document was fetched from:
 * "Try it out" calls the origin the page was opened at, whichever host name or address that was.
 * An absolute PUBLIC_URL on another origin (localhost vs 127.0.0.1) is refused by the page's own
 * policy (`connect-src 'self'`) and shows as "Failed to fetch". PUBLIC_URL follows, for clients
 * that read the document somewhere else.
 */
export function documentServers(publicUrl: string): Array<{ url: string; description: string }> {
  const prefix = new URL(publicUrl).pathname.replace(/\/+$/, '')
  return [
    { url: prefix || '/', description: 'This server, at the address these docs were opened from' },
    { url: publicUrl, description: 'PUBLIC_URL' },
  ]
}

export async function registerOpenApi(app: FastifyInstance, config: Readonly<Config>): Promise<void> {
  app.addSchema(ErrorEnvelope)
  app.addHook('onRoute', documentRoute)
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'modelplane API',
        description:
          'Control plane for serving AI models on Kubernetes: clusters, model catalog, endpoints, ' +
          'tenants and users, and the durable workflows behind every long job.',
        version: '0.1.0',
      },
      servers: documentServers(config.publicUrl),
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT or mp_ API key' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }],
      tags: [
        { name: 'operations', description: 'Health, readiness and metrics' },
        { name: 'blobs', description: 'Signed object transfer for the embedded object store' },
        { name: 'events', description: 'Event delivery: transactional outbox and Dapr pub/sub' },
        { name: 'auth', description: 'Login, tokens, the caller, API keys, and the embedded issuer' },
        { name: 'tenants', description: 'Tenants: one identity realm each' },
        { name: 'users', description: 'User administration of a tenant (/ai/admin/users)' },
        { name: 'audit', description: 'Who changed what' },
        { name: 'workflows', description: 'Workflow runs: progress, live events, cancel, retry, purge' },
      ],
    },
    // Routes are never under PUBLIC_URL's path (a proxy strips it): nothing to strip from them.
    stripBasePath: false,
    refResolver: {
      // Shared schemas appear under components.schemas by their $id.
      buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`),
    },
  })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // Served over plain http in development: upgrading its assets to https would break the page.
    transformStaticCSP: (header: string) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
    uiConfig: { deepLinking: true, displayOperationId: true, persistAuthorization: true },
  })
  app.get(
    '/openapi.json',
    { schema: { hide: true }, config: { public: true } },
    async () => app.swagger(),
  )
}
