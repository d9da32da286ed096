import { describe, expect, it } from 'vitest'
import { AppError } from '../../../src/platform/errors.js'
import { plan, type PlanInput, tensorParallelSize } from '../../../src/modules/endpoint_ops/plan.js'
import { cluster, MODELS, node, request, runtimes } from './fixtures.js'

const settings = { prometheusUrl: null }

function refused(input: PlanInput): AppError {
  try {
    plan(input)
  } catch (err) {
    if (err instanceof AppError) return err
    throw err
  }
  throw new Error('the plan was not refused')
}

describe('planner: sizing and tensor parallelism', () => {
  it('puts an 8B bf16 model on one A100-80GB with vLLM and the engine arguments that follow', () => {
    const decision = plan({ request: request(MODELS.llama8b), model: MODELS.llama8b, cluster: cluster([node('a100-8x'), node('cpu-small')]), runtimes, settings })
    expect(decision.runtime).toMatchObject({ name: 'vllm-cuda', engine: 'vllm', image: 'vllm/vllm-openai:v0.29.0' })
    expect(decision.deviceType).toBe('cuda')
    expect(decision.device).toMatchObject({ product: 'NVIDIA-A100-SXM4-80GB', resourceName: 'nvidia.com/gpu', productLabelKey: 'nvidia.com/gpu.product' })
    expect(decision.resources).toMatchObject({ devicesPerReplica: 1, tensorParallelSize: 1, weightsGiB: 15 })
    // 2 × 32 layers × 8 kv heads × 128 × 2 bytes = 128 KiB a token; × 8192 × 8 sequences = 8 GiB.
    expect(decision.resources.kvCacheGiB).toBe(8)
    expect(decision.engineArgs).toEqual(expect.arrayContaining(['--max-model-len', '8192', '--tensor-parallel-size', '1', '--served-model-name', 'llama-3.1-8b-instruct', '--api-key', '$(MODELPLANE_API_KEY)']))
    expect(decision.placement.nodes).toEqual([{ node: 'gpu-a100-0', product: 'NVIDIA-A100-SXM4-80GB', freeDevices: 8, room: 8 }])
    expect(decision.placement.rejected).toEqual([{ node: 'worker-small-1', reasons: ['no cuda devices'] }])
    expect(decision.assumptions.some((a) => a.includes('maxModelLen not asked: 8192'))).toBe(true)
  })

  it('gives a 70B bf16 model tensor parallelism 4 on A100-80GB', () => {
    const decision = plan({ request: request(MODELS.llama70b), model: MODELS.llama70b, cluster: cluster([node('a100-8x')]), runtimes, settings })
    expect(decision.resources).toMatchObject({ devicesPerReplica: 4, tensorParallelSize: 4 })
    expect(decision.engineArgs.join(' ')).toContain('--tensor-parallel-size 4')
    expect(decision.device.tolerate).toBe('nvidia.com/gpu')
  })

  it('refuses the 70B model on a cluster with 2 GPUs free, saying what is missing', () => {
    const busy = node('a100-8x', { extended: { 'nvidia.com/gpu': 6 } })
    const err = refused({ request: request(MODELS.llama70b), model: MODELS.llama70b, cluster: cluster([busy]), runtimes, settings })
    expect(err.status).toBe(409)
    expect(err.code).toBe('INSUFFICIENT_CAPACITY')
    expect(err.message).toMatch(/^needs 4× cuda with ≥ \d+ GiB each; largest free: 2× on node gpu-a100-0$/)
    expect(err.details.rejected).toEqual([{ node: 'gpu-a100-0', reasons: ['insufficient free devices: needs 4× nvidia.com/gpu, 2 free'] }])
  })

  it('keeps tensor parallelism a power of two that divides the attention heads', () => {
    expect(tensorParallelSize(3, 64)).toBe(4)
    expect(tensorParallelSize(3, 40)).toBe(4)
    expect(tensorParallelSize(5, 40)).toBe(8)
    expect(tensorParallelSize(3, 12)).toBe(4)
    expect(tensorParallelSize(5, 12)).toBeNull()
    expect(tensorParallelSize(2, 25)).toBeNull()
    // A model of 20 heads that needs 5 devices: 8 does not divide 20, 16 neither.
    const odd = { ...MODELS.llama70b, metadata: { numAttentionHeads: 20, numKeyValueHeads: 4, numHiddenLayers: 80, hiddenSize: 5120 }, parameterCount: 160e9 }
    const err = refused({ request: request(odd), model: odd, cluster: cluster([node('a100-8x')]), runtimes, settings })
    expect(err.code).toBe('INSUFFICIENT_CAPACITY')
    expect(err.message).toContain("divides the model's 20 attention heads")
  })

  it('states the defaults it used when the model says too little', () => {
    const bare = { ...MODELS.llama8b, dtype: null, metadata: {}, contextLength: null }
    const decision = plan({ request: request(bare), model: bare, cluster: cluster([node('a100-8x')]), runtimes, settings })
    expect(decision.assumptions.join('\n')).toMatch(/dtype not stated: counted as bfloat16/)
    expect(decision.assumptions.join('\n')).toMatch(/attention shape is not fully known/)
    expect(decision.assumptions.join('\n')).toMatch(/states no context length: 8192/)
  })
})

