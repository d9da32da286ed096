import { gguf } from '@huggingface/gguf'
import type { Logger } from 'pino'
import { MAX_CONFIG_BYTES, MAX_FRONT_MATTER_BYTES, MAX_SAFETENSORS_HEADER_BYTES, MetadataError, readConfigJson, readModelCard, readSafetensorsHeader, safetensorsHeaderLength } from './metadata.js'
import type { ModelVersionFileRow } from './tables.js'

/**
 * What an imported version's own files say about the model, read from the blob store after they
 * were verified, never more than the few bytes each reader needs: config.json, the model card's
 * front matter, every safetensors header (parameters summed over shards), GGUF metadata. A file
 * that cannot be read is noted in `metadata.warnings` and does not fail the import.
 */
export interface ImportedFacts {
  architecture?: string | null
  contextLength?: number | null
  dtype?: string | null
  quantization?: string | null
  parameterCount?: number | null
  format: string
  license?: string | null
  tags?: string[]
  tasks?: string[]
  metadata: Record<string, unknown>
}

type ReadPrefix = (key: string, bytes: number) => Promise<Buffer>

/** GGUF headers holding a tokenizer run to megabytes; more than this is not read. */
const MAX_GGUF_READ = 64 * 1024 * 1024
const MAX_SAFETENSORS_SHARDS = 256

function formatOf(paths: string[]): string {
  if (paths.some((p) => p.endsWith('.safetensors'))) return 'safetensors'
  if (paths.some((p) => p.endsWith('.gguf'))) return 'gguf'
  if (paths.some((p) => /\.(bin|pt|pth)$/.test(p))) return 'pytorch'
  if (paths.some((p) => p.endsWith('.onnx'))) return 'onnx'
  return 'other'
}

/** A fetch for @huggingface/gguf that answers its Range requests from a stored object. */
function rangeFetch(read: ReadPrefix, key: string, size: number): typeof fetch {
  return (async (_input: unknown, init?: { headers?: Record<string, string> }) => {
    const range = /bytes=(\d+)-(\d+)/.exec(init?.headers?.Range ?? init?.headers?.range ?? '')
    const start = range ? Number(range[1]) : 0
    const end = Math.min(size - 1, range ? Number(range[2]) : size - 1)
    if (end + 1 > MAX_GGUF_READ) throw new MetadataError(`the GGUF metadata runs past ${MAX_GGUF_READ} bytes`)
    const bytes = (await read(key, end + 1)).subarray(start)
    return new Response(bytes, { status: 206, headers: { 'content-range': `bytes ${start}-${end}/${size}` } })
  }) as typeof fetch
}

export async function readModelMetadata(files: ModelVersionFileRow[], read: ReadPrefix, log: Logger): Promise<ImportedFacts> {
  const facts: ImportedFacts = { format: formatOf(files.map((f) => f.path)), metadata: {} }
  const warnings: string[] = []
  const attempt = async (path: string, fn: () => Promise<void>) => {
    try {
      await fn()
    } catch (err) {
      if (!(err instanceof MetadataError) && !(err instanceof Error)) throw err
      warnings.push(`${path}: ${err.message.slice(0, 200)}`)
    }
  }
  const byPath = new Map(files.map((f) => [f.path, f]))

  const config = byPath.get('config.json')
  if (config && config.size <= MAX_CONFIG_BYTES) {
    await attempt(config.path, async () => {
      const c = readConfigJson((await read(config.blobKey, config.size)).toString('utf8'))
      Object.assign(facts, { architecture: c.architecture, contextLength: c.contextLength, dtype: c.dtype, quantization: c.quantization })
      facts.metadata.modelType = c.modelType
      facts.metadata.numAttentionHeads = c.numAttentionHeads
      // What sizes the KV cache when an endpoint is planned.
      Object.assign(facts.metadata, { numKeyValueHeads: c.numKeyValueHeads, numHiddenLayers: c.numHiddenLayers, hiddenSize: c.hiddenSize, headDim: c.headDim })
      if (c.quantizationConfig) facts.metadata.quantizationConfig = c.quantizationConfig
    })
  }

  const card = byPath.get('README.md')
  if (card) {
    await attempt(card.path, async () => {
      const m = readModelCard((await read(card.blobKey, MAX_FRONT_MATTER_BYTES + 16)).toString('utf8'))
      if (m.license) facts.license = m.license
      if (m.tags.length > 0) facts.tags = m.tags
      if (m.task) facts.tasks = [m.task]
      Object.assign(facts.metadata, { libraryName: m.libraryName, baseModel: m.baseModel, languages: m.languages })
    })
  }

  const shards = files.filter((f) => f.path.endsWith('.safetensors')).slice(0, MAX_SAFETENSORS_SHARDS)
  let parameters = 0
  const byDtype: Record<string, number> = {}
  for (const shard of shards) {
    await attempt(shard.path, async () => {
      const length = safetensorsHeaderLength(await read(shard.blobKey, 8))
      if (length > MAX_SAFETENSORS_HEADER_BYTES) return
      const header = readSafetensorsHeader(await read(shard.blobKey, 8 + length))
      parameters += header.parameterCount
      for (const [dtype, n] of Object.entries(header.parametersByDtype)) byDtype[dtype] = (byDtype[dtype] ?? 0) + n
      if (!facts.dtype) facts.dtype = header.dtype
    })
  }
  if (parameters > 0) {
    facts.parameterCount = parameters
    facts.metadata.parametersByDtype = byDtype
  }

  const ggufFile = files.find((f) => f.path.endsWith('.gguf'))
  if (ggufFile) {
    await attempt(ggufFile.path, async () => {
      const parsed = await gguf(`https://stored.invalid/${ggufFile.path}`, {
        fetch: rangeFetch(read, ggufFile.blobKey, ggufFile.size),
        computeParametersCount: true,
      })
      const meta = parsed.metadata as Record<string, unknown>
      const arch = typeof meta['general.architecture'] === 'string' ? (meta['general.architecture'] as string) : null
      if (!facts.architecture && arch) facts.architecture = arch
      const context = arch ? meta[`${arch}.context_length`] : undefined
      if (!facts.contextLength && typeof context === 'number') facts.contextLength = context
      if (!facts.parameterCount && parsed.parameterCount > 0) facts.parameterCount = parsed.parameterCount
      const fileType = meta['general.file_type']
      facts.metadata.gguf = { architecture: arch, name: typeof meta['general.name'] === 'string' ? meta['general.name'] : null, fileType: typeof fileType === 'number' ? fileType : null, tensorCount: parsed.tensorInfos.length }
    })
  }

  if (warnings.length > 0) {
    facts.metadata.warnings = warnings.slice(0, 20)
    log.info({ warnings: warnings.length }, 'some model files could not be read for metadata')
  }
  return facts
}
