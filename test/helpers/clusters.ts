import { eq } from 'drizzle-orm'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from '../../src/app.js'
import { type ClusterRow, clusters } from '../../src/modules/cluster_ops/tables.js'
import { testConfig } from './app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from './auth.js'
import { type KubeStandIn, startKubeStandIn } from './kube/index.js'
import { waitFor } from './wait.js'
import { FAST_HUB, uniqueHub } from './workflow.js'

/**
 * One app with its own workflow hub, a stand-in API server and an admin of a fresh tenant: what
 * every cluster_ops behaviour test starts from. Files build one in beforeAll and close it after.
 */

export interface RunRecord {
  id: string
  status: string
  currentStep: number
  totalSteps: number | null
  error: { code: string; message: string } | null
  result: unknown
  steps: Array<{ step: number; message: string | null; status: string }>
}

export interface ClusterHarness {
  app: FastifyInstance
  kube: KubeStandIn
  admin: SeededUser
  /** A request as `user` (the admin by default). */
  call(options: InjectOptions & { url: string }, user?: SeededUser): Promise<LightMyRequestResponse>
  /** POST /v1/clusters with a JSON body. */
  register(body: Record<string, unknown>, headers?: Record<string, string>): Promise<LightMyRequestResponse>
  /** GET /v1/clusters/{id}, parsed (untyped, as inject's json() is: tests read what they assert). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  cluster(id: string): Promise<Record<string, any>>
  /** The run once it has finished (completed, failed or cancelled). */
  finished(workflowId: string, timeoutMs?: number): Promise<RunRecord>
  /** Registers and waits for the run to complete; fails the test otherwise. */
  registerAvailable(body: Record<string, unknown>): Promise<{ clusterId: string; workflowId: string }>
  /** The clusters row as stored, for what the API never shows (the sealed kubeconfig column). */
  row(id: string): Promise<ClusterRow | undefined>
  seed(role: string): Promise<SeededUser>
  /** A second replica: another app on the same config, database and workflow hub (closed with the harness). */
  replica(): Promise<FastifyInstance>
  close(): Promise<void>
}

export interface HarnessOptions {
  env?: Record<string, string>
  logger?: Logger
  /** A database of the file's own (e.g. freshDatabase), migrated on start. */
  databaseUrl?: string
}

const FINISHED = new Set(['completed', 'failed', 'cancelled'])

export async function startClusterHarness(options: HarnessOptions = {}): Promise<ClusterHarness> {
  const kube = await startKubeStandIn()
  const config = testConfig({
    // The stand-in is on 127.0.0.1; the metadata range stays denied as in production.
    CLUSTER_DENIED_CIDRS: '169.254.0.0/16',
    ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl, MIGRATE_ON_START: 'true' } : {}),
    ...options.env,
  })
  const hub = uniqueHub('clusters')
  const app = await buildApp(config, {
    ...(options.logger ? { logger: options.logger } : {}),
    workflows: { hub, tuning: FAST_HUB },
  })
  await app.ready()
  const replicas: FastifyInstance[] = []
  const realm = uniqueRealm('cl')
  const admin = await seedUser(app, { realm, role: 'admin' })

  const call: ClusterHarness['call'] = (opts, user = admin) =>
    app.inject({ ...opts, headers: { ...bearer(user.accessToken), ...(opts.headers ?? {}) } })

  async function finished(workflowId: string, timeoutMs = 20_000): Promise<RunRecord> {
    let run = { status: 'pending' } as RunRecord
    await waitFor(
      async () => {
        run = (await call({ method: 'GET', url: `/v1/workflows/${workflowId}` })).json()
        return FINISHED.has(run.status)
      },
      timeoutMs,
      `workflow ${workflowId} did not finish`,
    )
    return run
  }

  const register: ClusterHarness['register'] = (body, headers = {}) => call({ method: 'POST', url: '/v1/clusters', payload: body, headers })

  return {
    app,
    kube,
    admin,
    call,
    register,
    finished,
    async cluster(id) {
      const res = await call({ method: 'GET', url: `/v1/clusters/${id}` })
      if (res.statusCode !== 200) throw new Error(`GET cluster ${id}: ${res.statusCode} ${res.body}`)
      return res.json()
    },
    async registerAvailable(body) {
      const res = await register(body)
      if (res.statusCode !== 202) throw new Error(`registration refused: ${res.statusCode} ${res.body}`)
      const accepted = res.json() as { clusterId: string; workflowId: string }
      const run = await finished(accepted.workflowId)
      if (run.status !== 'completed') throw new Error(`registration ${run.status}: ${JSON.stringify(run.error)}`)
      return accepted
    },
    async row(id) {
      const [row] = await app.platform.database.db.select().from(clusters).where(eq(clusters.id, id))
      return row
    },
    seed: (role) => seedUser(app, { realm, role }),
    async replica() {
      const other = await buildApp(config, { ...(options.logger ? { logger: options.logger } : {}), workflows: { hub, tuning: FAST_HUB } })
      await other.ready()
      replicas.push(other)
      return other
    },
    async close() {
      for (const other of replicas) await other.close()
      await app.close()
      await kube.close()
    },
  }
}
