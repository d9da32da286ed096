import { TERMINAL_STATUSES, type InstanceStatus, type StoredFailure, type WorkflowInstanceRow } from '../tables.js'
import { hexArray, type Raw, statement } from './sql.js'

/**
 * The hub's hot paths as single statements (see sql.ts): start, claim, complete an orchestrator
 * work item, claim and complete activities, read an instance. The rare paths (sub-orchestrations,
 * sent events, continue-as-new, termination, id reuse) stay in crud.ts / orchestration.ts.
 */

const terminalList = TERMINAL_STATUSES.map((s) => `'${s}'`).join(', ')

const INSTANCE_COLUMNS = `instance_id as "instanceId", hub, execution_id as "executionId", name, status, input, output,
  custom_status as "customStatus", failure, parent_instance_id as "parentInstanceId", parent_task_id as "parentTaskId",
  history_length as "historyLength", next_work_at as "nextWorkAt", lease_token as "leaseToken",
  created_at as "createdAt", updated_at as "updatedAt", completed_at as "completedAt"`

function instanceRow(row: Record<string, unknown>): WorkflowInstanceRow {
  const failure = row.failure
  return {
    ...(row as unknown as WorkflowInstanceRow),
    historyLength: Number(row.historyLength),
    parentTaskId: row.parentTaskId == null ? null : Number(row.parentTaskId),
    // jsonb arrives parsed from both drivers; a string would be a driver that did not parse it.
    failure: (typeof failure === 'string' ? JSON.parse(failure) : failure) as StoredFailure | null,
  }
}

const GET_INSTANCE = statement(
  'get_instance',
  `select ${INSTANCE_COLUMNS} from workflow_instances where hub = $1::text and instance_id = $2::text`,
)

export async function getInstance(raw: Raw, hub: string, instanceId: string): Promise<WorkflowInstanceRow | undefined> {
  const [row] = await raw.query(GET_INSTANCE, [hub, instanceId])
  return row ? instanceRow(row) : undefined
}

// ---- start ------------------------------------------------------------------------------------

const CREATE_INSTANCE = statement(
  'create_instance',
  `with ins as (
     insert into workflow_instances (hub, instance_id, execution_id, name, status, input, next_work_at, lease_token)
     values ($1::text, $2::text, $3::text, $4::text, 'pending', $5::text,
             case when $8::uuid is null then coalesce($7::timestamptz, now())
                  else now() + $9::int * interval '1 millisecond' end,
             $8::uuid)
     on conflict do nothing
     returning hub, instance_id),
   inbox as (
     insert into workflow_inbox (hub, instance_id, event, visible_at)
     select hub, instance_id, $6::bytea, coalesce($7::timestamptz, now()) from ins
     returning id)
   select id::text as inbox_id from inbox`,
)

/**
 * Creates an instance with its ExecutionStarted event in the inbox, in one statement, leased to
 * this hub when `handOff` is given (never with a later start). Returns the start event's inbox id,
 * or undefined when the id is taken (running, or finished and to be reused): the caller then takes
 * the transactional path, which tells those apart.
 */
export async function createNewInstance(
  raw: Raw,
  instance: {
    hub: string
    instanceId: string
    executionId: string
    name: string
    input: string | null
    startEvent: Uint8Array
    startAt?: Date
  },
  handOff?: HandOff,
): Promise<number | undefined> {
  const [row] = await raw.query<{ inbox_id: string }>(CREATE_INSTANCE, [
    instance.hub,
    instance.instanceId,
    instance.executionId,
    instance.name,
    instance.input,
    instance.startEvent,
    instance.startAt?.toISOString() ?? null,
    handOff?.leaseToken ?? null,
    handOff?.leaseMs ?? 0,
  ])
  return row ? Number(row.inbox_id) : undefined
}

/**
 * Work a statement leases to this hub as it writes it, so the hub hands it to a worker at once
 * instead of writing it as due and claiming it back with another statement (a commit fewer and a
 * round trip less per step). Only when the hub has room for it; otherwise the work is left due
 * for whichever process claims it.
 */
