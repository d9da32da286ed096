import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Static } from 'typebox'
import type { Principal } from '../../platform/auth/principal.js'
import type { Cache } from '../../platform/cache/index.js'
import { type ChangeFeed, changeScope } from '../../platform/db/changes.js'
import type { EventBus } from '../../platform/events/index.js'
import { type Database, type Executor, transaction, uniqueViolationOf } from '../../platform/db/client.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { type PageResult, pageRequest, pageResult, parseSort } from '../../platform/http/pagination.js'
import { type RuntimeSpec, SEEDED_RUNTIMES } from './catalog.js'
import { globalRuntimeNeedsSuperuser, runtimeNameTaken, runtimeNotFound } from './errors.js'
import type { CatalogRuntime } from './plan.js'
import * as crud from './runtime-crud.js'
import { invalidRuntime, nothingToUpdate, runtimeInUse } from './runtime-errors.js'
import { RUNTIME_SORT_FIELDS, type Runtime, type RuntimeCreate, type RuntimeUpdate } from './runtime-schema.js'
import type { NewRuntimeRow, RuntimeRow } from './runtime-tables.js'
import { runtimeProblems } from './runtime-validation.js'

/**
 * A module whose objects run on a runtime (endpoints) says how many use one, so that a runtime in
 * use is neither deleted nor renamed under them. Counted inside the deleting transaction, by name
 * (what endpoints record); `tenantId` null is a shared runtime, used by any tenant's objects.
 */
export interface RuntimeUser {
  /** Plural noun for messages: `endpoints`. */
  kind: string
  countUsing(executor: Executor, runtimeName: string, tenantId: string | null): Promise<number>
}

/**
 * How long a replica trusts its copy of a tenant's catalog. Writes drop the copies at once on the
 * replica that made them and, through the cache's publish/subscribe, on the others; the TTL bounds
 * what a lost message (a Redis blip) can leave behind.
 */
export const RUNTIME_CACHE_TTL_MS = 10_000
/** Tenants whose catalog a replica keeps at once; the oldest copy goes first. */
export const RUNTIME_CACHE_TENANTS = 1_000
const INVALIDATION_CHANNEL = 'mp:endpoint_ops:runtimes'
export const RUNTIME_TOPIC = {
  created: 'runtime.created',
  updated: 'runtime.updated',
  deleted: 'runtime.deleted',
} as const

/** Who the seeds were written by. */
export const SEED_ACTOR = 'system'

export type RuntimeView = Static<typeof Runtime>
export type RuntimeCreateInput = Static<typeof RuntimeCreate>
export type RuntimeUpdateInput = Static<typeof RuntimeUpdate>
export type RuntimeListQuery = crud.RuntimeFilter & { sort?: string; page?: number; limit?: number }

export interface RuntimeCatalogDeps {
  db: Database
  cache: Pick<Cache, 'publish' | 'subscribe'>
  /** runtime.created/updated/deleted: a tenant's for its admins, a shared runtime's as a platform event. */
  events: Pick<EventBus, 'publish'>
  log: Logger
  /** Seeds to write at start; the release's SEEDED_RUNTIMES unless a test says otherwise. */
  seeds?: readonly RuntimeSpec[]
  cacheTtlMs?: number
  /** When given, what is kept in memory is also dropped as soon as a runtime's row changes (heard from the database). */
  changes?: Pick<ChangeFeed, 'mark' | 'unchangedSince' | 'changed'>
}

export function specOf(row: RuntimeRow): RuntimeSpec {
  return {
    name: row.name,
    engine: row.engine as RuntimeSpec['engine'],
    deviceType: row.deviceType as RuntimeSpec['deviceType'],
    image: row.image,
    tag: row.tag,
    productTags: row.productTags,
    argsTemplate: row.argsTemplate,
    port: row.port,
    healthPath: row.healthPath,
    readinessPath: row.readinessPath,
    modelProbePath: row.modelProbePath,
    metricsPath: row.metricsPath,
    concurrencyMetric: row.concurrencyMetric,
    formats: row.formats,
    tasks: row.tasks,
    openaiRoutes: row.openaiRoutes,
    apiKey: row.apiKey,
    runAsUser: row.runAsUser,
    enabled: row.enabled,
    description: row.description,
  }
}

