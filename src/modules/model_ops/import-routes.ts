import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import { principalOf, requirePermission } from '../../platform/auth/principal.js'
import { EXAMPLE, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { IdempotencyHeaders } from '../workflow_ops/schema.js'
import type { ImportService } from './import.js'
import type { UrlImportService } from './url-import.js'

const Glob = Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\x00-\\x1f]{1,256}$' })
const Globs = (description: string) => Type.Array(Glob, { maxItems: 32, description })

const HUB_EXAMPLE = { source: 'hub', repo: 'Qwen/Qwen2.5-0.5B-Instruct', revision: 'main', include: ['*.json', '*.safetensors', 'README.md'] }
const URL_EXAMPLE = { source: 'url', url: 'https://models.example.com/tiny/tiny-llama.tar.gz', name: 'tiny-llama' }

export const ModelImport = StrictObject(
  {
    source: StringEnum(['hub'] as const, { description: 'hub: a Hugging Face repository (MODEL_HUB_URL)' }),
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
    examples: [HUB_EXAMPLE],
  },
)

export const ModelUrlImport = StrictObject(
  {
    source: StringEnum(['url'] as const, { description: 'url: one file, or one archive (.tar, .tar.gz/.tgz, .zip) unpacked into the version, fetched by HTTPS' }),
    url: Type.String({
      minLength: 9,
      maxLength: 4096,
      pattern: '^https://[^\\s]+$',
      description: 'https only, no credentials in it; its path ends in the file name. A signed URL (query string) works and is never shown',
      examples: ['https://models.example.com/tiny/tiny-llama.tar.gz'],
    }),
    sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'of the file as downloaded (the archive itself); checked when given' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$', description: 'unique among the tenant\'s models; the file name without its extension by default' })),
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\x00-\\x1f]{1,200}$' })),
    modelId: Type.Optional(Uuid),
  },
  {
    title: 'ModelUrlImport',
    examples: [URL_EXAMPLE],
  },
)

export const ModelImportAccepted = Type.Object(
  { modelId: Uuid, versionId: Uuid, workflowId: Uuid },
  {
    title: 'ModelImportAccepted',
    examples: [{ modelId: '0b8f7c52-3a1e-4d7b-9c61-2f4e8a9d1c30', versionId: '5d2e9f14-7b3c-4a8e-b1d6-0c7f3e2a9b48', workflowId: EXAMPLE.workflowId }],
  },
)

const DESCRIPTION = `Creates the model (\`importing\`) and a version, and answers 202 with the workflow that fills it.

hub: the revision is pinned to its commit, the files (narrowed by include/exclude) are streamed into the
blob store and checked against what the hub states (size; sha256 of LFS files, git blob id of the
others), metadata is read from them, and the version is sealed. Follow it on /v1/workflows/{workflowId}
(and its events stream). A failed run can be retried and continues from the files already stored;
cancelling it removes every stored file of the version.

url: one file or one archive by HTTPS, every hop (redirects too) dialled only after its resolved
address passed OUTBOUND_DENIED_CIDRS. A plain file is fetched in parts with Range and resumes; an
archive (.tar, .tar.gz, .tgz, .zip) is unpacked as it streams (a zip from a local copy), refusing
paths outside the version, links and devices (ARCHIVE_UNSAFE) and what expands past the limits
(ARCHIVE_TOO_LARGE), and a failed attempt starts the download over.`

export function registerImportRoutes(app: FastifyInstance, imports: ImportService, urlImports: UrlImportService): void {
  const server = app.withTypeProvider<TypeBoxTypeProvider>()
  server.post(
    '/v1/models/import',
    {
      config: requirePermission('model:manage'),
      schema: {
        operationId: 'importModel',
        tags: ['models'],
        summary: 'Import a model from the hub or a URL, as a workflow',
        description: DESCRIPTION,
        headers: IdempotencyHeaders,
        body: Type.Union([ModelImport, ModelUrlImport], { title: 'ModelImportRequest', examples: [HUB_EXAMPLE, URL_EXAMPLE] }),
        response: { 202: ModelImportAccepted },
      },
    },
    async (request, reply) => {
      const body = request.body
      const key = request.headers['idempotency-key']
      const accepted = body.source === 'url' ? await urlImports.start(principalOf(request), body, key) : await imports.start(principalOf(request), body, key)
      request.auditResourceId = accepted.modelId
      return reply.status(202).header('location', `/v1/models/${accepted.modelId}`).send(accepted)
    },
  )
}