export interface HandOff {
  count: number
  leaseToken: string
  leaseMs: number
}

// ---- claiming orchestrator work ---------------------------------------------------------------

export interface Claim {
  instanceId: string
  executionId: string
  name: string
  status: InstanceStatus
  historyLength: number
  parentInstanceId: string | null
  /** Visible inbox events, oldest first, as of the claim statement's snapshot (see claimInstances). */
  inbox: { id: number; event: Uint8Array }[]
}

const CLAIM_INSTANCES = statement(
  'claim_instances',
  `with claimed as (
     update workflow_instances
        set next_work_at = now() + $3::int * interval '1 millisecond', lease_token = $4::uuid
      where (hub, instance_id) in (
        select hub, instance_id from workflow_instances
         where hub = $1::text and next_work_at <= now()
         order by next_work_at
         limit $2::int
         for update skip locked)
     returning instance_id, execution_id, name, status, history_length, parent_instance_id)
   select c.instance_id, c.execution_id, c.name, c.status, c.history_length, c.parent_instance_id,
          b.id::text as inbox_id, b.event
     from claimed c
     left join workflow_inbox b on b.hub = $1::text and b.instance_id = c.instance_id and b.visible_at <= now()
    order by c.instance_id, b.id`,
)

/**
 * Leases up to `limit` due instances and reads their visible inbox in the same statement.
 *
 * The instance columns are the row as leased (the latest version), but the inbox is read from the
 * statement's snapshot, which may predate a completion another process committed just before the
 * claim (its lease had lapsed). Such a completion always grows `history_length` or changes the
 * execution, so the inbox read here is only trusted when the caller knows the history up to exactly
 * this execution and length from its own last commit; otherwise it reads both again (loadFresh).
 */
export async function claimInstances(
  raw: Raw,
  claim: { hub: string; limit: number; leaseMs: number; leaseToken: string },
): Promise<Claim[]> {
  const rows = await raw.query<{
    instance_id: string
    execution_id: string
    name: string
    status: InstanceStatus
    history_length: number
    parent_instance_id: string | null
    inbox_id: string | null
    event: Uint8Array | null
  }>(CLAIM_INSTANCES, [claim.hub, claim.limit, claim.leaseMs, claim.leaseToken])
  const out: Claim[] = []
  let last: Claim | undefined
  for (const r of rows) {
    if (!last || last.instanceId !== r.instance_id) {
      last = {
        instanceId: r.instance_id,
        executionId: r.execution_id,
        name: r.name,
        status: r.status,
        historyLength: Number(r.history_length),
        parentInstanceId: r.parent_instance_id,
        inbox: [],
      }
      out.push(last)
    }
    if (r.inbox_id !== null && r.event) last.inbox.push({ id: Number(r.inbox_id), event: r.event })
  }
  return out
}

const LOAD_HISTORIES = statement(
  'load_histories',
  `select instance_id, event from workflow_history
    where hub = $1::text and instance_id = any($2::text[])
    order by instance_id, seq`,
)

const LOAD_INBOXES = statement(
  'load_inboxes',
  `select id::text as id, instance_id, event from workflow_inbox
    where hub = $1::text and instance_id = any($2::text[]) and visible_at <= now()
    order by id`,
)

/** History and visible inbox of leased instances, each read by a statement that starts after the claim. */
export async function loadFresh(
  raw: Raw,
  hub: string,
  instanceIds: string[],
): Promise<{ histories: Map<string, Uint8Array[]>; inboxes: Map<string, { id: number; event: Uint8Array }[]> }> {
  const histories = new Map<string, Uint8Array[]>(instanceIds.map((id) => [id, []]))
  const inboxes = new Map<string, { id: number; event: Uint8Array }[]>(instanceIds.map((id) => [id, []]))
  const [historyRows, inboxRows] = await Promise.all([
    raw.query<{ instance_id: string; event: Uint8Array }>(LOAD_HISTORIES, [hub, instanceIds]),
    raw.query<{ id: string; instance_id: string; event: Uint8Array }>(LOAD_INBOXES, [hub, instanceIds]),
  ])
  for (const row of historyRows) histories.get(row.instance_id)?.push(row.event)
  for (const row of inboxRows) inboxes.get(row.instance_id)?.push({ id: Number(row.id), event: row.event })
  return { histories, inboxes }
}

