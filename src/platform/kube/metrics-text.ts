/**
 * Reading request counters out of a model server's /metrics answer (the Prometheus text
 * exposition format, 0.0.4, which OpenMetrics answers also parse as). Only what idle detection
 * needs: one metric's value summed over its label sets, and the requests between two readings.
 * No npm parser of this format is maintained (the one published was last released years ago and
 * ships no types), and the grammar of a sample line is small.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The counter each engine counts served requests with, and where it is served. */
export const REQUEST_COUNTERS = {
  vllm: { metric: 'vllm:request_success_total' },
  sglang: { metric: 'sglang:num_requests_total', needsFlag: '--enable-metrics' },
  // llama-server has no request counter: every request decodes, so decode calls grow with traffic.
  llamacpp: { metric: 'llamacpp:n_decode_total', needsFlag: '--metrics' },
  // text-embeddings-inference serves Prometheus on a port of its own (--prometheus-port, 9000).
  tei: { metric: 'te_request_count', port: 9000 },
  app: { metric: 'http_requests_total' },
} as const

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const MAX_TEXT = 16 * 1024 * 1024

function parseValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  const n = Number(text)
  if (text === '' || Number.isNaN(n)) throw new Error(`not a sample value: ${text.slice(0, 40)}`)
  return n
}

/** `{a="x",b="y\"z"}` starting at `i`: the labels and the index after the closing brace. */
function parseLabels(line: string, start: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {}
  let i = start + 1
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i++
    if (line[i] === '}') return [labels, i + 1]
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))?.[0]
    if (!name) throw new Error('bad label name')
    i += name.length
    while (line[i] === ' ') i++
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error('bad label')
    i += 2
    let value = ''
    for (; i < line.length && line[i] !== '"'; i++) {
      if (line[i] === '\\') {
        const next = line[++i]
        value += next === 'n' ? '\n' : (next ?? '')
      } else value += line[i]
    }
    if (line[i] !== '"') throw new Error('unterminated label value')
    labels[name] = value
    i++
  }
}

/** Every sample of the answer; comment lines and lines that are not samples are passed over. */
export function parseMetricsText(text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.slice(0, MAX_TEXT).split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const name = NAME.exec(line)?.[0]
    if (!name) continue
    try {
      let labels: Record<string, string> = {}
      let i = name.length
      if (line[i] === '{') [labels, i] = parseLabels(line, i)
      // value, then an optional timestamp
      const value = parseValue(line.slice(i).trim().split(/\s+/)[0] ?? '')
      out.push({ name, labels, value })
    } catch {
      // a malformed line says nothing about the counters we read
    }
  }
  return out
}

/**
 * The value of one metric summed over its label sets (a counter split by finished_reason or
 * method), or undefined when the answer does not carry it at all (metrics off, another engine).
 */
export function counterValue(text: string, metric: string, where: Record<string, string> = {}): number | undefined {
  let total: number | undefined
  for (const s of parseMetricsText(text)) {
    if (s.name !== metric || !Number.isFinite(s.value)) continue
    if (!Object.entries(where).every(([k, v]) => s.labels[k] === v)) continue
    total = (total ?? 0) + s.value
  }
  return total
}

/**
 * Requests served between two readings of a counter. A counter only grows while its process
 * lives, so a smaller reading means the process restarted and counted afresh from zero: the
 * current value is what it served since. Without an earlier reading there is no interval: 0.
 */
export function requestDelta(previous: number | undefined, current: number): number {
  if (previous === undefined) return 0
  return current >= previous ? current - previous : current
}
