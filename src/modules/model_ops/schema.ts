import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { MAX_FILE_PATH_LENGTH } from './paths.js'
import { PROVIDER_IDS } from './providers.js'

export const MODEL_SOURCES = ['hub', 'url', 'upload', 'cloud'] as const
/** What a model can be while it is visible; a deleted model answers 404. */
export const MODEL_STATUSES = ['importing', 'ready', 'failed'] as const
export const MODEL_FORMATS = ['safetensors', 'gguf', 'pytorch', 'onnx', 'other'] as const
export const MODALITIES = ['text', 'image', 'audio', 'video'] as const
export const VERSION_STATUSES = ['importing', 'uploading', 'verifying', 'ready', 'failed'] as const
export const CREDENTIAL_STATUSES = ['verified', 'failed', 'unverified'] as const
export const MODEL_SORT_FIELDS = ['name', 'createdAt', 'updatedAt', 'parameterCount'] as const
export const FACET_NAMES = ['source', 'task', 'modality', 'provider', 'format', 'license', 'tag'] as const

const NO_NUL = '^[^\\x00]*$'
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()])
const NullableInt = Type.Union([Type.Integer({ minimum: 0 }), Type.Null()])

const Name = (description: string, example: string) =>
  Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$', description, examples: [example] })
const Task = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]{0,63}$' })
const Tag = Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\x00-\\x1f,]{1,64}$' })
const License = Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\x00-\\x1f]{1,128}$' })
const Description = Type.String({ maxLength: 4000, pattern: NO_NUL })
const DisplayName = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\x00-\\x1f]{1,200}$' })
const Tasks = Type.Array(Task, { maxItems: 16, uniqueItems: true, description: 'text-generation, embedding, rerank, … (Hugging Face pipeline tags)' })
const Tags = Type.Array(Tag, { maxItems: 32, uniqueItems: true })
const Modalities = Type.Array(StringEnum(MODALITIES), { maxItems: 4, uniqueItems: true })
const Provider = StringEnum(PROVIDER_IDS)

// ---- providers --------------------------------------------------------------------------------

const ProviderField = Type.Object({ name: Type.String(), secret: Type.Boolean(), required: Type.Boolean(), description: Type.String() })

export const ModelProvider = Type.Object(
  {
    id: Provider,
    displayName: Type.String(),
    kind: StringEnum(['hub', 'cloud']),
    credentialFields: Type.Array(ProviderField, { description: 'what goes into `secrets` of a credential' }),
    settingsFields: Type.Array(ProviderField, { description: 'what goes into `settings` of a credential' }),
    defaultBaseUrl: Nullable(Type.String()),
  },
  {
    title: 'ModelProvider',
    examples: [
      {
        id: 'openai',
        displayName: 'OpenAI',
        kind: 'cloud',
        credentialFields: [{ name: 'apiKey', secret: true, required: true, description: 'an API key (sk-…)' }],
        settingsFields: [{ name: 'baseUrl', secret: false, required: false, description: 'the API origin (default https://api.openai.com)' }],
        defaultBaseUrl: 'https://api.openai.com',
      },
    ],
  },
)
export const ModelProviderPage = Page(ModelProvider, 'ModelProviderPage')
export const ProviderListQuery = StrictObject({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })

// ---- credentials ------------------------------------------------------------------------------

const Secrets = Type.Record(Type.String({ pattern: '^[A-Za-z][A-Za-z0-9]{0,63}$' }), Type.String({ minLength: 1, maxLength: 8192, pattern: NO_NUL }), {
  maxProperties: 8,
  additionalProperties: false,
  description: "the provider's secret fields (see GET /v1/model-providers); sealed at once, never returned",
})
const Settings = Type.Record(
  Type.String({ pattern: '^[A-Za-z][A-Za-z0-9]{0,63}$' }),
  Type.Union([Type.String({ maxLength: 2048, pattern: NO_NUL }), Type.Boolean()]),
  { maxProperties: 16, additionalProperties: false, description: "the provider's non-secret settings (baseUrl, region, apiVersion, …)" },
)

const CREDENTIAL_EXAMPLE = {
  id: '7a3e9c10-52b4-4d8e-a1f6-0c9b2e7d4f31',
  provider: 'openai',
  name: 'openai-prod',
  settings: {},
  hint: 'sk-…3f9a',
  status: 'verified',
  verifiedAt: EXAMPLE.updatedAt,
  lastError: null,
  createdBy: EXAMPLE.userId,
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
}

