import { createHash, randomUUID } from 'node:crypto'
import { models, modelVersionFiles, modelVersions } from '../../src/modules/model_ops/tables.js'
import { type ClusterHarness, type HarnessOptions, startClusterHarness } from './clusters.js'
import type { StandInCluster } from './kube/index.js'
import type { SeededUser } from './auth.js'
import { waitFor } from './wait.js'

/**
 * What every endpoint_ops behaviour test starts from: the cluster harness with fast rollout
 * timings, a registered stand-in cluster, and ready models seeded as typed rows with their files
 * in the app's blob store (the catalog's own import paths are tested in model_ops).
 */

export interface SeededModel {
  modelId: string
  versionId: string
}

export interface ModelSeed {
  name?: string
  format?: 'safetensors' | 'gguf'
  parameterCount?: number
  dtype?: string
  quantization?: string | null
  tasks?: string[]
  architecture?: string
  contextLength?: number
  metadata?: Record<string, unknown>
  files?: Array<{ path: string; bytes: Buffer }>
}

export interface EndpointHarness extends ClusterHarness {
  /** Registers a stand-in cluster with these nodes (fixture names) and waits until it is available. */
  cluster(id: string): Promise<Record<string, any>> // eslint-disable-line @typescript-eslint/no-explicit-any
  addAvailableCluster(opts?: { nodes?: string[]; offers?: Record<string, unknown>; user?: SeededUser }): Promise<{ clusterId: string; standIn: StandInCluster }>
  seedModel(seed?: ModelSeed, user?: SeededUser): Promise<SeededModel>
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  endpoint(id: string, user?: SeededUser): Promise<Record<string, any>>
  /** Waits until the endpoint is in `phase` (or fails the test with what it is). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  phase(id: string, phase: string, timeoutMs?: number): Promise<Record<string, any>>
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

export async function startEndpointHarness(options: HarnessOptions = {}): Promise<EndpointHarness> {
  const h = await startClusterHarness({
    ...options,
    env: {
      ENDPOINT_ROLLOUT_POLL_SECONDS: '0.2',
      ENDPOINT_ROLLOUT_TIMEOUT_MINUTES: '0.5',
      ENDPOINT_TEARDOWN_TIMEOUT_MINUTES: '0.5',
      ENDPOINT_RECONCILE_INTERVAL_SECONDS: '1',
      ...options.env,
    },
  })
  const { app } = h

  async function endpoint(id: string, user?: SeededUser) {
    const res = await h.call({ method: 'GET', url: `/v1/endpoints/${id}` }, user)
    if (res.statusCode !== 200) throw new Error(`GET endpoint ${id}: ${res.statusCode} ${res.body}`)
    return res.json()
  }

  return {
    ...h,
    endpoint,
    async phase(id, phase, timeoutMs = 30_000) {
      let last: Record<string, unknown> = {}
      try {
        await waitFor(async () => {
          last = await endpoint(id)
          return last.phase === phase
        }, timeoutMs)
      } catch {
        throw new Error(`endpoint ${id} never reached ${phase}: ${JSON.stringify({ phase: last.phase, reason: last.statusReason, message: last.statusMessage })}`)
      }
      return last
    },
    async addAvailableCluster(opts = {}) {
      const standIn = h.kube.addCluster({ nodes: opts.nodes ?? ['a100-8x', 'cpu-small'], ...(opts.offers ? { offers: opts.offers } : {}) })
      const res = await h.call({ method: 'POST', url: '/v1/clusters', payload: { name: `c-${standIn.id.slice(0, 12)}`, kubeconfig: standIn.kubeconfig() } }, opts.user)
      if (res.statusCode !== 202) throw new Error(`registration refused: ${res.statusCode} ${res.body}`)
      const { clusterId, workflowId } = res.json() as { clusterId: string; workflowId: string }
      const run = await h.finished(workflowId)
      if (run.status !== 'completed') throw new Error(`registration ${run.status}: ${JSON.stringify(run.error)}`)
      return { clusterId, standIn }
    },
    async seedModel(seed = {}, user = h.admin) {
      const modelId = randomUUID()
      const versionId = randomUUID()
      const files = seed.files ?? [
        { path: 'config.json', bytes: Buffer.from(JSON.stringify({ architectures: [seed.architecture ?? 'LlamaForCausalLM'], num_attention_heads: 32 })) },
        { path: 'model.safetensors', bytes: Buffer.from('weights of a tiny test model') },
      ]
      for (const f of files) await app.platform.blob.put(`models/${modelId}/${versionId}/${f.path}`, f.bytes)
      const db = app.platform.database.db
      await db.insert(models).values({
        id: modelId,
        tenantId: user.tenantId,
        name: seed.name ?? `m-${modelId.slice(0, 8)}`,
        displayName: seed.name ?? 'test model',
        source: 'upload',
        tasks: seed.tasks ?? ['text-generation'],
        modalities: ['text'],
        architecture: seed.architecture ?? 'LlamaForCausalLM',
        parameterCount: seed.parameterCount ?? 8_030_261_248,
        contextLength: seed.contextLength ?? 8192,
        dtype: seed.dtype ?? 'bfloat16',
        quantization: seed.quantization ?? null,
        format: seed.format ?? 'safetensors',
        metadata: seed.metadata ?? { numAttentionHeads: 32, numKeyValueHeads: 8, numHiddenLayers: 32, hiddenSize: 4096, headDim: 128 },
        status: 'ready',
        defaultVersionId: versionId,
        createdBy: user.id,
      })
      await db.insert(modelVersions).values({
        id: versionId,
        modelId,
        tenantId: user.tenantId,
        label: 'v1',
        status: 'ready',
        manifest: { files: files.map((f) => ({ path: f.path, size: f.bytes.length, sha256: sha256(f.bytes) })) },
        fileCount: files.length,
        sizeBytes: files.reduce((n, f) => n + f.bytes.length, 0),
        createdBy: user.id,
        sealedAt: new Date(),
      })
      await db.insert(modelVersionFiles).values(
        files.map((f) => ({
          versionId,
          path: f.path,
          size: f.bytes.length,
          sha256: sha256(f.bytes),
          blobKey: `models/${modelId}/${versionId}/${f.path}`,
          status: 'verified',
          bytesDone: f.bytes.length,
        })),
      )
      return { modelId, versionId }
    },
  }
}
