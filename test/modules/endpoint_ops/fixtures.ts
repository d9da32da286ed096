import { readFileSync } from 'node:fs'
import type { V1Node } from '@kubernetes/client-node'
import { describeNode, emptyResources, type Resources } from '../../../src/modules/cluster_ops/hardware.js'
import { SEEDED_RUNTIMES } from '../../../src/modules/endpoint_ops/catalog.js'
import type { CatalogRuntime, PlanCluster, PlanModel, PlanNode, PlanRequest } from '../../../src/modules/endpoint_ops/plan.js'

/** Planner inputs built from the stand-in's node fixtures, as a cluster sync would record them. */

export const GiB = 1024 ** 3

export function node(fixture: string, used: Partial<Resources> = {}): PlanNode {
  const raw = JSON.parse(readFileSync(new URL(`../../fixtures/kube/nodes/${fixture}.json`, import.meta.url), 'utf8')) as V1Node
  return { facts: describeNode(raw), used: { ...emptyResources(), ...used } }
}

export function cluster(nodes: PlanNode[], capabilities: PlanCluster['capabilities'] = { defaultIngressClass: 'nginx', readWriteManyStorageClass: null, defaultStorageClass: 'standard' }): PlanCluster {
  return { id: '7d1f0c52-3a9e-4b1d-8f6a-2c4e9b0d1a73', platform: 'kubernetes', capabilities, nodes }
}

export const runtimes: CatalogRuntime[] = SEEDED_RUNTIMES.map((r, i) => ({ ...r, id: `00000000-0000-4000-8000-00000000000${i}` }))

const llamaShape = (layers: number, heads: number, kv: number, hidden: number) => ({
  numAttentionHeads: heads,
  numKeyValueHeads: kv,
  numHiddenLayers: layers,
  hiddenSize: hidden,
})

export const MODELS = {
  llama8b: {
    id: '1b8f2c4e-6a3d-4e7f-9b1c-0d2e4f6a8b9c',
    name: 'llama-3.1-8b-instruct',
    format: 'safetensors',
    tasks: ['text-generation'],
    parameterCount: 8_030_261_248,
    dtype: 'bfloat16',
    quantization: null,
    contextLength: 131072,
    metadata: llamaShape(32, 32, 8, 4096),
    weightFileBytes: 16_060_522_496,
    files: [
      { path: 'config.json', size: 826 },
      { path: 'model-00001-of-00002.safetensors', size: 9_976_576_152 },
      { path: 'model-00002-of-00002.safetensors', size: 6_083_946_344 },
    ],
  },
  llama70b: {
    id: '2c9a3d5f-7b4e-4f80-8c2d-1e3f5a7b9c0d',
    name: 'llama-3.1-70b-instruct',
    format: 'safetensors',
    tasks: ['text-generation'],
    parameterCount: 70_553_706_496,
    dtype: 'bfloat16',
    quantization: null,
    contextLength: 131072,
    metadata: llamaShape(80, 64, 8, 8192),
    weightFileBytes: 141_107_412_992,
    files: [{ path: 'model.safetensors', size: 141_107_412_992 }],
  },
  qwenGguf: {
    id: '3d0b4e6a-8c5f-4a91-9d3e-2f4a6b8c0d1e',
    name: 'qwen2.5-0.5b-instruct-q4',
    format: 'gguf',
    tasks: ['text-generation'],
    parameterCount: 494_032_768,
    dtype: null,
    quantization: null,
    contextLength: 32768,
    metadata: { gguf: { architecture: 'qwen2', fileType: 15 } },
    weightFileBytes: 397_808_192,
    files: [{ path: 'qwen2.5-0.5b-instruct-q4_k_m.gguf', size: 397_808_192 }],
  },
  bgeSmall: {
    id: '4e1c5f7b-9d6a-4b02-8e4f-3a5b7c9d1e2f',
    name: 'bge-small-en-v1.5',
    format: 'safetensors',
    tasks: ['feature-extraction'],
    parameterCount: 33_360_000,
    dtype: 'float32',
    quantization: null,
    contextLength: 512,
    metadata: llamaShape(12, 12, 12, 384),
    weightFileBytes: 133_462_128,
    files: [{ path: 'model.safetensors', size: 133_462_128 }],
  },
} satisfies Record<string, PlanModel>

export function request(model: PlanModel, extra: Partial<PlanRequest> = {}): PlanRequest {
  return { name: 'chat', modelId: model.id, clusterId: '7d1f0c52-3a9e-4b1d-8f6a-2c4e9b0d1a73', replicas: 1, ...extra }
}