describe('planner: choosing the runtime', () => {
  it('serves a GGUF model with llama.cpp on a CPU node, its context split among slots', () => {
    const decision = plan({ request: request(MODELS.qwenGguf, { maxConcurrency: 4, maxModelLen: 4096 }), model: MODELS.qwenGguf, cluster: cluster([node('cpu-small')]), runtimes, settings })
    expect(decision.runtime.name).toBe('llamacpp-cpu')
    expect(decision.deviceType).toBe('cpu')
    expect(decision.engineArgs).toEqual(expect.arrayContaining(['--model', '/models/qwen2.5-0.5b-instruct-q4_k_m.gguf', '--ctx-size', '16384', '--parallel', '4']))
    expect(decision.resources.devicesPerReplica).toBe(0)
    expect(decision.strategy).toBe('RollingUpdate')
  })

  it('serves an embedding model with text-embeddings-inference, the tag of the GPU architecture', () => {
    const onGpu = plan({ request: request(MODELS.bgeSmall), model: MODELS.bgeSmall, cluster: cluster([node('a100-8x')]), runtimes, settings })
    expect(onGpu.runtime).toMatchObject({ name: 'tei-cuda', image: 'ghcr.io/huggingface/text-embeddings-inference:1.9' })
    const onT4 = plan({ request: request(MODELS.bgeSmall), model: MODELS.bgeSmall, cluster: cluster([node('t4-time-sliced')]), runtimes, settings })
    expect(onT4.runtime.image).toBe('ghcr.io/huggingface/text-embeddings-inference:turing-1.9')
    const onCpu = plan({ request: request(MODELS.bgeSmall), model: MODELS.bgeSmall, cluster: cluster([node('sapphire-rapids')]), runtimes, settings })
    expect(onCpu).toMatchObject({ runtime: { name: 'tei-cpu' }, deviceType: 'cpu_high' })
  })

  it('refuses a named runtime that cannot serve the model, and one that does not exist', () => {
    expect(refused({ request: request(MODELS.qwenGguf, { runtime: 'vllm-cuda' }), model: MODELS.qwenGguf, cluster: cluster([node('a100-8x')]), runtimes, settings })).toMatchObject({
      status: 400,
      code: 'RUNTIME_UNSUITABLE',
    })
    expect(refused({ request: request(MODELS.llama8b, { runtime: 'nope' }), model: MODELS.llama8b, cluster: cluster([node('a100-8x')]), runtimes, settings })).toMatchObject({
      status: 400,
      code: 'RUNTIME_NOT_FOUND',
    })
  })

  it('says so when no runtime serves the model on the cluster (GGUF on a GPU-only cluster)', () => {
    const err = refused({ request: request(MODELS.qwenGguf), model: MODELS.qwenGguf, cluster: cluster([node('gaudi2')]), runtimes, settings })
    // The Gaudi node is a CPU node too for llama.cpp, but its taint keeps CPU pods away.
    expect(err.code).toBe('INSUFFICIENT_CAPACITY')
    expect(err.details.rejected).toEqual([{ node: 'hpu-gaudi2-0', reasons: ['taint habana.ai/gaudi=present:NoSchedule is not tolerated'] }])
    const none = refused({ request: request(MODELS.qwenGguf), model: MODELS.qwenGguf, cluster: cluster([node('gaudi2')]), runtimes: runtimes.filter((r) => r.engine !== 'llamacpp'), settings })
    expect(none).toMatchObject({ status: 409, code: 'NO_SUITABLE_RUNTIME' })
  })

  it('has no runtime for Gaudi until the operator adds one', () => {
    const err = refused({ request: request(MODELS.llama8b, { deviceType: 'hpu' }), model: MODELS.llama8b, cluster: cluster([node('gaudi2')]), runtimes, settings })
    expect(err).toMatchObject({ status: 409, code: 'NO_SUITABLE_RUNTIME' })
    const gaudi = { ...runtimes[0]!, id: '00000000-0000-4000-8000-0000000000aa', name: 'vllm-gaudi', deviceType: 'hpu' as const, image: 'registry.example/vllm-gaudi', tag: '1.22.0' }
    const decision = plan({ request: request(MODELS.llama8b, { deviceType: 'hpu' }), model: MODELS.llama8b, cluster: cluster([node('gaudi2')]), runtimes: [...runtimes, gaudi], settings })
    expect(decision).toMatchObject({ runtime: { name: 'vllm-gaudi' }, device: { resourceName: 'habana.ai/gaudi', tolerate: 'habana.ai/gaudi' } })
    expect(decision.assumptions.join('\n')).toContain('not labelled on the nodes: assumed 32 GiB')
  })
})

