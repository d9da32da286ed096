import Type from 'typebox'
import { Page, PageQueryProperties, Uuid } from '../../platform/http/schemas.js'


const DateTime = Type.String({ format: 'date-time' })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const RunStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('running'),
  Type.Literal('completed'),
  Type.Literal('failed'),
  Type.Literal('cancelled'),
])
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

export const ListQuery = Type.Object({
  ...PageQueryProperties,
  sort: Type.Optional(
    Type.String({
      maxLength: 64,
      pattern: '^(createdAt|updatedAt)(:(asc|desc))?$',
      description: 'createdAt:desc by default',
    }),
  ),
  type: Type.Optional(Name),
  status: Type.Optional(RunStatus),
  resourceKind: Type.Optional(Name),
  resourceId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  startedBy: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
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
  error: Nullable(RunError),
  inputSummary: Nullable(Type.String()),
  resultSummary: Nullable(Type.String()),
  parentId: Nullable(Uuid),
  retryOf: Nullable(Uuid),
  compensation: Nullable(
    Type.Union([Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed')], {
      description: 'Of a cancelled run whose type declares a compensation',
    }),
  ),
  createdAt: DateTime,
  updatedAt: DateTime,
  startedAt: Nullable(DateTime),
  finishedAt: Nullable(DateTime),
}

export const WorkflowRun = Type.Object(runProperties, { title: 'WorkflowRun' })

export const WorkflowRunStep = Type.Object(
  {
    step: Type.Integer({ minimum: 1 }),
    message: Nullable(Type.String()),
    status: Type.Union([
      Type.Literal('running'),
      Type.Literal('completed'),
      Type.Literal('failed'),
      Type.Literal('cancelled'),
    ]),
    startedAt: DateTime,
    finishedAt: Nullable(DateTime),
  },
  { title: 'WorkflowRunStep' },
)

export const WorkflowRunDetail = Type.Object(
  {
    ...runProperties,
    result: Type.Unknown({ description: "The workflow's output (null while it runs, or when too large to keep)" }),
    steps: Type.Array(WorkflowRunStep),
  },
  { title: 'WorkflowRunDetail' },
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
  { title: 'WorkflowCancelAccepted' },
)

export const RetryAccepted = Type.Object({ workflowId: Uuid, retryOf: Uuid }, { title: 'WorkflowRetryAccepted' })

export const StreamQuery = Type.Object({
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
  { title: 'WorkflowStreamTicket' },
)

/** Documentation of the tenant-wide stream. */
export const TENANT_STREAM_DESCRIPTION =
  "Server-sent events of every run of the caller's tenant: `event: progress` on each change of a run, " +
  '`event: end` when a run is over (the stream stays open). `id:` is the change time in milliseconds; a ' +
  'reconnect with `Last-Event-ID` (or `?lastEventId=`) first gets the runs changed since then at their latest ' +
  'state, so a change may come twice (key runs by `workflowId` and `version`). With `?ticket=`, the stream ends ' +
  'with `event: ticket-expired` when the ticket does, and a ticket that has expired is answered 204 (EventSource ' +
  'stops reconnecting). Comment lines are heartbeats.'
