import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'


const DateTime = Type.String({ format: 'date-time' })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
// Also a list filter: no example, which Swagger UI would send on "Try it out".
const RunStatus = StringEnum(['pending', 'running', 'completed', 'failed', 'cancelled'])
const Name = Type.String({ minLength: 1, maxLength: 128 })

export const IdParams = Type.Object({ id: Uuid })

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 128,
      pattern: '^[A-Za-z0-9._:-]+$',
      description: 'Repeating a request with the same key answers the first result instead of starting twice',
    }),
  ),
})

export const ListQuery = StrictObject({
  ...PageQueryProperties,
  sort: Type.Optional(SortParam(['createdAt', 'updatedAt'], { description: 'a field alone sorts ascending; createdAt:desc by default' })),
  type: Type.Optional(Name),
  status: Type.Optional(RunStatus),
  resourceKind: Type.Optional(Name),
  resourceId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'who started the run (startedBy)' })),
})

const RunError = Type.Object({ code: Type.String(), message: Type.String() })

const runProperties = {
  id: Uuid,
  type: Type.String(),
  tenantId: Uuid,
  resource: Type.Object({ kind: Type.String(), id: Type.String() }),
  startedBy: Type.String(),
  status: RunStatus,
  currentStep: Type.Integer({ minimum: 0 }),
  totalSteps: Nullable(Type.Integer({ minimum: 0 })),
  percent: Type.Integer({ minimum: 0, maximum: 100 }),
  message: Nullable(Type.String()),
  bytesDone: Nullable(Type.Integer({ minimum: 0, description: 'runs that move bytes (model imports, upload checks): bytes done so far' })),
  bytesTotal: Nullable(Type.Integer({ minimum: 0, description: 'of how many bytes, when known' })),
  error: Nullable(RunError),
  inputSummary: Nullable(Type.String()),
  resultSummary: Nullable(Type.String()),
  parentId: Nullable(Uuid),
  retryOf: Nullable(Uuid),
  compensation: Nullable(
    StringEnum(['running', 'completed', 'failed'], { description: 'Of a cancelled run whose type declares a compensation' }),
  ),
  createdAt: DateTime,
  updatedAt: DateTime,
  startedAt: Nullable(DateTime),
  finishedAt: Nullable(DateTime),
}

const RUN_EXAMPLE = {
  id: EXAMPLE.workflowId,
  type: 'user_admin.importUsers',
  tenantId: EXAMPLE.tenantId,
  resource: { kind: 'user_import', id: '4a7d2c9e-1f5b-4e3a-8c6d-0b9f2e7a5c18' },
  startedBy: EXAMPLE.userId,
  status: 'running',
  currentStep: 2,
  totalSteps: 3,
  percent: 40,
  message: 'batch 2 of 3',
  bytesDone: null,
  bytesTotal: null,
  error: null,
  inputSummary: '2,500 rows',
  resultSummary: null,
  parentId: null,
  retryOf: null,
  compensation: null,
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
  startedAt: '2026-03-02T09:15:01.000Z',
  finishedAt: null,
}

export const WorkflowRun = Type.Object(runProperties, { title: 'WorkflowRun', examples: [RUN_EXAMPLE] })

export const WorkflowRunStep = Type.Object(
  {
    step: Type.Integer({ minimum: 1 }),
    message: Nullable(Type.String()),
    status: StringEnum(['running', 'completed', 'failed', 'cancelled']),
    startedAt: DateTime,
    finishedAt: Nullable(DateTime),
  },
  {
    title: 'WorkflowRunStep',
    examples: [{ step: 1, message: 'rows checked', status: 'completed', startedAt: '2026-03-02T09:15:01.000Z', finishedAt: '2026-03-02T09:15:03.000Z' }],
  },
)

