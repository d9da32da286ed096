import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { BlobStore } from './blob/index.js'
import type { Cache } from './cache/index.js'
import type { ChangeFeed } from './db/changes.js'
import type { DatabaseHandle } from './db/client.js'
import type { EventBus } from './events/index.js'
import type { Metrics } from './http/metrics.js'
import type { Sweeps } from './sweeps/index.js'
import type { Vault } from './vault.js'

/**
 * The infrastructure every module is built from; one instance per app, built by `buildApp`.
 * It lives here rather than in app.ts so that modules depend on the platform, never on the
 * composition root that imports them.
 */
export interface Platform {
  config: Readonly<Config>
  log: Logger
  database: DatabaseHandle
  cache: Cache
  blob: BlobStore
  vault: Vault
  events: EventBus
  metrics: Metrics
  /** Periodic work over many resources, shared between replicas by leases (clusters, endpoints, apps). */
  sweeps: Sweeps
  /** What changed in the database, heard by every replica: answers computed from rows are kept until their rows change. */
  changes: ChangeFeed
}