// ---- completing orchestrator work -------------------------------------------------------------

export interface Completion {
  hub: string
  instanceId: string
  leaseToken: string
  /** Events appended to the history, in order. */
  history: Uint8Array[]
  /** Inbox rows the work item consumed. */
  inboxIds: number[]
  customStatus: string | null
  activities: { taskId: number; name: string; input: string | null }[]
  /** The instance's own timers: inbox events visible from their fire time. */
  timers: { event: Uint8Array; visibleAt: Date }[]
  /** The first `count` activities are leased to this hub at once (it has room to hand them out). */
  handOff?: HandOff
  /** Set when the work item ends the instance (completed or failed; no parent, no children to stop). */
  final?: { status: InstanceStatus; output: string | null; failure: StoredFailure | null }
}

/**
 * Commits an orchestrator work item in one statement: the lease is checked and released on the
 * instance row (which also locks it), the history grows, consumed inbox rows go, activities and
 * timers are queued, and the instance is due again at its earliest remaining inbox event.
 *
 * Every other writer of an instance's inbox updates the instance row in the same transaction. So
 * if the row changed between this statement's snapshot and its lock (an event was delivered
 * meanwhile: its `xmin` differs), the inbox as the snapshot shows it may be missing that event and
 * the instance is made due at once instead; a claim with nothing visible just hands it back.
 */
const COMPLETE_ORCHESTRATION = statement(
  'complete_orchestration',
  `with snap as (
     select xmin as version from workflow_instances where hub = $1::text and instance_id = $2::text),
   own as (
     select decode(u.e, 'hex') as event, u.v as visible_at
       from unnest($7::text[], $8::timestamptz[]) as u(e, v)),
   inst as (
     update workflow_instances i
        set lease_token = null,
            status = case when $9::text is not null then $9::text
                          when i.status = 'pending' then 'running' else i.status end,
            custom_status = $4::text,
            history_length = i.history_length + cardinality($5::text[]),
            output = case when $9::text is not null then $10::text else i.output end,
            failure = case when $9::text is not null then $11::text::jsonb else i.failure end,
            completed_at = case when $9::text is not null then now() else i.completed_at end,
            updated_at = now(),
            next_work_at = case
              when $9::text is not null then null
              when not (i.xmin = (select version from snap)) then now()
              else least(
                (select min(b.visible_at) from workflow_inbox b
                  where b.hub = $1::text and b.instance_id = $2::text and b.id <> all($6::bigint[])),
                (select min(visible_at) from own))
              end
      where i.hub = $1::text and i.instance_id = $2::text and i.lease_token = $3::uuid
      returning ${INSTANCE_COLUMNS}),
   consumed as (
     delete from workflow_inbox
      where hub = $1::text and instance_id = $2::text and (id = any($6::bigint[]) or $9::text is not null)
        and exists (select 1 from inst)
     returning id),
   dropped as (
     delete from workflow_activity_tasks
      where hub = $1::text and instance_id = $2::text and $9::text is not null and exists (select 1 from inst)
     returning id),
   hist as (
     insert into workflow_history (hub, instance_id, seq, event)
     select $1::text, $2::text, inst."historyLength" - cardinality($5::text[]) + u.ord, decode(u.e, 'hex')
       from inst, unnest($5::text[]) with ordinality as u(e, ord)
     returning seq),
   acts as (
     insert into workflow_activity_tasks (hub, instance_id, execution_id, task_id, name, input,
                                          lease_token, next_attempt_at, attempts)
     select $1::text, $2::text, inst."executionId", t.task_id, t.name, t.input,
            case when t.ord <= $15::int then $16::uuid end,
            case when t.ord <= $15::int then now() + $17::int * interval '1 millisecond' else inst."createdAt" end,
            case when t.ord <= $15::int then 1 else 0 end
       from inst, unnest($12::int[], $13::text[], $14::text[]) with ordinality as t(task_id, name, input, ord)
     on conflict do nothing
     returning id, task_id, lease_token),
   timers as (
     insert into workflow_inbox (hub, instance_id, event, visible_at)
     select $1::text, $2::text, own.event, own.visible_at from inst, own
     returning id)
   select inst.*,
          array(select a.task_id || ':' || a.id from acts a where a.lease_token is not null) as leased
     from inst`,
)

