import { parse as parseYaml } from 'yaml'

/**
 * What a model's own files say about it, read without loading weights: config.json, the header of
 * a safetensors file (the first 8 + N bytes), and the model card's front matter. Pure functions over
 * bytes or text, so the import can call them on what it streams and tests on what they generate.
 * Input is untrusted: each reader bounds what it parses and throws MetadataError on anything else.
 * GGUF is not read yet (it waits for @huggingface/gguf on this branch).
 */
export class MetadataError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MetadataError'
  }
}

export const MAX_CONFIG_BYTES = 1024 * 1024
export const MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024
export const MAX_FRONT_MATTER_BYTES = 64 * 1024

export interface ConfigFacts {
  architecture: string | null
  modelType: string | null
  contextLength: number | null
  dtype: string | null
  numAttentionHeads: number | null
  /** Grouped-query attention: fewer key/value heads than attention heads (null when the config says none: as many as attention heads). */
  numKeyValueHeads: number | null
  numHiddenLayers: number | null
  hiddenSize: number | null
  headDim: number | null
  quantization: string | null
  quantizationConfig: Record<string, unknown> | null
}

/** The keys different architectures use for the longest sequence, most specific first. */
const CONTEXT_KEYS = ['max_position_embeddings', 'n_positions', 'max_sequence_length', 'seq_length', 'n_ctx', 'max_seq_len', 'model_max_length']

const positiveInt = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : null)
const str = (v: unknown, max = 128): string | null => (typeof v === 'string' && v.length > 0 ? v.slice(0, max) : null)

function objectOf(text: string, what: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new MetadataError(`${what} is not JSON`)
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new MetadataError(`${what} is not a JSON object`)
  return parsed as Record<string, unknown>
}

/** config.json of a transformers model. Multimodal configs keep the language model's numbers under text_config. */
export function readConfigJson(text: string): ConfigFacts {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new MetadataError(`config.json is larger than ${MAX_CONFIG_BYTES} bytes`)
  const config = objectOf(text, 'config.json')
  const text_config = config.text_config && typeof config.text_config === 'object' ? (config.text_config as Record<string, unknown>) : {}
  const pick = (keys: string[]) => {
    for (const source of [config, text_config]) for (const key of keys) if (positiveInt(source[key]) !== null) return positiveInt(source[key])
    return null
  }
  const quantizationConfig =
    config.quantization_config && typeof config.quantization_config === 'object' && !Array.isArray(config.quantization_config)
      ? (config.quantization_config as Record<string, unknown>)
      : null
  const architectures = Array.isArray(config.architectures) ? config.architectures : []
  return {
    architecture: str(architectures[0]),
    modelType: str(config.model_type),
    contextLength: pick(CONTEXT_KEYS),
    dtype: str(config.torch_dtype) ?? str(config.dtype) ?? str(text_config.torch_dtype),
    numAttentionHeads: pick(['num_attention_heads', 'n_head']),
    numKeyValueHeads: pick(['num_key_value_heads', 'num_kv_heads', 'n_head_kv']),
    numHiddenLayers: pick(['num_hidden_layers', 'n_layer', 'num_layers']),
    hiddenSize: pick(['hidden_size', 'n_embd', 'd_model']),
    headDim: pick(['head_dim']),
    quantization: quantizationConfig ? str(quantizationConfig.quant_method) ?? 'unknown' : null,
    quantizationConfig,
  }
}

export interface SafetensorsFacts {
  /** N, the header's length: the data starts at 8 + N. */
  headerLength: number
  parameterCount: number
  /** Parameters per safetensors dtype (BF16, F16, F32, I8, …). */
  parametersByDtype: Record<string, number>
  /** The dtype holding most parameters, as torch names it (bfloat16), or the safetensors name when it has no torch name. */
  dtype: string | null
  tensorCount: number
  metadata: Record<string, string>
}

const TORCH_DTYPES: Record<string, string> = {
  BF16: 'bfloat16',
  F16: 'float16',
  F32: 'float32',
  F64: 'float64',
  I8: 'int8',
  U8: 'uint8',
  I16: 'int16',
  I32: 'int32',
  I64: 'int64',
  BOOL: 'bool',
  F8_E4M3: 'float8_e4m3fn',
  F8_E5M2: 'float8_e5m2',
}

/**
 * N from the first 8 bytes of a safetensors file (little-endian u64), refusing a header over
 * MAX_SAFETENSORS_HEADER_BYTES: the caller then knows how many more bytes to fetch.
 */
