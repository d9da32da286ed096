import { createHash } from 'node:crypto'
import { type Container } from './pod-spec.js'

/**
 * The process behind a running container, as far as the pod and service proxies can see it: a
 * small table of model servers (vLLM, SGLang, llama.cpp's llama-server, Hugging Face
 * text-embeddings-inference) and an app runner for user code, each chosen by the container's image
 * or command and configured by its arguments and environment as the real one is: port, served
 * model name, API key, whether /metrics is on, and the metric names it writes. Answers are tiny and
 * deterministic; every inference request counts, and a restarted container starts from zero.
 */

export type Engine = 'vllm' | 'sglang' | 'llamacpp' | 'tei' | 'app'

export interface RuntimeConfig {
  engine: Engine
  /** the port the API answers on */
  port: number
  /** the port /metrics answers on (TEI serves Prometheus on a port of its own) */
  metricsPort: number
  model: string
  apiKey?: string
  metricsEnabled: boolean
}

export interface ProxiedRequest {
  method: string
  /** path below the proxy, starting with / */
  path: string
  query: URLSearchParams
  headers: Record<string, string | undefined>
  body: string
}

export interface ProxiedAnswer {
  status: number
  contentType: string
  body: string
}

function tokensOf(c: Container): string[] {
  return [...(c.command ?? []), ...(c.args ?? [])].flatMap((t) => String(t).split(/\s+/)).filter(Boolean)
}

/** The value of `--name v` or `--name=v` (any of the names), last one wins as with argparse. */
function flag(tokens: string[], ...names: string[]): string | undefined {
  let found: string | undefined
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    for (const name of names) {
      if (t === name && i + 1 < tokens.length) found = tokens[i + 1]
      else if (t.startsWith(`${name}=`)) found = t.slice(name.length + 1)
    }
  }
  return found
}

const has = (tokens: string[], name: string) => tokens.some((t) => t === name || t.startsWith(`${name}=`))

export function detectEngine(c: Container): Engine {
  const image = (c.image ?? '').toLowerCase()
  const tokens = tokensOf(c).join(' ').toLowerCase()
  if (image.includes('vllm') || /\bvllm\s+serve\b|vllm\.entrypoints/.test(tokens)) return 'vllm'
  if (image.includes('sglang') || tokens.includes('sglang.launch_server')) return 'sglang'
  if (/llama\.cpp|llama-cpp|llamacpp/.test(image) || tokens.includes('llama-server')) return 'llamacpp'
  if (image.includes('text-embeddings-inference') || tokens.includes('text-embeddings-router')) return 'tei'
  return 'app'
}

/** The container's configuration as its engine reads it; `env` holds resolved environment values. */
export function runtimeConfig(c: Container, env: Record<string, string>): RuntimeConfig {
  const engine = detectEngine(c)
  // As the kubelet does: $(NAME) in command and args becomes the variable's value; $$ escapes.
  const tokens = tokensOf(c).map((t) => t.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name?: string) => (name === undefined ? '$' : (env[name] ?? whole))))
  const port = (text: string | undefined, fallback: number) => (text && /^\d+$/.test(text) ? Number(text) : fallback)
  switch (engine) {
    case 'vllm': {
      const serveAt = tokens.indexOf('serve')
      const positional = serveAt >= 0 && tokens[serveAt + 1] && !tokens[serveAt + 1]!.startsWith('-') ? tokens[serveAt + 1] : undefined
      const model = flag(tokens, '--served-model-name') ?? flag(tokens, '--model') ?? positional ?? 'facebook/opt-125m'
      const p = port(flag(tokens, '--port'), 8000)
      return { engine, port: p, metricsPort: p, model, apiKey: flag(tokens, '--api-key') ?? env.VLLM_API_KEY, metricsEnabled: true }
    }
    case 'sglang': {
      const model = flag(tokens, '--served-model-name') ?? flag(tokens, '--model-path', '--model') ?? 'unknown'
      const p = port(flag(tokens, '--port'), 30000)
      return { engine, port: p, metricsPort: p, model, apiKey: flag(tokens, '--api-key'), metricsEnabled: has(tokens, '--enable-metrics') }
    }
    case 'llamacpp': {
      const model = flag(tokens, '--alias', '-a') ?? flag(tokens, '--model', '-m') ?? env.LLAMA_ARG_MODEL ?? 'models/7B/ggml-model-f16.gguf'
      const p = port(flag(tokens, '--port') ?? env.LLAMA_ARG_PORT, 8080)
      const metricsEnabled = has(tokens, '--metrics') || env.LLAMA_ARG_ENDPOINT_METRICS === '1'
      return { engine, port: p, metricsPort: p, model, apiKey: flag(tokens, '--api-key') ?? env.LLAMA_API_KEY, metricsEnabled }
    }
    case 'tei': {
      const model = flag(tokens, '--served-model-name') ?? flag(tokens, '--model-id') ?? env.MODEL_ID ?? 'thenlper/gte-base'
      // The published images set PORT=80; Prometheus has a port of its own (9000 unless told).
      const p = port(flag(tokens, '--port') ?? env.PORT, 80)
      return { engine, port: p, metricsPort: port(flag(tokens, '--prometheus-port') ?? env.PROMETHEUS_PORT, 9000), model, apiKey: flag(tokens, '--api-key') ?? env.API_KEY, metricsEnabled: true }
    }
    default: {
      const p = port(env.PORT, c.ports?.[0]?.containerPort ?? 8080)
      return { engine, port: p, metricsPort: p, model: c.name, metricsEnabled: true }
    }
  }
}

