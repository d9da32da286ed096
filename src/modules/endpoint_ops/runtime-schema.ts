import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { EMBEDDING_TASKS, ENGINES, GENERATION_TASKS, MODEL_FORMATS, OPENAI_ROUTES, RUNTIME_DEVICE_TYPES } from './catalog.js'

/** The placeholders an arguments template may use; any other `{…}` is refused. */
export const ARG_PLACEHOLDERS = [
  'modelPath',
  'modelFile',
  'servedModelName',
  'port',
  'maxModelLen',
  'tensorParallelSize',
  'maxConcurrency',
  'contextTotal',
] as const

export const RUNTIME_TASKS = [...new Set([...GENERATION_TASKS, ...EMBEDDING_TASKS])]
export const RUNTIME_SORT_FIELDS = ['name', 'createdAt', 'updatedAt'] as const
export const RUNTIME_SCOPES = ['global', 'tenant'] as const

export const MAX_ARGS = 64
export const MAX_ARG_LENGTH = 512

const NO_CONTROL = '^[^\\x00-\\x1f\\x7f]*$'
const HttpPath = (description: string, example: string) =>
  Type.String({ minLength: 1, maxLength: 256, pattern: "^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$", description, examples: [example] })

const RuntimeName = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$',
  description: 'lower-case letters, digits and dashes (it becomes a label value); unique among the shared runtimes and the tenant\'s',
  examples: ['vllm-cuda-private'],
})
const Image = Type.String({
  minLength: 1,
  maxLength: 255,
  description: 'the image reference without tag or digest: `[registry[:port]/]path`',
  examples: ['vllm/vllm-openai'],
})
const ImageTag = Type.String({ minLength: 1, maxLength: 128, description: 'a pinned tag; never `latest`', examples: ['v0.29.0'] })
const ProductTag = StrictObject(
  {
    products: Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: NO_CONTROL }), {
      minItems: 1,
      maxItems: 16,
      description: 'substrings of the GPU product name (`A100`, `H100`), compared without case',
    }),
    tag: ImageTag,
  },
  { title: 'RuntimeProductTag' },
)
const ArgsTemplate = Type.Array(Type.String({ minLength: 1, maxLength: MAX_ARG_LENGTH, pattern: NO_CONTROL }), {
  maxItems: MAX_ARGS,
  description: `one token per element; ${ARG_PLACEHOLDERS.map((p) => `\`{${p}}\``).join(', ')} are replaced at deploy time`,
})
const Port = Type.Integer({ minimum: 1, maximum: 65535, description: 'the container port the server listens on', examples: [8000] })
const ConcurrencyMetric = Type.Union([Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$' }), Type.Null()], {
  description: 'a Prometheus gauge of requests in flight, for autoscaling on concurrency',
})
const Formats = Type.Array(StringEnum(MODEL_FORMATS), { minItems: 1, maxItems: MODEL_FORMATS.length, uniqueItems: true })
const Tasks = Type.Array(StringEnum(RUNTIME_TASKS), { minItems: 1, maxItems: RUNTIME_TASKS.length, uniqueItems: true })
const OpenAiRoutes = Type.Array(StringEnum(OPENAI_ROUTES), { minItems: 1, maxItems: OPENAI_ROUTES.length, uniqueItems: true })
const ApiKeyPassing = Type.Union(
  [
    StrictObject({ kind: StringEnum(['flag']), flag: Type.String({ minLength: 2, maxLength: 64, pattern: '^--?[A-Za-z0-9][A-Za-z0-9-]*$' }) }),
    StrictObject({ kind: StringEnum(['env']), name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }) }),
  ],
  { description: "how the runtime receives the endpoint's API key: a flag (passed the key from the endpoint's Secret) or an environment variable" },
)
const RunAsUser = Type.Union([Type.Integer({ minimum: 1, maximum: 2147483647 }), Type.Null()], {
  description: 'a uid the image runs as without root; null when it needs root',
})
const Description = Type.String({ maxLength: 1000, pattern: '^[^\\x00]*$' })

const RUNTIME_EXAMPLE = {
  id: '3f6b2d1e-8c4a-4b7e-9d2f-5a1c0e8b7d64',
  name: 'vllm-cuda',
  scope: 'global',
  engine: 'vllm',
  deviceType: 'cuda',
  image: 'vllm/vllm-openai',
  tag: 'v0.29.0',
  productTags: [],
  argsTemplate: ['--model', '{modelPath}', '--served-model-name', '{servedModelName}', '--port', '{port}', '--max-model-len', '{maxModelLen}'],
  port: 8000,
  healthPath: '/health',
  readinessPath: '/health',
  modelProbePath: '/v1/models',
  metricsPath: '/metrics',
  concurrencyMetric: 'vllm:num_requests_running',
  formats: ['safetensors', 'pytorch'],
  tasks: ['text-generation', 'conversational'],
  openaiRoutes: ['/v1/chat/completions', '/v1/completions', '/v1/models'],
  apiKey: { kind: 'flag', flag: '--api-key' },
  runAsUser: null,
  enabled: true,
  description: "vLLM's own OpenAI-compatible server image for NVIDIA GPUs",
  seeded: true,
  createdBy: 'system',
  updatedBy: 'system',
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
}

export const Runtime = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    scope: StringEnum(RUNTIME_SCOPES, { description: '`global`: shared by every tenant, changed by superusers only; `tenant`: the tenant\'s own' }),
    engine: StringEnum(ENGINES),
    deviceType: StringEnum(RUNTIME_DEVICE_TYPES, { description: '`cpu` serves both CPU classes (cpu and cpu_high)' }),
    image: Type.String(),
    tag: Type.String(),
    productTags: Type.Array(Type.Object({ products: Type.Array(Type.String()), tag: Type.String() })),
    argsTemplate: Type.Array(Type.String()),
    port: Type.Integer(),
    healthPath: Type.String(),
    readinessPath: Type.String(),
    modelProbePath: Type.String(),
    metricsPath: Type.String(),
    concurrencyMetric: Type.Union([Type.String(), Type.Null()]),
    formats: Type.Array(Type.String()),
    tasks: Type.Array(Type.String()),
    openaiRoutes: Type.Array(Type.String()),
    apiKey: Type.Union([
      Type.Object({ kind: StringEnum(['flag']), flag: Type.String() }),
      Type.Object({ kind: StringEnum(['env']), name: Type.String() }),
    ]),
    runAsUser: Type.Union([Type.Integer(), Type.Null()]),
    enabled: Type.Boolean(),
    description: Type.String(),
    seeded: Type.Boolean({ description: 'one of the runtimes the installation started with (an operator may have edited it since)' }),
    createdBy: Type.Union([Type.String(), Type.Null()], { description: 'null on a shared runtime unless the caller is a superuser' }),
    updatedBy: Type.Union([Type.String(), Type.Null()], { description: 'null on a shared runtime unless the caller is a superuser' }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Runtime', examples: [RUNTIME_EXAMPLE] },
)
export const RuntimePage = Page(Runtime, 'RuntimePage')

const CREATE_EXAMPLE = {
  name: 'vllm-cuda-mirror',
  engine: 'vllm',
  deviceType: 'cuda',
  image: 'registry.example.com:5000/mirror/vllm-openai',
  tag: 'v0.29.0',
  argsTemplate: ['--model', '{modelPath}', '--served-model-name', '{servedModelName}', '--port', '{port}', '--max-model-len', '{maxModelLen}'],
  port: 8000,
  formats: ['safetensors'],
  tasks: ['text-generation'],
  openaiRoutes: ['/v1/chat/completions', '/v1/completions', '/v1/models'],
}

const specFields = {
  engine: StringEnum(ENGINES),
  deviceType: StringEnum(RUNTIME_DEVICE_TYPES),
  image: Image,
  tag: ImageTag,
  productTags: Type.Array(ProductTag, { maxItems: 16, description: 'tags by GPU product; the first match wins, `tag` otherwise' }),
  argsTemplate: ArgsTemplate,
  port: Port,
  healthPath: HttpPath('liveness probe path', '/health'),
  readinessPath: HttpPath('readiness probe path', '/health'),
  modelProbePath: HttpPath('what answers once the model is loaded (`/v1/models`; `/info` for text-embeddings-inference)', '/v1/models'),
  metricsPath: HttpPath('Prometheus metrics path', '/metrics'),
  concurrencyMetric: ConcurrencyMetric,
  formats: Formats,
  tasks: Tasks,
  openaiRoutes: OpenAiRoutes,
  apiKey: ApiKeyPassing,
  runAsUser: RunAsUser,
  enabled: Type.Boolean(),
  description: Description,
}

export const RuntimeCreate = StrictObject(
  {
    name: RuntimeName,
    global: Type.Optional(Type.Boolean({ description: 'a runtime shared by every tenant (superusers only); default: the tenant\'s own', default: false })),
    engine: specFields.engine,
    deviceType: specFields.deviceType,
    image: specFields.image,
    tag: specFields.tag,
    productTags: Type.Optional(specFields.productTags),
    argsTemplate: specFields.argsTemplate,
    port: specFields.port,
    healthPath: Type.Optional(HttpPath('liveness probe path (default /health)', '/health')),
    readinessPath: Type.Optional(HttpPath('readiness probe path (default: healthPath)', '/health')),
    modelProbePath: Type.Optional(HttpPath('what answers once the model is loaded (default /v1/models)', '/v1/models')),
    metricsPath: Type.Optional(HttpPath('Prometheus metrics path (default /metrics)', '/metrics')),
    concurrencyMetric: Type.Optional(specFields.concurrencyMetric),
    formats: specFields.formats,
    tasks: specFields.tasks,
    openaiRoutes: specFields.openaiRoutes,
    apiKey: Type.Optional(specFields.apiKey),
    runAsUser: Type.Optional(specFields.runAsUser),
    enabled: Type.Optional(specFields.enabled),
    description: Type.Optional(specFields.description),
  },
  { title: 'RuntimeCreate', examples: [CREATE_EXAMPLE] },
)

export const RuntimeUpdate = StrictObject(
  {
    name: Type.Optional(RuntimeName),
    engine: Type.Optional(specFields.engine),
    deviceType: Type.Optional(specFields.deviceType),
    image: Type.Optional(specFields.image),
    tag: Type.Optional(specFields.tag),
    productTags: Type.Optional(specFields.productTags),
    argsTemplate: Type.Optional(specFields.argsTemplate),
    port: Type.Optional(specFields.port),
    healthPath: Type.Optional(specFields.healthPath),
    readinessPath: Type.Optional(specFields.readinessPath),
    modelProbePath: Type.Optional(specFields.modelProbePath),
    metricsPath: Type.Optional(specFields.metricsPath),
    concurrencyMetric: Type.Optional(specFields.concurrencyMetric),
    formats: Type.Optional(specFields.formats),
    tasks: Type.Optional(specFields.tasks),
    openaiRoutes: Type.Optional(specFields.openaiRoutes),
    apiKey: Type.Optional(specFields.apiKey),
    runAsUser: Type.Optional(specFields.runAsUser),
    enabled: Type.Optional(specFields.enabled),
    description: Type.Optional(specFields.description),
  },
  {
    title: 'RuntimeUpdate',
    description: 'the fields to change; a name in use by endpoints cannot change (they refer to the runtime by name)',
    examples: [{ tag: 'v0.30.0' }, { enabled: false }],
  },
)

export const RuntimeListQuery = StrictObject({
  engine: Type.Optional(StringEnum(ENGINES)),
  deviceType: Type.Optional(StringEnum(RUNTIME_DEVICE_TYPES)),
  enabled: Type.Optional(Type.Boolean()),
  scope: Type.Optional(StringEnum(RUNTIME_SCOPES)),
  sort: Type.Optional(SortParam(RUNTIME_SORT_FIELDS, { description: 'default name:asc' })),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const RuntimeIdParams = StrictObject({ id: Uuid })
