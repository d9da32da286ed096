/**
 * The memory arithmetic of a served model, pure: weights from parameters and the bytes each takes,
 * a KV cache for the context and concurrency asked for, and a margin for activations and the
 * engine itself. Every number the model's files did not give is a stated assumption.
 */

export const GiB = 1024 ** 3

export interface ModelFacts {
  format: string | null
  parameterCount: number | null
  dtype: string | null
  quantization: string | null
  contextLength: number | null
  metadata: Record<string, unknown>
  /** Sum of the weight files' sizes (safetensors, gguf, bin), 0 when unknown. */
  weightFileBytes: number
}

export interface AttentionShape {
  layers: number
  attentionHeads: number
  kvHeads: number
  headDim: number
}

export interface Sizing {
  bytesPerParameter: number
  weightsBytes: number
  /** Per token of context, every layer. */
  kvBytesPerToken: number
  kvCacheBytes: number
  overheadBytes: number
  totalBytes: number
  maxModelLen: number
  maxConcurrency: number
  shape: AttentionShape
  assumptions: string[]
}

const QUANTIZED_BYTES: Array<[RegExp, number, string]> = [
  [/(^|[^a-z])(awq|gptq|int4|4bit|q4|nf4|fp4|mxfp4|nvfp4|bnb4)/i, 0.5, '4-bit'],
  [/(^|[^a-z])(int8|8bit|fp8|q8|w8a8|bnb8|compressed-tensors)/i, 1, '8-bit'],
]

const DTYPE_BYTES: Record<string, number> = {
  float32: 4,
  fp32: 4,
  float16: 2,
  fp16: 2,
  half: 2,
  bfloat16: 2,
  bf16: 2,
  float8_e4m3fn: 1,
  float8_e5m2: 1,
  fp8: 1,
  int8: 1,
  uint8: 1,
}

/** Bytes each parameter takes in memory, by quantization first, then dtype. */
export function bytesPerParameter(model: Pick<ModelFacts, 'dtype' | 'quantization' | 'metadata'>, assumptions: string[]): number {
  const config = (model.metadata.quantizationConfig ?? (model.metadata.config as Record<string, unknown> | undefined)?.quantizationConfig) as
    | Record<string, unknown>
    | undefined
  const bits = typeof config?.bits === 'number' ? config.bits : null
  if (model.quantization) {
    if (bits && bits > 0 && bits <= 16) return bits / 8
    for (const [pattern, bytes] of QUANTIZED_BYTES) if (pattern.test(model.quantization)) return bytes
    assumptions.push(`quantization "${model.quantization.slice(0, 40)}" is not one the planner knows: counted as 8-bit (1 byte per parameter)`)
    return 1
  }
  const dtype = model.dtype?.toLowerCase()
  if (dtype && DTYPE_BYTES[dtype] !== undefined) return DTYPE_BYTES[dtype]!
  assumptions.push(`dtype ${dtype ? `"${dtype.slice(0, 40)}" unknown` : 'not stated'}: counted as bfloat16 (2 bytes per parameter)`)
  return 2
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : null)

/** Layers, heads and head size from the model's metadata (import keeps them flat, upload under `config`). */
export function attentionShape(metadata: Record<string, unknown>, parameterCount: number | null, assumptions: string[]): AttentionShape {
  const config = (metadata.config ?? {}) as Record<string, unknown>
  const read = (key: string) => num(metadata[key]) ?? num(config[key])
  const heads = read('numAttentionHeads')
  const layers = read('numHiddenLayers')
  const hidden = read('hiddenSize')
  const kv = read('numKeyValueHeads')
  const headDim = read('headDim') ?? (hidden && heads ? Math.floor(hidden / heads) : null)
  if (heads && layers && headDim) {
    if (!kv) assumptions.push('the config names no key/value heads: as many as attention heads (no grouped-query attention)')
    return { layers, attentionHeads: heads, kvHeads: kv ?? heads, headDim }
  }
  // A Llama-shaped guess scaled by size: what most decoder models of that size look like.
  const billions = (parameterCount ?? 8e9) / 1e9
  const guess: AttentionShape =
    billions > 40
      ? { layers: 80, attentionHeads: 64, kvHeads: 8, headDim: 128 }
      : billions > 20
        ? { layers: 64, attentionHeads: 40, kvHeads: 8, headDim: 128 }
        : billions > 3
          ? { layers: 32, attentionHeads: 32, kvHeads: 8, headDim: 128 }
          : { layers: 24, attentionHeads: 16, kvHeads: 8, headDim: 64 }
  const shape = { layers: layers ?? guess.layers, attentionHeads: heads ?? guess.attentionHeads, kvHeads: kv ?? guess.kvHeads, headDim: headDim ?? guess.headDim }
  assumptions.push(
    `the model's attention shape is not fully known: assumed ${shape.layers} layers, ${shape.attentionHeads} attention heads, ${shape.kvHeads} key/value heads of ${shape.headDim} (a Llama-like model of its size)`,
  )
  return shape
}