function rowOf(spec: RuntimeSpec): Omit<NewRuntimeRow, 'id' | 'tenantId' | 'createdBy' | 'updatedBy'> {
  return { ...spec, productTags: spec.productTags, apiKey: spec.apiKey }
}

/** What a caller sees; who changed a shared runtime is a superuser's business. */
export function runtimeView(row: RuntimeRow, principal: Pick<Principal, 'isSuperuser'>): RuntimeView {
  const global = row.tenantId === null
  const who = (id: string) => (global && !principal.isSuperuser && id !== SEED_ACTOR ? null : id)
  return {
    id: row.id,
    ...specOf(row),
    engine: row.engine as RuntimeView['engine'],
    deviceType: row.deviceType as RuntimeView['deviceType'],
    scope: global ? 'global' : 'tenant',
    seeded: row.seeded,
    createdBy: who(row.createdBy),
    updatedBy: who(row.updatedBy),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

const etag = (row: Pick<RuntimeRow, 'updatedAt' | 'version'>) => etagOf(row.updatedAt, row.version)

/** A create body with the defaults of the optional fields filled in. */
function specFromCreate(input: RuntimeCreateInput): RuntimeSpec {
  const healthPath = input.healthPath ?? '/health'
  return {
    name: input.name,
    engine: input.engine,
    deviceType: input.deviceType,
    image: input.image,
    tag: input.tag,
    productTags: input.productTags ?? [],
    argsTemplate: input.argsTemplate,
    port: input.port,
    healthPath,
    readinessPath: input.readinessPath ?? healthPath,
    modelProbePath: input.modelProbePath ?? '/v1/models',
    metricsPath: input.metricsPath ?? '/metrics',
    concurrencyMetric: input.concurrencyMetric ?? null,
    formats: input.formats,
    tasks: input.tasks,
    openaiRoutes: input.openaiRoutes,
    apiKey: input.apiKey ?? { kind: 'flag', flag: '--api-key' },
    runAsUser: input.runAsUser ?? null,
    enabled: input.enabled ?? true,
    description: input.description ?? '',
  }
}

interface CachedCatalog {
  value: readonly CatalogRuntime[]
  until: number
  /** The change feed's mark before the rows were read; undefined without a listening feed (then the TTL alone). */
  mark: number | undefined
}

const runtimeScopes = (tenantId: string) => [changeScope.runtimes(tenantId), changeScope.runtimes(null)]

/**
 * The runtime catalog: shared runtimes (seeded at start, changed by superusers) and each tenant's
 * own (changed by holders of runtime:manage), and the planner's view of it (`forPlanning`).
 */
export function createRuntimeCatalog(deps: RuntimeCatalogDeps) {
  const { db, cache, events, log } = deps
  const seeds = deps.seeds ?? SEEDED_RUNTIMES
  const ttlMs = deps.cacheTtlMs ?? RUNTIME_CACHE_TTL_MS
  const users: RuntimeUser[] = []
  const byTenant = new Map<string, CachedCatalog>()
  /** Moves with every invalidation: a load that began before one does not store what it read. */
  let generation = 0
  let unsubscribe: (() => Promise<void>) | undefined

  function dropLocal(message: string): void {
    generation++
    if (message === 'global') byTenant.clear()
    else byTenant.delete(message.replace(/^tenant:/, ''))
  }

  async function invalidate(tenantId: string | null): Promise<void> {
    const message = tenantId === null ? 'global' : `tenant:${tenantId}`
    dropLocal(message)
    // What was kept from the old rows (plans) goes too, before the database's notification arrives.
    deps.changes?.changed(changeScope.runtimes(tenantId))
    await cache.publish(INVALIDATION_CHANNEL, message).catch((err: Error) =>
      log.warn({ error: err.message }, 'publishing a runtime catalog invalidation failed; other replicas catch up within the TTL'),
    )
  }

  async function usersOf(tx: Executor, name: string, tenantId: string | null): Promise<Array<{ kind: string; count: number }>> {
    const inUse: Array<{ kind: string; count: number }> = []
    for (const user of users) {
      const n = await user.countUsing(tx, name, tenantId)
      if (n > 0) inUse.push({ kind: user.kind, count: n })
    }
    return inUse
  }

  /** The row, locked, if the caller sees it and may change it. */
  async function writable(tx: Executor, principal: Principal, id: string): Promise<RuntimeRow> {
    const row = await crud.lockRuntime(tx, id)
    if (!row || row.deletedAt !== null || (row.tenantId !== null && row.tenantId !== principal.tenantId)) throw runtimeNotFound()
    if (row.tenantId === null && !principal.isSuperuser) throw globalRuntimeNeedsSuperuser()
    return row
  }

  async function claimName(tx: Executor, tenantId: string | null, name: string, exceptId?: string): Promise<void> {
    await crud.lockRuntimeName(tx, name)
    if (await crud.runtimeNameTaken(tx, tenantId, name, exceptId)) throw runtimeNameTaken(name)
  }

  /** A unique index that caught what the name lock let through (it cannot, but the index has the last word). */
  function nameRace(err: unknown, name: string): never {
    if (uniqueViolationOf(err)?.startsWith('runtimes_')) throw runtimeNameTaken(name)
    throw err
  }

  /**
   * Writes the seeds whose names were never used by a shared runtime: a seed an operator edited
   * stays as edited, one an operator deleted stays deleted. Idempotent; replicas starting
   * together race harmlessly (the loser's insert does nothing).
   */
  async function seed(): Promise<number> {
    const used = await crud.globalNamesEverUsed(
      db,
      seeds.map((s) => s.name),
    )
    const missing = seeds.filter((s) => !used.has(s.name))
    const inserted = await crud.insertSeeds(
      db,
      missing.map((spec) => ({ id: randomUUID(), tenantId: null, ...rowOf(spec), seeded: true, createdBy: SEED_ACTOR, updatedBy: SEED_ACTOR })),
    )
    if (inserted > 0) {
      await invalidate(null)
      log.info({ inserted }, 'runtime catalog seeded')
    }
    return inserted
  }

  return {
    /** Endpoints declare themselves here while the app is built. */
    registerUser(user: RuntimeUser): void {
      users.push(user)
    },

    /**
     * The enabled runtimes the tenant may deploy with: the shared ones and its own, by name; where
     * a tenant's runtime has the name of a shared one (a seed added by a later release), the
     * tenant's wins. Served from memory (see RUNTIME_CACHE_TTL_MS): a fresh array of frozen entries.
     */
    async forPlanning(tenantId: string): Promise<CatalogRuntime[]> {
      const now = Date.now()
      const hit = byTenant.get(tenantId)
      const current = (h: CachedCatalog) => h.until > now && (h.mark === undefined || deps.changes!.unchangedSince(h.mark, runtimeScopes(tenantId)))
      if (hit && current(hit)) return [...hit.value]
      const started = generation
      const mark = deps.changes?.mark()
      const rows = await crud.enabledRuntimesFor(db, tenantId)
      const byName = new Map<string, RuntimeRow>()
      for (const row of rows) {
        const seen = byName.get(row.name)
        if (!seen || (seen.tenantId === null && row.tenantId !== null)) byName.set(row.name, row)
      }
      const value = Object.freeze([...byName.values()].map((row): CatalogRuntime => Object.freeze({ id: row.id, ...specOf(row) })))
      if (started === generation) {
        byTenant.delete(tenantId)
        byTenant.set(tenantId, { value, until: now + ttlMs, mark })
        if (byTenant.size > RUNTIME_CACHE_TENANTS) byTenant.delete(byTenant.keys().next().value!)
      }
      return [...value]
    },

    async list(principal: Principal, query: RuntimeListQuery): Promise<PageResult<RuntimeView>> {
      const page = pageRequest(query)
      const sort = parseSort(query.sort, RUNTIME_SORT_FIELDS, { field: 'name', direction: 'asc' })
      const { rows, total } = await crud.listRuntimes(db, principal.tenantId, query, sort, page)
      return pageResult(
        rows.map((row) => runtimeView(row, principal)),
        total,
        page,
      )
    },

    async get(principal: Principal, id: string): Promise<{ runtime: RuntimeView; etag: string }> {
      const row = await crud.getVisibleRuntime(db, principal.tenantId, id)
      if (!row) throw runtimeNotFound()
      return { runtime: runtimeView(row, principal), etag: etag(row) }
    },

    async create(principal: Principal, input: RuntimeCreateInput): Promise<{ runtime: RuntimeView; etag: string }> {
      const global = input.global === true
      if (global && !principal.isSuperuser) throw globalRuntimeNeedsSuperuser()
      const spec = specFromCreate(input)
      const problems = runtimeProblems(spec)
      if (problems.length > 0) throw invalidRuntime(problems)
      const tenantId = global ? null : principal.tenantId
      const row = await transaction(db, async (tx) => {
        await claimName(tx, tenantId, spec.name)
        const inserted = await crud.insertRuntime(tx, { id: randomUUID(), tenantId, ...rowOf(spec), createdBy: principal.id, updatedBy: principal.id })
        await events.publish(tx, RUNTIME_TOPIC.created, { runtimeId: inserted.id, name: inserted.name, scope: global ? 'global' : 'tenant' }, { tenantId })
        return inserted
      }).catch((err: unknown) => nameRace(err, spec.name))
      await invalidate(tenantId)
      log.info({ runtimeId: row.id, name: row.name, scope: global ? 'global' : 'tenant', tenantId: principal.tenantId }, 'runtime created')
      return { runtime: runtimeView(row, principal), etag: etag(row) }
    },

    async update(principal: Principal, id: string, input: RuntimeUpdateInput, ifMatch?: string[]): Promise<{ runtime: RuntimeView; etag: string }> {
      if (Object.keys(input).length === 0) throw nothingToUpdate()
      const row = await transaction(db, async (tx) => {
        const current = await writable(tx, principal, id)
        assertIfMatch(ifMatch, etag(current))
        const spec: RuntimeSpec = { ...specOf(current), ...input } as RuntimeSpec
        const problems = runtimeProblems(spec)
        if (problems.length > 0) throw invalidRuntime(problems)
        if (input.name !== undefined && input.name !== current.name) {
          const inUse = await usersOf(tx, current.name, current.tenantId)
          if (inUse.length > 0) throw runtimeInUse(inUse, 'renamed')
          await claimName(tx, current.tenantId, input.name, current.id)
        }
        const updated = await crud.updateRuntime(tx, id, { ...rowOf(spec), updatedBy: principal.id })
        await events.publish(tx, RUNTIME_TOPIC.updated, { runtimeId: id, name: updated.name, fields: Object.keys(input) }, { tenantId: current.tenantId })
        return updated
      }).catch((err: unknown) => nameRace(err, input.name ?? ''))
      await invalidate(row.tenantId)
      log.info({ runtimeId: row.id, name: row.name, fields: Object.keys(input) }, 'runtime updated')
      return { runtime: runtimeView(row, principal), etag: etag(row) }
    },

    /** Soft: a deleted seed is remembered and never seeded again. */
    async remove(principal: Principal, id: string, ifMatch?: string[]): Promise<void> {
      const row = await transaction(db, async (tx) => {
        const current = await writable(tx, principal, id)
        assertIfMatch(ifMatch, etag(current))
        const inUse = await usersOf(tx, current.name, current.tenantId)
        if (inUse.length > 0) throw runtimeInUse(inUse, 'deleted')
        await crud.softDeleteRuntime(tx, id, principal.id)
        await events.publish(tx, RUNTIME_TOPIC.deleted, { runtimeId: id, name: current.name }, { tenantId: current.tenantId })
        return current
      })
      await invalidate(row.tenantId)
      log.info({ runtimeId: row.id, name: row.name }, 'runtime deleted')
    },

    seed,

    async start(): Promise<void> {
      unsubscribe = await cache.subscribe(INVALIDATION_CHANNEL, dropLocal)
      await seed()
    },

    async stop(): Promise<void> {
      await unsubscribe?.()
      unsubscribe = undefined
    },
  }
}

export type RuntimeCatalog = ReturnType<typeof createRuntimeCatalog>
