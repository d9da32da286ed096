/**
 * A safetensors file: an 8-byte little-endian header length, the JSON header (padded with spaces
 * to a multiple of 8, as the reference writer does), then the tensors' bytes back to back. The
 * bytes are zeros: what readers of metadata look at is the header.
 */

export type SafetensorsDtype = 'F16' | 'BF16' | 'F32' | 'I8' | 'U8'

export interface TensorSpec {
  name: string
  dtype: SafetensorsDtype
  shape: number[]
}

const BYTES_PER: Record<SafetensorsDtype, number> = { F16: 2, BF16: 2, F32: 4, I8: 1, U8: 1 }

export function safetensorsFile(tensors: TensorSpec[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {}
  if (metadata) header.__metadata__ = metadata
  let offset = 0
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name in header) throw new Error(`tensor name ${t.name} is taken`)
    const size = t.shape.reduce((a, b) => a * b, 1) * BYTES_PER[t.dtype]
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] }
    offset += size
  }
  const json = JSON.stringify(header)
  const padded = json + ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8)
  const headerBytes = Buffer.from(padded)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(headerBytes.length))
  return Buffer.concat([length, headerBytes, Buffer.alloc(offset)])
}
