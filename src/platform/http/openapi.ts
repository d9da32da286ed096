import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, RouteOptions } from 'fastify'
import type { Config } from '../../config.js'
import { ErrorEnvelope, StrictObject } from './schemas.js'

const ERROR_REF = { $ref: 'ErrorEnvelope#' }

/** The query string of a route that takes no parameters: any parameter is unknown, hence a 400. */
const NO_QUERY = StrictObject({})

/**
 * Every documented route must say what it is (operationId, tags, summary); routes that fail
 * say so in the error envelope, which this hook adds as the 4xx/5xx response of each route.
 * A route missing its description, or with a query string that accepts anything, fails at
 * start-up, not in review; the rest of docs/api-style.md is checked by test/platform/api-style.test.ts.
 */
function documentRoute(route: RouteOptions): void {
  const schema = (route.schema ??= {}) as Record<string, unknown>
  if (schema.hide) return
  const missing = ['operationId', 'tags', 'summary'].filter((k) => !schema[k])
  if (missing.length > 0) {
    throw new Error(`route ${route.method} ${route.url} is missing ${missing.join(', ')} in its schema`)
  }
  // Unknown query parameters are refused like unknown body fields, so a misspelt filter is a 400
  // rather than a silently unfiltered list (docs/api-style.md, Query strings).
  if (!schema.querystring) schema.querystring = NO_QUERY
  else if ((schema.querystring as { additionalProperties?: unknown }).additionalProperties !== false) {
    throw new Error(
      `route ${String(route.method)} ${route.url}: its querystring lets unknown parameters through; ` +
        'declare it with StrictObject (additionalProperties: false)',
    )
  }
  const response = (schema.response ??= {}) as Record<string, unknown>
  response['4xx'] ??= ERROR_REF
  response['5xx'] ??= ERROR_REF
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
      servers: [{ url: config.publicUrl }],
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