export function safetensorsHeaderLength(first8: Uint8Array): number {
  if (first8.length < 8) throw new MetadataError('a safetensors file starts with 8 bytes of header length')
  const n = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0)
  if (n < 2n) throw new MetadataError('the safetensors header is empty')
  if (n > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) throw new MetadataError(`the safetensors header claims ${n} bytes, more than ${MAX_SAFETENSORS_HEADER_BYTES}`)
  return Number(n)
}

/** Reads the header from the file's first 8 + N bytes (more is ignored). */
export function readSafetensorsHeader(bytes: Uint8Array): SafetensorsFacts {
  const headerLength = safetensorsHeaderLength(bytes)
  if (bytes.length < 8 + headerLength) throw new MetadataError(`the safetensors header is cut short: ${bytes.length - 8} of ${headerLength} bytes`)
  const header = objectOf(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8'), 'the safetensors header')
  const parametersByDtype: Record<string, number> = {}
  let parameterCount = 0
  let tensorCount = 0
  let metadata: Record<string, string> = {}
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (entry && typeof entry === 'object' && !Array.isArray(entry)) {
        metadata = Object.fromEntries(Object.entries(entry).filter(([, v]) => typeof v === 'string').slice(0, 64)) as Record<string, string>
      }
      continue
    }
    const tensor = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
    if (!tensor || typeof tensor.dtype !== 'string' || !/^[A-Z0-9_]{1,16}$/.test(tensor.dtype) || !Array.isArray(tensor.shape)) {
      throw new MetadataError(`tensor ${name.slice(0, 64)} has no dtype and shape`)
    }
    let elements = 1
    for (const dim of tensor.shape) {
      if (!Number.isSafeInteger(dim) || (dim as number) < 0) throw new MetadataError(`tensor ${name.slice(0, 64)} has a malformed shape`)
      elements *= dim as number
    }
    if (!Number.isSafeInteger(elements)) throw new MetadataError(`tensor ${name.slice(0, 64)} is impossibly large`)
    parametersByDtype[tensor.dtype] = (parametersByDtype[tensor.dtype] ?? 0) + elements
    parameterCount += elements
    tensorCount++
  }
  const dominant = Object.entries(parametersByDtype).sort((a, b) => b[1] - a[1])[0]?.[0]
  return {
    headerLength,
    parameterCount,
    parametersByDtype,
    dtype: dominant ? (TORCH_DTYPES[dominant] ?? dominant) : null,
    tensorCount,
    metadata,
  }
}

export interface ModelCardFacts {
  license: string | null
  tags: string[]
  /** pipeline_tag, the Hub's name for the model's task. */
  task: string | null
  libraryName: string | null
  baseModel: string | null
  languages: string[]
}

const MAX_TAGS = 32

/** The YAML front matter of a README.md (between a first line `---` and the next), or empty facts when there is none. */
export function readModelCard(text: string): ModelCardFacts {
  const empty: ModelCardFacts = { license: null, tags: [], task: null, libraryName: null, baseModel: null, languages: [] }
  const match = /^\uFEFF?---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(\r?\n|$)/.exec(text.slice(0, MAX_FRONT_MATTER_BYTES + 16))
  if (!match) {
    if (/^\uFEFF?---[ \t]*\r?\n/.test(text) && text.length > MAX_FRONT_MATTER_BYTES) throw new MetadataError(`the model card's front matter is longer than ${MAX_FRONT_MATTER_BYTES} bytes`)
    return empty
  }
  let data: unknown
  try {
    // Aliases bounded: a few lines of YAML must not expand into gigabytes.
    data = parseYaml(match[1]!, { maxAliasCount: 50, prettyErrors: false })
  } catch {
    throw new MetadataError("the model card's front matter is not YAML")
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) return empty
  const card = data as Record<string, unknown>
  const strings = (v: unknown, limit: number) =>
    (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v])
      .filter((x): x is string => typeof x === 'string' && x.length > 0 && x.length <= 64)
      .slice(0, limit)
  return {
    license: strings(card.license, 1)[0] ?? null,
    tags: [...new Set(strings(card.tags, MAX_TAGS))],
    task: str(card.pipeline_tag, 64),
    libraryName: str(card.library_name, 64),
    baseModel: strings(card.base_model, 1)[0] ?? null,
    languages: strings(card.language, MAX_TAGS),
  }
}
