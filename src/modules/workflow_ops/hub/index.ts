import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { Server as NetServer, Socket } from 'node:net'
import * as grpc from '@grpc/grpc-js'
import type { Logger } from 'pino'
import { type DatabaseHandle, transaction } from '../../../platform/db/client.js'
import { type InstanceStatus, TERMINAL_STATUSES, type WorkflowInstanceRow } from '../tables.js'
import * as crud from './crud.js'
import * as hot from './hot.js'
import { type Listener, listen } from '../../../platform/db/listen.js'
import { applyOrchestratorResponse, encode, fastCompletion, type OrchestratorLease, startFirst } from './orchestration.js'
import {
  decodeEvent,
  Empty,
  executionResumedEvent,
  executionStartedEvent,
  executionSuspendedEvent,
  executionTerminatedEvent,
  eventRaisedEvent,
  failureDetails,
  type HistoryEvent,
  type ITaskHubSidecarServiceServer,
  orchestrationInstance,
  orchestratorStartedEvent,
  pb,
  Status,
  stringValue,
  TaskHubSidecarServiceService,
  taskCompletedEvent,
  taskFailedEvent,
  timestamp,
} from './proto.js'
import { rawExecutor } from './sql.js'
import { createNotifier, WORKFLOW_CHANNEL } from './notifier.js'

/**
 * The embedded durable task hub: a gRPC server on loopback that speaks the Durable Task sidecar
 * protocol (`TaskHubSidecarService`) to the Dapr SDK's worker and client, and keeps instances,
 * histories, inbox events, activity tasks and timers in PostgreSQL or PGlite. The SDK replays the
 * workflows; the hub only stores, leases and hands out work, exactly as the Dapr sidecar would.
 *
 * Several processes may run a hub on one database: work is claimed with `FOR UPDATE SKIP LOCKED`
 * under a lease that the holder renews; a crashed holder's work is claimed again once its lease
 * lapses, and a late answer from a lost lease is dropped, so every result is applied once.
 */
export interface HubTuning {
  /** Fallback poll: timers of other processes, expired leases, notifications missed while reconnecting. */
  pollIntervalMs: number
  /** How long a claim is exclusive without renewal; renewed every third of it. */
  leaseMs: number
  /** Most work items claimed in one statement. */
  batchSize: number
  /**
   * Work items outstanding per worker stream. The SDK worker runs 10 at a time and queues 100
   * more, silently dropping anything past that, so this must stay below 110.
   */
  maxInFlightPerStream: number
  /** On stop: how long in-flight work items may take to finish before their leases are handed back. */
  drainTimeoutMs: number
}

const DEFAULT_TUNING: HubTuning = {
  pollIntervalMs: 1_000,
  leaseMs: 30_000,
  batchSize: 50,
  maxInFlightPerStream: 60,
  drainTimeoutMs: 10_000,
}

/** Waiters poll this many poll intervals apart while the listener is up. */
const WAITER_POLL_FACTOR = 10
const MAX_ID_LENGTH = 256
const MAX_NAME_LENGTH = 256
const PURGE_LIMIT = 10_000

export interface TaskHubOptions {
  database: DatabaseHandle
  log: Logger
  /** Namespace of this hub's rows: hubs of different names on one database never see each other's work. */
  name?: string
  tuning?: Partial<HubTuning>
  /** The SDK's `dapr-api-token`; generated when absent. A restarted hub keeps its predecessor's. */
  token?: string
  /** Loopback port to listen on; any free one when absent. A restarted hub takes its predecessor's. */
  port?: number
}

export interface TaskHub {
  readonly name: string
  /** `127.0.0.1:<port>`, for the SDK's `daprHost`/`daprPort`. */
  readonly host: string
  readonly port: number
  /** Sent by the SDK as `dapr-api-token`; nothing else on the machine can drive the hub without it. */
  readonly token: string
  /** Stops handing out work and waits (up to drainTimeoutMs) for work items in flight to be answered. */
  quiesce(): Promise<void>
  /** Hands back every lease still held, ends the streams and closes the server. */
  stop(): Promise<void>
}

class HubError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message)
  }
}

interface WorkStream {
  call: grpc.ServerWritableStream<unknown, unknown>
  inFlight: number
  open: boolean
}

interface HubLease extends OrchestratorLease {
  /** The status when claimed: a different one after the answer is announced to waiters. */
  claimedStatus: InstanceStatus
  parentInstanceId: string | null
  /** The committed history sent as `pastEvents`. */
  pastEvents: HistoryEvent[]
}

interface HeldOrchestration {
  lease: HubLease
  stream: WorkStream
  /** Claimed again by this process after its lease lapsed; sent once the first answer is in. */
  next?: HubLease
}

/**
 * The history of an instance as this process last committed it. A claim uses it instead of reading
 * the history again when the claimed row has the same execution and history length: only the lease
 * holder appends history (always at least one event), and a new execution (continue-as-new, an id
 * reused after purge) has a new execution id, so equal (execution, length) means equal history.
 */
