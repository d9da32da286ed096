import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'

export const ENDPOINT_PHASES = ['deploying', 'running', 'degraded', 'failed', 'scaled_to_zero', 'deleting', 'deleted'] as const
export const ENDPOINT_SORT_FIELDS = ['name', 'createdAt', 'phase'] as const
const DEVICE_TYPES = ['cuda', 'rocm', 'hpu', 'cpu_high', 'cpu'] as const
const NO_NUL = '^[^\\x00]*$'
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

const Name = Type.String({
  minLength: 1,
  maxLength: 40,
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  description: "lower-case letters, digits and '-' (it names Kubernetes objects); unique among the tenant's live endpoints",
  examples: ['llama-8b-chat'],
})
const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' })
const Env = Type.Record(EnvName, Type.String({ maxLength: 4_096, pattern: NO_NUL }), {
  maxProperties: 64,
  additionalProperties: false,
  description: 'extra environment of the runtime container (names the runtime reserves, such as its API key, are refused)',
})
const Args = Type.Array(Type.String({ minLength: 1, maxLength: 1_024, pattern: NO_NUL }), {
  maxItems: 64,
  description: "extra engine arguments, after the ones the plan derives (e.g. ['--enable-prefix-caching'])",
})
const Autoscale = StrictObject(
  {
    min: Type.Integer({ minimum: 0, maximum: 100 }),
    max: Type.Integer({ minimum: 1, maximum: 100 }),
    targetConcurrency: Type.Integer({ minimum: 1, maximum: 10_000, description: 'requests in flight per replica' }),
  },
  { description: 'KEDA when the cluster has it, else an HPA on the custom-metrics API; refused otherwise' },
)
const Resources = StrictObject(
  {
    devices: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'accelerators per replica (default: what the plan needs)' })),
    cpu: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?m?$', maxLength: 16, examples: ['8'] })),
    memory: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$', maxLength: 16, examples: ['64Gi'] })),
  },
  { description: 'per replica; what is not given is planned' },
)

export const EndpointCreate = StrictObject(
  {
    name: Name,
    modelId: Uuid,
    versionId: Type.Optional(Uuid),
    clusterId: Uuid,
    runtime: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][-a-z0-9.]*$', description: "a runtime's name, or 'auto' (default)" })),
    deviceType: Type.Optional(StringEnum(DEVICE_TYPES)),
    replicas: Type.Integer({ minimum: 0, maximum: 100 }),
    resources: Type.Optional(Resources),
    autoscale: Type.Optional(Autoscale),
    idleScaleToZeroMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 43_200 })),
    maxModelLen: Type.Optional(Type.Integer({ minimum: 128, maximum: 10_485_760 })),
    maxConcurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 4_096 })),
    env: Type.Optional(Env),
    args: Type.Optional(Args),
  },
  {
    title: 'EndpointCreate',
    examples: [
      {
        name: 'llama-8b-chat',
        modelId: '2c7d4e91-8a3b-4f6c-9e15-d0b8a7c6f342',
        clusterId: '3f1c2b7a-6d4e-4c8f-9a2b-7e5d1c0f8a64',
        runtime: 'auto',
        replicas: 1,
        maxModelLen: 8192,
        idleScaleToZeroMinutes: 60,
      },
    ],
  },
)

export const EndpointUpdate = StrictObject(
  {
    versionId: Type.Optional(Uuid),
    runtime: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][-a-z0-9.]*$' })),
    replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    resources: Type.Optional(Resources),
    autoscale: Type.Optional(Autoscale),
    idleScaleToZeroMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 43_200 })),
    env: Type.Optional(Env),
    args: Type.Optional(Args),
  },
  {
    title: 'EndpointUpdate',
    description: 'a new revision, rolled out and judged as a deploy is; a rollout that fails goes back to the previous revision and leaves the endpoint `degraded`',
    examples: [{ replicas: 2, args: ['--enable-prefix-caching'] }],
  },
)

export const EndpointScale = StrictObject({ replicas: Type.Integer({ minimum: 0, maximum: 100 }) }, { title: 'EndpointScale', examples: [{ replicas: 0 }] })

export const EndpointAccepted = Type.Object(
  { endpointId: Uuid, workflowId: Uuid },
  { title: 'EndpointAccepted', examples: [{ endpointId: '6b0f3c1e-2d4a-4e8b-9c7f-1a2b3c4d5e6f', workflowId: EXAMPLE.workflowId }] },
)

