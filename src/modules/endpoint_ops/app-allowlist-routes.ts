import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { AppImportAllowlist, AppImportAllowlistPut, AppImportAllowlistQuery } from './app-allowlist-schema.js'
import { allowlistEtag, type AllowlistService } from './app-allowlist-service.js'

const TAGS = ['apps']

export function registerAllowlistRoutes(app: FastifyInstance, allowList: AllowlistService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.get(
    '/v1/app-import-allowlist',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'getAppImportAllowlist',
        tags: TAGS,
        summary: "The modules the tenant's apps may import, and where the list comes from (the tenant's own, the global one, or the built-in default)",
        querystring: AppImportAllowlistQuery,
        response: { 200: AppImportAllowlist },
      },
    },
    async (request, reply) => {
      const list = await allowList.read(principalOf(request), request.query.scope)
      setEtag(reply, allowlistEtag(list))
      return list
    },
  )

  server.put(
    '/v1/app-import-allowlist',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'replaceAppImportAllowlist',
        tags: TAGS,
        summary: "Replace the tenant's import allow-list (admin rank), or the global one (superusers)",
        description:
          'endpoint:manage and the admin role or above (403 APP_ALLOWLIST_ADMIN_REQUIRED otherwise); `scope: global` needs a superuser. ' +
          'Entries are module names, exact (`urllib.parse`) or with everything below (`starlette.*`), and must allow fastapi. ' +
          'The list applies to code checked from now on: deployed apps keep running. If-Match guards against crossing edits (412).',
        body: AppImportAllowlistPut,
        response: { 200: AppImportAllowlist },
      },
    },
    async (request, reply) => {
      const list = await allowList.replace(principalOf(request), request.body, ifMatch(request))
      setEtag(reply, allowlistEtag(list))
      return list
    },
  )
}
