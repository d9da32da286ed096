import { configJson, modelCard } from './cards.js'
import type { RepoSpec } from './repos.js'
import { type TensorSpec, safetensorsFile } from './safetensors.js'

/** The weights of the tiny Llama that configJson() describes by default (4,656 F16 parameters). */
export function tinyLlamaTensors(): TensorSpec[] {
  const hidden = 16
  const inter = 32
  const vocab = 64
  const t = (name: string, shape: number[]): TensorSpec => ({ name, dtype: 'F16', shape })
  return [
    t('model.embed_tokens.weight', [vocab, hidden]),
    ...['q', 'k', 'v', 'o'].map((p) => t(`model.layers.0.self_attn.${p}_proj.weight`, [hidden, hidden])),
    t('model.layers.0.mlp.gate_proj.weight', [inter, hidden]),
    t('model.layers.0.mlp.up_proj.weight', [inter, hidden]),
    t('model.layers.0.mlp.down_proj.weight', [hidden, inter]),
    t('model.layers.0.input_layernorm.weight', [hidden]),
    t('model.layers.0.post_attention_layernorm.weight', [hidden]),
    t('model.norm.weight', [hidden]),
    t('lm_head.weight', [vocab, hidden]),
  ]
}

/** A tokenizers-library tokenizer.json: a word-level vocabulary the size of the tiny model's. */
function tokenizerJson(): string {
  const vocab = Object.fromEntries(['<unk>', '<s>', '</s>', ...Array.from({ length: 61 }, (_, i) => `w${i}`)].map((w, i) => [w, i]))
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  })
}

/** A small, complete text-generation repository: config.json, model.safetensors, tokenizer.json, README.md. */
export function tinyModelRepo(id: string): RepoSpec {
  return {
    id,
    files: [
      { path: 'config.json', content: configJson() },
      { path: 'model.safetensors', content: safetensorsFile(tinyLlamaTensors(), { format: 'pt' }) },
      { path: 'tokenizer.json', content: tokenizerJson() },
      {
        path: 'README.md',
        content: modelCard(
          { license: 'apache-2.0', library_name: 'transformers', pipeline_tag: 'text-generation', language: ['en'], tags: ['llama', 'tiny'] },
          `# ${id}\n\nA tiny Llama for tests.\n`,
        ),
      },
    ],
  }
}
