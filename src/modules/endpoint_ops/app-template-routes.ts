import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import {
  AppTemplate,
  AppTemplateCreate,
  AppTemplateIdParams,
  AppTemplateListQuery,
  AppTemplatePage,
  AppTemplateUpdate,
} from './app-template-schema.js'
import type { TemplateService, TemplateView } from './app-template-service.js'

const TAGS = ['apps']

const summaryOf = ({ files, ...rest }: TemplateView) => ({ ...rest, paths: files.map((f) => f.path) })

export function registerTemplateRoutes(app: FastifyInstance, templates: TemplateService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.get(
    '/v1/app-templates',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'listAppTemplates',
        tags: TAGS,
        summary: "Templates to start an app from: the global ones, and the tenant's (a user's own; every user's for admins)",
        querystring: AppTemplateListQuery,
        response: { 200: AppTemplatePage },
      },
    },
    async (request) => {
      const page = await templates.list(principalOf(request), request.query)
      return { ...page, items: page.items.map(summaryOf) }
    },
  )

  server.post(
    '/v1/app-templates',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'createAppTemplate',
        tags: TAGS,
        summary: 'Save code as a template of your own (or, for a superuser, a global one)',
        description:
          'The code is checked as an app is, against the import allow-list of the tenant (the global list for a global template): ' +
          '400 CODE_INVALID with every problem in `details.problems`. A global template needs a superuser (403 APP_TEMPLATE_GLOBAL_NEEDS_SUPERUSER).',
        body: AppTemplateCreate,
        response: { 201: AppTemplate },
      },
    },
    async (request, reply) => {
      const { template, etag } = await templates.create(principalOf(request), request.body)
      request.auditResourceId = template.id
      setEtag(reply, etag)
      return reply.status(201).header('location', `/v1/app-templates/${template.id}`).send(template)
    },
  )

  server.get(
    '/v1/app-templates/:id',
    {
      config: requirePermission('endpoint:view'),
      schema: {
        operationId: 'getAppTemplate',
        tags: TAGS,
        summary: 'One template with its files',
        description: "404 APP_TEMPLATE_NOT_FOUND for another tenant's template, and for another user's unless the caller is an admin of the tenant.",
        params: AppTemplateIdParams,
        response: { 200: AppTemplate },
      },
    },
    async (request, reply) => {
      const { template, etag } = await templates.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return template
    },
  )

  server.patch(
    '/v1/app-templates/:id',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'updateAppTemplate',
        tags: TAGS,
        summary: "Rename, describe or replace the code of a template: your own, any of the tenant's for an admin, a global one for a superuser",
        description: 'If-Match guards against lost updates (412). New code is checked again (400 CODE_INVALID).',
        params: AppTemplateIdParams,
        body: AppTemplateUpdate,
        response: { 200: AppTemplate },
      },
    },
    async (request, reply) => {
      const { template, etag } = await templates.update(principalOf(request), request.params.id, request.body, ifMatch(request))
      setEtag(reply, etag)
      return template
    },
  )

  server.delete(
    '/v1/app-templates/:id',
    {
      config: requirePermission('endpoint:manage'),
      schema: {
        operationId: 'deleteAppTemplate',
        tags: TAGS,
        summary: "Delete a template: your own, any of the tenant's for an admin, a global one for a superuser (it does not come back on restart)",
        params: AppTemplateIdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await templates.remove(principalOf(request), request.params.id)
      return reply.status(204).send(null)
    },
  )
}
