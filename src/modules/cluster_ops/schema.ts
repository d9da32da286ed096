import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'

export const CLUSTER_STATUSES = ['registering', 'available', 'not_available', 'error', 'failed', 'deleting', 'deleted'] as const
export type ClusterStatus = (typeof CLUSTER_STATUSES)[number]
export const DEVICE_TYPES = ['cuda', 'rocm', 'hpu', 'cpu_high', 'cpu'] as const
export const PLATFORMS = ['kubernetes', 'openshift'] as const
export const CLUSTER_SORT_FIELDS = ['name', 'createdAt', 'status', 'lastSyncAt'] as const
export const KUBECONFIG_MAX_BYTES = 256 * 1024

const NO_NUL = '^[^\\x00]*$'
/** Label keys and values as Kubernetes bounds them, so a label can be carried onto objects later. */
const LABEL_KEY = '^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$'
const Labels = Type.Record(Type.String({ pattern: LABEL_KEY, maxLength: 317 }), Type.String({ pattern: LABEL_VALUE, maxLength: 63 }), {
  maxProperties: 32,
  additionalProperties: false,
  description: 'Kubernetes-style labels (at most 32), for filtering and for placement rules later',
  examples: [{ region: 'eu-west', tier: 'gpu' }],
})
const Name = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$',
  description: 'Unique among the tenant\'s live clusters',
  examples: ['gpu-eu-west-1'],
})
const Kubeconfig = Type.String({
  minLength: 1,
  maxLength: KUBECONFIG_MAX_BYTES,
  pattern: NO_NUL,
  description:
    'The kubeconfig as YAML or JSON text. Only inline credentials: token, or client-certificate-data + client-key-data; ' +
    'certificate-authority-data for the CA. exec and auth-provider plugins, file paths, basic auth and proxy-url are refused.',
})

const KUBECONFIG_EXAMPLE = [
  'apiVersion: v1',
  'kind: Config',
  'clusters:',
  '- name: gpu-eu-west-1',
  '  cluster: {server: "https://k8s.gpu-eu-west-1.example:6443", certificate-authority-data: LS0tLS1CRUdJTi...}',
  'users:',
  '- name: modelplane',
  '  user: {token: eyJhbGciOiJSUzI1NiIs...}',
  'contexts:',
  '- name: gpu-eu-west-1',
  '  context: {cluster: gpu-eu-west-1, user: modelplane}',
  'current-context: gpu-eu-west-1',
].join('\n')

export const ClusterCreate = StrictObject(
  {
    name: Name,
    kubeconfig: Kubeconfig,
    context: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: NO_NUL, description: 'default: the kubeconfig\'s current-context' })),
    labels: Type.Optional(Labels),
    allowInsecureTls: Type.Optional(Type.Boolean({ description: 'accept insecure-skip-tls-verify in the kubeconfig (default false)' })),
    allowHttp: Type.Optional(Type.Boolean({ description: 'accept an http:// API server (default false)' })),
  },
  {
    title: 'ClusterCreate',
    examples: [{ name: 'gpu-eu-west-1', kubeconfig: KUBECONFIG_EXAMPLE, labels: { region: 'eu-west', tier: 'gpu' } }],
  },
)

export const ClusterUpdate = StrictObject(
  {
    name: Type.Optional(Name),
    labels: Type.Optional(Labels),
    kubeconfig: Type.Optional(Kubeconfig),
    context: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: NO_NUL })),
    allowInsecureTls: Type.Optional(Type.Boolean()),
    allowHttp: Type.Optional(Type.Boolean()),
  },
  {
    title: 'ClusterUpdate',
    description: 'name and labels change at once; a new kubeconfig is verified by a workflow and replaces the old one only if it reaches the same cluster',
    examples: [{ labels: { region: 'eu-west', tier: 'gpu', team: 'inference' } }],
  },
)

export const ClusterAccepted = Type.Object(
  {
    clusterId: Uuid,
    workflowId: Uuid,
  },
  { title: 'ClusterAccepted', examples: [{ clusterId: '3f1c2b7a-6d4e-4c8f-9a2b-7e5d1c0f8a64', workflowId: EXAMPLE.workflowId }] },
)