/** What the engine prints while it starts (enough for a user to recognise it in the logs). */
export function startupLines(cfg: RuntimeConfig): string[] {
  switch (cfg.engine) {
    case 'vllm':
      return [
        `INFO api_server.py: vLLM API server version 0.6.3`,
        `INFO api_server.py: args: model='${cfg.model}', port=${cfg.port}`,
        `INFO model_runner.py: Loading model weights took 14.9888 GB`,
        `INFO launcher.py: Available routes are: /health, /metrics, /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings`,
        `INFO:     Uvicorn running on http://0.0.0.0:${cfg.port} (Press CTRL+C to quit)`,
      ]
    case 'sglang':
      return [`[main] server_args: model_path='${cfg.model}', port=${cfg.port}`, `[TP0] Load weight end.`, `INFO:     Uvicorn running on http://0.0.0.0:${cfg.port} (Press CTRL+C to quit)`, `The server is fired up and ready to roll!`]
    case 'llamacpp':
      return [`build: 4000 (llama-server)`, `llama_model_loader: loaded meta data from ${cfg.model}`, `main: server is listening on http://0.0.0.0:${cfg.port} - starting the main loop`]
    case 'tei':
      return [`INFO text_embeddings_router: Args { model_id: "${cfg.model}", port: ${cfg.port} }`, `INFO text_embeddings_router: Ready`, `INFO text_embeddings_router::http::server: Starting HTTP server: 0.0.0.0:${cfg.port}`]
    default:
      return [`listening on :${cfg.port}`]
  }
}

interface Counters {
  requests: number
  promptTokens: number
  generationTokens: number
}

const json = (status: number, value: unknown): ProxiedAnswer => ({ status, contentType: 'application/json', body: JSON.stringify(value) })
const PROMETHEUS = 'text/plain; version=0.0.4; charset=utf-8'

function unauthorized(engine: Engine): ProxiedAnswer {
  if (engine === 'llamacpp') return json(401, { error: { code: 401, message: 'Invalid API Key', type: 'authentication_error' } })
  return json(401, { error: 'Unauthorized' })
}

/** Eight numbers in [-1, 1] from a text: the same input always embeds the same. */
function embed(text: string): number[] {
  const digest = createHash('sha256').update(text).digest()
  return Array.from({ length: 8 }, (_, i) => Math.round(((digest[i]! / 255) * 2 - 1) * 1e6) / 1e6)
}

