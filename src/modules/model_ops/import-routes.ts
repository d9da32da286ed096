import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { EXAMPLE, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { IdempotencyHeaders } from '../workflow_ops/schema.js'
import type { ImportService } from './import.js'

const Glob = Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\x00-\\x1f]{1,256}$' })
const Globs = (description: string) => Type.Array(Glob, { maxItems: 32, description })

export const ModelImport = StrictObject(
  {
    source: StringEnum(['hub'] as const, { description: 'hub: a Hugging Face repository (MODEL_HUB_URL). url sources are not imported yet' }),
    repo: Type.String({ minLength: 3, maxLength: 193, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$', description: 'owner/name', examples: ['Qwen/Qwen2.5-0.5B-Instruct'] }),
    revision: Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$', description: 'branch, tag or commit; main by default. Pinned to the commit it names when the import lists the files' })),
    credentialId: Type.Optional(Uuid),
    include: Type.Optional(Globs('only files matching one of these globs (all files when absent)')),
    exclude: Type.Optional(Globs('then drop files matching one of these globs')),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$', description: 'unique among the tenant\'s models; owner--name of the repo by default' })),
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\x00-\\x1f]{1,200}$' })),
    modelId: Type.Optional(Uuid),
  },
  {
    title: 'ModelImport',
    examples: [{ source: 'hub', repo: 'Qwen/Qwen2.5-0.5B-Instruct', revision: 'main', include: ['*.json', '*.safetensors', 'README.md'] }],
  },
)

export const ModelImportAccepted = Type.Object(
  { modelId: Uuid, versionId: Uuid, workflowId: Uuid },
  {
    title: 'ModelImportAccepted',
    examples: [{ modelId: '0b8f7c52-3a1e-4d7b-9c61-2f4e8a9d1c30', versionId: '5d2e9f14-7b3c-4a8e-b1d6-0c7f3e2a9b48', workflowId: EXAMPLE.workflowId }],
  },
)

const DESCRIPTION = `Creates the model (\`importing\`) and a version, and answers 202 with the workflow that fills it:
the revision is pinned to its commit, the files (narrowed by include/exclude) are streamed into the
blob store and checked against what the hub states (size; sha256 of LFS files, git blob id of the
others), metadata is read from them, and the version is sealed. Follow it on /v1/workflows/{workflowId}
(and its events stream). A failed run can be retried and continues from the files already stored;
cancelling it removes every stored file of the version.`

export function registerImportRoutes(app: FastifyInstance, imports: ImportService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()
  server.post(
    '/v1/models/import',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'importModel',
        tags: ['models'],
        summary: 'Import a model from the hub, as a workflow',
        description: DESCRIPTION,
        headers: IdempotencyHeaders,
        body: ModelImport,
        response: { 202: ModelImportAccepted },
      },
    },
    async (request, reply) => {
      const accepted = await imports.start(principalOf(request), request.body, request.headers['idempotency-key'])
      request.auditResourceId = accepted.modelId
      return reply.status(202).header('location', `/v1/models/${accepted.modelId}`).send(accepted)
    },
  )
}