const Condition = Type.Object({
  type: Type.String(),
  status: StringEnum(['True', 'False', 'Unknown']),
  reason: Type.Union([Type.String(), Type.Null()]),
  message: Type.Union([Type.String(), Type.Null()]),
  lastTransitionTime: Type.String({ format: 'date-time' }),
})

const ByProduct = Type.Record(
  Type.String(),
  Type.Object({ devices: Type.Integer(), slices: Type.Integer(), free: Type.Integer(), memoryMiB: Type.Union([Type.Integer(), Type.Null()]) }),
)

export const ClusterSummarySchema = Type.Object(
  {
    nodes: Type.Object({ total: Type.Integer(), ready: Type.Integer(), schedulable: Type.Integer() }),
    byDeviceType: Type.Record(
      Type.String(),
      Type.Object({
        nodes: Type.Integer(),
        devices: Type.Integer({ description: 'physical devices' }),
        slices: Type.Integer({ description: 'schedulable units: MIG instances and time-sliced replicas count one each' }),
        allocatable: Type.Integer(),
        used: Type.Integer(),
        free: Type.Integer({ description: 'on schedulable nodes only' }),
        unit: Type.Optional(StringEnum(['slices', 'millicores'])),
        byProduct: ByProduct,
      }),
    ),
    cpu: Type.Object({ allocatableMillis: Type.Integer(), usedMillis: Type.Integer(), freeMillis: Type.Integer() }),
    memory: Type.Object({ allocatableBytes: Type.Integer(), usedBytes: Type.Integer(), freeBytes: Type.Integer() }),
    deviceTypes: Type.Array(StringEnum(DEVICE_TYPES)),
  },
  { title: 'ClusterSummary', additionalProperties: true },
)

const Capabilities = Type.Object(
  {
    ingressClasses: Type.Array(Type.String()),
    defaultIngressClass: Type.Union([Type.String(), Type.Null()]),
    storageClasses: Type.Array(
      Type.Object({ name: Type.String(), provisioner: Type.String(), default: Type.Boolean(), readWriteMany: Type.Boolean() }),
    ),
    defaultStorageClass: Type.Union([Type.String(), Type.Null()]),
    readWriteManyStorageClass: Type.Union([Type.String(), Type.Null()]),
    keda: Type.Boolean(),
    customMetrics: Type.Boolean(),
    externalMetrics: Type.Boolean(),
    metricsServer: Type.Boolean(),
    traefik: Type.Boolean(),
    gatewayApi: Type.Boolean(),
    openshiftRoutes: Type.Boolean(),
  },
  { title: 'ClusterCapabilities' },
)

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()])

const SUMMARY_EXAMPLE = {
  nodes: { total: 3, ready: 3, schedulable: 3 },
  byDeviceType: {
    cuda: {
      nodes: 2,
      devices: 16,
      slices: 16,
      allocatable: 16,
      used: 4,
      free: 12,
      byProduct: { 'NVIDIA-A100-SXM4-80GB': { devices: 16, slices: 16, free: 12, memoryMiB: 81920 } },
    },
  },
  cpu: { allocatableMillis: 380000, usedMillis: 42000, freeMillis: 338000 },
  memory: { allocatableBytes: 3298534883328, usedBytes: 214748364800, freeBytes: 3083786518528 },
  deviceTypes: ['cuda', 'cpu'],
}

export const CLUSTER_EXAMPLE = {
  id: '3f1c2b7a-6d4e-4c8f-9a2b-7e5d1c0f8a64',
  name: 'gpu-eu-west-1',
  labels: { region: 'eu-west', tier: 'gpu' },
  status: 'available',
  statusReason: null,
  statusMessage: null,
  statusSince: EXAMPLE.updatedAt,
  server: 'https://k8s.gpu-eu-west-1.example:6443',
  platform: 'kubernetes',
  distribution: 'eks',
  kubernetesVersion: 'v1.29.4-eks-036c24b',
  capabilities: null,
  missingPermissions: [],
  summary: SUMMARY_EXAMPLE,
  conditions: [
    { type: 'Reachable', status: 'True', reason: null, message: null, lastTransitionTime: EXAMPLE.updatedAt },
  ],
  lastSyncAt: EXAMPLE.updatedAt,
  lastSyncDurationMs: 412,
  lastSyncError: null,
  registrationWorkflowId: EXAMPLE.workflowId,
  createdBy: EXAMPLE.userId,
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
}

