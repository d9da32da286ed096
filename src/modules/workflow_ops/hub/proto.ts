/**
 * The only module that touches the Durable Task protocol definitions generated inside @dapr/dapr.
 * They are internal paths of the SDK, which is why its version is pinned exactly: an upgrade is
 * checked here (and by the hub tests) before anything else.
 */
import grpcPb from '@dapr/dapr/workflow/internal/durabletask/proto/orchestrator_service_grpc_pb.js'
import messages from '@dapr/dapr/workflow/internal/durabletask/proto/orchestrator_service_pb.js'
import emptyPb from 'google-protobuf/google/protobuf/empty_pb.js'
import timestampPb from 'google-protobuf/google/protobuf/timestamp_pb.js'
import wrappersPb from 'google-protobuf/google/protobuf/wrappers_pb.js'
import type { StoredFailure } from '../tables.js'

export const pb = messages
export const { TaskHubSidecarServiceService, TaskHubSidecarServiceClient } = grpcPb
export type ITaskHubSidecarServiceServer = grpcPb.ITaskHubSidecarServiceServer
export const { Empty } = emptyPb
export const { StringValue } = wrappersPb
export const { Timestamp } = timestampPb

export type HistoryEvent = messages.HistoryEvent
export type OrchestratorAction = messages.OrchestratorAction
export type OrchestrationState = messages.OrchestrationState
export type TaskFailureDetails = messages.TaskFailureDetails
export const EventCase = messages.HistoryEvent.EventtypeCase
export const Status = messages.OrchestrationStatus

export function stringValue(value: string | null | undefined): wrappersPb.StringValue | undefined {
  if (value == null) return undefined
  const wrapped = new StringValue()
  wrapped.setValue(value)
  return wrapped
}

export function timestamp(date: Date): timestampPb.Timestamp {
  const ts = new Timestamp()
  ts.fromDate(date)
  return ts
}

function historyEvent(eventId: number, at: Date = new Date()): messages.HistoryEvent {
  const event = new pb.HistoryEvent()
  event.setEventid(eventId)
  event.setTimestamp(timestamp(at))
  return event
}

export function orchestrationInstance(instanceId: string, executionId?: string): messages.OrchestrationInstance {
  const instance = new pb.OrchestrationInstance()
  instance.setInstanceid(instanceId)
  const execution = stringValue(executionId)
  if (execution) instance.setExecutionid(execution)
  return instance
}

export function failureDetails(failure: StoredFailure): messages.TaskFailureDetails {
  const details = new pb.TaskFailureDetails()
  details.setErrortype(failure.errorType)
  details.setErrormessage(failure.errorMessage)
  const stack = stringValue(failure.stackTrace)
  if (stack) details.setStacktrace(stack)
  return details
}

export function storedFailure(details: messages.TaskFailureDetails | undefined): StoredFailure | null {
  if (!details) return null
  const stackTrace = details.getStacktrace()?.getValue()
  return {
    errorType: details.getErrortype(),
    errorMessage: details.getErrormessage(),
    ...(stackTrace ? { stackTrace } : {}),
  }
}

/** Opens every orchestrator work item; sets the workflow's deterministic clock (ctx.getCurrentUtcDateTime). */
export function orchestratorStartedEvent(at: Date): messages.HistoryEvent {
  const event = historyEvent(-1, at)
  event.setOrchestratorstarted(new pb.OrchestratorStartedEvent())
  return event
}

export function executionStartedEvent(start: {
  name: string
  input: string | null
  instanceId: string
  executionId: string
  scheduledAt?: Date
  parent?: { instanceId: string; name: string; taskId: number }
}): messages.HistoryEvent {
  const body = new pb.ExecutionStartedEvent()
  body.setName(start.name)
  const input = stringValue(start.input)
  if (input) body.setInput(input)
  body.setOrchestrationinstance(orchestrationInstance(start.instanceId, start.executionId))
  if (start.scheduledAt) body.setScheduledstarttimestamp(timestamp(start.scheduledAt))
  if (start.parent) {
    const parent = new pb.ParentInstanceInfo()
    parent.setTaskscheduledid(start.parent.taskId)
    parent.setName(stringValue(start.parent.name))
    parent.setOrchestrationinstance(orchestrationInstance(start.parent.instanceId))
    body.setParentinstance(parent)
  }
  const event = historyEvent(-1)
  event.setExecutionstarted(body)
  return event
}

export function executionCompletedEvent(
  eventId: number,
  status: messages.OrchestrationStatus,
  result: string | null,
  failure: messages.TaskFailureDetails | undefined,
): messages.HistoryEvent {
  const body = new pb.ExecutionCompletedEvent()
  body.setOrchestrationstatus(status)
  const wrapped = stringValue(result)
  if (wrapped) body.setResult(wrapped)
  if (failure) body.setFailuredetails(failure)
  const event = historyEvent(eventId)
  event.setExecutioncompleted(body)
  return event
}

