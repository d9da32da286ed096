import type { Logger } from 'pino'
import type { Static } from 'typebox'
import type { Principal } from '../../platform/auth/principal.js'
import { type Database, transaction } from '../../platform/db/client.js'
import { NotFoundError } from '../../platform/errors.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import type { ClusterService } from '../cluster_ops/index.js'
import { invalidServingSettings } from './runtime-errors.js'
import type { ServingSettingsRow } from './runtime-tables.js'
import { servingSettingsProblems } from './runtime-validation.js'
import * as crud from './serving-settings-crud.js'
import type { ServingSettingsPut, ServingSettingsView } from './serving-settings-schema.js'
import { DEFAULT_SERVING_SETTINGS, type ServingSettings } from './serving-settings.js'

export type ServingSettingsInput = Static<typeof ServingSettingsPut>
export type ServingSettingsAnswer = Static<typeof ServingSettingsView>

export interface ServingSettingsDeps {
  db: Database
  /** Whether the cluster is the caller's: another tenant's (or a deleted one) is not found. */
  clusters: Pick<ClusterService, 'get'>
  log: Logger
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

/** A PUT body as the whole settings: what is left out takes its default. */
function settingsFromPut(input: ServingSettingsInput): ServingSettings {
  const quota = input.quota ?? null
  return {
    registryPrefix: input.registryPrefix ? input.registryPrefix.replace(/\/+$/, '') : null,
    imagePullSecrets: input.imagePullSecrets ?? [],
    objectStoreUrl: input.objectStoreUrl ?? null,
    ingressHostSuffix: input.ingressHostSuffix ?? null,
    tlsSecretName: input.tlsSecretName ?? null,
    ingressClassName: input.ingressClassName ?? null,
    ingressNamespace: input.ingressNamespace ?? null,
    apiServerCidrs: input.apiServerCidrs ?? [],
    prometheusUrl: input.prometheusUrl ?? null,
    // An empty quota object says nothing: the defaults apply, as with null.
    quota: quota && Object.keys(quota).length > 0 ? quota : null,
  }
}

/**
 * What a tenant says about serving on each of its clusters (registry mirror, pull secrets, the
 * object store's address as the cluster sees it, ingress, quota), read by the planner through
 * `forCluster`.
 */
export function createServingSettings(deps: ServingSettingsDeps) {
  const { db, clusters, log } = deps

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
      return settingsOf(await crud.getServingSettings(db, tenantId, clusterId))
    },

    async get(principal: Principal, clusterId: string): Promise<{ settings: ServingSettingsAnswer; etag: string }> {
      await assertCluster(principal, clusterId)
      return answerOf(clusterId, await crud.getServingSettings(db, principal.tenantId, clusterId))
    },

    async put(principal: Principal, clusterId: string, input: ServingSettingsInput, ifMatch?: string[]): Promise<{ settings: ServingSettingsAnswer; etag: string }> {
      await assertCluster(principal, clusterId)
      const settings = settingsFromPut(input)
      const problems = servingSettingsProblems(settings)
      if (problems.length > 0) throw invalidServingSettings(problems)
      const row = await transaction(db, async (tx) => {
        const current = await crud.lockServingSettings(tx, principal.tenantId, clusterId)
        assertIfMatch(ifMatch, current ? etagOf(current.updatedAt, current.version) : DEFAULT_ETAG)
        return crud.putServingSettings(tx, principal.tenantId, clusterId, { ...settings, updatedBy: principal.id })
      })
      log.info({ clusterId, tenantId: principal.tenantId }, 'serving settings changed')
      return answerOf(clusterId, row)
    },
  }
}

export type ServingSettingsService = ReturnType<typeof createServingSettings>