interface CachedHistory {
  executionId: string
  events: HistoryEvent[]
}

/** Instances whose history is kept in memory between work items (oldest dropped first). */
const HISTORY_CACHE_MAX = 5_000

/** What a waiter learns: the committed row (from this process's own commit) or, from a notification, maybe the status. */
interface InstanceSignal {
  row?: WorkflowInstanceRow
  status?: InstanceStatus
}

interface HeldActivity {
  id: string
  leaseToken: string
  stream: WorkStream
}

function activityKey(instanceId: string, taskId: number): string {
  return `${instanceId}\u0000${taskId}`
}

function checkId(value: string, what: string, max = MAX_ID_LENGTH): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (value.length === 0 || value.length > max || /[\u0000-\u001f]/.test(value)) {
    throw new HubError(grpc.status.INVALID_ARGUMENT, `${what} must be 1-${max} printable characters`)
  }
  return value
}

const STATUS_TO_PROTO: Record<InstanceStatus, number> = {
  pending: Status.ORCHESTRATION_STATUS_PENDING,
  running: Status.ORCHESTRATION_STATUS_RUNNING,
  suspended: Status.ORCHESTRATION_STATUS_SUSPENDED,
  completed: Status.ORCHESTRATION_STATUS_COMPLETED,
  failed: Status.ORCHESTRATION_STATUS_FAILED,
  terminated: Status.ORCHESTRATION_STATUS_TERMINATED,
}

const PROTO_TO_STATUS = new Map<number, InstanceStatus>(
  Object.entries(STATUS_TO_PROTO).map(([k, v]) => [v, k as InstanceStatus]),
)

function instanceResponse(
  row: WorkflowInstanceRow | undefined,
  withPayloads: boolean,
): InstanceType<typeof pb.GetInstanceResponse> {
  const response = new pb.GetInstanceResponse()
  if (!row) {
    response.setExists(false)
    return response
  }
  const state = new pb.OrchestrationState()
  state.setInstanceid(row.instanceId)
  state.setName(row.name)
  state.setOrchestrationstatus(STATUS_TO_PROTO[row.status] as never)
  state.setCreatedtimestamp(timestamp(row.createdAt))
  state.setLastupdatedtimestamp(timestamp(row.updatedAt))
  if (withPayloads) {
    state.setInput(stringValue(row.input))
    state.setOutput(stringValue(row.output))
    state.setCustomstatus(stringValue(row.customStatus))
  }
  if (row.failure) state.setFailuredetails(failureDetails(row.failure))
  response.setExists(true)
  response.setOrchestrationstate(state)
  return response
}

/**
 * grpc-js turns Nagle's algorithm off on the sockets its client opens but leaves it on for those its
 * server accepts, so a small answer or work item could wait for the SDK's delayed acknowledgement
 * (up to 40 ms on Linux) before leaving: seen as single runs taking 110 ms instead of 15. grpc-js
 * (pinned exactly) keeps its HTTP/2 servers in a private map; if that moves, the hub still works,
 * slower, and says so.
 */
function disableNagle(server: grpc.Server, log: Logger): void {
  const listeners = (server as unknown as { http2Servers?: unknown }).http2Servers
  if (!(listeners instanceof Map)) {
    log.warn('cannot reach the gRPC server sockets to turn off Nagle; small answers may be delayed')
    return
  }
  for (const listener of listeners.keys() as Iterable<NetServer>) {
    listener.on('connection', (socket: Socket) => socket.setNoDelay(true))
  }
}