export const DEFAULT_MAX_MODEL_LEN = 8192
export const DEFAULT_CONCURRENCY = 8
/** The engine's own CUDA context, activations and graphs, per replica, beyond weights and cache. */
const OVERHEAD_FLOOR = 1 * GiB
const OVERHEAD_SHARE = 0.1

export function sizeModel(model: ModelFacts, request: { maxModelLen?: number; maxConcurrency?: number }, options: { embedding: boolean }): Sizing {
  const assumptions: string[] = []
  const perParameter = bytesPerParameter(model, assumptions)
  let weightsBytes: number
  if (model.format === 'gguf' && model.weightFileBytes > 0) {
    // A GGUF file is the weights as loaded, quantization included.
    weightsBytes = model.weightFileBytes
  } else if (model.parameterCount) {
    weightsBytes = Math.ceil(model.parameterCount * perParameter)
  } else if (model.weightFileBytes > 0) {
    weightsBytes = model.weightFileBytes
    assumptions.push('the parameter count is unknown: weights sized by the files of the version')
  } else {
    weightsBytes = 16 * GiB
    assumptions.push('neither the parameter count nor the files are known: weights assumed 16 GiB')
  }
  const parameters = model.parameterCount ?? Math.round(weightsBytes / perParameter)
  const shape = attentionShape(model.metadata, parameters, assumptions)

  let maxModelLen = request.maxModelLen ?? model.contextLength ?? null
  if (request.maxModelLen === undefined) {
    const capped = Math.min(model.contextLength ?? DEFAULT_MAX_MODEL_LEN, options.embedding ? 512 : DEFAULT_MAX_MODEL_LEN)
    assumptions.push(
      model.contextLength
        ? `maxModelLen not asked: ${capped} (the model allows ${model.contextLength}; ask for more with maxModelLen)`
        : `maxModelLen not asked and the model states no context length: ${capped}`,
    )
    maxModelLen = capped
  } else if (model.contextLength && request.maxModelLen > model.contextLength) {
    assumptions.push(`maxModelLen ${request.maxModelLen} is beyond the model's stated context length ${model.contextLength}: the engine may refuse it`)
  }
  const maxConcurrency = request.maxConcurrency ?? DEFAULT_CONCURRENCY
  if (request.maxConcurrency === undefined) assumptions.push(`maxConcurrency not asked: ${DEFAULT_CONCURRENCY} sequences at full length`)


  // The engines keep the cache in 16 bits by default, whatever the weights are quantized to.
  const kvBytesPerValue = 2
  const kvBytesPerToken = options.embedding ? 0 : 2 * shape.layers * shape.kvHeads * shape.headDim * kvBytesPerValue
  const kvCacheBytes = kvBytesPerToken * maxModelLen! * maxConcurrency
  const overheadBytes = Math.max(OVERHEAD_FLOOR, Math.ceil(weightsBytes * OVERHEAD_SHARE))
  return {
    bytesPerParameter: perParameter,
    weightsBytes,
    kvBytesPerToken,
    kvCacheBytes,
    overheadBytes,
    totalBytes: weightsBytes + kvCacheBytes + overheadBytes,
    maxModelLen: maxModelLen!,
    maxConcurrency,
    shape,
    assumptions,
  }
}

export const gib = (bytes: number): number => Math.round((bytes / GiB) * 10) / 10
