import type { Logger } from 'pino'
import type { Static } from 'typebox'
import type { Principal } from '../../platform/auth/principal.js'
import { type ChangeFeed, changeScope, createKept } from '../../platform/db/changes.js'
import { type Database, transaction } from '../../platform/db/client.js'
import { NotFoundError } from '../../platform/errors.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import type { ClusterService } from '../cluster_ops/index.js'
import { invalidServingSettings, nothingToUpdate } from './runtime-errors.js'
import type { ServingSettingsRow } from './runtime-tables.js'
import { servingSettingsProblems } from './runtime-validation.js'
import * as crud from './serving-settings-crud.js'
import type { ServingSettingsUpdate, ServingSettingsView } from './serving-settings-schema.js'
import { DEFAULT_SERVING_SETTINGS, type ServingSettings } from './serving-settings.js'

export type ServingSettingsInput = Static<typeof ServingSettingsUpdate>
export type ServingSettingsAnswer = Static<typeof ServingSettingsView>

export interface ServingSettingsDeps {
  db: Database
  /** Whether the cluster is the caller's: another tenant's (or a deleted one) is not found. */
  clusters: Pick<ClusterService, 'get'>
  log: Logger
  /**
   * The planner's reads are kept until the row changes (heard from the database), and every change
   * through this process is told at once, so that nothing kept from the old settings is served after it.
   */
  changes?: ChangeFeed
}

/** The ETag of settings never written: any later write has another. */
const DEFAULT_ETAG = etagOf(new Date(0), 0)

const clusterNotFound = () => new NotFoundError('cluster not found', 'CLUSTER_NOT_FOUND')

export function settingsOf(row: ServingSettingsRow | undefined): ServingSettings {
  if (!row) return { ...DEFAULT_SERVING_SETTINGS, imagePullSecrets: [], apiServerCidrs: [] }
  return {
    registryPrefix: row.registryPrefix,
    imagePullSecrets: row.imagePullSecrets,
    objectStoreUrl: row.objectStoreUrl,
    ingressHostSuffix: row.ingressHostSuffix,
    tlsSecretName: row.tlsSecretName,
    ingressClassName: row.ingressClassName,
    ingressNamespace: row.ingressNamespace,
    apiServerCidrs: row.apiServerCidrs,
    prometheusUrl: row.prometheusUrl,
    quota: row.quota,
  }
}

function answerOf(clusterId: string, row: ServingSettingsRow | undefined): { settings: ServingSettingsAnswer; etag: string } {
  return {
    settings: {
      clusterId,
      ...settingsOf(row),
      isDefault: row === undefined,
      updatedBy: row?.updatedBy ?? null,
      updatedAt: row ? row.updatedAt.toISOString() : null,
    },
    etag: row ? etagOf(row.updatedAt, row.version) : DEFAULT_ETAG,
  }
}

/** The settings after a change: the fields sent replace the current ones; null is the default. */
function merged(current: ServingSettings, input: ServingSettingsInput): ServingSettings {
  const next: ServingSettings = { ...current }
  for (const [key, value] of Object.entries(input) as Array<[keyof ServingSettings, unknown]>) {
    ;(next as unknown as Record<string, unknown>)[key] = value ?? DEFAULT_SERVING_SETTINGS[key]
  }
  if (next.registryPrefix) next.registryPrefix = next.registryPrefix.replace(/\/+$/, '')
  // An empty quota says nothing: the defaults apply, as with null.
  if (next.quota && Object.keys(next.quota).length === 0) next.quota = null
  return next
}

/**
 * What a tenant says about serving on each of its clusters (registry mirror, pull secrets, the
 * object store's address as the cluster sees it, ingress, quota), read by the planner through
 * `forCluster`.
 */
/** Clusters whose settings the planner's reads keep in memory. */
const KEPT_SETTINGS = 1_000

export function createServingSettings(deps: ServingSettingsDeps) {
  const { db, clusters, log } = deps
  const kept = deps.changes ? createKept<ServingSettings>(deps.changes, { max: KEPT_SETTINGS }) : undefined

  async function assertCluster(principal: Principal, clusterId: string): Promise<void> {
    let status: string
    try {
      status = (await clusters.get(principal, clusterId)).cluster.status
    } catch (err) {
      if ((err as { status?: number }).status === 404) throw clusterNotFound()
      throw err
    }
    if (status === 'deleted') throw clusterNotFound()
  }

  return {
    /** The tenant's settings for the cluster; DEFAULT_SERVING_SETTINGS where it set none. One primary-key read. */
    async forCluster(tenantId: string, clusterId: string): Promise<ServingSettings> {
      const read = async () => settingsOf(await crud.getServingSettings(db, tenantId, clusterId))
      if (!kept) return read()
      return kept.get(`${tenantId}\u0000${clusterId}`, async () => ({ value: await read(), scopes: [changeScope.cluster(clusterId)] }))
    },

    async get(principal: Principal, clusterId: string): Promise<{ settings: ServingSettingsAnswer; etag: string }> {
      await assertCluster(principal, clusterId)
      return answerOf(clusterId, await crud.getServingSettings(db, principal.tenantId, clusterId))
    },

    async update(principal: Principal, clusterId: string, input: ServingSettingsInput, ifMatch?: string[]): Promise<{ settings: ServingSettingsAnswer; etag: string }> {
      if (Object.keys(input).length === 0) throw nothingToUpdate()
      await assertCluster(principal, clusterId)
      const row = await transaction(db, async (tx) => {
        const current = await crud.lockServingSettings(tx, principal.tenantId, clusterId)
        assertIfMatch(ifMatch, current ? etagOf(current.updatedAt, current.version) : DEFAULT_ETAG)
        const settings = merged(settingsOf(current), input)
        const problems = servingSettingsProblems(settings)
        if (problems.length > 0) throw invalidServingSettings(problems)
        return crud.putServingSettings(tx, principal.tenantId, clusterId, { ...settings, updatedBy: principal.id })
      })
      // What was kept from the old settings (plans) goes now, before the database's notification arrives.
      deps.changes?.changed(changeScope.cluster(clusterId))
      log.info({ clusterId, tenantId: principal.tenantId }, 'serving settings changed')
      return answerOf(clusterId, row)
    },
  }
}

export type ServingSettingsService = ReturnType<typeof createServingSettings>
