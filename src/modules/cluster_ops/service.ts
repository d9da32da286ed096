import { createHash, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../../config.js'
import type { Principal } from '../../platform/auth/principal.js'
import { type ChangeFeed, changeScope } from '../../platform/db/changes.js'
import type { KeptCounts } from '../../platform/db/kept-counts.js'
import type { Raw } from '../../platform/db/raw.js'
import { type Database, type Executor, transaction } from '../../platform/db/client.js'
import type { EventBus } from '../../platform/events/index.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { type PageResult, pageRequest, pageResult, parseSort } from '../../platform/http/pagination.js'
import {
  createKubeClient,
  type KubeClient,
  KubeconfigRefused,
  KubeError,
  type KubeTarget,
  managedSelector,
  parseKubeconfig,
  sealableTarget,
  targetFromSealed,
  targetIdentity,
  toKubeError,
} from '../../platform/kube/index.js'
import type { Sweeps } from '../../platform/sweeps/index.js'
import type { Vault } from '../../platform/vault.js'
import { WorkflowStepError, type WorkflowService } from '../workflow_ops/index.js'
import * as crud from './crud.js'
import {
  clusterAlreadyRegistered,
  clusterBusy,
  clusterDeleted,
  clusterInUse,
  clusterNameTaken,
  clusterNotFound,
  kubeconfigInvalid,
  nothingToUpdate,
} from './errors.js'
import { detectPlatform, missingAccess, readNodes, readVersion } from './inspect.js'
import type { Static } from 'typebox'
import { type Cluster, type ClusterHistoryEntry, type ClusterNode, CLUSTER_SORT_FIELDS, type ClusterStatus, KUBECONFIG_MAX_BYTES } from './schema.js'
import type { ClusterNodeRow, ClusterRow, ClusterStatusHistoryRow } from './tables.js'

export const CLUSTER_RESOURCE = 'cluster'
export const CLUSTER_WORKFLOW = {
  register: 'cluster_ops.register',
  rotate: 'cluster_ops.rotateKubeconfig',
  remove: 'cluster_ops.delete',
} as const
export const CLUSTER_SYNC_SWEEP = 'cluster_ops.sync'
export const CLUSTER_TOPIC = {
  registered: 'cluster.registered',
  registrationFailed: 'cluster.registration_failed',
  statusChanged: 'cluster.status_changed',
  updated: 'cluster.updated',
  deleted: 'cluster.deleted',
} as const

/** Statuses in which the cluster is synced (and may be refreshed). */
const SYNCED: ReadonlySet<string> = new Set(['available', 'not_available', 'error'])
/** Bounds what a failing cluster can put into our rows. */
const MAX_MESSAGE = 1_000

/**
 * A module that runs workloads on clusters (endpoints, apps) tells cluster_ops how many it runs on
 * one and how to tear them down, so that deleting a cluster in use is refused, or forced.
 */
export interface ClusterUser {
  /** Plural noun for messages: `endpoints`. */
  kind: string
  countOn(executor: Executor, clusterId: string): Promise<number>
  tearDownOn(clusterId: string): Promise<void>
}

export interface ClusterInput {
  name: string
  kubeconfig: string
  context?: string
  labels?: Record<string, string>
  allowInsecureTls?: boolean
  allowHttp?: boolean
}

export interface ClusterUpdateInput {
  name?: string
  labels?: Record<string, string>
  kubeconfig?: string
  context?: string
  allowInsecureTls?: boolean
  allowHttp?: boolean
}

export interface ClusterListQuery {
  status?: string
  platform?: string
  deviceType?: string
  label?: string
  q?: string
  sort?: string
  page?: number
  limit?: number
}

export interface ClusterServiceDeps {
  db: Database
  vault: Pick<Vault, 'encrypt' | 'decrypt'>
  events: Pick<EventBus, 'publish'>
  sweeps: Pick<Sweeps, 'schedule' | 'unschedule' | 'runNow' | 'wake'>
  workflows: Pick<WorkflowService, 'start' | 'findIdempotentRun'>
  log: Logger
  settings: Config['clusters']
  /** Told when a caller waits for a sync, so that nothing kept from the cluster's old rows is served after it. */
  changes?: Pick<ChangeFeed, 'changed'>
  /** Plain SQL for the list page and its count. */
  raw: Raw
  /** The list's totals, kept per tenant until its clusters change; without it every page counts. */
  counts?: KeptCounts
}

type Condition = { type: string; status: 'True' | 'False' | 'Unknown'; reason: string | null; message: string | null; lastTransitionTime: string }

/** Sets one condition, keeping its transition time when its status did not change. */
function withCondition(conditions: readonly Condition[], next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const before = conditions.find((c) => c.type === next.type)
  const lastTransitionTime = before && before.status === next.status ? before.lastTransitionTime : now.toISOString()
  return [...conditions.filter((c) => c.type !== next.type), { ...next, lastTransitionTime }].sort((a, b) => a.type.localeCompare(b.type))
}

const iso = (d: Date | null) => (d ? d.toISOString() : null)
const clip = (s: string) => s.slice(0, MAX_MESSAGE)

export function clusterView(row: crud.ListedClusterRow): Static<typeof Cluster> {
  return {
    id: row.id,
    name: row.name,
    labels: row.labels,
    status: row.status as ClusterStatus,
    statusReason: row.statusReason,
    statusMessage: row.statusMessage,
    statusSince: row.statusSince.toISOString(),
    server: row.server,
    platform: row.platform as 'kubernetes' | 'openshift' | null,
    distribution: row.distribution,
    kubernetesVersion: row.kubernetesVersion,
    capabilities: row.capabilities as Static<typeof Cluster>['capabilities'],
    missingPermissions: row.permissions?.missing ?? [],
    summary: row.summary as Static<typeof Cluster>['summary'],
    conditions: row.conditions as Condition[],
    lastSyncAt: iso(row.lastSyncAt),
    lastSyncDurationMs: row.lastSyncDurationMs,
    lastSyncError: row.lastSyncError,
    registrationWorkflowId: row.registrationWorkflowId,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

export type ClusterView = ReturnType<typeof clusterView>

function nodeView(row: ClusterNodeRow): Static<typeof ClusterNode> {
  return { ...(row.facts as object), used: row.used, updatedAt: row.updatedAt.toISOString() } as Static<typeof ClusterNode>
}

function historyView(row: ClusterStatusHistoryRow): Static<typeof ClusterHistoryEntry> {
  return { fromStatus: row.fromStatus as ClusterStatus | null, toStatus: row.toStatus as ClusterStatus, reason: row.reason, message: row.message, at: row.at.toISOString() }
}

const etag = (row: Pick<ClusterRow, 'updatedAt' | 'version'>) => etagOf(row.updatedAt, row.version)
const kubeconfigContext = (id: string) => `cluster:${id}:kubeconfig`
const pendingContext = (id: string) => `cluster:${id}:pending-kubeconfig`

/** A failed step's code, from a WorkflowStepError's message (`CODE: message`) as the engine carries it. */
export function failureOf(message: string): { code: string; message: string } {
  const match = /([A-Z][A-Z0-9_]{2,63}): ([\s\S]*)$/.exec(message)
  return match ? { code: match[1]!, message: clip(match[2]!.trim()) } : { code: 'CLUSTER_ERROR', message: clip(message) }
}

/** A cluster failure as a workflow step failure: the run records the taxonomy code. */
function stepError(err: unknown): Error {
  if (err instanceof WorkflowStepError) return err
  if (err instanceof KubeError || isKubeFailure(err)) {
    const k = toKubeError(err)
    return new WorkflowStepError(k.code, clip(k.message))
  }
  return err as Error
}

/** Network, TLS and HTTP failures from the client; anything else (a database error) is ours. */
function isKubeFailure(err: unknown): boolean {
  const k = toKubeError(err)
  return k.code !== 'CLUSTER_ERROR' || k.httpStatus !== undefined
}

export function createClusterService(deps: ClusterServiceDeps) {
  const { db, vault, events, sweeps, workflows, settings, raw, counts } = deps
  const log = deps.log
  /** After a commit that added, removed or refiltered a cluster: the tenant's list totals are counted again, on this replica at once. */
  const listChanged = (tenantId: string) => counts?.forget(changeScope.clusters(tenantId))
  const users: ClusterUser[] = []

  function parse(input: { kubeconfig: string; context?: string; allowInsecureTls?: boolean; allowHttp?: boolean }): KubeTarget {
    try {
      return parseKubeconfig(input.kubeconfig, {
        context: input.context,
        allowInsecureTls: input.allowInsecureTls === true,
        allowHttp: input.allowHttp === true,
        deniedCidrs: settings.deniedCidrs,
        maxBytes: KUBECONFIG_MAX_BYTES,
      })
    } catch (err) {
      if (err instanceof KubeconfigRefused) throw kubeconfigInvalid(err.reason, err.path)
      throw err
    }
  }

  function client(target: KubeTarget): KubeClient {
    return createKubeClient(target, {
      timeoutMs: settings.requestTimeoutMs,
      maxConcurrent: settings.maxCallsPerCluster,
      deniedCidrs: settings.deniedCidrs,
    })
  }

  /** Opens the cluster's sealed kubeconfig (or the one waiting to replace it) for one job, and closes it after. */
  async function withCluster<T>(row: ClusterRow, which: 'current' | 'pending', job: (c: KubeClient) => Promise<T>): Promise<T> {
    const sealed = which === 'current' ? row.kubeconfigSealed : row.pendingKubeconfigSealed
    if (!sealed) throw new WorkflowStepError('CLUSTER_ERROR', 'the cluster has no kubeconfig any more')
    const target = targetFromSealed(vault.decrypt(sealed, which === 'current' ? kubeconfigContext(row.id) : pendingContext(row.id)))
    const c = client(target)
    try {
      return await job(c)
    } finally {
      c.close()
    }
  }

  async function visible(principal: Principal, id: string): Promise<ClusterRow> {
    const row = await crud.getCluster(db, principal.tenantId, id)
    if (!row) throw clusterNotFound()
    return row
  }

  async function rowFor(id: string): Promise<ClusterRow> {
    const row = await crud.getClusterById(db, id)
    if (!row) throw new WorkflowStepError('CLUSTER_NOT_FOUND', 'the cluster record is gone')
    return row
  }

  /** Moves the status, records the change in the history and publishes it, all in the caller's transaction. */
  async function transition(
    tx: Executor,
    row: ClusterRow,
    to: ClusterStatus,
    reason: string | null,
    message: string | null,
    extra: crud.ClusterPatch = {},
  ): Promise<ClusterRow> {
    const changed = row.status !== to
    const updated = await crud.recordClusterState(tx, row.id, {
      ...extra,
      status: to,
      statusReason: reason,
      statusMessage: message === null ? null : clip(message),
      ...(changed ? { statusSince: new Date() } : {}),
    })
    if (changed) {
      await crud.insertStatusHistory(tx, { clusterId: row.id, tenantId: row.tenantId, fromStatus: row.status, toStatus: to, reason, message })
      await events.publish(
        tx,
        CLUSTER_TOPIC.statusChanged,
        { clusterId: row.id, name: row.name, from: row.status, to, reason, message, at: updated.statusSince.toISOString() },
        { tenantId: row.tenantId },
      )
    }
    return updated
  }

  /** Writes what a read of the nodes found: nodes, summary, conditions. */
  async function recordNodes(tx: Executor, row: ClusterRow, reading: Awaited<ReturnType<typeof readNodes>>, startedAt: number): Promise<crud.ClusterPatch> {
    await crud.replaceClusterNodes(
      tx,
      row,
      reading.nodes.map(({ facts, used }) => ({
        name: facts.name,
        roles: facts.roles,
        schedulable: facts.schedulable,
        ready: facts.ready,
        deviceType: facts.deviceType,
        facts,
        used,
      })),
    )
    const now = new Date()
    let conditions = withCondition(row.conditions as Condition[], { type: 'Reachable', status: 'True', reason: null, message: null }, now)
    const schedulable = reading.summary.nodes.schedulable
    conditions = withCondition(
      conditions,
      schedulable > 0
        ? { type: 'Schedulable', status: 'True', reason: null, message: `${schedulable} of ${reading.summary.nodes.total} nodes take new pods` }
        : { type: 'Schedulable', status: 'False', reason: 'NoSchedulableNodes', message: 'no node is ready and schedulable' },
      now,
    )
    return {
      summary: reading.summary as unknown as Record<string, unknown>,
      deviceTypes: reading.summary.deviceTypes,
      nodeCount: reading.summary.nodes.total,
      conditions,
      lastSyncAt: now,
      lastSyncDurationMs: Math.min(2 ** 31 - 1, Date.now() - startedAt),
      lastSyncError: null,
      unreachableSince: null,
    }
  }

  /** The end of a delete: the record stays (soft delete) without its kubeconfig or nodes. */
  async function markDeleted(tx: Executor, row: ClusterRow, note: string | null): Promise<void> {
    await crud.deleteClusterNodes(tx, row.id)
    await transition(tx, row, 'deleted', note ? 'CLEANUP_INCOMPLETE' : null, note, {
      kubeconfigSealed: null,
      pendingKubeconfigSealed: null,
      deletedAt: new Date(),
      deviceTypes: [],
      nodeCount: 0,
    })
    await sweeps.unschedule(tx, CLUSTER_SYNC_SWEEP, row.id)
    await events.publish(tx, CLUSTER_TOPIC.deleted, { clusterId: row.id, name: row.name, note }, { tenantId: row.tenantId })
  }

  const service = {
    /** Modules that run workloads on clusters declare themselves here while the app is built. */
    registerUser(user: ClusterUser): void {
      users.push(user)
    },

    /**
     * Checks the kubeconfig and the tenant's clusters, records the cluster as `registering` and
     * starts its registration. A repeated Idempotency-Key answers the first registration.
     */
    async register(principal: Principal, input: ClusterInput, idempotencyKey?: string): Promise<{ clusterId: string; workflowId: string }> {
      // What makes two requests the same: the kubeconfig by its hash, so the fingerprint holds no secret.
      const fingerprintOf = {
        ...input,
        kubeconfig: createHash('sha256').update(input.kubeconfig).digest('hex'),
      }
      if (idempotencyKey) {
        const first = await workflows.findIdempotentRun(principal.tenantId, idempotencyKey, CLUSTER_WORKFLOW.register, fingerprintOf)
        if (first) return { clusterId: first.resource.id, workflowId: first.workflowId }
      }
      const target = parse(input)
      const identity = targetIdentity(target)
      const duplicate = await crud.findLiveClusterByIdentity(db, principal.tenantId, identity)
      if (duplicate) throw clusterAlreadyRegistered(duplicate.id)
      if (await crud.findLiveClusterByName(db, principal.tenantId, input.name)) throw clusterNameTaken(input.name)

      const id = randomUUID()
      try {
        await transaction(db, async (tx) => {
          await crud.insertCluster(tx, {
            id,
            tenantId: principal.tenantId,
            name: input.name,
            labels: input.labels ?? {},
            status: 'registering',
            server: target.server,
            identity,
            kubeconfigSealed: vault.encrypt(sealableTarget(target), kubeconfigContext(id)),
            allowInsecureTls: input.allowInsecureTls === true,
            allowHttp: input.allowHttp === true,
            createdBy: principal.id,
          })
          await crud.insertStatusHistory(tx, {
            clusterId: id,
            tenantId: principal.tenantId,
            fromStatus: null,
            toStatus: 'registering',
            reason: null,
            message: null,
          })
        })
      } catch (err) {
        // Two registrations of one server (or name) at once: the index decides, the loser hears why.
        const index = crud.uniqueViolationOf(err)
        if (index === 'clusters_tenant_identity_live_idx') {
          const winner = await crud.findLiveClusterByIdentity(db, principal.tenantId, identity)
          throw clusterAlreadyRegistered(winner?.id ?? '')
        }
        if (index === 'clusters_tenant_name_live_idx') throw clusterNameTaken(input.name)
        throw err
      }
      listChanged(principal.tenantId)

      let started: { workflowId: string; deduplicated: boolean }
      try {
        started = await workflows.start({
          type: CLUSTER_WORKFLOW.register,
          tenantId: principal.tenantId,
          resource: { kind: CLUSTER_RESOURCE, id },
          startedBy: principal.id,
          input: { clusterId: id },
          inputSummary: `register ${input.name}`,
          ...(idempotencyKey ? { idempotencyKey, fingerprintOf } : {}),
        })
      } catch (err) {
        await crud.deleteClusterRow(db, id)
        listChanged(principal.tenantId)
        throw err
      }
      if (started.deduplicated) {
        // The same key raced us and won: its cluster is the answer, ours never existed.
        await crud.deleteClusterRow(db, id)
        listChanged(principal.tenantId)
        const first = await workflows.findIdempotentRun(principal.tenantId, idempotencyKey!, CLUSTER_WORKFLOW.register, fingerprintOf)
        return { clusterId: first!.resource.id, workflowId: started.workflowId }
      }
      await crud.recordClusterState(db, id, { registrationWorkflowId: started.workflowId })
      log.info({ clusterId: id, tenantId: principal.tenantId, workflowId: started.workflowId }, 'cluster registration started')
      return { clusterId: id, workflowId: started.workflowId }
    },

    async get(principal: Principal, id: string): Promise<{ cluster: ClusterView; etag: string }> {
      const row = await visible(principal, id)
      return { cluster: clusterView(row), etag: etag(row) }
    },

    async list(principal: Principal, query: ClusterListQuery): Promise<PageResult<ClusterView>> {
      const page = pageRequest(query)
      const sort = parseSort(query.sort, CLUSTER_SORT_FIELDS, { field: 'createdAt', direction: 'desc' })
      let label: { key: string; value: string } | undefined
      if (query.label) {
        const at = query.label.indexOf('=')
        label = { key: query.label.slice(0, at), value: query.label.slice(at + 1) }
      }
      const tenantId = principal.tenantId
      const filter: crud.ClusterFilter = { status: query.status, platform: query.platform, deviceType: query.deviceType, label, q: query.q }
      const count = () => crud.countClusters(raw, tenantId, filter)
      // The total is kept until a cluster of the tenant changes in a way a filter sees (changeScope.clusters).
      const [rows, total] = await Promise.all([
        crud.listClusterPage(raw, tenantId, filter, sort, page),
        counts ? counts.get(changeScope.clusters(tenantId), JSON.stringify(filter), count) : count(),
      ])
      return pageResult(rows.map(clusterView), total, page)
    },

    async nodes(principal: Principal, id: string, query: { deviceType?: string; schedulable?: boolean; page?: number; limit?: number }) {
      const row = await visible(principal, id)
      const page = pageRequest(query)
      const { rows, total } = await crud.listClusterNodes(db, row.id, query, page)
      return pageResult(rows.map(nodeView), total, page)
    },

    async history(principal: Principal, id: string, query: { page?: number; limit?: number }) {
      const row = await visible(principal, id)
      const page = pageRequest(query)
      const { rows, total } = await crud.listStatusHistory(db, row.id, page)
      return pageResult(rows.map(historyView), total, page)
    },

    /**
     * Name and labels change at once. A new kubeconfig is checked here for shape, then verified
     * by a workflow against the cluster, and replaces the old one only if it reaches the same
     * cluster with the rights modelplane needs.
     */
    async update(
      principal: Principal,
      id: string,
      input: ClusterUpdateInput,
      expected: string[] | undefined,
    ): Promise<{ cluster: ClusterView; etag: string; workflowId?: string }> {
      if (input.name === undefined && input.labels === undefined && input.kubeconfig === undefined) throw nothingToUpdate()
      const target = input.kubeconfig === undefined ? undefined : parse({ ...input, kubeconfig: input.kubeconfig })
      let updated: ClusterRow
      try {
        updated = await transaction(db, async (tx) => {
          const row = await crud.lockCluster(tx, id)
          if (!row || row.tenantId !== principal.tenantId) throw clusterNotFound()
          assertIfMatch(expected, etag(row))
          if (row.status === 'deleted') throw clusterDeleted()
          if (row.status === 'deleting') throw clusterBusy(row.status, 'changed')
          if (target && (row.status === 'registering' || row.status === 'failed')) {
            throw clusterBusy(row.status, row.status === 'failed' ? 'given a new kubeconfig (register it again)' : 'given a new kubeconfig')
          }
          const patch: crud.ClusterPatch = {}
          if (input.name !== undefined) patch.name = input.name
          if (input.labels !== undefined) patch.labels = input.labels
          if (target) {
            const identity = targetIdentity(target)
            const other = await crud.findLiveClusterByIdentity(tx, principal.tenantId, identity)
            if (other && other.id !== row.id) throw clusterAlreadyRegistered(other.id)
            patch.pendingKubeconfigSealed = vault.encrypt(sealableTarget(target), pendingContext(row.id))
          }
          const next = await crud.updateCluster(tx, row.id, patch)
          await events.publish(
            tx,
            CLUSTER_TOPIC.updated,
            { clusterId: row.id, name: next.name, changed: Object.keys(input).filter((k) => k !== 'kubeconfig' || target) },
            { tenantId: row.tenantId },
          )
          return next
        })
      } catch (err) {
        if (crud.uniqueViolationOf(err) === 'clusters_tenant_name_live_idx') throw clusterNameTaken(input.name ?? '')
        throw err
      }
      listChanged(principal.tenantId)
      if (!target) return { cluster: clusterView(updated), etag: etag(updated) }
      const started = await workflows.start({
        type: CLUSTER_WORKFLOW.rotate,
        tenantId: principal.tenantId,
        resource: { kind: CLUSTER_RESOURCE, id },
        startedBy: principal.id,
        input: { clusterId: id, allowInsecureTls: input.allowInsecureTls === true, allowHttp: input.allowHttp === true },
        inputSummary: `verify a new kubeconfig for ${updated.name}`,
      })
      return { cluster: clusterView(updated), etag: etag(updated), workflowId: started.workflowId }
    },

    /** Starts the teardown: 409 while workloads run there, unless forced. */
    async remove(principal: Principal, id: string, force: boolean): Promise<{ clusterId: string; workflowId: string }> {
      const before = await transaction(db, async (tx) => {
        const row = await crud.lockCluster(tx, id)
        if (!row || row.tenantId !== principal.tenantId) throw clusterNotFound()
        if (row.status === 'deleted') throw clusterDeleted()
        if (row.status === 'deleting') throw clusterBusy(row.status, 'deleted again')
        if (row.status === 'registering') {
          throw clusterBusy(row.status, `deleted while it registers: cancel workflow ${row.registrationWorkflowId ?? ''} first`)
        }
        if (!force) {
          const inUse: Array<{ kind: string; count: number }> = []
          for (const user of users) {
            const count = await user.countOn(tx, row.id)
            if (count > 0) inUse.push({ kind: user.kind, count })
          }
          if (inUse.length > 0) throw clusterInUse(inUse)
        }
        if (row.status === 'failed') {
          // A failed registration created nothing in the cluster and kept no kubeconfig: it is deleted
          // now. Passing through `deleting` would make it live again in the unique indexes, where a
          // later registration of the same server or name may already be.
          await markDeleted(tx, row, null)
          return row
        }
        await transition(tx, row, 'deleting', null, null)
        await sweeps.unschedule(tx, CLUSTER_SYNC_SWEEP, row.id)
        return row
      })
      listChanged(principal.tenantId)
      try {
        const started = await workflows.start({
          type: CLUSTER_WORKFLOW.remove,
          tenantId: principal.tenantId,
          resource: { kind: CLUSTER_RESOURCE, id },
          startedBy: principal.id,
          input: { clusterId: id, force },
          inputSummary: `delete ${before.name}${force ? ' (forced)' : ''}`,
        })
        return { clusterId: id, workflowId: started.workflowId }
      } catch (err) {
        // Nothing started: the cluster goes back to what it was.
        await transaction(db, async (tx) => {
          const row = await crud.lockCluster(tx, id)
          if (row?.status === 'deleting') {
            await transition(tx, row, before.status as ClusterStatus, before.statusReason, before.statusMessage)
            if (SYNCED.has(before.status)) await sweeps.schedule(tx, CLUSTER_SYNC_SWEEP, id)
          }
        })
        listChanged(principal.tenantId)
        throw err
      }
    },

    /**
     * For modules that run workloads: the tenant's cluster with what its last sync found (nodes,
     * capabilities). Another tenant's cluster is not found; one that cannot take work says why.
     */
    async servingTarget(tenantId: string, id: string): Promise<{ cluster: ClusterRow; nodes: ClusterNodeRow[] }> {
      const row = await crud.getCluster(db, tenantId, id)
      if (!row || row.status === 'deleted') throw clusterNotFound()
      if (row.status !== 'available') throw clusterBusy(row.status, 'deployed to')
      return { cluster: row, nodes: await crud.allClusterNodes(db, id) }
    },

    /** The cluster's current credentials for one job of a trusted caller (a workflow step, a sweep). */
    async withClient<T>(clusterId: string, job: (client: KubeClient) => Promise<T>): Promise<T> {
      return withCluster(await rowFor(clusterId), 'current', job)
    },

    /** A long answer of the cluster (a followed pod log) as it comes; the connection closes with the stream. */
    async *stream(clusterId: string, path: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
      const row = await rowFor(clusterId)
      if (!row.kubeconfigSealed) throw new WorkflowStepError('CLUSTER_ERROR', 'the cluster has no kubeconfig any more')
      const c = client(targetFromSealed(vault.decrypt(row.kubeconfigSealed, kubeconfigContext(row.id))))
      try {
        yield* c.stream(path, signal)
      } finally {
        c.close()
      }
    },

    /** Syncs now (on this replica, or waits for the sync another replica is running) and answers the result. */
    async refresh(principal: Principal, id: string): Promise<{ cluster: ClusterView; etag: string }> {
      const row = await visible(principal, id)
      if (!SYNCED.has(row.status)) throw clusterBusy(row.status, 'refreshed')
      await sweeps.runNow(CLUSTER_SYNC_SWEEP, row.id, { waitMs: settings.requestTimeoutMs * 3 })
      // What was kept from the cluster's old rows (plans) goes now, before the database's notification arrives.
      deps.changes?.changed(changeScope.cluster(row.id))
      const fresh = await visible(principal, id)
      return { cluster: clusterView(fresh), etag: etag(fresh) }
    },

    // ---- the periodic sync ------------------------------------------------------------------

    /**
     * One sync: nodes and their pods' requests, and reachability. A failure makes an available
     * cluster `not_available` (with the taxonomy code and message), and `error` once it has
     * lasted CLUSTER_ERROR_AFTER_MINUTES; it is retried sooner than the interval, backing off.
     */
    async sync(clusterId: string, signal: AbortSignal): Promise<{ nextInMs?: number }> {
      const row = await crud.getClusterById(db, clusterId)
      if (!row || !SYNCED.has(row.status) || !row.kubeconfigSealed) return {}
      const startedAt = Date.now()
      try {
        const reading = await withCluster(row, 'current', (c) => readNodes(c, signal))
        await transaction(db, async (tx) => {
          const locked = await crud.lockCluster(tx, clusterId)
          if (!locked || !SYNCED.has(locked.status)) return
          const patch = await recordNodes(tx, locked, reading, startedAt)
          if (locked.status === 'available') await crud.recordClusterState(tx, clusterId, patch)
          else await transition(tx, locked, 'available', null, null, patch)
        })
        return {}
      } catch (err) {
        if (signal.aborted || !isKubeFailure(err)) throw err
        const failure = toKubeError(err)
        let nextInMs = settings.syncIntervalMs
        await transaction(db, async (tx) => {
          const locked = await crud.lockCluster(tx, clusterId)
          if (!locked || !SYNCED.has(locked.status)) return
          const now = new Date()
          const since = locked.unreachableSince ?? now
          const down = now.getTime() - since.getTime()
          const next: ClusterStatus = down >= settings.errorAfterMs ? 'error' : 'not_available'
          const message = clip(failure.message)
          const patch: crud.ClusterPatch = {
            unreachableSince: since,
            lastSyncAt: now,
            lastSyncDurationMs: Date.now() - startedAt,
            lastSyncError: `${failure.code}: ${message}`,
            conditions: withCondition(locked.conditions as Condition[], { type: 'Reachable', status: 'False', reason: failure.code, message }, now),
          }
          // Back off while it stays away: retried after as long as it has been down, 5 s at least.
          nextInMs = Math.min(settings.syncIntervalMs, Math.max(5_000, down))
          if (next === locked.status || (locked.status === 'error' && next === 'not_available')) {
            await crud.recordClusterState(tx, clusterId, patch)
          } else {
            await transition(tx, locked, next, failure.code, message, patch)
          }
        })
        log.info({ clusterId, code: failure.code }, 'cluster sync failed')
        return { nextInMs }
      }
    },

    // ---- registration activities --------------------------------------------------------------

    /** Step 1: the API server answers and the credentials may do what modelplane needs. */
    async verifyAccess(clusterId: string, which: 'current' | 'pending' = 'current'): Promise<{ kubernetesVersion: string; missing: string[] }> {
      const row = await rowFor(clusterId)
      try {
        const { version, missing } = await withCluster(row, which, async (c) => ({ version: await readVersion(c), missing: await missingAccess(c) }))
        if (which === 'current') await crud.recordClusterState(db, clusterId, { permissions: { missing }, kubernetesVersion: version.gitVersion })
        if (missing.length > 0) {
          throw new WorkflowStepError('CLUSTER_FORBIDDEN', `the credentials may not: ${missing.join(', ')}`)
        }
        return { kubernetesVersion: version.gitVersion, missing }
      } catch (err) {
        throw stepError(err)
      }
    },

    /** Step 2: what kind of cluster it is, whether it is already registered through another URL. */
    async detect(clusterId: string, which: 'current' | 'pending' = 'current'): Promise<{ platform: string; distribution: string | null }> {
      const row = await rowFor(clusterId)
      try {
        const facts = await withCluster(row, which, async (c) => detectPlatform(c, await readVersion(c)))
        if (which === 'pending') {
          // A new kubeconfig must reach the cluster that was registered, not another one.
          if (row.kubeSystemUid && row.kubeSystemUid !== facts.kubeSystemUid) {
            throw new WorkflowStepError('CLUSTER_MISMATCH', 'the new kubeconfig reaches a different cluster (its kube-system namespace differs)')
          }
          return { platform: facts.platform, distribution: facts.distribution }
        }
        const same = await crud.findLiveClusterByKubeSystemUid(db, row.tenantId, facts.kubeSystemUid, row.id)
        if (same) {
          throw new WorkflowStepError(
            'CLUSTER_ALREADY_REGISTERED',
            `this cluster is already registered as "${same.name}" (${same.id}) through ${same.server}`,
          )
        }
        await crud.recordClusterState(db, clusterId, {
          platform: facts.platform,
          distribution: facts.distribution,
          kubernetesVersion: facts.kubernetesVersion,
          kubeSystemUid: facts.kubeSystemUid,
          capabilities: facts.capabilities as unknown as Record<string, unknown>,
        })
        return { platform: facts.platform, distribution: facts.distribution }
      } catch (err) {
        throw stepError(err)
      }
    },

    /** Step 3: nodes and hardware. */
    async discover(clusterId: string): Promise<{ nodes: number; deviceTypes: string[] }> {
      const row = await rowFor(clusterId)
      const startedAt = Date.now()
      try {
        const reading = await withCluster(row, 'current', (c) => readNodes(c))
        await transaction(db, async (tx) => {
          const locked = await crud.lockCluster(tx, clusterId)
          if (!locked || locked.status !== 'registering') return
          await crud.recordClusterState(tx, clusterId, await recordNodes(tx, locked, reading, startedAt))
        })
        return { nodes: reading.summary.nodes.total, deviceTypes: reading.summary.deviceTypes }
      } catch (err) {
        throw stepError(err)
      }
    },

    /** Step 4: usable from now on, and synced every interval. */
    async activate(clusterId: string): Promise<{ clusterId: string; status: string }> {
      return transaction(db, async (tx) => {
        const row = await crud.lockCluster(tx, clusterId)
        if (!row) throw new WorkflowStepError('CLUSTER_NOT_FOUND', 'the cluster record is gone')
        if (row.status !== 'registering') return { clusterId, status: row.status }
        const now = new Date()
        const conditions = withCondition(row.conditions as Condition[], { type: 'Authorized', status: 'True', reason: null, message: null }, now)
        const done = await transition(tx, row, 'available', null, null, { conditions })
        await sweeps.schedule(tx, CLUSTER_SYNC_SWEEP, clusterId, { dueInMs: settings.syncIntervalMs })
        await events.publish(
          tx,
          CLUSTER_TOPIC.registered,
          { clusterId, name: done.name, platform: done.platform, distribution: done.distribution, deviceTypes: done.deviceTypes, nodes: done.nodeCount },
          { tenantId: row.tenantId },
        )
        return { clusterId, status: 'available' }
      })
    },

    /**
     * A registration that failed or was cancelled: the row stays as a record of why (`failed`),
     * holding neither the kubeconfig nor nodes, and nothing counts it as usable.
     */
    async failRegistration(clusterId: string, error: string): Promise<{ clusterId: string; status: string }> {
      const failure = failureOf(error)
      const status = await transaction(db, async (tx) => {
        const row = await crud.lockCluster(tx, clusterId)
        // Too late: the last step finished first (a cancel that crossed it); the cluster is complete and stays as it is.
        if (!row || row.status !== 'registering') return row?.status ?? 'gone'
        await crud.deleteClusterNodes(tx, clusterId)
        await transition(tx, row, 'failed', failure.code, failure.message, {
          kubeconfigSealed: null,
          pendingKubeconfigSealed: null,
          summary: null,
          deviceTypes: [],
          nodeCount: 0,
        })
        await events.publish(tx, CLUSTER_TOPIC.registrationFailed, { clusterId, name: row.name, reason: failure.code, message: failure.message }, { tenantId: row.tenantId })
        return 'failed'
      })
      if (status === 'failed') log.info({ clusterId, code: failure.code }, 'cluster registration failed')
      return { clusterId, status }
    },

    // ---- kubeconfig rotation activities ------------------------------------------------------------

    async swapKubeconfig(clusterId: string, flags: { allowInsecureTls: boolean; allowHttp: boolean }): Promise<void> {
      await transaction(db, async (tx) => {
        const row = await crud.lockCluster(tx, clusterId)
        if (!row?.pendingKubeconfigSealed || !SYNCED.has(row.status)) return
        const target = targetFromSealed(vault.decrypt(row.pendingKubeconfigSealed, pendingContext(clusterId)))
        await crud.updateCluster(tx, clusterId, {
          kubeconfigSealed: vault.encrypt(sealableTarget(target), kubeconfigContext(clusterId)),
          pendingKubeconfigSealed: null,
          server: target.server,
          identity: targetIdentity(target),
          allowInsecureTls: flags.allowInsecureTls,
          allowHttp: flags.allowHttp,
        })
        // Synced with the new credentials straight away.
        await sweeps.schedule(tx, CLUSTER_SYNC_SWEEP, clusterId)
      })
      sweeps.wake(CLUSTER_SYNC_SWEEP)
    },

    async dropPendingKubeconfig(clusterId: string): Promise<void> {
      await crud.recordClusterState(db, clusterId, { pendingKubeconfigSealed: null })
    },

    // ---- deletion activities ---------------------------------------------------------------------

    async tearDownUsers(clusterId: string): Promise<void> {
      for (const user of users) await user.tearDownOn(clusterId)
    },

    /** Deletes what modelplane created in the cluster for this tenant: its namespaces, found by labels. */
    async cleanUp(clusterId: string): Promise<{ namespacesDeleted: number }> {
      const row = await rowFor(clusterId)
      if (!row.kubeconfigSealed) return { namespacesDeleted: 0 }
      try {
        return await withCluster(row, 'current', async (c) => {
          const selector = managedSelector(row.tenantId)
          let deleted = 0
          let token: string | undefined
          do {
            const page = await c.core.listNamespace({ labelSelector: selector, limit: 100, ...(token ? { _continue: token } : {}) })
            for (const ns of page.items) {
              try {
                await c.core.deleteNamespace({ name: ns.metadata!.name! })
                deleted++
              } catch (err) {
                if (toKubeError(err).code !== 'CLUSTER_NOT_FOUND') throw err
              }
            }
            token = page.metadata?._continue || undefined
          } while (token)
          return { namespacesDeleted: deleted }
        })
      } catch (err) {
        throw stepError(err)
      }
    },

    /** The record stays (soft delete) without its kubeconfig or nodes. */
    async finishDelete(clusterId: string, note: string | null): Promise<void> {
      await transaction(db, async (tx) => {
        const row = await crud.lockCluster(tx, clusterId)
        if (!row || row.status !== 'deleting') return
        await markDeleted(tx, row, note)
      })
      log.info({ clusterId }, 'cluster deleted')
    },
  }
  return service
}

export type ClusterService = ReturnType<typeof createClusterService>