export const WorkflowRunDetail = Type.Object(
  {
    ...runProperties,
    result: Type.Unknown({ description: "The workflow's output (null while it runs, or when too large to keep)" }),
    steps: Type.Array(WorkflowRunStep),
  },
  {
    title: 'WorkflowRunDetail',
    examples: [
      {
        ...RUN_EXAMPLE,
        result: null,
        steps: [
          { step: 1, message: 'rows checked', status: 'completed', startedAt: '2026-03-02T09:15:01.000Z', finishedAt: '2026-03-02T09:15:03.000Z' },
          { step: 2, message: 'batch 2 of 3', status: 'running', startedAt: '2026-03-02T09:15:03.000Z', finishedAt: null },
        ],
      },
    ],
  },
)

export const WorkflowRunPage = Page(WorkflowRun, 'WorkflowRunPage')

/** Documentation of the progress stream (the route writes it itself). */
export const EVENT_STREAM_DESCRIPTION =
  'Server-sent events. `event: state` first (the current state), then `event: progress` on every ' +
  'change, and `event: end` when the run is over, after which the server closes the stream. Every ' +
  '`data:` is a JSON workflow event (`type`, `workflowId`, `status`, `currentStep`, `totalSteps`, ' +
  '`percent`, `message`, `error`, `compensation`, `version`, `at`); `id:` is the `version`, and a reconnect ' +
  'with `Last-Event-ID` (or `?lastEventId=`) gets only what changed after it (204 when the run is over and ' +
  'nothing is left to send). With `?ticket=`, the stream ends with `event: ticket-expired` when the ticket does, ' +
  'and a ticket that has expired is answered 204. Comment lines are heartbeats.'

export const CancelAccepted = Type.Object(
  {
    workflowId: Uuid,
    status: Type.Literal('cancelled'),
    compensation: Nullable(Type.Literal('running')),
  },
  { title: 'WorkflowCancelAccepted', examples: [{ workflowId: EXAMPLE.workflowId, status: 'cancelled', compensation: null }] },
)

export const RetryAccepted = Type.Object(
  { workflowId: Uuid, retryOf: Uuid },
  { title: 'WorkflowRetryAccepted', examples: [{ workflowId: '2e6c9a41-8d3f-4b7e-a5c2-7f1b0d4e9a36', retryOf: EXAMPLE.workflowId }] },
)

export const StreamQuery = StrictObject({
  ticket: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'A stream ticket from the stream-ticket route, for clients that cannot send headers (EventSource)',
    }),
  ),
  lastEventId: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 32,
      pattern: '^[0-9]+$',
      description: 'Resume after this event id, for a new EventSource (a reconnecting one sends Last-Event-ID itself)',
    }),
  ),
})

export const LastEventIdHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({ maxLength: 32, description: 'Sent by a reconnecting EventSource: only events after it are sent' }),
  ),
})

export const StreamTicket = Type.Object(
  {
    ticket: Type.String({ description: 'Opens the one stream it was asked for, as `?ticket=`; not a bearer token' }),
    expiresAt: DateTime,
    url: Type.String({ description: 'The stream URL with the ticket, relative to the API' }),
  },
  {
    title: 'WorkflowStreamTicket',
    examples: [
      {
        ticket: 'v1.eyJydW4iOiIyZTZjOWE0MSJ9.Zk9yIGV4YW1wbGUgb25seQ',
        expiresAt: '2026-11-30T12:01:00.000Z',
        url: `/v1/workflows/${EXAMPLE.workflowId}/events?ticket=v1.eyJydW4iOiIyZTZjOWE0MSJ9.Zk9yIGV4YW1wbGUgb25seQ`,
      },
    ],
  },
)

/** Documentation of the tenant-wide stream. */
export const TENANT_STREAM_DESCRIPTION =
  "Server-sent events of every run of the caller's tenant: `event: progress` on each change of a run, " +
  '`event: end` when a run is over (the stream stays open). `id:` is the change time in milliseconds; a ' +
  'reconnect with `Last-Event-ID` (or `?lastEventId=`) first gets the runs changed since then at their latest ' +
  'state, so a change may come twice (key runs by `workflowId` and `version`). With `?ticket=`, the stream ends ' +
  'with `event: ticket-expired` when the ticket does, and a ticket that has expired is answered 204 (EventSource ' +
  'stops reconnecting). Comment lines are heartbeats.'
