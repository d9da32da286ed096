import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, RouteOptions } from 'fastify'
import type { Config } from '../../config.js'
import { AUTHENTICATED } from '../auth/principal.js'
import { ErrorEnvelope, StrictObject } from './schemas.js'

const ERROR_REF = { $ref: 'ErrorEnvelope#' }
/** @fastify/swagger reads a response's description from this keyword (or the schema's own description). */
const RESPONSE_DESCRIPTION = 'x-response-description'

/** What each status means on any route; a route's own description for a status wins. */
const STATUS_DESCRIPTIONS: Record<string, string> = {
  '200': 'OK',
  '201': 'Created',
  '202': 'Accepted: the work goes on in the background, as a workflow run to follow at GET /v1/workflows/{workflowId}',
  '204': 'No Content: done, nothing to return',
  '400': 'Bad request: VALIDATION_ERROR with one entry per field in `details`, or a code saying what to change; nothing was changed',
  '401': 'Unauthenticated: no credentials, or an expired or revoked token or API key',
  '404': "Not found: no such object in the caller's tenant (another tenant's objects answer exactly alike)",
  '503': 'Service unavailable',
  '4xx': 'Client error, in the error envelope: `errorCode` says which',
  '5xx': 'Server error, in the error envelope; the message never shows internals',
}

type Schema = Record<string, unknown>

function described(status: string, response: unknown): unknown {
  const schema = response as Schema
  if (schema[RESPONSE_DESCRIPTION] || schema.description) return schema
  const description = STATUS_DESCRIPTIONS[status] ?? STATUS_DESCRIPTIONS[`${status[0]}xx`]
  if (!description) return schema
  // Beside a $ref only `description` is read (the reference itself is resolved without its siblings).
  return schema.$ref ? { ...schema, description } : { ...schema, [RESPONSE_DESCRIPTION]: description }
}

/**
 * The route as the document shows it (the route's own schema, which validates and serializes, is
 * left alone): a description for every response, the usual failures of its kind (400 for input,
 * 401 and 403 for a guarded route, 404 for an object by id), `security: []` on public routes (no
 * lock in Swagger UI), and Dapr's sidecar routes left out: only the sidecar calls them, with its
 * own token, after reading the subscription list itself.
 */
export function documentedSchema({ schema, route }: { schema?: unknown; route: RouteOptions }): { schema?: Schema } {
  const own = schema as Schema | undefined
  if (!own || own.hide) return {}
  if (route.url.startsWith('/dapr/')) return { schema: { ...own, hide: true } }
  const config = (route.config ?? {}) as { public?: boolean; permission?: string }
  const responses: Record<string, unknown> = {}
  for (const [status, response] of Object.entries((own.response ?? {}) as Record<string, unknown>)) {
    responses[status] = described(status, response)
  }
  const failure = (status: string, description: string) => {
    responses[status] ??= { ...ERROR_REF, description }
  }
  if (own.body || own.querystring || own.params || own.headers) failure('400', STATUS_DESCRIPTIONS['400']!)
  if (!config.public) failure('401', STATUS_DESCRIPTIONS['401']!)
  if (config.permission && config.permission !== AUTHENTICATED) {
    failure('403', `Forbidden: needs the \`${config.permission}\` permission (FORBIDDEN); the route's own refusals (rank, superuser) are 403s too`)
  }
  if (own.params) failure('404', STATUS_DESCRIPTIONS['404']!)
  return { schema: { ...own, response: responses, ...(config.public ? { security: [] } : {}) } }
}

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
    transform: documentedSchema as never,
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
