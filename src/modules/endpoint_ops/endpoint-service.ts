import type { V1Pod } from '@kubernetes/client-node'
import { randomBytes, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../../config.js'
import type { Principal } from '../../platform/auth/principal.js'
import type { BlobStore } from '../../platform/blob/index.js'
import { type Database, type Executor, transaction } from '../../platform/db/client.js'
import { type ChangeFeed, changeScope, createKept } from '../../platform/db/changes.js'
import type { EventBus } from '../../platform/events/index.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { type PageResult, pageRequest, pageResult, parseSort } from '../../platform/http/pagination.js'
import {
  applyManifests,
  counterValue,
  deleteManaged,
  judgeRollout,
  type KubeClient,
  type KubeManifest,
  listManaged,
  managedSelector,
  redactSecret,
  requestDelta,
  toKubeError,
  workerView,
} from '../../platform/kube/index.js'
import type { Sweeps } from '../../platform/sweeps/index.js'
import type { Vault } from '../../platform/vault.js'
import type { ClusterService } from '../cluster_ops/index.js'
import type { ModelService } from '../model_ops/index.js'
import { WorkflowStepError, type WorkflowService } from '../workflow_ops/index.js'
import * as crud from './endpoint-crud.js'
import { staleCodeConfigMaps } from './apps/app-manifests.js'
import { canonical } from './manifests.js'
import type { PlanDecision } from './plan.js'
import { rankOf } from '../auth/rank.js'
import type { AppDesigner, AppSpec, Design, DesignInput, EndpointDesigner, EndpointKind, EndpointSpec } from './endpoint-design.js'
import { endpointBusy, endpointDeleted, endpointNameTaken, endpointNotFound, nothingToUpdate, workerNotFound } from './endpoint-errors.js'
import type { EndpointRow } from './tables.js'

export const ENDPOINT_RESOURCE = 'endpoint'
export const ENDPOINT_WORKFLOW = {
  deploy: 'endpoint_ops.deploy',
  teardown: 'endpoint_ops.teardown',
} as const
export const ENDPOINT_RECONCILE_SWEEP = 'endpoint_ops.reconcile'
export const ENDPOINT_TOPIC = {
  statusChanged: 'endpoint.status_changed',
  updated: 'endpoint.updated',
  driftRepaired: 'endpoint.drift_repaired',
  deleted: 'endpoint.deleted',
} as const

export type EndpointPhase = 'deploying' | 'running' | 'degraded' | 'failed' | 'scaled_to_zero' | 'deleting' | 'deleted'
/** Phases the reconcile loop looks after. */
const RECONCILED: ReadonlySet<string> = new Set(['running', 'degraded', 'scaled_to_zero'])
/** An app whose update failed is `failed` while its last good code serves: that code is looked after too. */
const reconciled = (row: Pick<EndpointRow, 'phase' | 'kind' | 'appliedRevision'>) =>
  RECONCILED.has(row.phase) || (row.kind === 'app' && row.phase === 'failed' && row.appliedRevision !== null)
const MAX_MESSAGE = 2_000
const clip = (s: string) => s.slice(0, MAX_MESSAGE)

export type Condition = { type: string; status: 'True' | 'False' | 'Unknown'; reason: string | null; message: string | null; lastTransitionTime: string }

/** Sets one condition, keeping its transition time when its status did not change. */
function withCondition(conditions: readonly Condition[], next: Omit<Condition, 'lastTransitionTime'>, now = new Date()): Condition[] {
  const before = conditions.find((c) => c.type === next.type)
  const lastTransitionTime = before && before.status === next.status ? before.lastTransitionTime : now.toISOString()
  return [...conditions.filter((c) => c.type !== next.type), { ...next, lastTransitionTime }].sort((a, b) => a.type.localeCompare(b.type))
}

function setConditions(conditions: readonly Condition[], ...next: Array<Omit<Condition, 'lastTransitionTime'>>): Condition[] {
  const now = new Date()
  return next.reduce<Condition[]>((all, c) => withCondition(all, c, now), [...conditions])
}

export const etag = (row: Pick<EndpointRow, 'updatedAt' | 'version'>) => etagOf(row.updatedAt, row.version)

export interface EndpointServiceDeps {
  db: Database
  vault: Vault
  events: EventBus
  sweeps: Sweeps
  workflows: WorkflowService
  blobs: BlobStore
  clusters: ClusterService
  models: ModelService
  designer: EndpointDesigner
  /** designs endpoints of kind `app`; without it they cannot be deployed */
  appDesigner?: AppDesigner
  log: Logger
  settings: Config['endpoints']
  /** Plans are kept until a row they were computed from changes (without it, every plan is computed). */
  changes?: ChangeFeed
}

/** What POST /v1/endpoints/plan answers: the decision and the manifests a deploy would apply, Secrets redacted. */
export type PlanAnswer = PlanDecision & { manifests: KubeManifest[] }

/** Plans kept per process: one per tenant and request, the least recently asked dropped first. */
const KEPT_PLANS = 2_000
/** Clusters (with their node rows) and models (with their files) kept per process for planning. */
const KEPT_SOURCES = 200

type ServingTarget = Awaited<ReturnType<ClusterService['servingTarget']>>
type ServingSource = Awaited<ReturnType<ModelService['servingSource']>>

/** What one observation of a rollout found, as a workflow step answers it (JSON). */
export interface RolloutObservation {
  state: 'progressing' | 'complete' | 'failed'
  reason: string
  message: string
  problems: Array<{ pod: string; container?: string; reason: string; message: string; restarts?: number }>
}

/** What a PATCH may change: a model endpoint's serving fields, or an app's code and environment. */
export type EndpointChange =
  | Partial<Pick<EndpointSpec, 'replicas' | 'autoscale' | 'env' | 'args' | 'runtime' | 'resources' | 'idleScaleToZeroMinutes' | 'versionId'>>
  | Partial<Pick<AppSpec, 'files' | 'entry' | 'codeHash' | 'env' | 'replicas' | 'idleScaleToZeroMinutes'>>

/** Admins (and above) see every app of their tenant; everyone else only their own. */
const ADMIN_RANK = rankOf({ role: 'admin', isSuperuser: false })
export const seesAllApps = (principal: Pick<Principal, 'role' | 'isSuperuser'>) => rankOf(principal) >= ADMIN_RANK
/** Whose an app is: the user behind the principal (an API key acts for its user). */
export const appOwnerOf = (principal: Pick<Principal, 'id' | 'userId'>) => principal.userId ?? principal.id

/** Pod reasons that mean the app's process died (at import, or later). */
const CRASHED = new Set(['CrashLoopBackOff', 'OOMKilled', 'Error', 'RunContainerError'])

/**
 * What a user reads first about an app that did not come up: its process crashed (the log lines
 * follow), or it ran but never answered /health (pods running, never ready, nothing else wrong),
 * else the deploy's own code (an unschedulable pod, an image that cannot be pulled, the cluster).
 */
export function appFailure(step: string, error: string, problems: RolloutObservation['problems'], code: string): { code: string; error: string } {
  if (problems.some((p) => CRASHED.has(p.reason))) return { code: 'APP_CRASHED', error: `APP_CRASHED: the app's process exited: ${error}` }
  if ((step === 'rollout' || step === 'probe') && problems.length === 0 && code !== 'APP_NOT_HEALTHY') {
    return { code: 'APP_NOT_HEALTHY', error: `APP_NOT_HEALTHY: the app's pods run but never answered /health with 200: ${error}` }
  }
  return { code, error }
}

/** Log lines of a crashed container shown in a failed status, at most. */
const CRASH_LOG_LINES = 20

const apiKeyContext = (id: string) => `endpoint:${id}:api-key`

export function createEndpointService(deps: EndpointServiceDeps) {
  const { db, vault, events, sweeps, workflows, blobs, clusters, models, designer, settings, log } = deps
  const plans = deps.changes ? createKept<PlanAnswer>(deps.changes, { max: KEPT_PLANS }) : undefined
  // What a plan reads, kept the same way: a new question about a known cluster and model reads nothing.
  const targets = deps.changes ? createKept<ServingTarget>(deps.changes, { max: KEPT_SOURCES }) : undefined
  const sources = deps.changes ? createKept<ServingSource>(deps.changes, { max: KEPT_SOURCES }) : undefined

  function servingTarget(tenantId: string, clusterId: string): Promise<ServingTarget> {
    const read = () => clusters.servingTarget(tenantId, clusterId)
    if (!targets) return read()
    return targets.get(`${tenantId}\u0000${clusterId}`, async () => ({ value: await read(), scopes: [changeScope.cluster(clusterId)] }))
  }

  function servingSource(tenantId: string, modelId: string, versionId: string | undefined): Promise<ServingSource> {
    const read = () => models.servingSource(tenantId, modelId, versionId)
    if (!sources) return read()
    return sources.get(`${tenantId}\u0000${modelId}\u0000${versionId ?? ''}`, async () => {
      const value = await read()
      return { value, scopes: [changeScope.model(modelId), ...(value.version ? [changeScope.version(value.version.id)] : [])] }
    })
  }

  /** The row when the principal may see it: their tenant's, and for apps their own unless admin. */
  async function visible(principal: Principal, id: string, kind: EndpointKind = 'model'): Promise<EndpointRow> {
    const row = await crud.getEndpoint(db, principal.tenantId, kind, id)
    if (!row) throw endpointNotFound(kind === 'app' ? 'app' : 'endpoint')
    if (kind === 'app' && row.createdBy !== appOwnerOf(principal) && !seesAllApps(principal)) throw endpointNotFound('app')
    return row
  }

  async function rowFor(id: string): Promise<EndpointRow> {
    const row = await crud.getEndpointById(db, id)
    if (!row) throw new WorkflowStepError('ENDPOINT_NOT_FOUND', 'the endpoint record is gone')
    return row
  }

  /** Moves the phase, records it in the history and publishes it, in the caller's transaction. */
  async function transition(
    tx: Executor,
    row: EndpointRow,
    to: EndpointPhase,
    reason: string | null,
    message: string | null,
    extra: crud.EndpointPatch = {},
  ): Promise<EndpointRow> {
    const changed = row.phase !== to
    const updated = await crud.recordEndpointState(tx, row.id, {
      ...extra,
      phase: to,
      statusReason: reason,
      statusMessage: message === null ? null : clip(message),
      ...(changed ? { statusSince: new Date() } : {}),
    })
    if (changed || row.statusReason !== reason) {
      await crud.insertEndpointHistory(tx, { endpointId: row.id, tenantId: row.tenantId, fromPhase: row.phase, toPhase: to, reason, message })
      await events.publish(
        tx,
        ENDPOINT_TOPIC.statusChanged,
        { endpointId: row.id, name: row.name, from: row.phase, to, reason, message, at: updated.statusSince.toISOString() },
        { tenantId: row.tenantId },
      )
    }
    return updated
  }

  function apiKeyOf(row: Pick<EndpointRow, 'id' | 'apiKeySealed'>): string {
    if (!row.apiKeySealed) throw new WorkflowStepError('ENDPOINT_ERROR', 'the endpoint has no API key')
    return vault.decrypt(row.apiKeySealed, apiKeyContext(row.id))
  }

  /** What the designer needs for a spec on the cluster as it is now; URLs and the key only for applying. */
  async function inputsFor(row: Pick<EndpointRow, 'id' | 'tenantId' | 'name' | 'revision' | 'clusterId' | 'apiKeySealed'>, spec: EndpointSpec, opts: { withSecrets: boolean }): Promise<DesignInput> {
    const { cluster, nodes } = await servingTarget(row.tenantId, row.clusterId)
    const source = await servingSource(row.tenantId, spec.modelId, spec.versionId)
    // Signed at the start of the current half-lifetime: the URLs (and so the Secret holding them) stay
    // the same between applies, and a pod that starts from them has at least half the lifetime left.
    const half = settings.weightUrlTtlSeconds * 500
    const signedAt = new Date(Math.floor(Date.now() / half) * half)
    const weights = await Promise.all(
      source.files.map(async (f) => ({
        path: f.path,
        size: f.size,
        sha256: f.sha256,
        url: opts.withSecrets ? await blobs.presignGet(f.blobKey, settings.weightUrlTtlSeconds, signedAt) : `https://object-store.invalid/${f.path}`,
      })),
    )
    return {
      endpoint: { id: row.id, tenantId: row.tenantId, name: row.name, revision: row.revision },
      spec,
      cluster,
      nodes,
      model: source.model,
      version: source.version,
      weights,
      apiKey: opts.withSecrets ? apiKeyOf(row) : 'redacted',
    }
  }

  /** The design of a spec on the cluster as it is now: runtime, placement, manifests. */
  async function designFor(row: EndpointRow, spec: EndpointSpec | AppSpec, opts: { withSecrets: boolean }): Promise<Design> {
    if (row.kind === 'app') {
      if (!deps.appDesigner) throw new Error('apps are not enabled: no app designer')
      // An app is the user's code on the runner: no model, no weights, no key.
      const { cluster } = await clusters.servingTarget(row.tenantId, row.clusterId)
      return deps.appDesigner.design({ endpoint: { id: row.id, tenantId: row.tenantId, name: row.name, revision: row.revision }, spec: spec as AppSpec, cluster })
    }
    return designer.design(await inputsFor(row, spec as EndpointSpec, opts))
  }

  const selectorOf = (row: Pick<EndpointRow, 'id' | 'tenantId' | 'kind'>) =>
    managedSelector(row.tenantId, { key: row.kind === 'app' ? 'modelplane.io/app-id' : 'modelplane.io/endpoint-id', id: row.id })

  /**
   * The last log lines of every container that has crashed (the run that ended, else the current
   * one), added to the rollout's problems: a crash at import says why in the runner's own words,
   * whether the rollout failed on the back-off or on its progress deadline.
   */
  async function withCrashLogs(c: KubeClient, namespace: string, pods: V1Pod[], problems: RolloutObservation['problems']): Promise<RolloutObservation['problems']> {
    const out = [...problems]
    for (const pod of pods) {
      const name = pod.metadata?.name
      if (!name) continue
      for (const status of pod.status?.containerStatuses ?? []) {
        const ended = status.lastState?.terminated ?? status.state?.terminated
        const crashed = status.restartCount > 0 || (ended !== undefined && ended.exitCode !== 0)
        if (!crashed) continue
        let text = ''
        for (const previous of [true, false]) {
          const params = new URLSearchParams({ tailLines: String(CRASH_LOG_LINES), container: status.name, ...(previous ? { previous: 'true' } : {}) })
          const res = await c.request('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}/log?${params}`, { passStatus: true, accept: 'text/plain' })
          text = res.status === 200 ? res.body.toString('utf8').trim() : ''
          if (text) break
        }
        if (!text) continue
        const at = out.findIndex((p) => p.pod === name && (!p.container || p.container === status.name))
        const lines = `last log lines:\n${text}`
        if (at >= 0) out[at] = { ...out[at]!, message: `${out[at]!.message}; ${lines}` }
        else {
          const reason = status.state?.waiting?.reason ?? ended?.reason ?? 'Error'
          const exit = ended ? `exited with code ${ended.exitCode}` : `restarted ${status.restartCount} time(s)`
          out.push({ pod: name, container: status.name, reason, message: `${exit}; ${lines}`, restarts: status.restartCount })
        }
      }
    }
    return out
  }

  async function readRollout(c: KubeClient, row: EndpointRow, design: Pick<Design, 'namespace' | 'workload' | 'waitForOldPods'>): Promise<RolloutObservation> {
    const { namespace, workload } = design
    const deployment = await c.apps.readNamespacedDeployment({ name: workload, namespace })
    const selector = selectorOf(row)
    const [replicaSets, pods] = await Promise.all([
      c.apps.listNamespacedReplicaSet({ namespace, labelSelector: selector }),
      c.core.listNamespacedPod({ namespace, labelSelector: selector }),
    ])
    const judged = judgeRollout({ deployment, replicaSets: replicaSets.items, pods: pods.items, waitForOldPods: design.waitForOldPods })
    const problems = judged.state === 'failed' && row.kind === 'app' ? await withCrashLogs(c, namespace, pods.items, judged.pods) : judged.pods
    return { state: judged.state, reason: judged.reason, message: judged.message, problems }
  }

  /**
   * Requests each worker served since the last look, from its own metrics (through the pod proxy:
   * a Service would answer for one pod only). A counter lower than before is a restarted process.
   */
  async function readTraffic(c: KubeClient, row: EndpointRow, design: Design, signal: AbortSignal) {
    const before = (row.activity as { pods?: Record<string, number> }).pods ?? {}
    const pods = await c.core.listNamespacedPod({ namespace: design.namespace, labelSelector: selectorOf(row) })
    const counters: Record<string, number> = {}
    let requests = 0
    for (const pod of pods.items) {
      const name = pod.metadata?.name
      if (!name || pod.status?.phase !== 'Running') continue
      const res = await c.request('GET', `/api/v1/namespaces/${design.namespace}/pods/${name}:${design.metricsPort}/proxy${design.metricsPath}`, { passStatus: true, signal, accept: 'text/plain' })
      if (res.status !== 200) continue
      const value = counterValue(res.body.toString('utf8'), design.requestCounter)
      if (value === undefined) continue
      counters[name] = value
      requests += requestDelta(before[name], value)
    }
    return { counters: { pods: counters }, requests }
  }

  async function startRun(
    row: EndpointRow,
    principal: { id: string },
    mode: 'deploy' | 'update',
    summary: string,
    idempotency?: { key: string; fingerprintOf: unknown },
  ): Promise<string> {
    const started = await workflows.start({
      type: ENDPOINT_WORKFLOW.deploy,
      tenantId: row.tenantId,
      resource: { kind: ENDPOINT_RESOURCE, id: row.id },
      startedBy: principal.id,
      input: { endpointId: row.id, revision: row.revision, mode, kind: row.kind },
      inputSummary: summary,
      ...(idempotency ? { idempotencyKey: idempotency.key, fingerprintOf: idempotency.fingerprintOf } : {}),
    })
    await crud.recordEndpointState(db, row.id, { workflowId: started.workflowId })
    return started.workflowId
  }

  /** A change that needs the cluster: one at a time, never on a deleted endpoint. */
  function assertIdle(row: EndpointRow, action: string) {
    if (row.phase === 'deleted') throw endpointDeleted()
    if (row.phase === 'deleting' || row.workflowId) throw endpointBusy(row.phase, action, row.workflowId)
  }

  const service = {
    /** What a deploy of this spec would do, decided now and changing nothing. */
    async plan(principal: Principal, spec: EndpointSpec): Promise<PlanAnswer> {
      const compute = async () => {
        const draft = { id: '00000000-0000-4000-8000-000000000000', tenantId: principal.tenantId, name: spec.name, revision: 1, clusterId: spec.clusterId, apiKeySealed: null }
        const input = await inputsFor(draft, spec, { withSecrets: false })
        const { decision, manifests } = await designer.planOnly(input)
        // A plan is a pure function of these rows (the weight URLs are placeholders): it holds until one
        // changes. The answer is shared by every caller of the same question, and nobody changes it.
        const scopes = [changeScope.cluster(spec.clusterId), changeScope.model(spec.modelId), changeScope.runtimes(principal.tenantId), changeScope.runtimes(null)]
        if (input.version) scopes.push(changeScope.version(input.version.id))
        return { value: { ...decision, manifests }, scopes }
      }
      if (!plans) return (await compute()).value
      return plans.get(`${principal.tenantId}\u0000${JSON.stringify(canonical(spec))}`, compute)
    },

    async create(principal: Principal, spec: EndpointSpec, idempotencyKey?: string): Promise<{ endpointId: string; workflowId: string }> {
      const fingerprintOf = { op: 'deploy', spec }
      if (idempotencyKey) {
        const first = await workflows.findIdempotentRun(principal.tenantId, idempotencyKey, ENDPOINT_WORKFLOW.deploy, fingerprintOf)
        if (first) return { endpointId: first.resource.id, workflowId: first.workflowId }
      }
      if (await crud.findLiveEndpointByName(db, principal.tenantId, 'model', spec.name)) throw endpointNameTaken(spec.name)
      const id = randomUUID()
      const apiKey = `mp-${randomBytes(24).toString('base64url')}`
      const draft = {
        id,
        tenantId: principal.tenantId,
        kind: 'model',
        name: spec.name,
        clusterId: spec.clusterId,
        modelId: spec.modelId,
        versionId: spec.versionId ?? null,
        spec: spec as unknown as Record<string, unknown>,
        revision: 1,
        phase: 'deploying',
        createdBy: principal.id,
        apiKeySealed: vault.encrypt(apiKey, apiKeyContext(id)),
      }
      // Placement is decided now, so a deploy that cannot fit is refused before anything starts.
      const design = await designFor(draft as EndpointRow, spec, { withSecrets: false })
      const source = await models.servingSource(principal.tenantId, spec.modelId, spec.versionId)
      let row: EndpointRow
      try {
        row = await transaction(db, async (tx) => {
          const inserted = await crud.insertEndpoint(tx, {
            ...draft,
            versionId: source.version?.id ?? null,
            spec: { ...spec, versionId: source.version?.id } as unknown as Record<string, unknown>,
            runtime: design.runtime,
            deviceType: design.deviceType,
            namespace: design.namespace,
            plan: design.plan,
            conditions: setConditions([], { type: 'Progressing', status: 'True', reason: 'Deploying', message: 'the deploy has started' }),
          })
          await crud.insertEndpointHistory(tx, { endpointId: id, tenantId: principal.tenantId, fromPhase: null, toPhase: 'deploying', reason: null, message: null })
          return inserted
        })
      } catch (err) {
        if (crud.uniqueViolationOf(err) === 'endpoints_tenant_kind_name_live_idx') throw endpointNameTaken(spec.name)
        throw err
      }
      const workflowId = await startRun(row, principal, 'deploy', `deploy ${spec.name}`, idempotencyKey ? { key: idempotencyKey, fingerprintOf } : undefined)
      log.info({ endpointId: id, tenantId: principal.tenantId, workflowId }, 'endpoint deploy started')
      return { endpointId: id, workflowId }
    },

    /**
     * An app: the user's validated code as an endpoint of kind `app`, deployed by the same workflow.
     * The cluster is checked (and the manifests generated) now, so a bad target is refused at once.
     */
    async createApp(principal: Principal, spec: AppSpec, idempotencyKey?: string): Promise<{ endpointId: string; workflowId: string }> {
      const fingerprintOf = { op: 'deploy-app', spec }
      if (idempotencyKey) {
        const first = await workflows.findIdempotentRun(principal.tenantId, idempotencyKey, ENDPOINT_WORKFLOW.deploy, fingerprintOf)
        if (first) return { endpointId: first.resource.id, workflowId: first.workflowId }
      }
      if (await crud.findLiveEndpointByName(db, principal.tenantId, 'app', spec.name)) throw endpointNameTaken(spec.name, 'app')
      const id = randomUUID()
      const draft = {
        id,
        tenantId: principal.tenantId,
        kind: 'app',
        name: spec.name,
        clusterId: spec.clusterId,
        spec: spec as unknown as Record<string, unknown>,
        revision: 1,
        phase: 'deploying',
        createdBy: appOwnerOf(principal),
      }
      const design = await designFor(draft as EndpointRow, spec, { withSecrets: false })
      let row: EndpointRow
      try {
        row = await transaction(db, async (tx) => {
          const inserted = await crud.insertEndpoint(tx, {
            ...draft,
            namespace: design.namespace,
            plan: design.plan,
            conditions: setConditions([], { type: 'Progressing', status: 'True', reason: 'Deploying', message: 'the deploy has started' }),
          })
          await crud.insertEndpointHistory(tx, { endpointId: id, tenantId: principal.tenantId, fromPhase: null, toPhase: 'deploying', reason: null, message: null })
          return inserted
        })
      } catch (err) {
        if (crud.uniqueViolationOf(err) === 'endpoints_tenant_kind_name_live_idx') throw endpointNameTaken(spec.name, 'app')
        throw err
      }
      const workflowId = await startRun(row, principal, 'deploy', `deploy app ${spec.name}`, idempotencyKey ? { key: idempotencyKey, fingerprintOf } : undefined)
      log.info({ endpointId: id, tenantId: principal.tenantId, workflowId }, 'app deploy started')
      return { endpointId: id, workflowId }
    },

    /** Activity said by the user (beside real traffic): the idle clock starts again now. */
    async touch(principal: Principal, id: string, kind: EndpointKind = 'app'): Promise<{ lastActivityAt: Date }> {
      const row = await visible(principal, id, kind)
      if (row.phase === 'deleted') throw endpointDeleted()
      const updated = await crud.recordEndpointState(db, row.id, { lastActivityAt: new Date() })
      return { lastActivityAt: updated.lastActivityAt }
    },

    async get(principal: Principal, id: string, kind: EndpointKind = 'model'): Promise<{ endpoint: EndpointRow; etag: string }> {
      const row = await visible(principal, id, kind)
      return { endpoint: row, etag: etag(row) }
    },

    async list(
      principal: Principal,
      query: crud.EndpointFilter & { sort?: string; page?: number; limit?: number },
      kind: EndpointKind = 'model',
    ): Promise<PageResult<crud.ListedEndpointRow>> {
      const page = pageRequest(query)
      const sort = parseSort<crud.EndpointSortField>(query.sort, ['name', 'createdAt', 'phase'], { field: 'createdAt', direction: 'desc' })
      const { sort: _s, page: _p, limit: _l, ...filter } = query
      // A user without admin rank lists only their own apps.
      if (kind === 'app' && !seesAllApps(principal)) filter.createdBy = appOwnerOf(principal)
      const { rows, total } = await crud.listEndpoints(db, principal.tenantId, kind, filter, sort, page)
      return pageResult(rows, total, page)
    },

    async history(principal: Principal, id: string, query: { page?: number; limit?: number }, kind: EndpointKind = 'model') {
      const row = await visible(principal, id, kind)
      const page = pageRequest(query)
      const { rows, total } = await crud.listEndpointHistory(db, row.id, page)
      return pageResult(rows, total, page)
    },

    /** A new revision of the spec, rolled out by a workflow; a failed rollout goes back to the last good one. */
    async update(
      principal: Principal,
      id: string,
      change: EndpointChange,
      ifMatch?: string[],
      idempotencyKey?: string,
      kind: EndpointKind = 'model',
    ): Promise<{ endpoint: EndpointRow; etag: string; workflowId: string }> {
      const fingerprintOf = { op: 'update', endpointId: id, change }
      if (idempotencyKey) {
        const first = await workflows.findIdempotentRun(principal.tenantId, idempotencyKey, ENDPOINT_WORKFLOW.deploy, fingerprintOf)
        if (first) {
          const row = await visible(principal, id, kind)
          return { endpoint: row, etag: etag(row), workflowId: first.workflowId }
        }
      }
      if (Object.keys(change).length === 0) throw nothingToUpdate('replicas, autoscale, env, args, runtime, resources, idleScaleToZeroMinutes or versionId')
      const current = await visible(principal, id, kind)
      assertIfMatch(ifMatch, etag(current))
      assertIdle(current, 'changed')
      const spec = { ...(current.spec as unknown as EndpointSpec), ...change } as EndpointSpec
      // Refused now when the new spec cannot be placed: the running revision is untouched.
      const design = await designFor(current, spec, { withSecrets: false })
      const row = await transaction(db, async (tx) => {
        const locked = await crud.lockEndpoint(tx, id)
        if (!locked) throw endpointNotFound()
        assertIfMatch(ifMatch, etag(locked))
        assertIdle(locked, 'changed')
        const updated = await crud.updateEndpoint(tx, id, {
          spec: spec as unknown as Record<string, unknown>,
          revision: locked.revision + 1,
          runtime: design.runtime,
          deviceType: design.deviceType,
          plan: design.plan,
          versionId: kind === 'app' ? null : (spec.versionId ?? locked.versionId),
          conditions: setConditions(locked.conditions as Condition[], { type: 'Progressing', status: 'True', reason: 'Updating', message: `rolling out revision ${locked.revision + 1}` }),
        })
        await events.publish(tx, ENDPOINT_TOPIC.updated, { endpointId: id, revision: updated.revision, fields: Object.keys(change) }, { tenantId: locked.tenantId })
        return updated
      })
      const workflowId = await startRun(
        row,
        principal,
        'update',
        `update ${row.name} to revision ${row.revision}`,
        idempotencyKey ? { key: idempotencyKey, fingerprintOf } : undefined,
      )
      const fresh = await rowFor(id)
      return { endpoint: fresh, etag: etag(fresh), workflowId }
    },

    async scale(principal: Principal, id: string, replicas: number, idempotencyKey?: string) {
      return service.update(principal, id, { replicas }, undefined, idempotencyKey)
    },

    /** Back from zero: the replicas it had before it was scaled down (at least one). */
    async wake(principal: Principal, id: string, kind: EndpointKind = 'model') {
      const row = await visible(principal, id, kind)
      const spec = row.spec as unknown as EndpointSpec & { replicasBeforeIdle?: number }
      if (row.phase !== 'scaled_to_zero' && spec.replicas > 0) return { endpoint: row, etag: etag(row), workflowId: null }
      const result = await service.update(principal, id, { replicas: Math.max(1, spec.replicasBeforeIdle ?? spec.autoscale?.min ?? 1) }, undefined, undefined, kind)
      await crud.recordEndpointState(db, id, { lastActivityAt: new Date(), activity: {} })
      return result
    },

    async remove(principal: Principal, id: string, kind: EndpointKind = 'model'): Promise<{ endpointId: string; workflowId: string }> {
      const row = await visible(principal, id, kind)
      if (row.phase === 'deleted') throw endpointDeleted()
      if (row.phase === 'deleting') throw endpointBusy(row.phase, 'deleted again', row.workflowId)
      return service.tearDown(row, principal.id)
    },

    /** Starts the teardown of one endpoint (a user's DELETE, or a forced cluster deletion). */
    async tearDown(row: EndpointRow, startedBy: string): Promise<{ endpointId: string; workflowId: string }> {
      await transaction(db, async (tx) => {
        const locked = await crud.lockEndpoint(tx, row.id)
        if (!locked || locked.phase === 'deleted' || locked.phase === 'deleting') return
        await transition(tx, locked, 'deleting', null, null, { workflowId: null })
        await sweeps.unschedule(tx, ENDPOINT_RECONCILE_SWEEP, row.id)
      })
      // A deploy still running sees `deleting` at its next step and stops; the teardown deletes
      // again until nothing is left, so an apply that was already under way cannot outlive it.
      const started = await workflows.start({
        type: ENDPOINT_WORKFLOW.teardown,
        tenantId: row.tenantId,
        resource: { kind: ENDPOINT_RESOURCE, id: row.id },
        startedBy,
        input: { endpointId: row.id, kind: row.kind },
        inputSummary: `delete ${row.kind === 'app' ? 'app ' : ''}${row.name}`,
      })
      await crud.recordEndpointState(db, row.id, { workflowId: started.workflowId })
      return { endpointId: row.id, workflowId: started.workflowId }
    },

    async apiKey(principal: Principal, id: string): Promise<{ apiKey: string }> {
      const row = await visible(principal, id)
      if (row.phase === 'deleted') throw endpointDeleted()
      return { apiKey: apiKeyOf(row) }
    },

    /** A new key: the Secret changes, and the rollout that follows restarts the runtime with it. */
    async rotateApiKey(principal: Principal, id: string, idempotencyKey?: string): Promise<{ apiKey: string; workflowId: string }> {
      const fingerprintOf = { op: 'rotate', endpointId: id }
      if (idempotencyKey) {
        const first = await workflows.findIdempotentRun(principal.tenantId, idempotencyKey, ENDPOINT_WORKFLOW.deploy, fingerprintOf)
        // The same rotation asked again: the key it made (the current one, unless rotated since).
        if (first) return { apiKey: apiKeyOf(await visible(principal, id)), workflowId: first.workflowId }
      }
      const row = await visible(principal, id)
      assertIdle(row, 'given a new key')
      const apiKey = `mp-${randomBytes(24).toString('base64url')}`
      const updated = await transaction(db, async (tx) => {
        const locked = await crud.lockEndpoint(tx, id)
        if (!locked) throw endpointNotFound()
        assertIdle(locked, 'given a new key')
        const spec = { ...(locked.spec as Record<string, unknown>), apiKeyGeneration: Number((locked.spec as { apiKeyGeneration?: number }).apiKeyGeneration ?? 0) + 1 }
        return crud.updateEndpoint(tx, id, { apiKeySealed: vault.encrypt(apiKey, apiKeyContext(id)), spec, revision: locked.revision + 1 })
      })
      const workflowId = await startRun(updated, principal, 'update', `rotate the API key of ${row.name}`, idempotencyKey ? { key: idempotencyKey, fingerprintOf } : undefined)
      return { apiKey, workflowId }
    },

    async workers(principal: Principal, id: string, kind: EndpointKind = 'model') {
      const row = await visible(principal, id, kind)
      if (!row.namespace || row.phase === 'deleted') return []
      return clusters.withClient(row.clusterId, async (c) => {
        const pods = await c.core.listNamespacedPod({ namespace: row.namespace!, labelSelector: selectorOf(row) })
        return pods.items.map(workerView)
      })
    },

    /** The worker's log as a stream of bytes; the pod must be one of this endpoint's. */
    async logs(
      principal: Principal,
      id: string,
      pod: string,
      query: { follow?: boolean; tailLines?: number; container?: string },
      signal: AbortSignal,
      kind: EndpointKind = 'model',
    ) {
      const row = await visible(principal, id, kind)
      if (!row.namespace || row.phase === 'deleted') throw workerNotFound()
      await clusters.withClient(row.clusterId, async (client) => {
        const pods = await client.core.listNamespacedPod({ namespace: row.namespace!, labelSelector: selectorOf(row) })
        if (!pods.items.some((p) => p.metadata?.name === pod)) throw workerNotFound()
      })
      const params = new URLSearchParams()
      if (query.follow) params.set('follow', 'true')
      if (query.tailLines !== undefined) params.set('tailLines', String(query.tailLines))
      if (query.container) params.set('container', query.container)
      const path = `/api/v1/namespaces/${encodeURIComponent(row.namespace)}/pods/${encodeURIComponent(pod)}/log?${params}`
      return clusters.stream(row.clusterId, path, signal)
    },

    async kubeEvents(principal: Principal, id: string) {
      const row = await visible(principal, id)
      if (!row.namespace || row.phase === 'deleted') return []
      return clusters.withClient(row.clusterId, async (c) => {
        const owned = await listManaged(c, { selector: selectorOf(row), namespaces: [row.namespace!] })
        const pods = await c.core.listNamespacedPod({ namespace: row.namespace!, labelSelector: selectorOf(row) })
        const names = new Set([...owned.map((o) => `${o.kind}/${o.metadata?.name}`), ...pods.items.map((p) => `Pod/${p.metadata?.name}`)])
        const replicaSets = await c.apps.listNamespacedReplicaSet({ namespace: row.namespace!, labelSelector: selectorOf(row) })
        for (const rs of replicaSets.items) names.add(`ReplicaSet/${rs.metadata?.name}`)
        const list = await c.core.listNamespacedEvent({ namespace: row.namespace! })
        return list.items
          .filter((e) => names.has(`${e.involvedObject.kind}/${e.involvedObject.name}`))
          .map((e) => ({
            type: e.type ?? 'Normal',
            reason: e.reason ?? '',
            message: clip(e.message ?? ''),
            object: `${e.involvedObject.kind}/${e.involvedObject.name}`,
            count: e.count ?? 1,
            firstTimestamp: e.firstTimestamp ? new Date(e.firstTimestamp).toISOString() : null,
            lastTimestamp: e.lastTimestamp ? new Date(e.lastTimestamp).toISOString() : null,
          }))
          .sort((a, b) => String(a.lastTimestamp).localeCompare(String(b.lastTimestamp)))
      })
    },

    /** What is applied now, read back from the cluster, with Secret values redacted. */
    async manifests(principal: Principal, id: string) {
      const row = await visible(principal, id)
      if (!row.namespace || row.phase === 'deleted') return []
      return clusters.withClient(row.clusterId, async (c) => {
        const objects = await listManaged(c, { selector: selectorOf(row), namespaces: [row.namespace!] })
        return objects.map((o) => (o.kind === 'Secret' ? redactSecret(o) : o))
      })
    },

    // ---- workflow steps ------------------------------------------------------------------------

    /** Current unless a later revision (or a teardown) has taken over: then the run stops quietly. */
    async current(endpointId: string, revision: number): Promise<EndpointRow | null> {
      const row = await rowFor(endpointId)
      if (row.phase === 'deleting' || row.phase === 'deleted' || row.revision !== revision) return null
      return row
    },

    async verifyCluster(endpointId: string): Promise<{ kubernetesVersion: string }> {
      const row = await rowFor(endpointId)
      await clusters.servingTarget(row.tenantId, row.clusterId)
      return clusters.withClient(row.clusterId, async (c) => {
        const v = await c.version.getCode()
        return { kubernetesVersion: v.gitVersion }
      })
    },

    /** Plans the revision again on the cluster as it is now and applies every manifest. */
    async apply(endpointId: string, revision: number, which: 'spec' | 'applied' = 'spec'): Promise<{ superseded: boolean; changed: number }> {
      const row = which === 'spec' ? await service.current(endpointId, revision) : await rowFor(endpointId)
      if (!row) return { superseded: true, changed: 0 }
      const spec = (which === 'spec' ? row.spec : row.appliedSpec) as unknown as EndpointSpec | null
      if (!spec) return { superseded: false, changed: 0 }
      const design = await designFor(row, spec, { withSecrets: true })
      const results = await clusters.withClient(row.clusterId, (c) => applyManifests(c, design.manifests, { force: true }))
      if (which === 'spec') {
        await crud.recordEndpointState(db, row.id, { namespace: design.namespace, plan: design.plan, runtime: design.runtime, deviceType: design.deviceType })
      }
      return { superseded: false, changed: results.filter((r) => r.changed).length }
    },

    async observe(endpointId: string): Promise<RolloutObservation> {
      const row = await rowFor(endpointId)
      const spec = row.spec as unknown as EndpointSpec
      const design = await designFor(row, spec, { withSecrets: false })
      return clusters.withClient(row.clusterId, (c) => readRollout(c, row, design))
    },

    /** Asks the runtime for its models through the API server's service proxy. */
    async probe(endpointId: string): Promise<{ loaded: boolean; message: string }> {
      const row = await rowFor(endpointId)
      const spec = row.spec as unknown as EndpointSpec
      if (spec.replicas === 0) return { loaded: false, message: 'scaled to zero' }
      const design = await designFor(row, spec, { withSecrets: false })
      return clusters.withClient(row.clusterId, async (c) => {
        // The Service's port is named `http` (80 → the runtime's port).
        const base = `/api/v1/namespaces/${design.namespace}/services/${design.service}:http/proxy`
        const res = await c.request('GET', `${base}${design.modelProbePath}`, { passStatus: true })
        if (res.status === 200) return { loaded: true, message: `${design.modelProbePath} answered` }
        // The API server does not pass our credentials on: a 401 from a /v1 path is the runtime enforcing its key.
        if (res.status === 401) {
          const health = await c.request('GET', `${base}${design.healthPath}`, { passStatus: true })
          if (health.status === 200) return { loaded: true, message: `the runtime is healthy and requires its API key` }
        }
        if (row.kind === 'app') throw new WorkflowStepError('APP_NOT_HEALTHY', `the app's runner answered ${res.status} on ${design.healthPath}`)
        throw new WorkflowStepError('MODEL_NOT_LOADED', `the runtime answered ${res.status} on ${design.modelProbePath}`)
      })
    },

    /**
     * Once an app's revision has rolled out: deletes the ConfigMaps of code versions other than
     * this revision's and the one that served before it (so going back to it finds its files).
     * Best effort: a ConfigMap left over is a few KB, and the teardown deletes every version.
     */
    async pruneAppCode(endpointId: string, revision: number): Promise<{ deleted: string[] }> {
      const row = await service.current(endpointId, revision)
      if (!row || row.kind !== 'app' || !row.namespace) return { deleted: [] }
      const keep = [(row.spec as unknown as AppSpec).codeHash, (row.appliedSpec as unknown as AppSpec | null)?.codeHash].filter((h): h is string => !!h)
      if (keep.length === 0) return { deleted: [] }
      const namespace = row.namespace
      try {
        return await clusters.withClient(row.clusterId, async (c) => {
          const found = await c.core.listNamespacedConfigMap({ namespace, labelSelector: selectorOf(row) })
          const stale = staleCodeConfigMaps(row, keep, found.items.map((cm) => cm.metadata?.name ?? ''))
          for (const name of stale) await c.core.deleteNamespacedConfigMap({ name, namespace }).catch((err) => {
            if (toKubeError(err).httpStatus !== 404) throw err
          })
          if (stale.length) log.info({ endpointId, deleted: stale }, 'old code versions of the app deleted')
          return { deleted: stale }
        })
      } catch (err) {
        const k = toKubeError(err)
        log.warn({ endpointId, err: { code: k.code, message: k.message } }, 'deleting old code versions of the app failed')
        return { deleted: [] }
      }
    },

    async markRunning(endpointId: string, revision: number): Promise<{ phase: string }> {
      return transaction(db, async (tx) => {
        const row = await crud.lockEndpoint(tx, endpointId)
        if (!row || row.revision !== revision || row.phase === 'deleting' || row.phase === 'deleted') return { phase: row?.phase ?? 'gone' }
        const spec = row.spec as unknown as EndpointSpec
        const phase: EndpointPhase = spec.replicas === 0 ? 'scaled_to_zero' : 'running'
        const conditions = setConditions(
          row.conditions as Condition[],
          { type: 'Progressing', status: 'False', reason: 'RolloutComplete', message: `revision ${revision} is rolled out` },
          { type: 'Ready', status: phase === 'running' ? 'True' : 'False', reason: phase === 'running' ? 'Available' : 'ScaledToZero', message: null },
          { type: 'Degraded', status: 'False', reason: null, message: null },
          // An app has no model: what was probed is the runner's health route.
          { type: row.kind === 'app' ? 'Healthy' : 'ModelLoaded', status: phase === 'running' ? 'True' : 'Unknown', reason: phase === 'running' ? 'Probed' : 'ScaledToZero', message: null },
        )
        await transition(tx, row, phase, null, null, {
          appliedRevision: revision,
          appliedSpec: row.spec,
          conditions,
          failedStep: null,
          workflowId: null,
          baseUrl: row.baseUrl ?? (row.plan as { baseUrl?: string } | null)?.baseUrl ?? null,
        })
        await sweeps.schedule(tx, ENDPOINT_RECONCILE_SWEEP, endpointId, { dueInMs: settings.reconcileIntervalMs })
        return { phase }
      })
    },

    /**
     * A first deploy that failed: `failed` with the step and the pods' reasons. What was applied
     * stays for inspection until teardown.
     */
    async markFailed(endpointId: string, revision: number, step: string, error: string, problems: RolloutObservation['problems'] = []) {
      await transaction(db, async (tx) => {
        const row = await crud.lockEndpoint(tx, endpointId)
        if (!row || row.revision !== revision || row.phase === 'deleting' || row.phase === 'deleted') return
        const judged = { code: /^([A-Z_]+):/.exec(error)?.[1] ?? 'DEPLOY_FAILED', error }
        const { code, error: said } = row.kind === 'app' ? appFailure(step, error, problems, judged.code) : judged
        const why = problems.length ? `${said}; ${problems.map((p) => `${p.pod}: ${p.reason}: ${p.message}`).join('; ')}` : said
        const conditions = setConditions(
          row.conditions as Condition[],
          { type: 'Progressing', status: 'False', reason: code, message: clip(why) },
          { type: 'Ready', status: 'False', reason: code, message: null },
        )
        await transition(tx, row, 'failed', code, why, { failedStep: step, conditions, workflowId: null })
      })
    },

    /** An update that failed: the last good revision is applied again and the endpoint is `degraded`. */
    async markDegraded(endpointId: string, revision: number, step: string, error: string, problems: RolloutObservation['problems'] = []) {
      await transaction(db, async (tx) => {
        const row = await crud.lockEndpoint(tx, endpointId)
        if (!row || row.revision !== revision || row.phase === 'deleting' || row.phase === 'deleted') return
        const judged = { code: /^([A-Z_]+):/.exec(error)?.[1] ?? 'ROLLOUT_FAILED', error }
        const { code, error: said } = row.kind === 'app' ? appFailure(step, error, problems, judged.code) : judged
        const why = problems.length ? `${said}; ${problems.map((p) => `${p.pod}: ${p.reason}: ${p.message}`).join('; ')}` : said
        const conditions = setConditions(
          row.conditions as Condition[],
          { type: 'Progressing', status: 'False', reason: code, message: clip(`revision ${revision} failed and was rolled back: ${why}`) },
          { type: 'Degraded', status: 'True', reason: code, message: clip(why) },
        )
        // An app's new code that does not come up is the user's to fix: `failed`, with why (a crash's
        // log lines), while the last good code keeps serving; the next good update brings it back.
        const phase: EndpointPhase = row.kind === 'app' ? 'failed' : 'degraded'
        // After a first deploy that failed, nothing good was ever applied: nothing keeps serving.
        const serving = row.appliedRevision === null ? 'no earlier revision ever ran' : `revision ${row.appliedRevision} keeps serving`
        await transition(tx, row, phase, code, `revision ${revision} failed at ${step}; ${serving}: ${why}`, {
          failedStep: step,
          conditions,
          workflowId: null,
        })
        await sweeps.schedule(tx, ENDPOINT_RECONCILE_SWEEP, endpointId, { dueInMs: settings.reconcileIntervalMs })
      })
    },

    async deleteObjects(endpointId: string): Promise<{ deleted: number }> {
      const row = await rowFor(endpointId)
      if (!row.namespace) return { deleted: 0 }
      const deleted = await clusters.withClient(row.clusterId, (c) => deleteManaged(c, { selector: selectorOf(row), namespaces: [row.namespace!] }))
      return { deleted: deleted.length }
    },

    async objectsLeft(endpointId: string): Promise<{ left: number }> {
      const row = await rowFor(endpointId)
      if (!row.namespace) return { left: 0 }
      return clusters.withClient(row.clusterId, async (c) => {
        const objects = await listManaged(c, { selector: selectorOf(row), namespaces: [row.namespace!] })
        const pods = await c.core.listNamespacedPod({ namespace: row.namespace!, labelSelector: selectorOf(row) })
        return { left: objects.length + pods.items.length }
      })
    },

    async finishDelete(endpointId: string, note: string | null): Promise<void> {
      await transaction(db, async (tx) => {
        const row = await crud.lockEndpoint(tx, endpointId)
        if (!row || row.phase === 'deleted') return
        await transition(tx, row, 'deleted', note ? 'CLEANUP_INCOMPLETE' : null, note, { deletedAt: new Date(), apiKeySealed: null, workflowId: null })
        await sweeps.unschedule(tx, ENDPOINT_RECONCILE_SWEEP, endpointId)
        await events.publish(tx, ENDPOINT_TOPIC.deleted, { endpointId, name: row.name, note }, { tenantId: row.tenantId })
      })
    },

    // ---- the reconcile loop --------------------------------------------------------------------

    /**
     * One pass over one endpoint: apply the last good revision again (with force on our fields, so
     * an object edited or deleted by hand comes back), then judge what runs.
     */
    async reconcile(endpointId: string, signal: AbortSignal): Promise<{ nextInMs?: number }> {
      const row = await crud.getEndpointById(db, endpointId)
      if (!row || !reconciled(row) || row.workflowId || !row.appliedSpec) return {}
      try {
        const spec = row.appliedSpec as unknown as EndpointSpec
        const design = await designFor(row, spec, { withSecrets: true })
        const observed = await clusters.withClient(row.clusterId, async (c) => {
          const results = await applyManifests(c, design.manifests, { force: true, signal })
          // A Secret moves on its own (the weight URLs are re-signed every half-lifetime): not drift.
          const repaired = results.filter((r) => r.created || (r.changed && r.object.kind !== 'Secret')).map((r) => `${r.object.kind}/${r.object.metadata?.name}`)
          const rollout = spec.replicas === 0 ? null : await readRollout(c, row, design)
          const traffic = spec.idleScaleToZeroMinutes && spec.replicas > 0 ? await readTraffic(c, row, design, signal) : null
          return { repaired, rollout, traffic }
        })
        let idle = false
        await transaction(db, async (tx) => {
          const locked = await crud.lockEndpoint(tx, endpointId)
          if (!locked || !reconciled(locked) || locked.workflowId || locked.revision !== row.revision) return
          if (observed.repaired.length) {
            await events.publish(tx, ENDPOINT_TOPIC.driftRepaired, { endpointId, objects: observed.repaired }, { tenantId: locked.tenantId })
          }
          if (observed.traffic) {
            const active = observed.traffic.requests > 0
            const lastActivityAt = active ? new Date() : locked.lastActivityAt
            await crud.recordEndpointState(tx, endpointId, { activity: observed.traffic.counters, lastActivityAt })
            const idleMs = (spec.idleScaleToZeroMinutes ?? 0) * 60_000
            idle = locked.phase === 'running' && Date.now() - lastActivityAt.getTime() >= idleMs
          }
          if (!observed.rollout) return
          const { rollout } = observed
          if (rollout.state === 'complete' && locked.phase === 'degraded' && locked.appliedRevision === locked.revision) {
            const conditions = setConditions(locked.conditions as Condition[], { type: 'Degraded', status: 'False', reason: null, message: null }, { type: 'Ready', status: 'True', reason: 'Available', message: null })
            await transition(tx, locked, 'running', null, null, { conditions })
          } else if (rollout.state !== 'complete' && locked.phase === 'running') {
            const why = [rollout.message, ...rollout.problems.map((p) => `${p.pod}: ${p.reason}: ${p.message}`)].join('; ')
            const conditions = setConditions(locked.conditions as Condition[], { type: 'Degraded', status: 'True', reason: rollout.reason, message: clip(why) }, { type: 'Ready', status: 'False', reason: rollout.reason, message: null })
            await transition(tx, locked, 'degraded', rollout.reason, why, { conditions })
          }
        })
        if (idle) await service.scaleToZeroForIdle(endpointId)
        return {}
      } catch (err) {
        const k = toKubeError(err)
        log.warn({ endpointId, err: { code: k.code, message: k.message } }, 'endpoint reconcile failed')
        throw err
      }
    },

    /** No request for idleScaleToZeroMinutes: a new revision with no replicas, remembering how many to wake with. */
    async scaleToZeroForIdle(endpointId: string): Promise<void> {
      const row = await transaction(db, async (tx) => {
        const locked = await crud.lockEndpoint(tx, endpointId)
        if (!locked || locked.phase !== 'running' || locked.workflowId) return null
        const spec = locked.spec as unknown as EndpointSpec
        if (!spec.idleScaleToZeroMinutes || spec.replicas === 0) return null
        const next = { ...spec, replicas: 0, replicasBeforeIdle: spec.replicas }
        const updated = await crud.updateEndpoint(tx, endpointId, {
          spec: next as unknown as Record<string, unknown>,
          revision: locked.revision + 1,
          conditions: setConditions(locked.conditions as Condition[], { type: 'Progressing', status: 'True', reason: 'IdleScaleToZero', message: `no request for ${spec.idleScaleToZeroMinutes} min` }),
        })
        await events.publish(tx, ENDPOINT_TOPIC.updated, { endpointId, revision: updated.revision, fields: ['replicas'], reason: 'idle' }, { tenantId: locked.tenantId })
        return updated
      })
      if (!row) return
      await startRun(row, { id: 'system' }, 'update', `scale ${row.name} to zero: idle`)
      log.info({ endpointId, tenantId: row.tenantId }, 'endpoint idle: scaling to zero')
    },

    /** For cluster_ops: endpoints on a cluster, and their teardown when the cluster is deleted with force. */
    clusterUser: {
      kind: 'endpoints',
      countOn: (executor: Executor, clusterId: string) => crud.countLiveOnCluster(executor, clusterId),
      async tearDownOn(clusterId: string): Promise<void> {
        for (const { id } of await crud.liveIdsOnCluster(db, clusterId)) {
          const row = await crud.getEndpointById(db, id)
          if (row && row.phase !== 'deleting' && row.phase !== 'deleted') await service.tearDown(row, 'system')
        }
        // The cluster's own cleanup deletes the namespaces after; records are closed here.
        for (const { id } of await crud.liveIdsOnCluster(db, clusterId)) await service.finishDelete(id, 'deleted with its cluster')
      },
    },
    modelUser: {
      kind: 'endpoints',
      countUsing: (executor: Executor, modelId: string, versionId?: string) => crud.countLiveUsingModel(executor, modelId, versionId),
    },
  }
  return service
}

export type EndpointService = ReturnType<typeof createEndpointService>
export type { KubeManifest }
