import type { Logger } from 'pino'
import type { ModelPatch } from './crud.js'
import {
  type ConfigFacts,
  MAX_CONFIG_BYTES,
  MAX_FRONT_MATTER_BYTES,
  type ModelCardFacts,
  readConfigJson,
  readModelCard,
  readSafetensorsHeader,
  type SafetensorsFacts,
  safetensorsHeaderLength,
} from './metadata.js'
import type { ModelRow } from './tables.js'

/**
 * What an uploaded version's files say about the model, gathered while the verification reads
 * them for their hashes (so no file is read twice): the head of each file the readers of
 * metadata.ts understand, bounded by what each reader accepts.
 */
export type FileFacts =
  | { kind: 'config'; facts: ConfigFacts }
  | { kind: 'card'; facts: ModelCardFacts }
  | { kind: 'safetensors'; facts: SafetensorsFacts }

export interface MetadataCollector {
  push(chunk: Buffer): void
  /** The facts, or undefined when the file says nothing readable (logged, never fatal). */
  finish(log: Logger): FileFacts | undefined
}

/** A collector for the files whose metadata we read (top-level config.json and README.md, any *.safetensors); null for the rest. */
export function createMetadataCollector(path: string): MetadataCollector | null {
  const kind = path === 'config.json' ? 'config' : path === 'README.md' ? 'card' : path.endsWith('.safetensors') ? 'safetensors' : null
  if (!kind) return null
  const chunks: Buffer[] = []
  let held = 0
  // config.json is read whole (one byte over the limit tells the reader it is too large); a card's front matter is near its start.
  let limit = kind === 'config' ? MAX_CONFIG_BYTES + 1 : kind === 'card' ? MAX_FRONT_MATTER_BYTES + 1024 : 8
  let headerKnown = false
  let problem: string | undefined
  return {
    push(chunk) {
      if (problem || held >= limit) return
      // Until a safetensors file's length prefix is known, everything is kept: the header follows it.
      const take = kind === 'safetensors' && !headerKnown ? chunk : chunk.subarray(0, limit - held)
      chunks.push(take)
      held += take.length
      if (kind === 'safetensors' && !headerKnown && held >= 8) {
        headerKnown = true
        const all = Buffer.concat(chunks)
        chunks.length = 0
        try {
          limit = 8 + safetensorsHeaderLength(all.subarray(0, 8))
        } catch (err) {
          problem = (err as Error).message
          return
        }
        const kept = all.subarray(0, limit)
        chunks.push(kept)
        held = kept.length
      }
    },
    finish(log) {
      try {
        if (problem) throw new Error(problem)
        const bytes = Buffer.concat(chunks)
        if (kind === 'config') return { kind, facts: readConfigJson(bytes.toString('utf8')) }
        if (kind === 'card') return { kind, facts: readModelCard(bytes.toString('utf8')) }
        return { kind, facts: readSafetensorsHeader(bytes) }
      } catch (err) {
        log.info({ path, err: { message: (err as Error).message } }, 'an uploaded file says nothing readable about the model')
        return undefined
      }
    },
  }
}

/**
 * How the model changes: what the weights and config state (architecture, parameters, dtype,
 * context length, quantization, format) replaces what was there; what a person may have typed
 * (license, tags, tasks) only fills what is empty. Null when the files said nothing.
 */
export function metadataPatch(facts: FileFacts[], paths: string[]): ((model: ModelRow) => ModelPatch) | null {
  const config = facts.find((f) => f.kind === 'config')?.facts as ConfigFacts | undefined
  const card = facts.find((f) => f.kind === 'card')?.facts as ModelCardFacts | undefined
  const shards = facts.filter((f) => f.kind === 'safetensors').map((f) => f.facts as SafetensorsFacts)
  const format = paths.some((p) => p.endsWith('.safetensors')) ? 'safetensors' : paths.some((p) => p.endsWith('.gguf')) ? 'gguf' : null
  if (!config && !card && shards.length === 0 && !format) return null
  const byDtype: Record<string, number> = {}
  for (const shard of shards) for (const [dtype, n] of Object.entries(shard.parametersByDtype)) byDtype[dtype] = (byDtype[dtype] ?? 0) + n
  const parameterCount = shards.length > 0 ? shards.reduce((sum, s) => sum + s.parameterCount, 0) : null
  const dominantShard = shards.slice().sort((a, b) => b.parameterCount - a.parameterCount)[0]
  return (model) => {
    const patch: ModelPatch = {}
    if (config?.architecture) patch.architecture = config.architecture
    if (config?.contextLength) patch.contextLength = config.contextLength
    if (config?.quantization) patch.quantization = config.quantization
    const dtype = config?.dtype ?? dominantShard?.dtype
    if (dtype) patch.dtype = dtype
    if (parameterCount) patch.parameterCount = parameterCount
    if (format && !model.format) patch.format = format
    if (card?.license && !model.license) patch.license = card.license
    if (card && card.tags.length > 0 && model.tags.length === 0) patch.tags = card.tags
    if (card?.task && model.tasks.length === 0) patch.tasks = [card.task]
    patch.metadata = {
      ...model.metadata,
      ...(config ? { config: { modelType: config.modelType, numAttentionHeads: config.numAttentionHeads, numKeyValueHeads: config.numKeyValueHeads, numHiddenLayers: config.numHiddenLayers, hiddenSize: config.hiddenSize, headDim: config.headDim, quantizationConfig: config.quantizationConfig } } : {}),
      ...(shards.length > 0 ? { safetensors: { parametersByDtype: byDtype, tensorCount: shards.reduce((sum, s) => sum + s.tensorCount, 0) } } : {}),
      ...(card ? { card: { libraryName: card.libraryName, baseModel: card.baseModel, languages: card.languages } } : {}),
    }
    return patch
  }
}
