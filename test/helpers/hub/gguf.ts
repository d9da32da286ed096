/**
 * A GGUF v3 file (little-endian): magic, version, tensor and metadata counts, the metadata
 * key/values, the tensor infos, padding to `general.alignment` (32), then zeroed tensor data.
 * Value types follow what llama.cpp writes: strings, booleans, UINT32 for non-negative integers
 * (context lengths, counts), INT32 for negative ones, FLOAT32 otherwise, arrays of strings.
 */

export type GgufValue = string | number | boolean | string[]

export type GgufTensorType = 'F32' | 'F16' | 'Q4_0' | 'Q8_0'

export interface GgufTensorSpec {
  name: string
  type: GgufTensorType
  /** Dimensions as GGUF lists them, innermost first. */
  shape: number[]
}

const ALIGNMENT = 32
const ValueType = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const
/** ggml type id, elements per block, bytes per block. */
const TENSOR_TYPES: Record<GgufTensorType, [number, number, number]> = {
  F32: [0, 1, 4],
  F16: [1, 1, 2],
  Q4_0: [2, 32, 18],
  Q8_0: [8, 32, 34],
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt(n))
  return b
}

function str(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8')
  return Buffer.concat([u64(bytes.length), bytes])
}

function value(v: GgufValue): Buffer {
  if (typeof v === 'string') return Buffer.concat([u32(ValueType.STRING), str(v)])
  if (typeof v === 'boolean') return Buffer.concat([u32(ValueType.BOOL), Buffer.from([v ? 1 : 0])])
  if (Array.isArray(v)) return Buffer.concat([u32(ValueType.ARRAY), u32(ValueType.STRING), u64(v.length), ...v.map(str)])
  if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return Buffer.concat([u32(ValueType.UINT32), u32(v)])
  if (Number.isInteger(v) && v < 0 && v >= -0x80000000) {
    const b = Buffer.alloc(4)
    b.writeInt32LE(v)
    return Buffer.concat([u32(ValueType.INT32), b])
  }
  const b = Buffer.alloc(4)
  b.writeFloatLE(v)
  return Buffer.concat([u32(ValueType.FLOAT32), b])
}

export function ggufFile(meta: Record<string, GgufValue>, tensors: GgufTensorSpec[] = []): Buffer {
  const parts: Buffer[] = [Buffer.from('GGUF'), u32(3), u64(tensors.length), u64(Object.keys(meta).length)]
  for (const [key, v] of Object.entries(meta)) parts.push(str(key), value(v))
  let offset = 0
  for (const t of tensors) {
    const [typeId, perBlock, blockBytes] = TENSOR_TYPES[t.type]
    const elements = t.shape.reduce((a, b) => a * b, 1)
    if (elements % perBlock) throw new Error(`${t.name}: ${t.type} needs a multiple of ${perBlock} elements`)
    parts.push(str(t.name), u32(t.shape.length), ...t.shape.map(u64), u32(typeId), u64(offset))
    offset += Math.ceil(((elements / perBlock) * blockBytes) / ALIGNMENT) * ALIGNMENT
  }
  const head = Buffer.concat(parts)
  const pad = (ALIGNMENT - (head.length % ALIGNMENT)) % ALIGNMENT
  return Buffer.concat([head, Buffer.alloc(pad + offset)])
}