describe('planner: shared GPUs and nodes that cannot take the pod', () => {
  it('puts an 8B model on a MIG 3g.40gb instance rather than a 10 GB slice', () => {
    const decision = plan({ request: request(MODELS.llama8b), model: MODELS.llama8b, cluster: cluster([node('a100-mig')]), runtimes, settings })
    expect(decision.device).toMatchObject({ resourceName: 'nvidia.com/mig-3g.40gb', memoryGiB: 40, sharing: 'mig' })
    expect(decision.resources.devicesPerReplica).toBe(1)
  })

  it('counts a time-sliced T4 as its share of memory, and says so', () => {
    const decision = plan({ request: request(MODELS.qwenGguf, { runtime: 'llamacpp-cpu' }), model: MODELS.qwenGguf, cluster: cluster([node('cpu-small')]), runtimes, settings })
    expect(decision.runtime.name).toBe('llamacpp-cpu')
    const err = refused({ request: request(MODELS.llama8b), model: MODELS.llama8b, cluster: cluster([node('t4-time-sliced')]), runtimes, settings })
    expect(err.code).toBe('INSUFFICIENT_CAPACITY')
    expect(JSON.stringify(err.details.rejected)).toContain('too little device memory')
    const small = plan({ request: request(MODELS.bgeSmall), model: MODELS.bgeSmall, cluster: cluster([node('t4-time-sliced')]), runtimes, settings })
    expect(small.device).toMatchObject({ sharing: 'time-slicing', memoryGiB: 3.8 })
    expect(small.assumptions.join('\n')).toContain('is shared (time-slicing)')
  })

  it('rejects cordoned, NotReady and tainted nodes with their reasons', () => {
    const decision = plan({
      request: request(MODELS.qwenGguf),
      model: MODELS.qwenGguf,
      cluster: cluster([node('cordoned'), node('not-ready'), node('a100-8x'), node('sapphire-rapids')]),
      runtimes,
      settings,
    })
    expect(decision.placement.nodes.map((n) => n.node)).toEqual(['ip-10-0-12-34.ec2.internal'])
    const rejected = Object.fromEntries(decision.placement.rejected.map((r) => [r.node, r.reasons]))
    expect(rejected['dgx-h100-3']).toEqual(expect.arrayContaining(['cordoned']))
    expect(rejected['worker-7']).toEqual(expect.arrayContaining(['NotReady']))
    expect(rejected['gpu-a100-0']).toEqual(['taint nvidia.com/gpu=true:NoSchedule is not tolerated'])
  })

  it('refuses more replicas than the nodes have room for', () => {
    const err = refused({ request: request(MODELS.llama70b, { replicas: 3 }), model: MODELS.llama70b, cluster: cluster([node('a100-8x')]), runtimes, settings })
    expect(err.message).toMatch(/^needs 3 replicas of 4× cuda with ≥ \d+ GiB each; room for 2$/)
  })

  it('rolls out without a surge, and recreates when one replica holds the devices', () => {
    const one = plan({ request: request(MODELS.llama8b), model: MODELS.llama8b, cluster: cluster([node('a100-8x')]), runtimes, settings })
    expect(one.strategy).toBe('Recreate')
    const two = plan({ request: request(MODELS.llama8b, { replicas: 2 }), model: MODELS.llama8b, cluster: cluster([node('a100-8x')]), runtimes, settings })
    expect(two.strategy).toBe('RollingUpdate')
  })
})

