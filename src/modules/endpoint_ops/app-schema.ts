import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { APP_FILE_LIMITS } from './apps/files.js'
import { ENDPOINT_PHASES, ENDPOINT_SORT_FIELDS } from './endpoint-schema.js'

const NO_NUL = '^[^\\x00]*$'
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

const Name = Type.String({
  minLength: 1,
  maxLength: 40,
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  description: "lower-case letters, digits and '-' (it names Kubernetes objects and the app's host); unique among the tenant's live apps",
  examples: ['todo-api'],
})

/**
 * The schema bounds the request as a whole (counts, lengths); the validator then says every
 * problem at once — per file and in all — with the limits of docs/apps.md.
 */
const Code = Type.String({
  minLength: 1,
  // Characters, not bytes: the byte limits are the validator's (400 CODE_INVALID rule `limit`).
  maxLength: APP_FILE_LIMITS.maxFileBytes,
  description: `a single-file app (served as main.py), at most ${APP_FILE_LIMITS.maxFileBytes / 1024} KB`,
})
const AppFileBody = StrictObject({
  path: Type.String({ minLength: 1, maxLength: APP_FILE_LIMITS.maxPathLength, description: "relative, '/' between folders (e.g. static/app.js)" }),
  content: Type.String({ maxLength: APP_FILE_LIMITS.maxFileBytes }),
})
const Files = Type.Array(AppFileBody, {
  minItems: 1,
  maxItems: APP_FILE_LIMITS.maxFiles,
  description: `up to ${APP_FILE_LIMITS.maxFiles} files, ${APP_FILE_LIMITS.maxFileBytes / 1024} KB each and ${APP_FILE_LIMITS.maxTotalBytes / 1024} KB in all: .py plus static .css/.js/.svg/.html/.json/.txt; main.py is the entry when there are several Python files`,
})
const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' })
const Env = Type.Record(EnvName, Type.String({ maxLength: 4_096, pattern: NO_NUL }), {
  maxProperties: 64,
  additionalProperties: false,
  description:
    "environment of the app's process (names the runner sets itself, such as PORT or APP_MODULE, are refused); shown as given in the app's GET and stored in plain text: not for secrets",
})
const IdleMinutes = Type.Integer({ minimum: 1, maximum: 43_200, description: 'scaled to zero after this long without a request (default: APP_IDLE_MINUTES, 1440)' })

export const AppCreate = StrictObject(
  {
    name: Name,
    clusterId: Uuid,
    code: Type.Optional(Code),
    files: Type.Optional(Files),
    env: Type.Optional(Env),
    idleMinutes: Type.Optional(IdleMinutes),
  },
  {
    title: 'AppCreate',
    description: 'exactly one of `code` and `files`',
    examples: [{ name: 'hello', clusterId: '3f1c2b7a-6d4e-4c8f-9a2b-7e5d1c0f8a64', code: "from fastapi import FastAPI\n\napp = FastAPI(title='hello')\n" }],
  },
)

export const AppUpdate = StrictObject(
  {
    code: Type.Optional(Code),
    files: Type.Optional(Files),
    env: Type.Optional(Env),
    idleMinutes: Type.Optional(IdleMinutes),
  },
  { title: 'AppUpdate', description: 'new code (`code` or `files`) is a new code version: a new ConfigMap and a rollout', examples: [{ env: { GREETING: 'hi' } }] },
)

export const AppAccepted = Type.Object(
  { appId: Uuid, workflowId: Uuid },
  { title: 'AppAccepted', examples: [{ appId: '6b0f3c1e-2d4a-4e8b-9c7f-1a2b3c4d5e6f', workflowId: EXAMPLE.workflowId }] },
)

const Condition = Type.Object({
  type: Type.String(),
  status: StringEnum(['True', 'False', 'Unknown']),
  reason: Nullable(Type.String()),
  message: Nullable(Type.String()),
  lastTransitionTime: Type.String({ format: 'date-time' }),
})

export const App = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    clusterId: Uuid,
    files: Type.Array(Type.Object({ path: Type.String(), bytes: Type.Integer() }), { description: 'the code is not repeated here: paths and sizes' }),
    entry: Type.String(),
    env: Type.Record(Type.String(), Type.String()),
    codeHash: Nullable(Type.String({ description: 'sha256 of the files: names the ConfigMap and is on the pod template' })),
    replicas: Type.Integer(),
    idleMinutes: Nullable(Type.Integer()),
    revision: Type.Integer(),
    appliedRevision: Nullable(Type.Integer()),
    namespace: Nullable(Type.String()),
    phase: StringEnum(ENDPOINT_PHASES),
    conditions: Type.Array(Condition),
    statusReason: Nullable(Type.String()),
    statusMessage: Nullable(Type.String()),
    statusSince: Type.String({ format: 'date-time' }),
    failedStep: Nullable(Type.String()),
    url: Nullable(Type.String({ description: 'https://<app>.<APPS_DOMAIN>, or null when no domain is set' })),
    lastActivityAt: Type.String({ format: 'date-time' }),
    workflowId: Nullable(Uuid),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  {
    title: 'App',
    examples: [
      {
        id: '6b0f3c1e-2d4a-4e8b-9c7f-1a2b3c4d5e6f',
        name: 'hello',
        clusterId: '3f1c2b7a-6d4e-4c8f-9a2b-7e5d1c0f8a64',
        files: [{ path: 'main.py', bytes: 96 }],
        entry: 'main.py',
        env: {},
        codeHash: '9f2c1e0b7a6d5c4b3a291807f6e5d4c3b2a19081f7e6d5c4b3a2918070f6e5d4',
        replicas: 1,
        idleMinutes: 1440,
        revision: 1,
        appliedRevision: 1,
        namespace: 'mp-acme-5f3a2c',
        phase: 'running',
        conditions: [{ type: 'Ready', status: 'True', reason: 'Available', message: null, lastTransitionTime: EXAMPLE.updatedAt }],
        statusReason: null,
        statusMessage: null,
        statusSince: EXAMPLE.updatedAt,
        failedStep: null,
        url: 'https://hello-1a2b3c4d.apps.example.com',
        lastActivityAt: EXAMPLE.updatedAt,
        workflowId: null,
        createdBy: EXAMPLE.userId,
        createdAt: EXAMPLE.createdAt,
        updatedAt: EXAMPLE.updatedAt,
      },
    ],
  },
)

export const AppPage = Page(App, 'AppPage')

export const AppListQuery = StrictObject({
  clusterId: Type.Optional(Uuid),
  phase: Type.Optional(StringEnum(ENDPOINT_PHASES)),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: NO_NUL, description: 'substring of the name, case-insensitive' })),
  sort: Type.Optional(SortParam(ENDPOINT_SORT_FIELDS, { description: 'default createdAt:desc' })),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const AppIdParams = StrictObject({ id: Uuid })

export const AppLogQuery = StrictObject({
  pod: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', description: "one of the app's pods (default: the newest)" })),
  follow: Type.Optional(Type.Boolean({ description: 'keep the answer open and stream new lines' })),
  tailLines: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
})

export const AppActivity = Type.Object(
  { appId: Uuid, lastActivityAt: Type.String({ format: 'date-time' }) },
  { title: 'AppActivity', examples: [{ appId: '6b0f3c1e-2d4a-4e8b-9c7f-1a2b3c4d5e6f', lastActivityAt: EXAMPLE.updatedAt }] },
)
