import { randomUUID } from 'node:crypto'
import type { Transaction } from '../../../platform/db/client.js'
import type { InstanceStatus, StoredFailure } from '../tables.js'
import * as crud from './crud.js'
import type { Completion } from './hot.js'
import {
  EventCase,
  executionCompletedEvent,
  executionStartedEvent,
  executionTerminatedEvent,
  eventRaisedEvent,
  eventSentEvent,
  failureDetails,
  type HistoryEvent,
  type pb,
  Status,
  storedFailure,
  subOrchestrationCompletedEvent,
  subOrchestrationCreatedEvent,
  subOrchestrationFailedEvent,
  taskScheduledEvent,
  timerCreatedEvent,
  timerFiredEvent,
} from './proto.js'

/** Byte arrays as both drivers take them for bytea. */
export function encode(event: HistoryEvent): Buffer {
  const bytes = event.serializeBinary()
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** One orchestrator work item as handed to a worker: what must be committed when it answers. */
export interface OrchestratorLease {
  instanceId: string
  executionId: string
  name: string
  leaseToken: string
  /** Exactly the events sent as `newEvents`; they join the history when the worker answers. */
  newEvents: HistoryEvent[]
  /** The inbox rows those events came from; deleted when the worker answers. */
  inboxIds: number[]
}

export interface AppliedResponse {
  /** False when the lease was lost meanwhile: nothing was written. */
  applied: boolean
  /** The instance's new status when the answer changed it (waiters are told, here and elsewhere). */
  changedTo?: InstanceStatus
  /** When the instance is next due (timer or pending events), if ever. */
  nextWorkAt: Date | null
  /** Instances that received an event (children, parents, event targets) and may now be due. */
  touched: boolean
  continuedAsNew: boolean
}

const NOT_APPLIED: AppliedResponse = {
  applied: false,
  nextWorkAt: null,
  touched: false,
  continuedAsNew: false,
}

function finalStatus(status: number): InstanceStatus | undefined {
  switch (status) {
    case Status.ORCHESTRATION_STATUS_COMPLETED:
      return 'completed'
    case Status.ORCHESTRATION_STATUS_FAILED:
      return 'failed'
    case Status.ORCHESTRATION_STATUS_TERMINATED:
    case Status.ORCHESTRATION_STATUS_CANCELED:
      return 'terminated'
    default:
      return undefined
  }
}

/**
 * Commits a worker's answer to an orchestrator work item, inside the caller's transaction:
 * the history grows by the new events and one event per action (TaskScheduled, TimerCreated, ...,
 * with the action's id as event id, which is how the SDK matches them on replay), the consumed
 * inbox rows go, the actions take effect, and the lease is released. Nothing is written when the
 * lease was lost: another worker owns the instance now and will produce this answer again.
 */
export async function applyOrchestratorResponse(
  tx: Transaction,
  hub: string,
  lease: OrchestratorLease,
  response: InstanceType<typeof pb.OrchestratorResponse>,
): Promise<AppliedResponse> {
  const row = await crud.lockLeasedInstance(tx, hub, lease.instanceId, lease.leaseToken)
  if (!row) return NOT_APPLIED

  const history: HistoryEvent[] = [...lease.newEvents]
  const activities: Parameters<typeof crud.insertActivityTasks>[1] = []
  const ownEvents: Parameters<typeof crud.insertOwnInboxEvents>[1] = []
  const deliveries: crud.InboxDelivery[] = []
  const children: crud.NewInstance[] = []
  let completion: InstanceType<typeof pb.CompleteOrchestrationAction> | undefined
  let completionId = -1

  for (const action of response.getActionsList()) {
    const id = action.getId()
    if (action.hasScheduletask()) {
      const task = action.getScheduletask()!
      history.push(taskScheduledEvent(id, task))
      activities.push({
        hub,
        instanceId: lease.instanceId,
        executionId: row.executionId,
        taskId: id,
        name: task.getName(),
        input: task.getInput()?.getValue() ?? null,
      })
    } else if (action.hasCreatetimer()) {
      const fireAt = action.getCreatetimer()!.getFireat()?.toDate() ?? new Date()
      history.push(timerCreatedEvent(id, fireAt))
      // A durable timer is its TimerFired event, invisible in the inbox until it is due.
      ownEvents.push({ hub, instanceId: lease.instanceId, event: encode(timerFiredEvent(id, fireAt)), visibleAt: fireAt })
    } else if (action.hasCreatesuborchestration()) {
      const create = action.getCreatesuborchestration()!
      history.push(subOrchestrationCreatedEvent(id, create))
      const childId = create.getInstanceid()
      const executionId = randomUUID()
      const input = create.getInput()?.getValue() ?? null
      children.push({
        hub,
        instanceId: childId,
        executionId,
        name: create.getName(),
        input,
        parent: { instanceId: lease.instanceId, taskId: id },
        startEvent: encode(
          executionStartedEvent({
            name: create.getName(),
            input,
            instanceId: childId,
            executionId,
            parent: { instanceId: lease.instanceId, name: row.name, taskId: id },
          }),
        ),
      })
    } else if (action.hasSendevent()) {
      const send = action.getSendevent()!
      history.push(eventSentEvent(id, send))
      const target = send.getInstance()?.getInstanceid()
      if (target) {
        deliveries.push({
          hub,
          instanceId: target,
          event: encode(eventRaisedEvent(send.getName(), send.getData()?.getValue())),
        })
      }
    } else if (action.hasCompleteorchestration()) {
      completion = action.getCompleteorchestration()!
      completionId = id
    }
  }

  const customStatus = response.getCustomstatus()?.getValue() || null
  await crud.deleteInboxEvents(tx, lease.inboxIds)

  if (completion?.getOrchestrationstatus() === Status.ORCHESTRATION_STATUS_CONTINUED_AS_NEW) {
    // A fresh execution: empty history, the new input, and the events the workflow chose to keep.
    const executionId = randomUUID()
    const input = completion.getResult()?.getValue() ?? null
    await crud.deleteHistory(tx, hub, lease.instanceId)
    await crud.deletePendingActivities(tx, hub, lease.instanceId)
    const now = new Date()
    await crud.insertOwnInboxEvents(tx, [
      {
        hub,
        instanceId: lease.instanceId,
        event: encode(executionStartedEvent({ name: row.name, input, instanceId: lease.instanceId, executionId })),
        visibleAt: now,
      },
      ...completion
        .getCarryovereventsList()
        .map((event) => ({ hub, instanceId: lease.instanceId, event: encode(event), visibleAt: now })),
    ])
    const nextWorkAt = await crud.finishWorkItem(tx, hub, lease.instanceId, {
      status: 'running',
      executionId,
      input,
      output: null,
      customStatus,
      historyLength: 0,
    })
    return { applied: true, nextWorkAt, touched: false, continuedAsNew: true }
  }

  if (completion) {
    const status = finalStatus(completion.getOrchestrationstatus())
    const result = completion.getResult()?.getValue() ?? null
    let failure: StoredFailure | null = storedFailure(completion.getFailuredetails())
    if (!status) {
      failure = {
        errorType: 'InvalidCompletion',
        errorMessage: `workflow completed with non-final status ${completion.getOrchestrationstatus()}`,
      }
    }
    const finalState = status ?? 'failed'
    history.push(
      executionCompletedEvent(
        completionId,
        status ? completion.getOrchestrationstatus() : Status.ORCHESTRATION_STATUS_FAILED,
        result,
        failure ? failureDetails(failure) : undefined,
      ),
    )
    await crud.appendHistory(tx, {
      hub,
      instanceId: lease.instanceId,
      firstSeq: row.historyLength + 1,
      events: history.map(encode),
    })
    await crud.deletePendingWork(tx, hub, lease.instanceId)
    await crud.finishWorkItem(tx, hub, lease.instanceId, {
      status: finalState,
      customStatus,
      historyLength: row.historyLength + history.length,
      output: result,
      failure,
      completed: true,
    })
    let touched = false
    if (row.parentInstanceId && row.parentTaskId != null) {
      const event =
        finalState === 'completed'
          ? subOrchestrationCompletedEvent(row.parentTaskId, result)
          : subOrchestrationFailedEvent(
              row.parentTaskId,
              failureDetails(
                failure ?? { errorType: 'WorkflowTerminated', errorMessage: `child workflow ${lease.instanceId} was terminated` },
              ),
            )
      touched = await crud.deliverToInbox(tx, { hub, instanceId: row.parentInstanceId, event: encode(event) })
    }
    if (finalState === 'terminated') {
      for (const child of await crud.liveChildren(tx, hub, lease.instanceId)) {
        touched =
          (await crud.deliverToInbox(tx, { hub, instanceId: child, event: encode(executionTerminatedEvent(null)) })) ||
          touched
      }
    }
    return { applied: true, changedTo: finalState, nextWorkAt: null, touched, continuedAsNew: false }
  }

  await crud.appendHistory(tx, {
    hub,
    instanceId: lease.instanceId,
    firstSeq: row.historyLength + 1,
    events: history.map(encode),
  })
  await crud.insertActivityTasks(tx, activities)
  for (const child of children) {
    const created = await crud.createInstance(tx, child)
    if (created === 'exists') {
      // The parent must hear about it, or it would wait for a child that is not its own.
      const taskId = child.parent!.taskId
      ownEvents.push({
        hub,
        instanceId: lease.instanceId,
        event: encode(
          subOrchestrationFailedEvent(
            taskId,
            failureDetails({
              errorType: 'WorkflowAlreadyExists',
              errorMessage: `a running workflow already has the instance id ${child.instanceId}`,
            }),
          ),
        ),
        visibleAt: new Date(),
      })
    }
  }
  await crud.insertOwnInboxEvents(tx, ownEvents)
  let touched = children.length > 0 || activities.length > 0
  for (const delivery of deliveries) touched = (await crud.deliverToInbox(tx, delivery)) || touched
  const status: InstanceStatus = row.status === 'pending' ? 'running' : row.status
  const nextWorkAt = await crud.finishWorkItem(tx, hub, lease.instanceId, {
    status,
    customStatus,
    historyLength: row.historyLength + history.length,
  })
  return { applied: true, ...(status !== row.status ? { changedTo: status } : {}), nextWorkAt, touched, continuedAsNew: false }
}

/** The SDK needs ExecutionStarted before anything else of an execution (it creates the generator). */
export function startFirst(events: HistoryEvent[]): HistoryEvent[] {
  const starts = events.filter((e) => e.getEventtypeCase() === EventCase.EXECUTIONSTARTED)
  if (starts.length === 0) return events
  return [...starts, ...events.filter((e) => e.getEventtypeCase() !== EventCase.EXECUTIONSTARTED)]
}

/**
 * The common answers (schedule activities, create timers, complete or fail an instance that has no
 * parent) as one statement's worth of writes (hot.completeOrchestration), with the history events
 * they append; undefined for anything else (children, sent events, continue-as-new, termination,
 * a non-final completion status), which applyOrchestratorResponse handles. Writes exactly what
 * applyOrchestratorResponse would for the same answer.
 */
export function fastCompletion(
  hub: string,
  lease: OrchestratorLease & { parentInstanceId: string | null },
  response: InstanceType<typeof pb.OrchestratorResponse>,
): { completion: Completion; events: HistoryEvent[] } | undefined {
  const events: HistoryEvent[] = [...lease.newEvents]
  const activities: Completion['activities'] = []
  const timers: Completion['timers'] = []
  let completion: InstanceType<typeof pb.CompleteOrchestrationAction> | undefined
  let completionId = -1
  for (const action of response.getActionsList()) {
    const id = action.getId()
    if (action.hasScheduletask()) {
      const task = action.getScheduletask()!
      events.push(taskScheduledEvent(id, task))
      activities.push({ taskId: id, name: task.getName(), input: task.getInput()?.getValue() ?? null })
    } else if (action.hasCreatetimer()) {
      const fireAt = action.getCreatetimer()!.getFireat()?.toDate() ?? new Date()
      events.push(timerCreatedEvent(id, fireAt))
      timers.push({ event: encode(timerFiredEvent(id, fireAt)), visibleAt: fireAt })
    } else if (action.hasCompleteorchestration()) {
      completion = action.getCompleteorchestration()!
      completionId = id
    } else {
      return undefined
    }
  }
  const base = {
    hub,
    instanceId: lease.instanceId,
    leaseToken: lease.leaseToken,
    inboxIds: lease.inboxIds,
    customStatus: response.getCustomstatus()?.getValue() || null,
  }
  if (!completion) {
    return { completion: { ...base, history: events.map(encode), activities, timers }, events }
  }
  const protoStatus = completion.getOrchestrationstatus()
  const status =
    protoStatus === Status.ORCHESTRATION_STATUS_COMPLETED
      ? 'completed'
      : protoStatus === Status.ORCHESTRATION_STATUS_FAILED
        ? 'failed'
        : undefined
  if (!status || lease.parentInstanceId) return undefined
  const output = completion.getResult()?.getValue() ?? null
  const failure = storedFailure(completion.getFailuredetails())
  events.push(executionCompletedEvent(completionId, protoStatus, output, failure ? failureDetails(failure) : undefined))
  // As in applyOrchestratorResponse: a final answer queues nothing more.
  return {
    completion: {
      ...base,
      history: events.map(encode),
      activities: [],
      timers: [],
      final: { status, output, failure },
    },
    events,
  }
}