export const Cluster = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    labels: Type.Record(Type.String(), Type.String()),
    status: StringEnum(CLUSTER_STATUSES),
    statusReason: Nullable(Type.String({ description: 'a taxonomy code such as CLUSTER_UNREACHABLE; null when healthy' })),
    statusMessage: Nullable(Type.String()),
    statusSince: Type.String({ format: 'date-time' }),
    server: Type.String({ description: 'the API server URL (the kubeconfig itself is never returned)' }),
    platform: Type.Union([StringEnum(PLATFORMS), Type.Null()]),
    distribution: Nullable(Type.String({ description: 'k3s, rke2, eks, gke, aks, openshift, kind, minikube, or null' })),
    kubernetesVersion: Nullable(Type.String()),
    capabilities: Type.Union([Capabilities, Type.Null()]),
    missingPermissions: Type.Array(Type.String(), { description: 'what the credentials may not do that modelplane needs' }),
    summary: Type.Union([ClusterSummarySchema, Type.Null()]),
    conditions: Type.Array(Condition),
    lastSyncAt: Nullable(Type.String({ format: 'date-time' })),
    lastSyncDurationMs: Type.Union([Type.Integer(), Type.Null()]),
    lastSyncError: Nullable(Type.String()),
    registrationWorkflowId: Type.Union([Uuid, Type.Null()]),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'Cluster', examples: [CLUSTER_EXAMPLE] },
)

export const ClusterPage = Page(Cluster, 'ClusterPage')

export const ClusterListQuery = StrictObject({
  status: Type.Optional(StringEnum(CLUSTER_STATUSES, { description: 'deleted clusters appear only when asked for' })),
  platform: Type.Optional(StringEnum(PLATFORMS)),
  deviceType: Type.Optional(StringEnum(DEVICE_TYPES)),
  label: Type.Optional(
    Type.String({ maxLength: 400, pattern: '^[^=\\x00]{1,317}=[^\\x00]{0,63}$', description: 'key=value; the cluster carries this label' }),
  ),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: NO_NUL, description: 'substring of the name, case-insensitive' })),
  sort: Type.Optional(SortParam(CLUSTER_SORT_FIELDS, { description: 'default createdAt:desc' })),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const ClusterIdParams = StrictObject({ id: Uuid })

export const ClusterDeleteQuery = StrictObject({
  force: Type.Optional(Type.Boolean({ description: 'tear down the endpoints and apps running there first (default false)' })),
})

const Resources = Type.Object(
  {
    cpuMillis: Type.Integer(),
    memoryBytes: Type.Integer(),
    pods: Type.Integer(),
    ephemeralBytes: Type.Integer(),
    extended: Type.Record(Type.String(), Type.Number()),
  },
  { title: 'NodeResources' },
)

const Device = Type.Object(
  {
    type: StringEnum(DEVICE_TYPES),
    vendor: Type.String(),
    product: Nullable(Type.String()),
    count: Type.Integer({ description: 'physical devices' }),
    slices: Type.Integer({ description: 'schedulable units' }),
    productLabel: Type.Optional(Nullable(Type.String({ description: 'the product label exactly as the node carries it, for node affinity' }))),
    sharing: StringEnum(['none', 'mig', 'time-slicing', 'mps']),
    resourceName: Type.String(),
    migProfiles: Type.Optional(Type.Record(Type.String(), Type.Integer())),
    memoryMiB: Type.Union([Type.Integer(), Type.Null()]),
    driverVersion: Nullable(Type.String()),
    cudaVersion: Nullable(Type.String()),
    detectionMethod: StringEnum(['nfd', 'gpu-feature-discovery', 'amd-gpu-labeller', 'device-plugin', 'node-info']),
  },
  { title: 'NodeDevice' },
)