function parseJson(body: string): Record<string, unknown> {
  try {
    const v = JSON.parse(body) as unknown
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

const words = (value: unknown): number => JSON.stringify(value ?? '').split(/\s+/).filter(Boolean).length

export interface RuntimeProcess {
  config: RuntimeConfig
  /** whether it answers at all on a port (a server that has not bound its port refuses connections) */
  listensOn(port: number): boolean
  handle(port: number, req: ProxiedRequest): ProxiedAnswer
  /** `n` inference requests as if clients had sent them (for idle-detection tests) */
  count(n: number): void
  counters(): Readonly<Counters>
}

/** One run of a container: created when it starts, dropped when it exits (counters start again). */
export function startProcess(cfg: RuntimeConfig, isReady: () => boolean): RuntimeProcess {
  const counters: Counters = { requests: 0, promptTokens: 0, generationTokens: 0 }
  const startedAt = Math.floor(Date.now() / 1000)
  let ids = 0

  function served(promptTokens: number, generationTokens: number) {
    counters.requests++
    counters.promptTokens += promptTokens
    counters.generationTokens += generationTokens
  }

  function metrics(): ProxiedAnswer {
    const m = `model_name="${cfg.model}"`
    const lines: string[] = []
    const metric = (name: string, type: string, help: string, samples: string[]) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples)
    switch (cfg.engine) {
      case 'vllm':
        metric('vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.', [`vllm:num_requests_running{${m}} 0.0`])
        metric('vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.', [`vllm:num_requests_waiting{${m}} 0.0`])
        metric('vllm:prompt_tokens_total', 'counter', 'Number of prefill tokens processed.', [`vllm:prompt_tokens_total{${m}} ${counters.promptTokens}.0`])
        metric('vllm:generation_tokens_total', 'counter', 'Number of generation tokens processed.', [`vllm:generation_tokens_total{${m}} ${counters.generationTokens}.0`])
        metric('vllm:request_success_total', 'counter', 'Count of successfully processed requests.', [
          `vllm:request_success_total{finished_reason="stop",${m}} ${counters.requests}.0`,
          `vllm:request_success_total{finished_reason="length",${m}} 0.0`,
          `vllm:request_success_total{finished_reason="abort",${m}} 0.0`,
        ])
        break
      case 'sglang':
        metric('sglang:prompt_tokens_total', 'counter', 'Number of prefill tokens processed.', [`sglang:prompt_tokens_total{${m}} ${counters.promptTokens}.0`])
        metric('sglang:generation_tokens_total', 'counter', 'Number of generation tokens processed.', [`sglang:generation_tokens_total{${m}} ${counters.generationTokens}.0`])
        metric('sglang:num_requests_total', 'counter', 'Number of requests processed.', [`sglang:num_requests_total{${m}} ${counters.requests}.0`])
        metric('sglang:num_running_reqs', 'gauge', 'The number of running requests.', [`sglang:num_running_reqs{${m}} 0.0`])
        break
      case 'llamacpp':
        metric('llamacpp:prompt_tokens_total', 'counter', 'Number of prompt tokens processed.', [`llamacpp:prompt_tokens_total ${counters.promptTokens}`])
        metric('llamacpp:tokens_predicted_total', 'counter', 'Number of generation tokens processed.', [`llamacpp:tokens_predicted_total ${counters.generationTokens}`])
        metric('llamacpp:n_decode_total', 'counter', 'Total number of llama_decode() calls', [`llamacpp:n_decode_total ${counters.requests}`])
        metric('llamacpp:requests_processing', 'gauge', 'Number of requests processing.', ['llamacpp:requests_processing 0'])
        metric('llamacpp:requests_deferred', 'gauge', 'Number of requests deferred.', ['llamacpp:requests_deferred 0'])
        break
      case 'tei':
        metric('te_request_count', 'counter', 'Total number of requests', [`te_request_count{method="single"} ${counters.requests}`])
        metric('te_request_success', 'counter', 'Number of successful requests', [`te_request_success{method="single"} ${counters.requests}`])
        break
      default:
        metric('http_requests_total', 'counter', 'Total number of HTTP requests.', [`http_requests_total{code="200",method="POST"} ${counters.requests}`])
    }
    return { status: 200, contentType: PROMETHEUS, body: `${lines.join('\n')}\n` }
  }

  function modelMismatch(body: Record<string, unknown>): ProxiedAnswer | undefined {
    if ((cfg.engine === 'vllm' || cfg.engine === 'sglang') && typeof body.model === 'string' && body.model !== cfg.model) {
      return json(404, { object: 'error', message: `The model \`${body.model}\` does not exist.`, type: 'NotFoundError', param: null, code: 404 })
    }
    return undefined
  }

  function inference(path: string, req: ProxiedRequest): ProxiedAnswer | undefined {
    const body = parseJson(req.body)
    const created = Math.floor(Date.now() / 1000)
    if (path === '/v1/embeddings' || (cfg.engine === 'tei' && path === '/embed')) {
      const input = body.input ?? body.inputs ?? ''
      const inputs = Array.isArray(input) ? input : [input]
      const tokens = words(input)
      served(tokens, 0)
      if (path === '/embed') return json(200, inputs.map((i) => embed(String(i))))
      return json(200, {
        object: 'list',
        data: inputs.map((i, index) => ({ object: 'embedding', index, embedding: embed(String(i)) })),
        model: cfg.model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      })
    }
    if (cfg.engine === 'tei') return undefined
    if (path === '/v1/chat/completions') {
      const mismatch = modelMismatch(body)
      if (mismatch) return mismatch
      const prompt = words(body.messages)
      served(prompt, 4)
      return json(200, {
        id: `chatcmpl-${++ids}`,
        object: 'chat.completion',
        created,
        model: cfg.model,
        choices: [{ index: 0, message: { role: 'assistant', content: `Hello from ${cfg.model}.` }, finish_reason: 'stop' }],
        usage: { prompt_tokens: prompt, completion_tokens: 4, total_tokens: prompt + 4 },
      })
    }
    if (path === '/v1/completions') {
      const mismatch = modelMismatch(body)
      if (mismatch) return mismatch
      const prompt = words(body.prompt)
      served(prompt, 4)
      return json(200, {
        id: `cmpl-${++ids}`,
        object: 'text_completion',
        created,
        model: cfg.model,
        choices: [{ index: 0, text: ` Hello from ${cfg.model}.`, finish_reason: 'stop' }],
        usage: { prompt_tokens: prompt, completion_tokens: 4, total_tokens: prompt + 4 },
      })
    }
    return undefined
  }

  function needsKey(path: string): boolean {
    if (!cfg.apiKey) return false
    if (cfg.engine === 'llamacpp') return !['/health', '/v1/health', '/models', '/v1/models'].includes(path)
    if (cfg.engine === 'tei') return path !== '/health'
    return path.startsWith('/v1/')
  }

  return {
    config: cfg,
    listensOn(port) {
      // llama-server binds at once and answers 503 while it loads; the others bind when ready.
      const bound = cfg.engine === 'llamacpp' || isReady()
      return bound && (port === cfg.port || (cfg.metricsEnabled && port === cfg.metricsPort))
    },
    handle(port, req) {
      const path = req.path.replace(/\/+$/, '') || '/'
      if (port === cfg.metricsPort && port !== cfg.port) {
        return path === '/metrics' ? metrics() : { status: 404, contentType: 'text/plain', body: 'Not Found' }
      }
      if (cfg.engine === 'llamacpp' && !isReady()) return json(503, { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } })
      if (path === '/health') return { status: 200, contentType: 'application/json', body: cfg.engine === 'llamacpp' ? '{"status":"ok"}' : '' }
      if (needsKey(path) && req.headers.authorization !== `Bearer ${cfg.apiKey}`) return unauthorized(cfg.engine)
      if (path === '/metrics') {
        if (cfg.engine === 'tei') return { status: 404, contentType: 'text/plain', body: 'Not Found' }
        if (cfg.metricsEnabled) return metrics()
        if (cfg.engine === 'llamacpp') return json(501, { error: { code: 501, message: 'This server does not support metrics endpoint. Start it with `--metrics`', type: 'not_supported_error' } })
        return json(404, { detail: 'Not Found' })
      }
      if (cfg.engine === 'app') {
        served(0, 0)
        return json(200, { ok: true, path })
      }
      if (path === '/v1/models' || (cfg.engine === 'llamacpp' && path === '/models')) {
        if (cfg.engine === 'tei') return { status: 404, contentType: 'text/plain', body: '' }
        const owner = cfg.engine === 'llamacpp' ? 'llamacpp' : cfg.engine
        return json(200, { object: 'list', data: [{ id: cfg.model, object: 'model', created: startedAt, owned_by: owner, root: cfg.model, parent: null }] })
      }
      if (cfg.engine === 'tei' && path === '/info') return json(200, { model_id: cfg.model, model_type: { embedding: { pooling: 'cls' } }, version: '1.5.0' })
      if (req.method !== 'POST' && path.startsWith('/v1/')) return json(405, { detail: 'Method Not Allowed' })
      return inference(path, req) ?? json(404, { detail: 'Not Found' })
    },
    count(n) {
      for (let i = 0; i < n; i++) served(8, 4)
    },
    counters: () => ({ ...counters }),
  }
}