export function executionTerminatedEvent(output: string | null): messages.HistoryEvent {
  const body = new pb.ExecutionTerminatedEvent()
  const wrapped = stringValue(output)
  if (wrapped) body.setInput(wrapped)
  const event = historyEvent(-1)
  event.setExecutionterminated(body)
  return event
}

export function executionSuspendedEvent(reason: string | null): messages.HistoryEvent {
  const body = new pb.ExecutionSuspendedEvent()
  const wrapped = stringValue(reason)
  if (wrapped) body.setInput(wrapped)
  const event = historyEvent(-1)
  event.setExecutionsuspended(body)
  return event
}

export function executionResumedEvent(reason: string | null): messages.HistoryEvent {
  const body = new pb.ExecutionResumedEvent()
  const wrapped = stringValue(reason)
  if (wrapped) body.setInput(wrapped)
  const event = historyEvent(-1)
  event.setExecutionresumed(body)
  return event
}

export function taskScheduledEvent(eventId: number, action: messages.ScheduleTaskAction): messages.HistoryEvent {
  const body = new pb.TaskScheduledEvent()
  body.setName(action.getName())
  const input = action.getInput()
  if (input) body.setInput(input)
  const event = historyEvent(eventId)
  event.setTaskscheduled(body)
  return event
}

export function taskCompletedEvent(taskId: number, result: string | undefined): messages.HistoryEvent {
  const body = new pb.TaskCompletedEvent()
  body.setTaskscheduledid(taskId)
  const wrapped = stringValue(result)
  if (wrapped) body.setResult(wrapped)
  const event = historyEvent(-1)
  event.setTaskcompleted(body)
  return event
}

export function taskFailedEvent(taskId: number, failure: messages.TaskFailureDetails): messages.HistoryEvent {
  const body = new pb.TaskFailedEvent()
  body.setTaskscheduledid(taskId)
  body.setFailuredetails(failure)
  const event = historyEvent(-1)
  event.setTaskfailed(body)
  return event
}

export function timerCreatedEvent(eventId: number, fireAt: Date): messages.HistoryEvent {
  const body = new pb.TimerCreatedEvent()
  body.setFireat(timestamp(fireAt))
  const event = historyEvent(eventId)
  event.setTimercreated(body)
  return event
}

export function timerFiredEvent(timerId: number, fireAt: Date): messages.HistoryEvent {
  const body = new pb.TimerFiredEvent()
  body.setTimerid(timerId)
  body.setFireat(timestamp(fireAt))
  const event = historyEvent(-1, fireAt)
  event.setTimerfired(body)
  return event
}

export function subOrchestrationCreatedEvent(
  eventId: number,
  action: messages.CreateSubOrchestrationAction,
): messages.HistoryEvent {
  const body = new pb.SubOrchestrationInstanceCreatedEvent()
  body.setInstanceid(action.getInstanceid())
  body.setName(action.getName())
  const input = action.getInput()
  if (input) body.setInput(input)
  const event = historyEvent(eventId)
  event.setSuborchestrationinstancecreated(body)
  return event
}

export function subOrchestrationCompletedEvent(taskId: number, result: string | null): messages.HistoryEvent {
  const body = new pb.SubOrchestrationInstanceCompletedEvent()
  body.setTaskscheduledid(taskId)
  const wrapped = stringValue(result)
  if (wrapped) body.setResult(wrapped)
  const event = historyEvent(-1)
  event.setSuborchestrationinstancecompleted(body)
  return event
}

export function subOrchestrationFailedEvent(taskId: number, failure: messages.TaskFailureDetails): messages.HistoryEvent {
  const body = new pb.SubOrchestrationInstanceFailedEvent()
  body.setTaskscheduledid(taskId)
  body.setFailuredetails(failure)
  const event = historyEvent(-1)
  event.setSuborchestrationinstancefailed(body)
  return event
}

export function eventSentEvent(eventId: number, action: messages.SendEventAction): messages.HistoryEvent {
  const body = new pb.EventSentEvent()
  body.setInstanceid(action.getInstance()?.getInstanceid() ?? '')
  body.setName(action.getName())
  const data = action.getData()
  if (data) body.setInput(data)
  const event = historyEvent(eventId)
  event.setEventsent(body)
  return event
}

export function eventRaisedEvent(name: string, input: string | undefined): messages.HistoryEvent {
  const body = new pb.EventRaisedEvent()
  body.setName(name)
  const wrapped = stringValue(input)
  if (wrapped) body.setInput(wrapped)
  const event = historyEvent(-1)
  event.setEventraised(body)
  return event
}

export function decodeEvent(bytes: Uint8Array): messages.HistoryEvent {
  return pb.HistoryEvent.deserializeBinary(bytes)
}