const NODE_EXAMPLE = {
  name: 'gpu-a100-0',
  roles: ['worker'],
  schedulable: true,
  unschedulableReasons: [],
  ready: true,
  deviceType: 'cuda',
  taints: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }],
  conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
  pressure: { memory: false, disk: false, pid: false },
  versions: { kubelet: 'v1.29.4', kernel: '5.15.0-1057-aws', os: 'linux', osImage: 'Ubuntu 22.04.4 LTS', containerRuntime: 'containerd://1.7.13' },
  arch: 'amd64',
  internalIp: '10.0.12.31',
  instanceType: 'p4de.24xlarge',
  labels: { 'topology.kubernetes.io/zone': 'eu-west-1a' },
  capacity: { cpuMillis: 96000, memoryBytes: 1236950581248, pods: 110, ephemeralBytes: 0, extended: { 'nvidia.com/gpu': 8 } },
  allocatable: { cpuMillis: 95690, memoryBytes: 1224065679360, pods: 110, ephemeralBytes: 0, extended: { 'nvidia.com/gpu': 8 } },
  used: { cpuMillis: 16000, memoryBytes: 137438953472, pods: 9, ephemeralBytes: 0, extended: { 'nvidia.com/gpu': 2 } },
  cpu: { vendor: 'Intel', family: '6', model: '106', avx512: true, amx: false },
  devices: [
    {
      type: 'cuda',
      vendor: 'nvidia',
      product: 'NVIDIA-A100-SXM4-80GB',
      count: 8,
      slices: 8,
      sharing: 'none',
      resourceName: 'nvidia.com/gpu',
      memoryMiB: 81920,
      driverVersion: '535.161.08',
      cudaVersion: '12.2',
      detectionMethod: 'gpu-feature-discovery',
    },
  ],
  updatedAt: EXAMPLE.updatedAt,
}

export const ClusterNode = Type.Object(
  {
    name: Type.String(),
    roles: Type.Array(Type.String()),
    schedulable: Type.Boolean(),
    unschedulableReasons: Type.Array(Type.String()),
    ready: Type.Boolean(),
    deviceType: StringEnum(DEVICE_TYPES),
    taints: Type.Array(Type.Object({ key: Type.String(), value: Type.Optional(Type.String()), effect: Type.String() })),
    conditions: Type.Array(
      Type.Object({
        type: Type.String(),
        status: Type.String(),
        reason: Type.Optional(Type.String()),
        message: Type.Optional(Type.String()),
        lastTransitionTime: Type.Optional(Type.String()),
      }),
    ),
    pressure: Type.Object({ memory: Type.Boolean(), disk: Type.Boolean(), pid: Type.Boolean() }),
    versions: Type.Object({ kubelet: Type.String(), kernel: Type.String(), os: Type.String(), osImage: Type.String(), containerRuntime: Type.String() }),
    arch: Type.String(),
    internalIp: Nullable(Type.String()),
    instanceType: Nullable(Type.String()),
    labels: Type.Record(Type.String(), Type.String()),
    capacity: Resources,
    allocatable: Resources,
    used: Resources,
    cpu: Type.Object({
      vendor: Nullable(Type.String()),
      family: Nullable(Type.String()),
      model: Nullable(Type.String()),
      avx512: Type.Boolean(),
      amx: Type.Boolean(),
      detectionMethod: Type.Optional(StringEnum(['nfd', 'node-info'])),
    }),
    devices: Type.Array(Device, { description: 'accelerators only: a CPU node has none, its class is deviceType' }),
    problems: Type.Optional(Type.Array(Type.String(), { description: 'what the node reported that could not be read (a malformed quantity counts 0)' })),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { title: 'ClusterNode', examples: [NODE_EXAMPLE] },
)

export const ClusterNodePage = Page(ClusterNode, 'ClusterNodePage')

export const ClusterNodeQuery = StrictObject({
  deviceType: Type.Optional(StringEnum(DEVICE_TYPES)),
  schedulable: Type.Optional(Type.Boolean()),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const ClusterHistoryEntry = Type.Object(
  {
    fromStatus: Type.Union([StringEnum(CLUSTER_STATUSES), Type.Null()]),
    toStatus: StringEnum(CLUSTER_STATUSES),
    reason: Nullable(Type.String()),
    message: Nullable(Type.String()),
    at: Type.String({ format: 'date-time' }),
  },
  {
    title: 'ClusterHistoryEntry',
    examples: [{ fromStatus: 'available', toStatus: 'not_available', reason: 'CLUSTER_UNREACHABLE', message: 'connect ECONNREFUSED 10.0.0.12:6443', at: EXAMPLE.updatedAt }],
  },
)

export const ClusterHistoryPage = Page(ClusterHistoryEntry, 'ClusterHistoryPage')
export const ClusterHistoryQuery = StrictObject({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })
