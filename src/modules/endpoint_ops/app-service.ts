import type { Static } from 'typebox'
import type { Config } from '../../config.js'
import type { Principal } from '../../platform/auth/principal.js'
import { ValidationError } from '../../platform/errors.js'
import { type PageResult } from '../../platform/http/pagination.js'
import { codeHash, RESERVED_APP_ENV } from './apps/app-manifests.js'
import { type AppFile, type AppValidator, appFilesFromCode, requireValidApp } from './apps/validate.js'
import type { AppCreate, AppUpdate } from './app-schema.js'
import type { ListedEndpointRow } from './endpoint-crud.js'
import type { AppSpec } from './endpoint-design.js'
import { nothingToUpdate, workerNotFound } from './endpoint-errors.js'
import type { EndpointService } from './endpoint-service.js'
import type { EndpointRow } from './tables.js'

export interface AppServiceDeps {
  endpoints: EndpointService
  validator: AppValidator
  /** The import allow-list a tenant's apps are checked against (admins may edit it). */
  allowListFor(tenantId: string): Promise<readonly string[]>
  apps: Config['apps']
}

type Body = Static<typeof AppCreate> | Static<typeof AppUpdate>

/** The files of a body: `code` (one file, main.py) or `files`, never both. */
function filesOf(body: Body): { files: AppFile[]; field: string } | null {
  if (body.code !== undefined && body.files !== undefined) {
    throw new ValidationError('send either code or files, not both', [{ field: 'body.code', message: 'not with files' }])
  }
  if (body.code !== undefined) return { files: appFilesFromCode(body.code), field: 'body.code' }
  if (body.files !== undefined) return { files: body.files.map((f) => ({ path: f.path, content: f.content })), field: 'body.files' }
  return null
}

function checkEnv(env: Record<string, string> | undefined): void {
  const reserved = Object.keys(env ?? {}).filter((name) => RESERVED_APP_ENV.includes(name))
  if (reserved.length > 0) {
    throw new ValidationError(
      `the runner sets these variables itself: ${reserved.join(', ')}`,
      reserved.map((name) => ({ field: `body.env.${name}`, message: 'reserved by the runner' })),
    )
  }
}

/**
 * Apps over the endpoint lifecycle: the code is validated here (every problem at once, 400
 * CODE_INVALID), then an app is an endpoint of kind `app` — the same deploy, rollout, reconcile,
 * idle and teardown machinery, with the owner rule (a user without admin rank sees only their own).
 */
export function createAppService(deps: AppServiceDeps) {
  const { endpoints, validator } = deps

  async function validated(principal: Principal, body: Body) {
    const sent = filesOf(body)
    if (!sent) return null
    const allowed = await deps.allowListFor(principal.tenantId)
    return requireValidApp(await validator.validate(sent.files, allowed), sent.field)
  }

  return {
    async create(principal: Principal, body: Static<typeof AppCreate>, idempotencyKey?: string): Promise<{ appId: string; workflowId: string }> {
      checkEnv(body.env)
      const code = await validated(principal, body)
      if (!code) throw new ValidationError('send the app as code or files', [{ field: 'body.code', message: 'code or files is required' }])
      const spec: AppSpec = {
        name: body.name,
        clusterId: body.clusterId,
        files: code.files,
        entry: code.entry,
        codeHash: codeHash(code.files),
        ...(body.env ? { env: body.env } : {}),
        replicas: 1,
        idleScaleToZeroMinutes: body.idleMinutes ?? deps.apps.idleMinutes,
      }
      const started = await endpoints.createApp(principal, spec, idempotencyKey)
      return { appId: started.endpointId, workflowId: started.workflowId }
    },

    get: (principal: Principal, id: string) => endpoints.get(principal, id, 'app'),

    list(principal: Principal, query: { clusterId?: string; phase?: string; q?: string; sort?: string; page?: number; limit?: number }): Promise<PageResult<ListedEndpointRow>> {
      return endpoints.list(principal, { ...query }, 'app')
    },

    /** New code is a new code hash: a new ConfigMap and a rollout (the old version's ConfigMap stays until teardown). */
    async update(principal: Principal, id: string, body: Static<typeof AppUpdate>, ifMatch?: string[]) {
      checkEnv(body.env)
      // Owner and tenant first: nobody learns about another's app from a validation answer.
      await endpoints.get(principal, id, 'app')
      const code = await validated(principal, body)
      const change: Partial<AppSpec> = {
        ...(code ? { files: code.files, entry: code.entry, codeHash: codeHash(code.files) } : {}),
        ...(body.env !== undefined ? { env: body.env } : {}),
        ...(body.idleMinutes !== undefined ? { idleScaleToZeroMinutes: body.idleMinutes } : {}),
      }
      if (Object.keys(change).length === 0) throw nothingToUpdate('code or files, env, or idleMinutes')
      return endpoints.update(principal, id, change, ifMatch, undefined, 'app')
    },

    remove: (principal: Principal, id: string) => endpoints.remove(principal, id, 'app'),
    wake: (principal: Principal, id: string) => endpoints.wake(principal, id, 'app'),
    touch: (principal: Principal, id: string) => endpoints.touch(principal, id, 'app'),

    /** The log of one of the app's pods (default: the newest), as endpoint worker logs. */
    async logs(principal: Principal, id: string, query: { pod?: string; follow?: boolean; tailLines?: number }, signal: AbortSignal) {
      let pod = query.pod
      if (!pod) {
        const workers = await endpoints.workers(principal, id, 'app')
        const newest = [...workers].sort((a, b) => String(b.startedAt ?? '').localeCompare(String(a.startedAt ?? '')) || b.name.localeCompare(a.name))[0]
        if (!newest) throw workerNotFound()
        pod = newest.name
      }
      return endpoints.logs(principal, id, pod, { ...(query.follow ? { follow: true } : {}), ...(query.tailLines ? { tailLines: query.tailLines } : {}), container: 'runner' }, signal, 'app')
    },
  }
}

export type AppService = ReturnType<typeof createAppService>

/** What the API shows of an app: paths and sizes of its files, not their text again. */
export function appView(row: ListedEndpointRow | EndpointRow) {
  const spec = row.spec as unknown as AppSpec
  return {
    id: row.id,
    name: row.name,
    clusterId: row.clusterId,
    // A page carries paths and sizes only (endpoint-crud's APP_LISTED); one app carries the files.
    files: (spec.files ?? []).map((f: AppFile | { path: string; bytes: number }) => ({ path: f.path, bytes: 'content' in f ? Buffer.byteLength(f.content) : f.bytes })),
    entry: spec.entry,
    env: spec.env ?? {},
    codeHash: spec.codeHash ?? (spec.files?.every((f) => 'content' in f) ? codeHash(spec.files) : null),
    replicas: spec.replicas,
    idleMinutes: spec.idleScaleToZeroMinutes ?? null,
    revision: row.revision,
    appliedRevision: row.appliedRevision,
    namespace: row.namespace,
    phase: row.phase as 'running',
    conditions: row.conditions as never,
    statusReason: row.statusReason,
    statusMessage: row.statusMessage,
    statusSince: row.statusSince.toISOString(),
    failedStep: row.failedStep,
    url: row.baseUrl,
    lastActivityAt: row.lastActivityAt.toISOString(),
    workflowId: row.workflowId,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}