/**
 * The instance as committed and the activity tasks it leased at once (task id → row id), or
 * undefined when the lease was lost (nothing was written).
 */
export async function completeOrchestration(
  raw: Raw,
  c: Completion,
): Promise<{ row: WorkflowInstanceRow; leased: Map<number, string> } | undefined> {
  const [row] = await raw.query(COMPLETE_ORCHESTRATION, [
    c.hub,
    c.instanceId,
    c.leaseToken,
    c.customStatus,
    hexArray(c.history),
    c.inboxIds.map(String),
    hexArray(c.timers.map((t) => t.event)),
    c.timers.map((t) => t.visibleAt.toISOString()),
    c.final?.status ?? null,
    c.final?.output ?? null,
    c.final?.failure ? JSON.stringify(c.final.failure) : null,
    c.activities.map((a) => a.taskId),
    c.activities.map((a) => a.name),
    c.activities.map((a) => a.input),
    c.handOff?.count ?? 0,
    c.handOff?.leaseToken ?? null,
    c.handOff?.leaseMs ?? 0,
  ])
  if (!row) return undefined
  const leased = new Map<number, string>()
  for (const pair of (row.leased as string[] | null) ?? []) {
    const colon = pair.indexOf(':')
    leased.set(Number(pair.slice(0, colon)), pair.slice(colon + 1))
  }
  return { row: instanceRow(row), leased }
}

// ---- activities -------------------------------------------------------------------------------

export interface ClaimedActivity {
  id: string
  instanceId: string
  executionId: string
  taskId: number
  name: string
  input: string | null
}

const CLAIM_ACTIVITIES = statement(
  'claim_activities',
  `update workflow_activity_tasks
      set attempts = attempts + 1, next_attempt_at = now() + $3::int * interval '1 millisecond', lease_token = $4::uuid
    where id in (
      select id from workflow_activity_tasks
       where hub = $1::text and next_attempt_at <= now()
       order by next_attempt_at
       limit $2::int
       for update skip locked)
   returning id::text as id, instance_id as "instanceId", execution_id as "executionId", task_id as "taskId", name, input`,
)

export async function claimActivities(
  raw: Raw,
  claim: { hub: string; limit: number; leaseMs: number; leaseToken: string },
): Promise<ClaimedActivity[]> {
  const rows = await raw.query<ClaimedActivity & Record<string, unknown>>(CLAIM_ACTIVITIES, [
    claim.hub,
    claim.limit,
    claim.leaseMs,
    claim.leaseToken,
  ])
  return rows.map((r) => ({ ...r, taskId: Number(r.taskId) }))
}

const COMPLETE_ACTIVITY = statement(
  'complete_activity',
  `with task as (
     delete from workflow_activity_tasks where id = $1::uuid and lease_token = $2::uuid
     returning hub, instance_id, execution_id),
   target as (
     update workflow_instances i
        set next_work_at = case when i.lease_token is not null then i.next_work_at
                                when $4::uuid is not null then now() + $5::int * interval '1 millisecond'
                                else i.created_at end,
            lease_token = coalesce(i.lease_token, $4::uuid),
            updated_at = now()
       from task
      where i.hub = task.hub and i.instance_id = task.instance_id and i.execution_id = task.execution_id
        and i.status not in (${terminalList})
     returning i.hub, i.instance_id, i.execution_id, i.name, i.status, i.history_length, i.parent_instance_id,
               coalesce(i.lease_token = $4::uuid, false) as leased),
   delivered as (
     insert into workflow_inbox (hub, instance_id, event)
     select hub, instance_id, $3::bytea from target
     returning id),
   waiting as (
     select b.id, b.event from workflow_inbox b join target t on b.hub = t.hub and b.instance_id = t.instance_id
      where t.leased and b.visible_at <= now())
   select (select count(*) from task)::int as held,
          (select id::text from delivered) as delivered_id,
          t.leased, t.instance_id, t.execution_id, t.name, t.status, t.history_length, t.parent_instance_id,
          array(select w.id::text from waiting w order by w.id) as waiting_ids,
          array(select encode(w.event, 'hex') from waiting w order by w.id) as waiting_events
     from (select 1) one left join target t on true`,
)

