import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import { ClusterIdParams, ServingSettingsUpdate, ServingSettingsView } from './serving-settings-schema.js'
import type { ServingSettingsService } from './serving-settings-service.js'

const CLUSTERS = ['clusters']

/** A cluster's serving settings, under the cluster: schema, permission, one call into the service. */
export function registerServingSettingsRoutes(app: FastifyInstance, servingSettings: ServingSettingsService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.get(
    '/v1/clusters/:id/serving-settings',
    {
      config: requirePermission('cluster:view'),
      schema: {
        operationId: 'getClusterServingSettings',
        tags: CLUSTERS,
        summary: "The tenant's serving settings for the cluster (registry prefix, pull secrets, object store address, ingress, quota), or the defaults",
        params: ClusterIdParams,
        response: { 200: ServingSettingsView },
      },
    },
    async (request, reply) => {
      const { settings, etag } = await servingSettings.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return settings
    },
  )

  server.patch(
    '/v1/clusters/:id/serving-settings',
    {
      config: requirePermission('cluster:manage'),
      schema: {
        operationId: 'updateClusterServingSettings',
        tags: CLUSTERS,
        summary: "Change the tenant's serving settings for the cluster: the fields sent replace theirs, null puts a field's default back",
        description:
          'Applies to what is deployed from now on (and to the next rollout of existing endpoints). URLs carry no credentials; ' +
          'CIDRs are checked; If-Match guards against lost updates (the defaults have an ETag too).',
        params: ClusterIdParams,
        body: ServingSettingsUpdate,
        response: { 200: ServingSettingsView },
      },
    },
    async (request, reply) => {
      const { settings, etag } = await servingSettings.update(principalOf(request), request.params.id, request.body, ifMatch(request))
      setEtag(reply, etag)
      return settings
    },
  )
}