const Condition = Type.Object({
  type: Type.String(),
  status: StringEnum(['True', 'False', 'Unknown']),
  reason: Nullable(Type.String()),
  message: Nullable(Type.String()),
  lastTransitionTime: Type.String({ format: 'date-time' }),
})

export const Endpoint = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    clusterId: Uuid,
    modelId: Nullable(Uuid),
    versionId: Nullable(Uuid),
    runtime: Nullable(Type.String()),
    deviceType: Nullable(Type.String()),
    spec: Type.Record(Type.String(), Type.Unknown()),
    revision: Type.Integer(),
    appliedRevision: Nullable(Type.Integer()),
    namespace: Nullable(Type.String()),
    phase: StringEnum(ENDPOINT_PHASES),
    conditions: Type.Array(Condition),
    statusReason: Nullable(Type.String()),
    statusMessage: Nullable(Type.String()),
    statusSince: Type.String({ format: 'date-time' }),
    failedStep: Nullable(Type.String()),
    baseUrl: Nullable(Type.String()),
    lastActivityAt: Type.String({ format: 'date-time' }),
    workflowId: Nullable(Uuid),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  {
    title: 'Endpoint',
    examples: [
      {
        id: '6b0f3c1e-2d4a-4e8b-9c7f-1a2b3c4d5e6f',
        name: 'llama-8b-chat',
        clusterId: '3f1c2b7a-6d4e-4c8f-9a2b-7e5d1c0f8a64',
        modelId: '2c7d4e91-8a3b-4f6c-9e15-d0b8a7c6f342',
        versionId: 'e4b1c9d2-7f3a-4e8b-a6c5-1d0f9e8b7a62',
        runtime: 'vllm-cuda',
        deviceType: 'cuda',
        spec: { replicas: 1, maxModelLen: 8192 },
        revision: 2,
        appliedRevision: 2,
        namespace: 'mp-acme-5f3a2c',
        phase: 'running',
        conditions: [{ type: 'Ready', status: 'True', reason: 'Available', message: null, lastTransitionTime: EXAMPLE.updatedAt }],
        statusReason: null,
        statusMessage: null,
        statusSince: EXAMPLE.updatedAt,
        failedStep: null,
        baseUrl: 'https://llama-8b-chat.inference.example.com/v1',
        lastActivityAt: EXAMPLE.updatedAt,
        workflowId: null,
        createdBy: EXAMPLE.userId,
        createdAt: EXAMPLE.createdAt,
        updatedAt: EXAMPLE.updatedAt,
      },
    ],
  },
)

export const EndpointPage = Page(Endpoint, 'EndpointPage')

export const EndpointListQuery = StrictObject({
  clusterId: Type.Optional(Uuid),
  modelId: Type.Optional(Uuid),
  phase: Type.Optional(StringEnum(ENDPOINT_PHASES)),
  runtime: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: NO_NUL })),
  deviceType: Type.Optional(StringEnum(DEVICE_TYPES)),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: NO_NUL, description: 'substring of the name, case-insensitive' })),
  sort: Type.Optional(SortParam(ENDPOINT_SORT_FIELDS, { description: 'default createdAt:desc' })),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const EndpointIdParams = StrictObject({ id: Uuid })
export const WorkerParams = StrictObject({ id: Uuid, pod: Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }) })
export const WorkerLogQuery = StrictObject({
  follow: Type.Optional(Type.Boolean({ description: 'keep the answer open and stream new lines' })),
  tailLines: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  container: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' })),
})

export const Worker = Type.Object(
  {
    name: Type.String(),
    node: Nullable(Type.String()),
    phase: Type.String(),
    ready: Type.Boolean(),
    restarts: Type.Integer(),
    startedAt: Nullable(Type.String()),
    reasons: Type.Array(Type.String()),
  },
  {
    title: 'Worker',
    examples: [{ name: 'ep-llama-8b-chat-6b0f3c1e-7d9f8c6b5-x2k4p', node: 'gpu-a100-0', phase: 'Running', ready: true, restarts: 0, startedAt: EXAMPLE.updatedAt, reasons: [] }],
  },
)
export const WorkerPage = Page(Worker, 'WorkerPage')
export const ClusterReadQuery = StrictObject({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })

export const KubeEvent = Type.Object(
  {
    type: Type.String(),
    reason: Type.String(),
    message: Type.String(),
    object: Type.String(),
    count: Type.Integer(),
    firstTimestamp: Nullable(Type.String()),
    lastTimestamp: Nullable(Type.String()),
  },
  {
    title: 'EndpointKubeEvent',
    examples: [{ type: 'Warning', reason: 'BackOff', message: 'Back-off pulling image "lmsysorg/sglang:v0.5.5"', object: 'Pod/ep-chat-6b0f3c1e-7d9f8c6b5-x2k4p', count: 3, firstTimestamp: EXAMPLE.createdAt, lastTimestamp: EXAMPLE.updatedAt }],
  },
)
export const KubeEventPage = Page(KubeEvent, 'EndpointKubeEventPage')
export const ManifestPage = Page(
  Type.Record(Type.String(), Type.Unknown(), {
    description: 'an object as the cluster holds it now; Secret values are redacted',
    examples: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ep-llama-8b-chat-6b0f3c1e', namespace: 'modelplane-5f3a2c' } }],
  }),
  'EndpointManifestPage',
)

export const EndpointHistoryEntry = Type.Object(
  {
    fromPhase: Nullable(StringEnum(ENDPOINT_PHASES)),
    toPhase: StringEnum(ENDPOINT_PHASES),
    reason: Nullable(Type.String()),
    message: Nullable(Type.String()),
    at: Type.String({ format: 'date-time' }),
  },
  { title: 'EndpointHistoryEntry', examples: [{ fromPhase: 'running', toPhase: 'degraded', reason: 'ProgressDeadlineExceeded', message: 'revision 3 failed and was rolled back', at: EXAMPLE.updatedAt }] },
)
export const EndpointHistoryPage = Page(EndpointHistoryEntry, 'EndpointHistoryPage')
export const EndpointHistoryQuery = StrictObject({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })

export const EndpointApiKey = Type.Object(
  { apiKey: Type.String({ description: 'send as `Authorization: Bearer <key>` to the endpoint' }) },
  { title: 'EndpointApiKey', examples: [{ apiKey: 'mp-3q2VgGq0yT7o9Kc1bXfWm4sLr8ZpNd6E' }] },
)
export const EndpointApiKeyRotated = Type.Object(
  { apiKey: Type.String(), workflowId: Uuid },
  { title: 'EndpointApiKeyRotated', examples: [{ apiKey: 'mp-3q2VgGq0yT7o9Kc1bXfWm4sLr8ZpNd6E', workflowId: EXAMPLE.workflowId }] },
)

export const EndpointPlan = Type.Object(
  {
    runtime: Type.Object({ id: Type.String(), name: Type.String(), engine: Type.String(), image: Type.String() }),
    deviceType: Type.String(),
    device: Type.Record(Type.String(), Type.Unknown()),
    placement: Type.Object({
      nodes: Type.Array(Type.Object({ node: Type.String(), product: Nullable(Type.String()), freeDevices: Type.Number(), room: Type.Number() })),
      rejected: Type.Array(Type.Object({ node: Type.String(), reasons: Type.Array(Type.String()) })),
    }),
    resources: Type.Record(Type.String(), Type.Number()),
    replicas: Type.Integer(),
    maxModelLen: Type.Integer(),
    maxConcurrency: Type.Integer(),
    engineArgs: Type.Array(Type.String()),
    strategy: Type.String(),
    autoscaler: Nullable(Type.Record(Type.String(), Type.Unknown())),
    assumptions: Type.Array(Type.String()),
    manifests: Type.Array(Type.Record(Type.String(), Type.Unknown()), { description: 'what a deploy would apply, in order; Secret values redacted' }),
  },
  {
    title: 'EndpointPlan',
    examples: [
      {
        runtime: { id: '0b6d2f1a-9c3e-4d5b-8a7f-1e2d3c4b5a69', name: 'vllm-cuda', engine: 'vllm', image: 'vllm/vllm-openai:v0.11.0' },
        deviceType: 'cuda',
        device: { product: 'NVIDIA-A100-SXM4-80GB', resourceName: 'nvidia.com/gpu', memoryGiB: 80 },
        placement: { nodes: [{ node: 'gpu-a100-0', product: 'NVIDIA-A100-SXM4-80GB', freeDevices: 8, room: 8 }], rejected: [{ node: 'cpu-small-0', reasons: ['no cuda devices'] }] },
        resources: { devicesPerReplica: 1, tensorParallelSize: 1, weightsGiB: 15, kvCacheGiB: 8, totalGiB: 25 },
        replicas: 1,
        maxModelLen: 8192,
        maxConcurrency: 8,
        engineArgs: ['--max-model-len', '8192', '--tensor-parallel-size', '1'],
        strategy: 'Recreate',
        autoscaler: null,
        assumptions: [],
        manifests: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'modelplane-5f3a2c' } }],
      },
    ],
  },
)