export async function startTaskHub(options: TaskHubOptions): Promise<TaskHub> {
  const { database } = options
  const db = database.db
  const raw = rawExecutor(database)
  const hub = options.name ?? 'default'
  const tuning: HubTuning = { ...DEFAULT_TUNING, ...options.tuning }
  const log = options.log.child({ component: 'workflow-hub', hub })
  if (tuning.maxInFlightPerStream > 100) throw new Error('maxInFlightPerStream must stay at or below 100')
  checkId(hub, 'hub name', 64)
  const token = options.token ?? randomBytes(24).toString('base64url')
  const tokenBytes = Buffer.from(token)

  let state: 'running' | 'quiescing' | 'stopped' = 'running'
  const streams: WorkStream[] = []
  const orchestrations = new Map<string, HeldOrchestration>()
  const activities = new Map<string, HeldActivity>()
  const waiters = new Map<string, Set<(signal: InstanceSignal) => void>>()
  const histories = new Map<string, CachedHistory>()
  const notifier = createNotifier({ raw, hub, log })
  /**
   * Work may be waiting in the database for room on a worker stream (this process wrote some as
   * due, or a claim pass could not take all there was). New workflows then queue behind it instead
   * of taking freed room directly: they start in the order they came.
   */
  let backlog = false
  const releasing = new Set<Promise<void>>()
  let loop: Promise<void> | undefined
  let wakeAgain = false
  let timerWake: NodeJS.Timeout | undefined
  let timerWakeAt = Number.POSITIVE_INFINITY
  let waiterPollMs = tuning.pollIntervalMs

  // ---- wake-ups -------------------------------------------------------------------------------

  function wake(): void {
    if (state !== 'running') return
    wakeAgain = true
    if (loop) return
    loop = runLoop().finally(() => {
      loop = undefined
      if (wakeAgain) wake()
    })
  }

  /**
   * Under load every answer wakes the loop; a short pause between passes lets answers pile up so
   * one claim serves several of them instead of one claim (four statements) per answer.
   */
  const COALESCE_MS = 2

  /** Timers of this process fire on time; everyone else's are caught by the poll. */
  function wakeAt(at: Date | null): void {
    if (!at || state !== 'running') return
    const inMs = at.getTime() - Date.now()
    if (inMs <= 0) return wake()
    if (inMs >= tuning.pollIntervalMs || at.getTime() >= timerWakeAt) return
    clearTimeout(timerWake)
    timerWakeAt = at.getTime()
    timerWake = setTimeout(() => {
      timerWakeAt = Number.POSITIVE_INFINITY
      wake()
    }, inMs + 2)
    timerWake.unref()
  }

  function signalInstance(instanceId: string, signal: InstanceSignal = {}): void {
    for (const resolve of waiters.get(instanceId) ?? []) resolve(signal)
  }

  /** Whatever committed while nobody listened: due work, and instances that may have changed. */
  function onListenerConnected(): void {
    wake()
    for (const instanceId of waiters.keys()) signalInstance(instanceId)
  }

  /** Other processes' changes (this hub's own were acted on when they committed). */
  function onNotify(payload: string): void {
    const note = notifier.parse(payload)
    if (!note) return
    if (note.kind === 'work') return wake()
    signalInstance(note.instanceId, note.status ? { status: note.status } : {})
  }

  function cacheHistory(instanceId: string, executionId: string, events: HistoryEvent[]): void {
    histories.delete(instanceId)
    histories.set(instanceId, { executionId, events })
    if (histories.size > HISTORY_CACHE_MAX) histories.delete(histories.keys().next().value!)
  }

  // ---- handing out work -----------------------------------------------------------------------

  function openStreams(): WorkStream[] {
    return streams.filter((s) => s.open)
  }

  function capacity(): number {
    return openStreams().reduce((n, s) => n + Math.max(0, tuning.maxInFlightPerStream - s.inFlight), 0)
  }

  function pickStream(): WorkStream | undefined {
    let best: WorkStream | undefined
    for (const s of openStreams()) {
      if (s.inFlight < tuning.maxInFlightPerStream && (!best || s.inFlight < best.inFlight)) best = s
    }
    return best
  }

  /**
   * Writes a work item to a stream. `reserved`: its room was taken by reserve() beforehand (and is
   * given back here if the write fails); otherwise the item takes room now.
   */
  function send(stream: WorkStream, item: InstanceType<typeof pb.WorkItem>, reserved = false): boolean {
    if (stream.open) {
      try {
        stream.call.write(item)
        if (!reserved) stream.inFlight++
        return true
      } catch (err) {
        log.warn({ err }, 'writing a work item failed')
      }
    }
    if (reserved) stream.inFlight--
    return false
  }

  /**
   * Room for up to `count` work items this hub is about to write and hand out at once (see
   * hot.HandOff), taken now so that nothing else fills it meanwhile. Each stream given back must be
   * used by send(…, true) or returned with unreserve().
   */
  function reserve(count: number): WorkStream[] {
    const taken: WorkStream[] = []
    if (state !== 'running') return taken
    while (taken.length < count) {
      const stream = pickStream()
      if (!stream) break
      stream.inFlight++
      taken.push(stream)
    }
    return taken
  }

  function unreserve(streams: WorkStream[]): void {
    for (const stream of streams) stream.inFlight--
  }

  /**
   * Runs a write that may lease up to `count` of the work it creates to this hub (hot.HandOff),
   * with room reserved for that work first; the room is given back if the write fails. What the
   * caller does not use of `room` it hands to handOutInstances or gives back with unreserve().
   */
  async function writeWithRoom<T>(
    count: number,
    write: (offer: hot.HandOff | undefined) => Promise<T>,
  ): Promise<{ result: T; room: WorkStream[]; offer: hot.HandOff | undefined }> {
    const room = reserve(count)
    const offer = room.length > 0 ? { count: room.length, leaseToken: randomUUID(), leaseMs: tuning.leaseMs } : undefined
    try {
      return { result: await write(offer), room, offer }
    } catch (err) {
      unreserve(room)
      throw err
    }
  }

  function orchestratorItem(lease: HubLease): InstanceType<typeof pb.WorkItem> {
    const request = new pb.OrchestratorRequest()
    request.setInstanceid(lease.instanceId)
    request.setExecutionid(stringValue(lease.executionId))
    // A copy: the cached list grows after this item is answered.
    request.setPasteventsList(lease.pastEvents.slice())
    request.setNeweventsList(lease.newEvents)
    const item = new pb.WorkItem()
    item.setOrchestratorrequest(request)
    return item
  }

  async function dispatchOrchestrations(limit: number): Promise<number> {
    if (limit <= 0) return 0
    const leaseToken = randomUUID()
    const claimed = await hot.claimInstances(raw, { hub, limit, leaseMs: tuning.leaseMs, leaseToken })
    if (claimed.length > 0) await handOutInstances(claimed, leaseToken)
    return claimed.length
  }

  /**
   * Sends leased instances to workers as orchestrator work items. `reserved`: room taken for them
   * beforehand, one stream per claim in order (what is not used is given back).
   */
  async function handOutInstances(claimed: hot.Claim[], leaseToken: string, reserved: WorkStream[] = []): Promise<void> {
    const room = [...reserved]
    try {
      // Instances whose history this process does not hold as committed: history and inbox are read
      // again, after the claim (see hot.claimInstances on why the claim's own inbox is not enough).
      const misses = claimed.filter((c) => {
        const cached = histories.get(c.instanceId)
        return !cached || cached.executionId !== c.executionId || cached.events.length !== c.historyLength
      })
      const fresh = misses.length > 0 ? await hot.loadFresh(raw, hub, misses.map((c) => c.instanceId)) : undefined
      const now = new Date()
      for (const claim of claimed) {
        const stored = fresh?.histories.get(claim.instanceId)
        const pastEvents = stored ? stored.map(decodeEvent) : histories.get(claim.instanceId)!.events
        const inbox = stored ? (fresh!.inboxes.get(claim.instanceId) ?? []) : claim.inbox
        const reservedStream = room.shift()
        if (inbox.length === 0 || TERMINAL_STATUSES.includes(claim.status)) {
          // Due only by an expired lease, or a finished instance: nothing for a worker to do.
          if (reservedStream) unreserve([reservedStream])
          await hot.releaseInstance(raw, hub, claim.instanceId, leaseToken, false)
          continue
        }
        const lease: HubLease = {
          instanceId: claim.instanceId,
          executionId: claim.executionId,
          name: claim.name,
          leaseToken,
          newEvents: [orchestratorStartedEvent(now), ...startFirst(inbox.map((e) => decodeEvent(e.event)))],
          inboxIds: inbox.map((e) => e.id),
          claimedStatus: claim.status,
          parentInstanceId: claim.parentInstanceId,
          pastEvents,
        }
        const held = orchestrations.get(claim.instanceId)
        if (held) {
          // Our own earlier item for it is still with the worker (its lease lapsed): its answer will be
          // refused by the lease check, and this one goes out when it arrives.
          if (reservedStream) unreserve([reservedStream])
          held.next = lease
          continue
        }
        const stream = reservedStream ?? pickStream()
        if (!stream || !send(stream, orchestratorItem(lease), reservedStream !== undefined)) {
          await hot.releaseInstance(raw, hub, claim.instanceId, leaseToken, true)
          continue
        }
        orchestrations.set(claim.instanceId, { lease, stream })
      }
    } finally {
      unreserve(room)
    }
  }

  async function dispatchActivities(limit: number): Promise<number> {
    if (limit <= 0) return 0
    const leaseToken = randomUUID()
    const claimed = await hot.claimActivities(raw, { hub, limit, leaseMs: tuning.leaseMs, leaseToken })
    for (const task of claimed) await handOutActivity(task, leaseToken)
    return claimed.length
  }

  /** Sends a leased activity task to a worker (on `reserved` room when given), or hands it back. */
  async function handOutActivity(task: hot.ClaimedActivity, leaseToken: string, reserved?: WorkStream): Promise<void> {
    const request = new pb.ActivityRequest()
    request.setName(task.name)
    request.setInput(stringValue(task.input))
    request.setOrchestrationinstance(orchestrationInstance(task.instanceId, task.executionId))
    request.setTaskid(task.taskId)
    const item = new pb.WorkItem()
    item.setActivityrequest(request)
    const stream = reserved ?? pickStream()
    if (!stream || !send(stream, item, reserved !== undefined)) {
      await crud.releaseActivity(db, task.id, leaseToken)
      return
    }
    activities.set(activityKey(task.instanceId, task.taskId), { id: task.id, leaseToken, stream })
  }

  /** Which kind of work the next claim pass serves first. */
  let activitiesFirst = false

  /** One claim pass; returns true when a batch came back full (more may be waiting). */
  async function dispatchOnce(): Promise<boolean> {
    // The two kinds take turns at being served first: when room frees one slot at a time (a busy
    // hub), serving one kind always first would leave the other waiting as long as the first has any.
    activitiesFirst = !activitiesFirst
    const kinds = activitiesFirst ? [dispatchActivities, dispatchOrchestrations] : [dispatchOrchestrations, dispatchActivities]
    let more = false
    let drained = true
    for (const dispatch of kinds) {
      const limit = Math.min(tuning.batchSize, capacity())
      if (limit === 0) drained = false
      else if ((await dispatch(limit)) === limit) more = true
    }
    if (drained && !more) backlog = false
    return more
  }

  async function runLoop(): Promise<void> {
    let first = true
    while (wakeAgain && state === 'running') {
      if (!first) await new Promise((resolve) => setTimeout(resolve, COALESCE_MS))
      first = false
      wakeAgain = false
      try {
        while (state === 'running' && capacity() > 0 && (await dispatchOnce()));
      } catch (err) {
        log.warn({ err }, 'handing out workflow work failed; retrying on the next poll')
      }
    }
  }

  // ---- answers from the worker ----------------------------------------------------------------

  async function completeOrchestration(response: InstanceType<typeof pb.OrchestratorResponse>): Promise<void> {
    const instanceId = response.getInstanceid()
    const held = orchestrations.get(instanceId)
    if (!held) {
      log.debug({ instanceId }, 'answer for an orchestrator work item this hub does not hold; dropped')
      return
    }
    held.stream.inFlight--
    if (held.next) {
      const lease = held.next
      const stream = pickStream() ?? held.stream
      if (send(stream, orchestratorItem(lease))) orchestrations.set(instanceId, { lease, stream })
      else {
        orchestrations.delete(instanceId)
        await hot.releaseInstance(raw, hub, instanceId, lease.leaseToken, true)
      }
    } else {
      orchestrations.delete(instanceId)
    }
    // Whether the room this answer frees went to work it handed out itself: then there is nothing
    // new for the claim loop to do.
    let roomReused = false
    try {
      const fast = fastCompletion(hub, held.lease, response)
      if (fast) {
        const scheduled = fast.completion.activities
        const {
          result: done,
          room,
          offer,
        } = await writeWithRoom(scheduled.length, (handOff) =>
          hot.completeOrchestration(raw, { ...fast.completion, ...(handOff ? { handOff } : {}) }),
        )
        if (!done) {
          unreserve(room)
          histories.delete(instanceId)
          log.info({ instanceId }, 'orchestrator answer came after its lease was lost; dropped')
          return
        }
        const { row, leased } = done
        if (fast.completion.final) histories.delete(instanceId)
        else cacheHistory(instanceId, row.executionId, [...held.lease.pastEvents, ...fast.events])
        if (row.status !== held.lease.claimedStatus) {
          signalInstance(instanceId, { row })
          notifier.changed(instanceId, row.status)
        }
        for (const task of scheduled) {
          const id = leased.get(task.taskId)
          const stream = id === undefined ? undefined : room.shift()
          if (!stream) continue
          await handOutActivity(
            { id: id!, instanceId, executionId: row.executionId, taskId: task.taskId, name: task.name, input: task.input },
            offer!.leaseToken,
            stream,
          )
        }
        unreserve(room)
        roomReused = leased.size > 0 && leased.size === scheduled.length
        if (leased.size < scheduled.length) {
          backlog = true
          notifier.work()
        }
        wakeAt(row.nextWorkAt)
        return
      }
      // Everything else goes through the general transaction, which the cache does not follow.
      histories.delete(instanceId)
      const result = await transaction(db, (tx) => applyOrchestratorResponse(tx, hub, held.lease, response))
      if (!result.applied) {
        log.info({ instanceId }, 'orchestrator answer came after its lease was lost; dropped')
        return
      }
      if (result.continuedAsNew) {
        // Late answers of the old execution's activities must not land on the new one's tasks.
        for (const key of [...activities.keys()]) if (key.startsWith(`${instanceId}\u0000`)) activities.delete(key)
      }
      if (result.changedTo) {
        signalInstance(instanceId)
        notifier.changed(instanceId, result.changedTo)
      }
      if (result.touched) notifier.work()
      wakeAt(result.nextWorkAt)
    } finally {
      if (!roomReused) wake()
    }
  }

  async function completeActivity(response: InstanceType<typeof pb.ActivityResponse>): Promise<void> {
    const key = activityKey(response.getInstanceid(), response.getTaskid())
    const held = activities.get(key)
    if (!held) {
      log.debug({ instanceId: response.getInstanceid(), taskId: response.getTaskid() }, 'answer for an unknown activity; dropped')
      return
    }
    activities.delete(key)
    held.stream.inFlight--
    let roomReused = false
    try {
      const failure = response.getFailuredetails()
      const event = failure
        ? taskFailedEvent(response.getTaskid(), failure)
        : taskCompletedEvent(response.getTaskid(), response.getResult()?.getValue())
      // The result usually makes its instance due: lease it in the same statement and send it on.
      const {
        result: outcome,
        room,
        offer,
      } = await writeWithRoom(1, (handOff) =>
        hot.completeActivity(raw, { id: held.id, leaseToken: held.leaseToken, event: encode(event) }, handOff),
      )
      if (outcome.claim) {
        roomReused = true
        await handOutInstances([outcome.claim], offer!.leaseToken, room)
      } else {
        unreserve(room)
        if (outcome.delivered) {
          if (!offer) backlog = true
          notifier.work()
        }
      }
      if (!outcome.held) {
        log.info(
          { instanceId: response.getInstanceid(), taskId: response.getTaskid() },
          'activity answer came after its lease was lost; dropped',
        )
      }
    } finally {
      if (!roomReused) wake()
    }
  }

  function closeStream(stream: WorkStream): void {
    if (!stream.open) return
    stream.open = false
    streams.splice(streams.indexOf(stream), 1)
    // Whatever this worker held goes back at once rather than when the lease lapses.
    const releases: Promise<void>[] = []
    for (const [instanceId, held] of orchestrations) {
      if (held.stream !== stream) continue
      orchestrations.delete(instanceId)
      releases.push(hot.releaseInstance(raw, hub, instanceId, held.lease.leaseToken, true))
      if (held.next) releases.push(hot.releaseInstance(raw, hub, instanceId, held.next.leaseToken, true))
    }
    for (const [key, held] of activities) {
      if (held.stream !== stream) continue
      activities.delete(key)
      releases.push(crud.releaseActivity(db, held.id, held.leaseToken))
    }
    const released: Promise<void> = Promise.all(releases)
      .then(() => undefined)
      .catch((err: unknown) => log.warn({ err }, 'handing back leases of a closed worker stream failed'))
      .finally(() => {
        releasing.delete(released)
        wake()
      })
    releasing.add(released)
  }

  async function renew(): Promise<void> {
    const tokens = new Set<string>()
    for (const held of orchestrations.values()) {
      tokens.add(held.lease.leaseToken)
      if (held.next) tokens.add(held.next.leaseToken)
    }
    for (const held of activities.values()) tokens.add(held.leaseToken)
    if (tokens.size === 0) return
    try {
      await crud.renewLeases(db, { hub, tokens: [...tokens], leaseMs: tuning.leaseMs })
    } catch (err) {
      log.warn({ err }, 'renewing workflow leases failed')
    }
  }

  // ---- waiting for instances ------------------------------------------------------------------

  async function waitForInstance(
    request: InstanceType<typeof pb.GetInstanceRequest>,
    call: grpc.ServerUnaryCall<unknown, unknown>,
    done: (status: InstanceStatus) => boolean,
  ): Promise<InstanceType<typeof pb.GetInstanceResponse>> {
    const instanceId = checkId(request.getInstanceid(), 'instance id')
    let cancelled = false
    let poke: () => void = () => undefined
    const onCancel = () => {
      cancelled = true
      poke()
    }
    call.on('cancelled', onCancel)
    const set = waiters.get(instanceId) ?? new Set()
    waiters.set(instanceId, set)
    // A row committed by this process is used as is; a notification whose status cannot be what is
    // awaited is ignored; anything else (or the fallback poll) reads the instance again.
    let committed: WorkflowInstanceRow | undefined
    let mustRead = false
    // A signal that comes while the instance is being read finds nobody waiting: it is remembered.
    let signalled = false
    const waiter = (signal: InstanceSignal) => {
      if (signal.row) committed = signal.row
      else if (!signal.status || done(signal.status)) mustRead = true
      signalled = true
      poke()
    }
    set.add(waiter)
    try {
      let row = await hot.getInstance(raw, hub, instanceId)
      for (;;) {
        if (!row || done(row.status)) return instanceResponse(row, request.getGetinputsandoutputs())
        if (cancelled) throw new HubError(grpc.status.CANCELLED, 'the caller went away')
        if (state === 'stopped') throw new HubError(grpc.status.UNAVAILABLE, 'the workflow hub is shutting down')
        const timedOut =
          !signalled &&
          (await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(true), waiterPollMs)
            poke = () => {
              clearTimeout(timer)
              resolve(false)
            }
          }))
        signalled = false
        if (timedOut || mustRead) {
          mustRead = false
          committed = undefined
          row = await hot.getInstance(raw, hub, instanceId)
        } else if (committed) {
          row = committed
          committed = undefined
        }
      }
    } finally {
      call.removeListener('cancelled', onCancel)
      set.delete(waiter)
      if (set.size === 0) waiters.delete(instanceId)
    }
  }

  // ---- client calls ---------------------------------------------------------------------------

  async function startInstance(request: InstanceType<typeof pb.CreateInstanceRequest>) {
    const instanceId = checkId(request.getInstanceid() || randomUUID(), 'instance id')
    const name = checkId(request.getName(), 'workflow name', MAX_NAME_LENGTH)
    const input = request.getInput()?.getValue() ?? null
    const startAt = request.getScheduledstarttimestamp()?.toDate()
    const executionId = randomUUID()
    const startEvent = encode(
      executionStartedEvent({ name, input, instanceId, executionId, ...(startAt ? { scheduledAt: startAt } : {}) }),
    )
    const instance = { hub, instanceId, executionId, name, input, startEvent, ...(startAt ? { startAt } : {}) }
    // One statement for a new id, leased to this hub when it has room to start it at once; an id
    // in use (running, or finished and reused) takes the transaction.
    const {
      result: inboxId,
      room,
      offer,
    } = await writeWithRoom(startAt || backlog ? 0 : 1, (handOff) => hot.createNewInstance(raw, instance, handOff))
    if (inboxId === undefined) unreserve(room)
    const outcome = inboxId !== undefined ? 'created' : await transaction(db, (tx) => crud.createInstance(tx, instance))
    if (outcome === 'exists') {
      throw new HubError(grpc.status.ALREADY_EXISTS, `a workflow with instance id ${instanceId} is already running`)
    }
    cacheHistory(instanceId, executionId, [])
    if (offer && inboxId !== undefined) {
      const claim: hot.Claim = {
        instanceId,
        executionId,
        name,
        status: 'pending',
        historyLength: 0,
        parentInstanceId: null,
        inbox: [{ id: inboxId, event: startEvent }],
      }
      // Created already: a failure from here on only leaves it to the claim loop (its lease lapses).
      void handOutInstances([claim], offer.leaseToken, room).catch((err: unknown) =>
        log.warn({ err, instanceId }, 'handing out a new workflow failed; it starts when its lease lapses'),
      )
    } else {
      if (!startAt) backlog = true
      notifier.work()
      wake()
    }
    if (startAt) wakeAt(startAt)
    const response = new pb.CreateInstanceResponse()
    response.setInstanceid(instanceId)
    return response
  }

  /** Raise, terminate, suspend, resume: an event in the inbox of a live instance. */
  async function deliver(
    instanceId: string,
    event: ReturnType<typeof eventRaisedEvent>,
    setStatus?: crud.InboxDelivery['setStatus'],
  ): Promise<void> {
    checkId(instanceId, 'instance id')
    const delivered = await crud.deliverToInbox(db, {
      hub,
      instanceId,
      event: encode(event),
      ...(setStatus ? { setStatus } : {}),
    })
    if (!delivered) {
      const row = await crud.getInstance(db, hub, instanceId)
      if (!row) throw new HubError(grpc.status.NOT_FOUND, `no workflow instance ${instanceId}`)
      // A finished instance takes no more events; like the sidecar, that is not an error.
      return
    }
    if (setStatus) {
      signalInstance(instanceId)
      notifier.changed(instanceId, '')
    }
    notifier.work()
    wake()
  }

  function unary<Req, Res>(name: string, fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>) {
    return (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      if (!authorized(call.metadata)) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong dapr-api-token' })
        return
      }
      fn(call.request, call).then(
        (response) => callback(null, response),
        (err: unknown) => {
          if (err instanceof HubError) {
            callback({ code: err.code, details: err.message })
            return
          }
          log.error({ err, call: name }, 'workflow hub call failed')
          callback({ code: grpc.status.INTERNAL, details: 'internal error' })
        },
      )
    }
  }

  function unimplemented(name: string) {
    return unary(name, async () => {
      throw new HubError(grpc.status.UNIMPLEMENTED, `${name} is not supported by the embedded workflow hub`)
    })
  }

  function authorized(metadata: grpc.Metadata): boolean {
    const [given] = metadata.get('dapr-api-token')
    const bytes = Buffer.from(typeof given === 'string' ? given : (given ?? Buffer.alloc(0)))
    return bytes.length === tokenBytes.length && timingSafeEqual(bytes, tokenBytes)
  }

  const service: ITaskHubSidecarServiceServer = {
    hello: unary('Hello', async () => new Empty()),
    startInstance: unary('StartInstance', startInstance),
    getInstance: unary('GetInstance', async (request) =>
      instanceResponse(
        await hot.getInstance(raw, hub, checkId(request.getInstanceid(), 'instance id')),
        request.getGetinputsandoutputs(),
      ),
    ),
    waitForInstanceStart: unary('WaitForInstanceStart', (request, call) =>
      waitForInstance(request, call, (status) => status !== 'pending'),
    ),
    waitForInstanceCompletion: unary('WaitForInstanceCompletion', (request, call) =>
      waitForInstance(request, call, (status) => TERMINAL_STATUSES.includes(status)),
    ),
    raiseEvent: unary('RaiseEvent', async (request) => {
      const name = checkId(request.getName(), 'event name', MAX_NAME_LENGTH)
      await deliver(request.getInstanceid(), eventRaisedEvent(name, request.getInput()?.getValue()))
      return new pb.RaiseEventResponse()
    }),
    terminateInstance: unary('TerminateInstance', async (request) => {
      await deliver(request.getInstanceid(), executionTerminatedEvent(request.getOutput()?.getValue() ?? null))
      return new pb.TerminateResponse()
    }),
    suspendInstance: unary('SuspendInstance', async (request) => {
      await deliver(request.getInstanceid(), executionSuspendedEvent(request.getReason()?.getValue() ?? null), {
        from: ['running', 'pending'],
        to: 'suspended',
      })
      return new pb.SuspendResponse()
    }),
    resumeInstance: unary('ResumeInstance', async (request) => {
      await deliver(request.getInstanceid(), executionResumedEvent(request.getReason()?.getValue() ?? null), {
        from: ['suspended'],
        to: 'running',
      })
      return new pb.ResumeResponse()
    }),
    purgeInstances: unary('PurgeInstances', async (request) => {
      let deleted: number
      if (request.hasPurgeinstancefilter()) {
        const filter = request.getPurgeinstancefilter()!
        deleted = await crud.purgeInstances(db, hub, {
          createdFrom: filter.getCreatedtimefrom()?.toDate(),
          createdTo: filter.getCreatedtimeto()?.toDate(),
          statuses: filter
            .getRuntimestatusList()
            .map((s) => PROTO_TO_STATUS.get(s))
            .filter((s): s is InstanceStatus => s !== undefined),
          limit: PURGE_LIMIT,
        })
      } else {
        deleted = await crud.purgeInstanceTree(db, hub, checkId(request.getInstanceid(), 'instance id'))
      }
      const response = new pb.PurgeInstancesResponse()
      response.setDeletedinstancecount(deleted)
      return response
    }),
    getWorkItems: (call) => {
      if (!authorized(call.metadata)) {
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong dapr-api-token' })
        return
      }
      if (state !== 'running') {
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'the workflow hub is shutting down' })
        return
      }
      const stream: WorkStream = { call: call as grpc.ServerWritableStream<unknown, unknown>, inFlight: 0, open: true }
      streams.push(stream)
      call.on('cancelled', () => closeStream(stream))
      call.on('close', () => closeStream(stream))
      call.on('error', () => closeStream(stream))
      log.debug('workflow worker connected')
      wake()
    },
    completeActivityTask: unary('CompleteActivityTask', async (request) => {
      await completeActivity(request)
      return new pb.CompleteTaskResponse()
    }),
    completeOrchestratorTask: unary('CompleteOrchestratorTask', async (request) => {
      await completeOrchestration(request)
      return new pb.CompleteTaskResponse()
    }),
    rewindInstance: unimplemented('RewindInstance'),
    queryInstances: unimplemented('QueryInstances'),
    createTaskHub: unimplemented('CreateTaskHub'),
    deleteTaskHub: unimplemented('DeleteTaskHub'),
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  const server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 128 * 1024 * 1024,
  })
  server.addService(TaskHubSidecarServiceService, service)
  const host = '127.0.0.1'
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  )
  disableNagle(server, log)
  let listener: Listener | undefined
  try {
    listener = await listen(database, {
      channel: WORKFLOW_CHANNEL,
      name: 'workflow-listener',
      onNotify,
      onConnect: onListenerConnected,
      log,
    })
  } catch (err) {
    log.warn({ err }, 'workflow listener unavailable; working on the poll only')
  }
  // Waiters hear of every change from this process and, through the listener, of other processes'
  // changes (and re-read when it reconnects): their poll is only a safety net. A short one would
  // cost a read per waiter per interval, growing with the very queue that makes waits long.
  waiterPollMs = listener ? tuning.pollIntervalMs * WAITER_POLL_FACTOR : tuning.pollIntervalMs
  const pollTimer = setInterval(wake, tuning.pollIntervalMs)
  pollTimer.unref()
  const renewTimer = setInterval(() => void renew(), Math.max(50, Math.floor(tuning.leaseMs / 3)))
  renewTimer.unref()
  log.info({ port }, 'workflow hub started')

  let quiesced: Promise<void> | undefined
  let stopped: Promise<void> | undefined

  async function quiesce(): Promise<void> {
    if (state === 'running') state = 'quiescing'
    clearInterval(pollTimer)
    clearTimeout(timerWake)
    await loop
    const deadline = Date.now() + tuning.drainTimeoutMs
    while ((orchestrations.size > 0 || activities.size > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async function shutDown(): Promise<void> {
    await (quiesced ??= quiesce())
    state = 'stopped'
    clearInterval(renewTimer)
    for (const stream of [...streams]) {
      closeStream(stream)
      stream.call.end()
    }
    // closeStream hands the leases back in the background; those statements finish before the pool may close.
    await Promise.all(releasing)
    for (const set of waiters.values()) for (const resolve of set) resolve({})
    await listener?.close().catch((err: unknown) => log.warn({ err }, 'closing the workflow listener failed'))
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown()
        resolve()
      }, 2_000)
      server.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    })
    await Promise.all(releasing)
    await notifier.flushed()
    log.info('workflow hub stopped')
  }

  return {
    name: hub,
    host,
    port,
    token,
    quiesce: () => (quiesced ??= quiesce()),
    stop: () => (stopped ??= shutDown()),
  }
}
