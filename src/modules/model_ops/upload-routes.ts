import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { IdParams } from './schema.js'
import { ModelUpload, UploadComplete, UploadCreate, UploadParams, UploadPartsQuery } from './upload-schema.js'
import type { UploadService } from './uploads.js'

const TAGS = ['models']

/** Uploads of a new version straight into the object store: the API hands out part URLs and checks, never carries bytes. */
export function registerUploadRoutes(app: FastifyInstance, uploads: UploadService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()

  server.post(
    '/v1/models/:id/versions/uploads',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'createModelUpload',
        tags: TAGS,
        summary: "Open an upload of a new version of an upload model: one presigned URL per part of every file",
        description:
          'The version is created `uploading`. PUT each part to its URL as it is (every part `partSize` bytes but the last) and keep ' +
          'the `ETag` header each PUT answers, then POST …/complete before `expiresAt`. Limits: MODEL_UPLOAD_MAX_FILE_BYTES a file, ' +
          'MODEL_UPLOAD_MAX_VERSION_BYTES in all, 10,000 parts an upload (400 MODEL_UPLOAD_TOO_LARGE); a model of another source ' +
          'answers 409 MODEL_NOT_UPLOADABLE.',
        params: IdParams,
        body: UploadCreate,
        response: { 201: ModelUpload },
      },
    },
    async (request, reply) => {
      const upload = await uploads.start(principalOf(request), request.params.id, request.body)
      request.auditResourceId = upload.id
      return reply.status(201).header('location', `/v1/models/${upload.modelId}/versions/uploads/${upload.id}`).send(upload)
    },
  )

  server.get(
    '/v1/models/:id/versions/uploads/:upload',
    {
      config: requirePermission('model:view'),
      schema: {
        operationId: 'getModelUpload',
        tags: TAGS,
        summary: 'The state of an upload and of each of its files (without part URLs)',
        params: UploadParams,
        response: { 200: ModelUpload },
      },
    },
    async (request) => uploads.get(principalOf(request), request.params.id, request.params.upload),
  )

  server.post(
    '/v1/models/:id/versions/uploads/:upload/complete',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'completeModelUpload',
        tags: TAGS,
        summary: 'Check every part against the store, assemble the files, and start verifying them',
        description:
          'Every file listed with all its parts and the ETags their PUTs answered. A part not in the store is 400 ' +
          'MODEL_UPLOAD_PART_MISSING, one of another size or ETag 400 MODEL_UPLOAD_PART_MISMATCH: the upload stays open, so send ' +
          'the part again and complete again. One complete of an upload proceeds; another at the same time answers 409 ' +
          'MODEL_UPLOAD_NOT_OPEN. The workflow then reads the bytes back and hashes them: a file whose SHA-256 is not the one ' +
          'declared fails the version (MODEL_UPLOAD_HASH_MISMATCH) and its objects are removed; otherwise the version is sealed.',
        params: UploadParams,
        body: UploadComplete,
        response: { 202: ModelUpload },
      },
    },
    async (request, reply) => {
      const upload = await uploads.complete(principalOf(request), request.params.id, request.params.upload, request.body)
      return reply.status(202).send(upload)
    },
  )

  server.post(
    '/v1/models/:id/versions/uploads/:upload/parts',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'refreshModelUploadParts',
        tags: TAGS,
        summary: 'Fresh presigned URLs for the parts of an open upload that the store does not hold yet',
        description:
          'For an upload that outlives its URLs: each part not yet in the store (every part with `all=true`) gets a new URL, valid ' +
          'MODEL_UPLOAD_URL_EXPIRY_SECONDS from now, and the upload\'s `expiresAt` moves with them (never more than 7 days after the ' +
          'upload was opened). The answer lists, per file, only the parts it has URLs for. 409 MODEL_UPLOAD_NOT_OPEN once completed ' +
          'or aborted, 410 MODEL_UPLOAD_EXPIRED after `expiresAt`.',
        params: UploadParams,
        querystring: UploadPartsQuery,
        response: { 200: ModelUpload },
      },
    },
    async (request) => uploads.refreshParts(principalOf(request), request.params.id, request.params.upload, { all: request.query.all }),
  )

  server.delete(
    '/v1/models/:id/versions/uploads/:upload',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'abortModelUpload',
        tags: TAGS,
        summary: 'Abort an open upload: its parts leave the store and its version fails',
        params: UploadParams,
        response: { 204: Type.Null() },
      },
    },
    async (request, reply) => {
      await uploads.abort(principalOf(request), request.params.id, request.params.upload)
      return reply.status(204).send(null)
    },
  )
}