export const Credential = Type.Object(
  {
    id: Uuid,
    provider: Provider,
    name: Type.String(),
    settings: Type.Record(Type.String(), Type.Union([Type.String(), Type.Boolean()])),
    hint: Nullable(Type.String({ description: 'a masked reminder of the main secret; the secrets themselves are never returned' })),
    status: StringEnum(CREDENTIAL_STATUSES),
    verifiedAt: Nullable(Type.String({ format: 'date-time' })),
    lastError: Nullable(Type.String()),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Credential', examples: [CREDENTIAL_EXAMPLE] },
)
export const CredentialPage = Page(Credential, 'CredentialPage')

export const CredentialCreate = StrictObject(
  {
    provider: Provider,
    name: Name('unique among the tenant\'s credentials', 'openai-prod'),
    secrets: Secrets,
    settings: Type.Optional(Settings),
  },
  { title: 'CredentialCreate', examples: [{ provider: 'openai', name: 'openai-prod', secrets: { apiKey: 'sk-proj-…' } }] },
)

export const CredentialUpdate = StrictObject(
  {
    name: Type.Optional(Name('unique among the tenant\'s credentials', 'openai-prod')),
    settings: Type.Optional(Settings),
    secrets: Type.Optional(Secrets),
  },
  {
    title: 'CredentialUpdate',
    description: 'settings replace the stored ones; new secrets (a rotation) are verified before they replace the old ones. A new baseUrl or endpoint needs the secrets sent again.',
    examples: [{ secrets: { apiKey: 'sk-proj-…' } }],
  },
)

export const VerifyQuery = StrictObject({
  verify: Type.Optional(Type.Boolean({ description: 'ask the provider before storing (default true); false stores it unverified' })),
})

export const CredentialListQuery = StrictObject({
  provider: Type.Optional(Provider),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const IdParams = StrictObject({ id: Uuid })

// ---- models -----------------------------------------------------------------------------------

export const MODEL_EXAMPLE = {
  id: '2c7d4e91-8a3b-4f6c-9e15-d0b8a7c6f342',
  name: 'llama-3.1-8b-instruct',
  displayName: 'Llama 3.1 8B Instruct',
  source: 'upload',
  provider: null,
  credentialId: null,
  uri: null,
  tasks: ['text-generation'],
  modalities: ['text'],
  architecture: 'LlamaForCausalLM',
  parameterCount: 8030261248,
  contextLength: 131072,
  dtype: 'bfloat16',
  quantization: null,
  format: 'safetensors',
  license: 'llama3.1',
  tags: ['chat'],
  description: 'Instruction-tuned 8B model',
  metadata: { numAttentionHeads: 32 },
  status: 'ready',
  statusReason: null,
  defaultVersionId: 'e4b1c9d2-7f3a-4e8b-a6c5-1d0f9e8b7a62',
  createdBy: EXAMPLE.userId,
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
}

export const Model = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    displayName: Type.String(),
    source: StringEnum(MODEL_SOURCES),
    provider: Type.Union([Provider, Type.Null()]),
    credentialId: Type.Union([Uuid, Type.Null()]),
    uri: Nullable(Type.String({ description: 'the hub repo id, the URL, or the model name at a cloud provider' })),
    tasks: Type.Array(Type.String()),
    modalities: Type.Array(Type.String()),
    architecture: Nullable(Type.String()),
    parameterCount: NullableInt,
    contextLength: NullableInt,
    dtype: Nullable(Type.String()),
    quantization: Nullable(Type.String()),
    format: Type.Union([StringEnum(MODEL_FORMATS), Type.Null()]),
    license: Nullable(Type.String()),
    tags: Type.Array(Type.String()),
    description: Nullable(Type.String()),
    metadata: Type.Record(Type.String(), Type.Unknown(), { description: "what the model's files said beyond the fields above" }),
    status: StringEnum(MODEL_STATUSES),
    statusReason: Nullable(Type.String()),
    defaultVersionId: Type.Union([Uuid, Type.Null()]),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Model', examples: [MODEL_EXAMPLE] },
)
export const ModelPage = Page(Model, 'ModelPage')

export const ModelCreate = StrictObject(
  {
    source: StringEnum(MODEL_SOURCES, { description: 'upload or cloud here; hub and url models are created by POST /v1/models/import' }),
    name: Name("unique among the tenant's models", 'llama-3.1-8b-instruct'),
    displayName: Type.Optional(DisplayName),
    provider: Type.Optional(Provider),
    credentialId: Type.Optional(Uuid),
    uri: Type.Optional(Type.String({ minLength: 1, maxLength: 512, pattern: '^[^\\x00-\\x1f]{1,512}$', description: 'cloud: the model name at the provider' })),
    tasks: Type.Optional(Tasks),
    modalities: Type.Optional(Modalities),
    architecture: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\x00-\\x1f]{1,128}$' })),
    contextLength: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
    format: Type.Optional(StringEnum(MODEL_FORMATS)),
    license: Type.Optional(License),
    tags: Type.Optional(Tags),
    description: Type.Optional(Description),
  },
  {
    title: 'ModelCreate',
    examples: [
      { source: 'cloud', name: 'gpt-4o-mini', provider: 'openai', credentialId: CREDENTIAL_EXAMPLE.id, uri: 'gpt-4o-mini', tasks: ['text-generation'], modalities: ['text', 'image'] },
      { source: 'upload', name: 'llama-3.1-8b-instruct', tasks: ['text-generation'], format: 'safetensors', license: 'llama3.1' },
    ],
  },
)

export const ModelUpdate = StrictObject(
  {
    displayName: Type.Optional(DisplayName),
    description: Type.Optional(Type.Union([Description, Type.Null()])),
    tags: Type.Optional(Tags),
    tasks: Type.Optional(Tasks),
    license: Type.Optional(Type.Union([License, Type.Null()])),
  },
  { title: 'ModelUpdate', examples: [{ tags: ['chat', 'production'], description: 'Our default chat model' }] },
)

const ModelFilters = {
  source: Type.Optional(StringEnum(MODEL_SOURCES)),
  task: Type.Optional(Task),
  modality: Type.Optional(StringEnum(MODALITIES)),
  provider: Type.Optional(Provider),
  format: Type.Optional(StringEnum(MODEL_FORMATS)),
  tag: Type.Optional(Tag),
  license: Type.Optional(License),
  status: Type.Optional(StringEnum(MODEL_STATUSES)),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: NO_NUL, description: 'substring of the name or description, case-insensitive' })),
}