describe('planner: autoscaling and inputs', () => {
  const autoscale = { min: 1, max: 3, targetConcurrency: 8 }
  it('uses KEDA when the cluster has it and a Prometheus is named, else an HPA on custom metrics, else refuses', () => {
    const base = { request: request(MODELS.llama8b, { autoscale }), model: MODELS.llama8b, runtimes }
    const keda = plan({ ...base, cluster: cluster([node('a100-8x')], { keda: true }), settings: { prometheusUrl: 'http://prometheus.monitoring:9090' } })
    expect(keda.autoscaler).toMatchObject({ kind: 'keda', metric: 'vllm:num_requests_running' })
    const hpa = plan({ ...base, cluster: cluster([node('a100-8x')], { customMetrics: true }), settings })
    expect(hpa.autoscaler).toMatchObject({ kind: 'hpa', metric: 'vllm_num_requests_running' })
    expect(refused({ ...base, cluster: cluster([node('a100-8x')], { customMetrics: true }), request: request(MODELS.llama8b, { autoscale: { ...autoscale, min: 0 } }), settings })).toMatchObject({
      code: 'AUTOSCALING_UNAVAILABLE',
    })
    const none = refused({ ...base, cluster: cluster([node('a100-8x')], {}), settings })
    expect(none).toMatchObject({ status: 409, code: 'AUTOSCALING_UNAVAILABLE' })
    expect(none.message).toContain('needs KEDA or the custom metrics API')
  })

  it("refuses args that would override modelplane's own flags, and env in its namespace", () => {
    const input = { model: MODELS.llama8b, cluster: cluster([node('a100-8x')]), runtimes, settings }
    expect(refused({ ...input, request: request(MODELS.llama8b, { args: ['--enable-prefix-caching', '--api-key=x'] }) })).toMatchObject({
      status: 400,
      details: { fields: [{ field: 'body.args.1' }] },
    })
    expect(refused({ ...input, request: request(MODELS.llama8b, { env: { MODELPLANE_API_KEY: 'x' } }) })).toMatchObject({ status: 400 })
    const ok = plan({ ...input, request: request(MODELS.llama8b, { args: ['--enable-prefix-caching'] }) })
    expect(ok.engineArgs.at(-1)).toBe('--enable-prefix-caching')
  })
})
