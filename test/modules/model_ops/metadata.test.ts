import { describe, expect, it } from 'vitest'
import { MetadataError, readConfigJson, readModelCard, readSafetensorsHeader, safetensorsHeaderLength } from '../../../src/modules/model_ops/metadata.js'
import { filePathProblem } from '../../../src/modules/model_ops/paths.js'

/** A safetensors file as the format lays it out: u64 LE header length, the JSON header, then the data. */
function safetensors(tensors: Record<string, { dtype: string; shape: number[] }>, metadata?: Record<string, string>): Buffer {
  let offset = 0
  const width: Record<string, number> = { BF16: 2, F16: 2, F32: 4, I8: 1 }
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {}
  for (const [name, t] of Object.entries(tensors)) {
    const size = t.shape.reduce((a, b) => a * b, 1) * (width[t.dtype] ?? 1)
    header[name] = { ...t, data_offsets: [offset, offset + size] }
    offset += size
  }
  const json = Buffer.from(JSON.stringify(header))
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(json.length))
  return Buffer.concat([length, json, Buffer.alloc(offset)])
}

describe('config.json', () => {
  it('reads architecture, context length, dtype, heads and quantization', () => {
    const facts = readConfigJson(
      JSON.stringify({
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        max_position_embeddings: 131072,
        torch_dtype: 'bfloat16',
        num_attention_heads: 32,
        num_key_value_heads: 8,
        num_hidden_layers: 32,
        hidden_size: 4096,
        head_dim: 128,
        quantization_config: { quant_method: 'awq', bits: 4 },
      }),
    )
    expect(facts).toEqual({
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      contextLength: 131072,
      dtype: 'bfloat16',
      numAttentionHeads: 32,
      numKeyValueHeads: 8,
      numHiddenLayers: 32,
      hiddenSize: 4096,
      headDim: 128,
      quantization: 'awq',
      quantizationConfig: { quant_method: 'awq', bits: 4 },
    })
  })

  it("finds GPT-2's n_positions and a multimodal model's text_config", () => {
    expect(readConfigJson(JSON.stringify({ architectures: ['GPT2LMHeadModel'], n_positions: 1024, n_head: 12 }))).toMatchObject({ contextLength: 1024, numAttentionHeads: 12, numKeyValueHeads: null, numHiddenLayers: null, dtype: null, quantization: null })
    expect(readConfigJson(JSON.stringify({ text_config: { max_position_embeddings: 32768, torch_dtype: 'float16' } }))).toMatchObject({ contextLength: 32768, dtype: 'float16' })
  })

  it('refuses what is not a JSON object', () => {
    expect(() => readConfigJson('[1,2]')).toThrow(MetadataError)
    expect(() => readConfigJson('{"architectures": [')).toThrow('not JSON')
  })
})

describe('safetensors header', () => {
  it('counts parameters per dtype and names the dominant one as torch does', () => {
    const file = safetensors(
      { 'model.embed_tokens.weight': { dtype: 'BF16', shape: [320, 64] }, 'lm_head.weight': { dtype: 'BF16', shape: [320, 64] }, 'model.norm.weight': { dtype: 'F32', shape: [64] } },
      { format: 'pt' },
    )
    const facts = readSafetensorsHeader(file)
    expect(facts).toMatchObject({ parameterCount: 320 * 64 * 2 + 64, parametersByDtype: { BF16: 40960, F32: 64 }, dtype: 'bfloat16', tensorCount: 3, metadata: { format: 'pt' } })
    // Only the first 8 + N bytes are needed.
    expect(readSafetensorsHeader(file.subarray(0, 8 + facts.headerLength)).parameterCount).toBe(facts.parameterCount)
  })

  it('refuses a header over 100 MB, a cut-short header and malformed tensors', () => {
    const huge = Buffer.alloc(8)
    huge.writeBigUInt64LE(BigInt(100 * 1024 * 1024 + 1))
    expect(() => safetensorsHeaderLength(huge)).toThrow('more than')
    const file = safetensors({ w: { dtype: 'F16', shape: [4, 4] } })
    expect(() => readSafetensorsHeader(file.subarray(0, 20))).toThrow('cut short')
    const bad = Buffer.from(JSON.stringify({ w: { dtype: 'F16', shape: [4, -1] } }))
    const length = Buffer.alloc(8)
    length.writeBigUInt64LE(BigInt(bad.length))
    expect(() => readSafetensorsHeader(Buffer.concat([length, bad]))).toThrow('malformed shape')
    expect(() => readSafetensorsHeader(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0x7b]))).toThrow(MetadataError)
  })
})

describe('model card', () => {
  it('reads license, tags, task and base model from the front matter', () => {
    const card = ['---', 'license: apache-2.0', 'pipeline_tag: text-generation', 'library_name: transformers', 'tags:', '- chat', '- llama', '- chat', 'base_model: meta-llama/Llama-3.1-8B', 'language: [en, de]', '---', '# My model', 'Text.'].join('\n')
    expect(readModelCard(card)).toEqual({
      license: 'apache-2.0',
      tags: ['chat', 'llama'],
      task: 'text-generation',
      libraryName: 'transformers',
      baseModel: 'meta-llama/Llama-3.1-8B',
      languages: ['en', 'de'],
    })
  })

  it('has no facts without front matter, and refuses YAML that is not YAML or expands without bound', () => {
    expect(readModelCard('# Just a README')).toMatchObject({ license: null, tags: [] })
    expect(() => readModelCard('---\nlicense: [unclosed\n---\n')).toThrow(MetadataError)
    const bomb = ['---', 'a: &a [x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 60 }, (_, i) => `b${i}: [*a, *a, *a, *a, *a, *a]`), '---'].join('\n')
    expect(() => readModelCard(bomb)).toThrow(MetadataError)
  })
})

describe('file paths of a version', () => {
  it('allows relative paths of safe characters and refuses the rest', () => {
    expect(filePathProblem('model-00001-of-00002.safetensors')).toBeNull()
    expect(filePathProblem('1_Pooling/config.json')).toBeNull()
    for (const bad of ['', '../x', 'a/./b', '/abs', 'a\\b', 'a b', `${'x'.repeat(513)}`, 'a/', 'é.bin']) expect(filePathProblem(bad), bad).not.toBeNull()
  })
})
