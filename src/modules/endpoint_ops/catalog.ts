/**
 * The serving runtimes modelplane knows how to start: what an entry of the runtime catalog holds,
 * and the entries every installation starts from. Tags are pinned (never `latest`): a runtime
 * image is code that runs on every cluster, and a moving tag would change it under running
 * endpoints. The seeds are written once; an operator's edits are never overwritten.
 */

export const ENGINES = ['vllm', 'sglang', 'llamacpp', 'tei', 'custom'] as const
export type Engine = (typeof ENGINES)[number]

/** The hardware a runtime's image is built for; `cpu` serves both CPU classes (cpu and cpu_high). */
export const RUNTIME_DEVICE_TYPES = ['cuda', 'rocm', 'hpu', 'cpu'] as const
export type RuntimeDeviceType = (typeof RUNTIME_DEVICE_TYPES)[number]

export const MODEL_FORMATS = ['safetensors', 'gguf', 'pytorch', 'onnx', 'other'] as const

/** Tasks as the Hub names them (pipeline_tag), plus `embeddings` for what a card does not say. */
export const GENERATION_TASKS = ['text-generation', 'text2text-generation', 'image-text-to-text', 'conversational']
export const EMBEDDING_TASKS = ['feature-extraction', 'sentence-similarity', 'embeddings', 'text-ranking', 'text-classification']

export const OPENAI_ROUTES = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models', '/v1/rerank', '/v1/responses'] as const

/**
 * How the runtime receives the endpoint's API key. Either way the value comes from the endpoint's
 * Secret through an environment variable; a flag is passed as `$(MODELPLANE_API_KEY)`, which the
 * kubelet expands, so the key is never written into the Deployment.
 */
export type ApiKeyPassing = { kind: 'flag'; flag: string } | { kind: 'env'; name: string }

/** An image tag chosen by the GPU's product (text-embeddings-inference builds one per architecture). */
export interface ProductTag {
  /** Substrings of the product name (`A100`, `H100`), compared without case. */
  products: string[]
  tag: string
}

export interface RuntimeSpec {
  name: string
  engine: Engine
  deviceType: RuntimeDeviceType
  /** Without tag: `vllm/vllm-openai`. */
  image: string
  /** Pinned; never `latest`. */
  tag: string
  /** Tags by GPU product; the first match wins, `tag` otherwise. */
  productTags: ProductTag[]
  /**
   * Arguments, one token each. `{modelPath}`, `{modelFile}`, `{servedModelName}`, `{port}`,
   * `{maxModelLen}`, `{tensorParallelSize}`, `{maxConcurrency}` and `{contextTotal}` (max model
   * length × concurrency, for engines that split one context among their slots) are replaced.
   */
  argsTemplate: string[]
  port: number
  healthPath: string
  readinessPath: string
  /** What answers once the model is loaded; `/v1/models` for OpenAI servers, `/info` for TEI. */
  modelProbePath: string
  metricsPath: string
  /** A Prometheus gauge of requests in flight, for autoscaling on concurrency. */
  concurrencyMetric: string | null
  formats: string[]
  tasks: string[]
  openaiRoutes: string[]
  apiKey: ApiKeyPassing
  /** A uid the image runs as without root, or null when it needs root. */
  runAsUser: number | null
  enabled: boolean
  description: string
}

const GENERATION_ROUTES = ['/v1/chat/completions', '/v1/completions', '/v1/models']
const VLLM_ARGS = [
  '--model', '{modelPath}',
  '--served-model-name', '{servedModelName}',
  '--host', '0.0.0.0',
  '--port', '{port}',
  '--max-model-len', '{maxModelLen}',
  '--tensor-parallel-size', '{tensorParallelSize}',
  '--max-num-seqs', '{maxConcurrency}',
]
const VLLM_COMMON = {
  engine: 'vllm' as const,
  productTags: [],
  argsTemplate: VLLM_ARGS,
  port: 8000,
  healthPath: '/health',
  readinessPath: '/health',
  modelProbePath: '/v1/models',
  metricsPath: '/metrics',
  concurrencyMetric: 'vllm:num_requests_running',
  formats: ['safetensors', 'pytorch'],
  tasks: [...GENERATION_TASKS, ...EMBEDDING_TASKS.slice(0, 3)],
  openaiRoutes: [...GENERATION_ROUTES, '/v1/embeddings', '/v1/responses'],
  apiKey: { kind: 'flag' as const, flag: '--api-key' },
  runAsUser: null,
  enabled: true,
}

