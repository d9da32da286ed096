import { stringify } from 'yaml'

/** A model card: README.md with YAML front matter (license, tags, pipeline_tag, …) and a body. */
export function modelCard(frontMatter: Record<string, unknown>, body = '# Model card\n'): string {
  return `---\n${stringify(frontMatter)}---\n\n${body}`
}

export interface ConfigOptions {
  architectures?: string[]
  model_type?: string
  hidden_size?: number
  num_hidden_layers?: number
  num_attention_heads?: number
  vocab_size?: number
  max_position_embeddings?: number
  torch_dtype?: string
  /** Anything else a config.json may carry (quantization_config, rope_scaling, …). */
  [key: string]: unknown
}

/** A transformers config.json; defaults describe a tiny Llama. */
export function configJson(o: ConfigOptions = {}): string {
  return `${JSON.stringify(
    {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 2,
      vocab_size: 64,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-6,
      torch_dtype: 'float16',
      transformers_version: '4.46.0',
      ...o,
    },
    null,
    2,
  )}\n`
}