export const ModelListQuery = StrictObject({
  ...ModelFilters,
  sort: Type.Optional(SortParam(MODEL_SORT_FIELDS, { description: 'default createdAt:desc' })),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const ModelFacetQuery = StrictObject(ModelFilters)

const FacetValues = Type.Array(Type.Object({ value: Type.String(), count: Type.Integer({ minimum: 0 }) }), { maxItems: 50 })
export const ModelFacets = Type.Object(
  Object.fromEntries(FACET_NAMES.map((name) => [name, FacetValues])) as Record<(typeof FACET_NAMES)[number], typeof FacetValues>,
  {
    title: 'ModelFacets',
    description: "per facet, the 50 most common values among the tenant's models that match the other filters",
    examples: [
      {
        source: [{ value: 'upload', count: 12 }, { value: 'cloud', count: 4 }],
        task: [{ value: 'text-generation', count: 14 }, { value: 'embedding', count: 2 }],
        modality: [{ value: 'text', count: 16 }],
        provider: [{ value: 'openai', count: 3 }],
        format: [{ value: 'safetensors', count: 10 }, { value: 'gguf', count: 2 }],
        license: [{ value: 'apache-2.0', count: 7 }],
        tag: [{ value: 'chat', count: 9 }],
      },
    ],
  },
)

// ---- versions ---------------------------------------------------------------------------------

const ManifestFile = Type.Object({
  path: Type.String({ maxLength: MAX_FILE_PATH_LENGTH }),
  size: Type.Integer({ minimum: 0 }),
  sha256: Nullable(Type.String()),
})

export const ModelVersion = Type.Object(
  {
    id: Uuid,
    modelId: Uuid,
    label: Type.String(),
    sourceRevision: Nullable(Type.String()),
    status: StringEnum(VERSION_STATUSES),
    statusReason: Nullable(Type.String()),
    isDefault: Type.Boolean(),
    fileCount: Type.Integer({ minimum: 0 }),
    sizeBytes: Type.Integer({ minimum: 0 }),
    files: Type.Array(ManifestFile, { description: 'the manifest of a sealed version; empty before' }),
    workflowId: Type.Union([Uuid, Type.Null()]),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    sealedAt: Nullable(Type.String({ format: 'date-time' })),
  },
  {
    title: 'ModelVersion',
    examples: [
      {
        id: MODEL_EXAMPLE.defaultVersionId,
        modelId: MODEL_EXAMPLE.id,
        label: 'v1',
        sourceRevision: null,
        status: 'ready',
        statusReason: null,
        isDefault: true,
        fileCount: 2,
        sizeBytes: 16060556376,
        files: [
          { path: 'config.json', size: 826, sha256: 'a3f1c0d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7' },
          { path: 'model.safetensors', size: 16060555550, sha256: '5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a4938271605f' },
        ],
        workflowId: null,
        createdBy: EXAMPLE.userId,
        createdAt: EXAMPLE.createdAt,
        sealedAt: EXAMPLE.updatedAt,
      },
    ],
  },
)
export const ModelVersionPage = Page(ModelVersion, 'ModelVersionPage')
export const VersionListQuery = StrictObject({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })
export const VersionParams = StrictObject({ id: Uuid, version: Uuid })
