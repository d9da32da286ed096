import type { Static } from 'typebox'
import type { ListedEndpointRow } from './endpoint-crud.js'
import type { Endpoint, EndpointHistoryEntry } from './endpoint-schema.js'
import type { EndpointStatusHistoryRow } from './tables.js'

type EndpointView = Static<typeof Endpoint>

/** What the API shows of an endpoint: never its sealed key, nor what it applied last. */
export function endpointView(row: ListedEndpointRow): EndpointView {
  return {
    id: row.id,
    name: row.name,
    clusterId: row.clusterId,
    modelId: row.modelId,
    versionId: row.versionId,
    runtime: row.runtime,
    deviceType: row.deviceType,
    spec: row.spec,
    revision: row.revision,
    appliedRevision: row.appliedRevision,
    namespace: row.namespace,
    phase: row.phase as EndpointView['phase'],
    conditions: row.conditions as EndpointView['conditions'],
    statusReason: row.statusReason,
    statusMessage: row.statusMessage,
    statusSince: row.statusSince.toISOString(),
    failedStep: row.failedStep,
    baseUrl: row.baseUrl,
    lastActivityAt: row.lastActivityAt.toISOString(),
    workflowId: row.workflowId,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

export function historyView(row: EndpointStatusHistoryRow): Static<typeof EndpointHistoryEntry> {
  return {
    fromPhase: row.fromPhase as Static<typeof EndpointHistoryEntry>['fromPhase'],
    toPhase: row.toPhase as Static<typeof EndpointHistoryEntry>['toPhase'],
    reason: row.reason,
    message: row.message,
    at: row.at.toISOString(),
  }
}
