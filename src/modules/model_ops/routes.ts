import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { ifMatch, setEtag } from '../../platform/http/etag.js'
import type { CredentialService } from './credentials.js'
import {
  Credential,
  CredentialCreate,
  CredentialListQuery,
  CredentialPage,
  CredentialUpdate,
  IdParams,
  Model,
  ModelCreate,
  ModelFacetQuery,
  ModelFacets,
  ModelListQuery,
  ModelPage,
  ModelProviderPage,
  ModelUpdate,
  ModelVersion,
  ModelVersionPage,
  ProviderListQuery,
  VerifyQuery,
  VersionListQuery,
  VersionParams,
} from './schema.js'
import type { ModelService } from './service.js'

const MODELS = ['models']
const CREDENTIALS = ['credentials']

export function registerModelRoutes(app: FastifyInstance, models: ModelService, credentials: CredentialService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.get(
    '/v1/model-providers',
    {
      config: requirePermission('model:view'),
      schema: {
        operationId: 'listModelProviders',
        tags: CREDENTIALS,
        summary: 'The providers modelplane can reach, and the secrets and settings a credential for each needs',
        querystring: ProviderListQuery,
        response: { 200: ModelProviderPage },
      },
    },
    async (request) => models.providers(request.query),
  )

  // ---- credentials ------------------------------------------------------------------------------

  server.post(
    '/v1/credentials',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'createCredential',
        tags: CREDENTIALS,
        summary: "Store a key to a provider, after the provider accepted it (its model list, or Hugging Face's whoami)",
        description:
          'The secrets are sealed at once and never returned; `hint` is what is shown of them. A refusal by the provider answers ' +
          '422 CREDENTIAL_VERIFICATION_FAILED with its status and message, and nothing is stored; `verify=false` stores it `unverified`.',
        querystring: VerifyQuery,
        body: CredentialCreate,
        response: { 201: Credential },
      },
    },
    async (request, reply) => {
      const { credential, etag } = await credentials.create(principalOf(request), request.body, { verify: request.query.verify !== false })
      request.auditResourceId = credential.id
      setEtag(reply, etag)
      return reply.status(201).header('location', `/v1/credentials/${credential.id}`).send(credential)
    },
  )

  server.get(
    '/v1/credentials',
    {
      config: requirePermission('model:view'),
      schema: {
        operationId: 'listCredentials',
        tags: CREDENTIALS,
        summary: "The tenant's provider credentials, newest first (hints only, never secrets)",
        querystring: CredentialListQuery,
        response: { 200: CredentialPage },
      },
    },
    async (request) => credentials.list(principalOf(request), request.query),
  )

  server.get(
    '/v1/credentials/:id',
    {
      config: requirePermission('model:view'),
      schema: { operationId: 'getCredential', tags: CREDENTIALS, summary: 'One credential (its hint, never its secrets)', params: IdParams, response: { 200: Credential } },
    },
    async (request, reply) => {
      const { credential, etag } = await credentials.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return credential
    },
  )

  server.patch(
    '/v1/credentials/:id',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'updateCredential',
        tags: CREDENTIALS,
        summary: 'Rename a credential, change its settings, or rotate its secrets (verified with the provider before they replace the old ones)',
        description: 'If-Match guards against lost updates. A new baseUrl or endpoint must come with the secrets, so a stored key cannot be sent elsewhere.',
        params: IdParams,
        querystring: VerifyQuery,
        body: CredentialUpdate,
        response: { 200: Credential },
      },
    },
    async (request, reply) => {
      const { credential, etag } = await credentials.update(principalOf(request), request.params.id, request.body, {
        verify: request.query.verify !== false,
        ifMatch: ifMatch(request),
      })
      setEtag(reply, etag)
      return credential
    },
  )

  server.delete(
    '/v1/credentials/:id',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'deleteCredential',
        tags: CREDENTIALS,
        summary: 'Delete a credential and its sealed secrets; 409 CREDENTIAL_IN_USE while a model calls with it',
        params: IdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await credentials.remove(principalOf(request), request.params.id, ifMatch(request))
      return reply.status(204).send(null)
    },
  )

  // ---- models -----------------------------------------------------------------------------------

  server.post(
    '/v1/models',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'createModel',
        tags: MODELS,
        summary: 'Add an upload or cloud model to the catalog',
        description:
          'cloud: the provider must list `uri` for the credential (422 MODEL_NOT_FOUND_AT_PROVIDER otherwise); the model is `ready` at ' +
          'once and has no versions. upload: the record, `importing` until its first version is sealed. hub and url models are ' +
          'created by POST /v1/models/import (400 MODEL_SOURCE_NEEDS_IMPORT here).',
        body: ModelCreate,
        response: { 201: Model },
      },
    },
    async (request, reply) => {
      const { model, etag } = await models.create(principalOf(request), request.body)
      request.auditResourceId = model.id
      setEtag(reply, etag)
      return reply.status(201).header('location', `/v1/models/${model.id}`).send(model)
    },
  )

  server.get(
    '/v1/models',
    {
      config: requirePermission('model:view'),
      schema: {
        operationId: 'listModels',
        tags: MODELS,
        summary: "Filter, search, sort and page the tenant's models",
        querystring: ModelListQuery,
        response: { 200: ModelPage },
      },
    },
    async (request) => models.list(principalOf(request), request.query),
  )

  server.get(
    '/v1/models/facets',
    {
      config: requirePermission('model:view'),
      schema: {
        operationId: 'getModelFacets',
        tags: MODELS,
        summary: 'Counts per value of source, task, modality, provider, format, license and tag, for the models the filters select',
        description: 'Each facet counts the models matching every filter but its own, so a dashboard shows what picking another value would give.',
        querystring: ModelFacetQuery,
        response: { 200: ModelFacets },
      },
    },
    async (request) => models.facets(principalOf(request), request.query),
  )

  server.get(
    '/v1/models/:id',
    {
      config: requirePermission('model:view'),
      schema: { operationId: 'getModel', tags: MODELS, summary: 'One model', params: IdParams, response: { 200: Model } },
    },
    async (request, reply) => {
      const { model, etag } = await models.get(principalOf(request), request.params.id)
      setEtag(reply, etag)
      return model
    },
  )

  server.patch(
    '/v1/models/:id',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'updateModel',
        tags: MODELS,
        summary: "Change a model's display name, description, tags, tasks or license",
        description: 'If-Match guards against lost updates.',
        params: IdParams,
        body: ModelUpdate,
        response: { 200: Model },
      },
    },
    async (request, reply) => {
      const { model, etag } = await models.update(principalOf(request), request.params.id, request.body, ifMatch(request))
      setEtag(reply, etag)
      return model
    },
  )

  server.delete(
    '/v1/models/:id',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'deleteModel',
        tags: MODELS,
        summary: "Delete a model and its versions' files; 409 MODEL_IN_USE while an endpoint serves it",
        params: IdParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await models.remove(principalOf(request), request.params.id, ifMatch(request))
      return reply.status(204).send(null)
    },
  )

  server.get(
    '/v1/models/:id/versions',
    {
      config: requirePermission('model:view'),
      schema: {
        operationId: 'listModelVersions',
        tags: MODELS,
        summary: "The model's versions, newest first, each with its manifest once sealed",
        params: IdParams,
        querystring: VersionListQuery,
        response: { 200: ModelVersionPage },
      },
    },
    async (request) => models.versions(principalOf(request), request.params.id, request.query),
  )

  server.post(
    '/v1/models/:id/versions/:version/promote',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'promoteModelVersion',
        tags: MODELS,
        summary: "Make a ready version the model's default",
        params: VersionParams,
        response: { 200: ModelVersion },
      },
    },
    async (request) => models.promote(principalOf(request), request.params.id, request.params.version),
  )

  server.delete(
    '/v1/models/:id/versions/:version',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'deleteModelVersion',
        tags: MODELS,
        summary: 'Delete a version and its files: not the default while other versions remain, never one an endpoint uses',
        params: VersionParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await models.removeVersion(principalOf(request), request.params.id, request.params.version)
      return reply.status(204).send(null)
    },
  )
}