/** The catalog a fresh installation starts with; tags as published when this release was cut. */
export const SEEDED_RUNTIMES: RuntimeSpec[] = [
  {
    ...VLLM_COMMON,
    name: 'vllm-cuda',
    deviceType: 'cuda',
    image: 'vllm/vllm-openai',
    tag: 'v0.29.0',
    description: "vLLM's own OpenAI-compatible server image for NVIDIA GPUs",
  },
  {
    ...VLLM_COMMON,
    name: 'vllm-rocm',
    deviceType: 'rocm',
    image: 'rocm/vllm',
    tag: 'rocm10.0.0_ubuntu24.04_py3.14_pytorch_2.12.0_vllm_0.27.0',
    description: "AMD's vLLM image for Instinct GPUs (ROCm)",
  },
  {
    ...VLLM_COMMON,
    name: 'vllm-cpu',
    deviceType: 'cpu',
    image: 'vllm/vllm-openai-cpu',
    tag: 'v0.30.0',
    // No tensor parallelism on CPU: one process per replica.
    argsTemplate: VLLM_ARGS.slice(0, -4).concat(['--max-num-seqs', '{maxConcurrency}']),
    description: "vLLM's CPU image (x86-64 with AVX-512 preferred); the KV cache lives in host memory",
  },
  {
    name: 'sglang-cuda',
    engine: 'sglang',
    deviceType: 'cuda',
    image: 'lmsysorg/sglang',
    tag: 'v0.5.16-cu130-runtime',
    productTags: [],
    argsTemplate: [
      'python3', '-m', 'sglang.launch_server',
      '--model-path', '{modelPath}',
      '--served-model-name', '{servedModelName}',
      '--host', '0.0.0.0',
      '--port', '{port}',
      '--context-length', '{maxModelLen}',
      '--tp-size', '{tensorParallelSize}',
      '--max-running-requests', '{maxConcurrency}',
      '--enable-metrics',
    ],
    port: 30000,
    healthPath: '/health',
    readinessPath: '/health',
    modelProbePath: '/v1/models',
    metricsPath: '/metrics',
    concurrencyMetric: 'sglang:num_running_reqs',
    formats: ['safetensors', 'pytorch'],
    tasks: [...GENERATION_TASKS],
    openaiRoutes: [...GENERATION_ROUTES, '/v1/embeddings'],
    apiKey: { kind: 'flag', flag: '--api-key' },
    runAsUser: null,
    enabled: true,
    description: 'SGLang for NVIDIA GPUs (CUDA 13 runtime image: needs a driver of the 580 series or later)',
  },
  {
    name: 'llamacpp-cpu',
    engine: 'llamacpp',
    deviceType: 'cpu',
    image: 'ghcr.io/ggml-org/llama.cpp',
    tag: 'server-b11206',
    productTags: [],
    argsTemplate: [
      '--model', '{modelFile}',
      '--alias', '{servedModelName}',
      '--host', '0.0.0.0',
      '--port', '{port}',
      '--ctx-size', '{contextTotal}',
      '--parallel', '{maxConcurrency}',
      '--metrics',
    ],
    port: 8080,
    healthPath: '/health',
    readinessPath: '/health',
    modelProbePath: '/v1/models',
    metricsPath: '/metrics',
    concurrencyMetric: 'llamacpp:requests_processing',
    formats: ['gguf'],
    tasks: [...GENERATION_TASKS, ...EMBEDDING_TASKS.slice(0, 3)],
    openaiRoutes: [...GENERATION_ROUTES, '/v1/embeddings'],
    apiKey: { kind: 'flag', flag: '--api-key' },
    runAsUser: null,
    enabled: true,
    description: "llama.cpp's server for GGUF models on CPU",
  },
  ...(['cuda', 'cpu'] as const).map(
    (deviceType): RuntimeSpec => ({
      name: `tei-${deviceType}`,
      engine: 'tei',
      deviceType,
      image: 'ghcr.io/huggingface/text-embeddings-inference',
      tag: deviceType === 'cpu' ? 'cpu-1.9' : '1.9',
      // One build per GPU architecture (compute capability): 7.5, 8.0 (the plain tag), 8.6, 8.9, 9.0.
      productTags:
        deviceType === 'cpu'
          ? []
          : [
              { products: ['H100', 'H200', 'H800', 'GH200'], tag: 'hopper-1.9' },
              { products: ['A100', 'A30', 'A800'], tag: '1.9' },
              { products: ['T4', 'RTX-20', 'Quadro-RTX'], tag: 'turing-1.9' },
              { products: ['L4', 'L40', 'RTX-40', 'Ada'], tag: '89-1.9' },
              // After A100: `A10` is a prefix of it.
              { products: ['A10', 'A40', 'A16', 'A2', 'RTX-30', 'RTX-A'], tag: '86-1.9' },
            ],
      argsTemplate: ['--model-id', '{modelPath}', '--served-model-name', '{servedModelName}', '--hostname', '0.0.0.0', '--port', '{port}', '--max-concurrent-requests', '{maxConcurrency}'],
      port: 8080,
      healthPath: '/health',
      readinessPath: '/health',
      modelProbePath: '/info',
      metricsPath: '/metrics',
      concurrencyMetric: 'te_queue_size',
      formats: ['safetensors', 'pytorch', 'onnx'],
      tasks: [...EMBEDDING_TASKS],
      openaiRoutes: ['/v1/embeddings'],
      apiKey: { kind: 'flag', flag: '--api-key' },
      runAsUser: null,
      enabled: true,
      description: `Hugging Face text-embeddings-inference for embedding and reranking models (${deviceType === 'cpu' ? 'CPU' : 'NVIDIA GPUs, tag by architecture'})`,
    }),
  ),
]

/** The tag for a device: the first product rule whose substring the product holds. */
export function tagFor(runtime: Pick<RuntimeSpec, 'tag' | 'productTags'>, product: string | null): string {
  if (product) {
    const name = product.toLowerCase()
    for (const rule of runtime.productTags) {
      if (rule.products.some((p) => name.includes(p.toLowerCase()))) return rule.tag
    }
  }
  return runtime.tag
}
