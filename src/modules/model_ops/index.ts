import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { createOutbound } from '../../platform/net/outbound.js'
import { createKeptCounts } from '../../platform/db/kept-counts.js'
import type { Platform } from '../../platform/platform.js'
import type { WorkflowService } from '../workflow_ops/index.js'
import { createCredentialService } from './credentials.js'
import { upsertProviders } from './crud.js'
import { createImportService } from './import.js'
import { registerImportRoutes } from './import-routes.js'
import { registerImportWorkflows } from './import-workflow.js'
import { createUrlImportService } from './url-import.js'
import { registerUrlImportWorkflows } from './url-import-workflow.js'
import { PROVIDERS } from './providers.js'
import { registerModelRoutes } from './routes.js'
import { createModelService } from './service.js'
import { registerUploadRoutes } from './upload-routes.js'
import { registerUploadWorkflow } from './upload-workflow.js'
import { createUploadService, ORPHAN_SCAN_ID, ORPHAN_SCAN_INTERVAL_MS, UPLOAD_EXPIRY_SWEEP, UPLOAD_ORPHAN_SWEEP } from './uploads.js'

export type { CredentialService } from './credentials.js'
export { CREDENTIAL_TOPIC } from './credentials.js'
export type { ModelService, ModelUser } from './service.js'
export { MODEL_TOPIC } from './service.js'
export { IMPORT_TOPIC, IMPORT_WORKFLOW } from './import.js'
export { URL_IMPORT_WORKFLOW } from './url-import.js'
export { PROVIDERS, type ProviderId } from './providers.js'
export type { UploadService } from './uploads.js'
export { ORPHAN_SCAN_ID, UPLOAD_EXPIRY_SWEEP, UPLOAD_ORPHAN_SWEEP, UPLOAD_TOPIC, UPLOAD_WORKFLOW } from './uploads.js'

/**
 * The model catalog: providers and the tenant's credentials for them, models (cloud ones called
 * where they are, the others held as versions of files in the blob store), versions. Endpoints
 * declare themselves as model users (`models.registerUser`) so a model in use is not deleted.
 */
export function createModelOps(
  platform: Pick<Platform, 'config' | 'log' | 'database' | 'vault' | 'events' | 'blob' | 'sweeps' | 'changes'>,
  workflows: WorkflowService,
) {
  const log = platform.log.child({ module: 'model_ops' })
  const settings = platform.config.models
  const outbound = createOutbound({ deniedCidrs: settings.deniedCidrs, timeoutMs: settings.providerTimeoutMs, extraCaPem: settings.extraCaPem })
  const credentials = createCredentialService({
    db: platform.database.db,
    vault: platform.vault,
    events: platform.events,
    outbound,
    hubUrl: settings.hubUrl,
    log,
  })
  // Totals and facets kept until the tenant's models change, as the change feed hears it.
  const counts = createKeptCounts(platform.changes)
  const models = createModelService({ db: platform.database.db, blob: platform.blob, events: platform.events, credentials, counts, log })
  const imports = createImportService({
    db: platform.database.db,
    blob: platform.blob,
    events: platform.events,
    models,
    credentials,
    workflows,
    hubUrl: settings.hubUrl,
    partBytes: settings.importPartBytes,
    log,
  })
  registerImportWorkflows(workflows, imports)
  const uploads = createUploadService({
    db: platform.database.db,
    blob: platform.blob,
    events: platform.events,
    sweeps: platform.sweeps,
    workflows,
    models,
    settings: settings.uploads,
    log,
  })
  registerUploadWorkflow(workflows, uploads)
  // Abandoned uploads: each is due at its expiry; the orphan scan looks for what no upload knows.
  platform.sweeps.define({ name: UPLOAD_EXPIRY_SWEEP, intervalMs: ORPHAN_SCAN_INTERVAL_MS, concurrency: 4, leaseMs: 120_000, run: (id) => uploads.expire(id) })
  platform.sweeps.define({
    name: UPLOAD_ORPHAN_SWEEP,
    intervalMs: ORPHAN_SCAN_INTERVAL_MS,
    concurrency: 1,
    leaseMs: 300_000,
    run: async (_id, ctx) => {
      await uploads.sweepOrphans(ctx.signal)
    },
  })
  const urlImports = createUrlImportService({
    db: platform.database.db,
    blob: platform.blob,
    vault: platform.vault,
    outbound,
    imports,
    workflows,
    partBytes: settings.importPartBytes,
    maxDownloadBytes: settings.importMaxDownloadBytes,
    archive: { maxExpandedBytes: settings.importMaxExpandedBytes, maxRatio: settings.importMaxExpansionRatio },
    scratchDir: join(platform.config.dataDir, 'tmp', 'url-import'),
    log,
  })
  registerUrlImportWorkflows(workflows, urlImports)
  return {
    models,
    credentials,
    uploads,
    /** Writes the providers the code knows; idempotent, so every replica may run it at start. */
    async start(): Promise<void> {
      await upsertProviders(
        platform.database.db,
        PROVIDERS.map(({ mainSecret: _main, ...p }) => p),
      )
      await platform.sweeps.schedule(platform.database.db, UPLOAD_ORPHAN_SWEEP, ORPHAN_SCAN_ID, { dueInMs: ORPHAN_SCAN_INTERVAL_MS })
    },
    async stop(): Promise<void> {
      outbound.close()
    },
    routes: (app: FastifyInstance) => {
      registerModelRoutes(app, models, credentials)
      registerUploadRoutes(app, uploads)
      registerImportRoutes(app, imports, urlImports)
    },
  }
}