export interface ActivityOutcome {
  /** The lease held: the result is applied (false: a late answer, nothing written). */
  held: boolean
  /** The result entered the inbox of the execution that scheduled it (it still runs). */
  delivered: boolean
  /** The instance, leased to this hub with its visible inbox, when a hand-off was asked for and it was free. */
  claim?: Claim
}

/**
 * Applies an activity result exactly once, in one statement: the task row is deleted only if this
 * claim still holds its lease, and only then does the result enter the inbox of the execution that
 * scheduled it (if that execution still runs). With `handOff`, the instance is leased to this hub
 * too if nobody holds it, and comes back as a claim (its inbox read as claimInstances reads it).
 */
export async function completeActivity(
  raw: Raw,
  completion: { id: string; leaseToken: string; event: Uint8Array },
  handOff?: HandOff,
): Promise<ActivityOutcome> {
  const [row] = await raw.query<{
    held: number
    delivered_id: string | null
    leased: boolean | null
    instance_id: string | null
    execution_id: string | null
    name: string | null
    status: InstanceStatus | null
    history_length: number | null
    parent_instance_id: string | null
    waiting_ids: string[]
    waiting_events: string[]
  }>(COMPLETE_ACTIVITY, [
    completion.id,
    completion.leaseToken,
    completion.event,
    handOff?.leaseToken ?? null,
    handOff?.leaseMs ?? 0,
  ])
  const held = Number(row?.held ?? 0) > 0
  const deliveredId = row?.delivered_id
  if (!row || deliveredId == null) return { held, delivered: false }
  if (!handOff || !row.leased) return { held, delivered: true }
  // The statement cannot see its own inbox row: it is added to what was already waiting.
  const inbox = row.waiting_ids.map((id, i) => ({ id: Number(id), event: Buffer.from(row.waiting_events[i]!, 'hex') }))
  inbox.push({ id: Number(deliveredId), event: Buffer.from(completion.event) })
  return {
    held,
    delivered: true,
    claim: {
      instanceId: row.instance_id!,
      executionId: row.execution_id!,
      name: row.name!,
      status: row.status!,
      historyLength: Number(row.history_length),
      parentInstanceId: row.parent_instance_id,
      inbox,
    },
  }
}

// ---- handing back -----------------------------------------------------------------------------

const RELEASE_INSTANCE = statement(
  'release_instance',
  `with snap as (
     select xmin as version from workflow_instances where hub = $1::text and instance_id = $2::text)
   update workflow_instances i
      set lease_token = null,
          next_work_at = case when $4::boolean or not (i.xmin = (select version from snap)) then now()
            else (select min(visible_at) from workflow_inbox b where b.hub = $1::text and b.instance_id = $2::text) end
    where i.hub = $1::text and i.instance_id = $2::text and i.lease_token = $3::uuid`,
)

/**
 * Hands an instance back. `retry`: its work item never reached a worker, so it is due at once;
 * otherwise (the claim found nothing to do) it is due at its earliest inbox event, if any (or at
 * once if the row changed after the statement's snapshot, as in COMPLETE_ORCHESTRATION).
 */
export async function releaseInstance(
  raw: Raw,
  hub: string,
  instanceId: string,
  leaseToken: string,
  retry: boolean,
): Promise<void> {
  await raw.query(RELEASE_INSTANCE, [hub, instanceId, leaseToken, retry])
}
