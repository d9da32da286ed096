import { describe, expect, it } from 'vitest'
import { counterValue, parseMetricsText, requestDelta } from '../../../src/platform/kube/index.js'

const VLLM = `# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{finished_reason="stop",model_name="llama"} 12.0
vllm:request_success_total{finished_reason="length",model_name="llama"} 3.0
vllm:request_success_total{finished_reason="abort",model_name="other \\"quoted\\", name"} 1e1
vllm:num_requests_running{model_name="llama"} 2.0 1700000000000
`

describe('reading a counter from /metrics', () => {
  it('sums a counter over its label sets, or narrows to some', () => {
    expect(counterValue(VLLM, 'vllm:request_success_total')).toBe(25)
    expect(counterValue(VLLM, 'vllm:request_success_total', { model_name: 'llama' })).toBe(15)
    expect(counterValue(VLLM, 'vllm:request_success_total', { model_name: 'other "quoted", name' })).toBe(10)
    expect(counterValue(VLLM, 'vllm:num_requests_running')).toBe(2)
  })

  it('tells a missing metric from a zero one', () => {
    expect(counterValue(VLLM, 'sglang:num_requests_total')).toBeUndefined()
    expect(counterValue('llamacpp:n_decode_total 0\n', 'llamacpp:n_decode_total')).toBe(0)
  })

  it('passes over lines that are not samples and values that are not finite', () => {
    const text = 'garbage {\n# EOF\nx{a="1"} NaN\nx{a="2"} +Inf\nx{a="3"} 4\nx{broken 5\n'
    expect(parseMetricsText(text).map((s) => s.value).filter(Number.isFinite)).toEqual([4])
    expect(counterValue(text, 'x')).toBe(4)
  })
})

describe('requests between two readings', () => {
  it('is the difference while the counter grows, and the current value after a reset', () => {
    expect(requestDelta(10, 15)).toBe(5)
    expect(requestDelta(10, 10)).toBe(0)
    expect(requestDelta(10, 3)).toBe(3)
    expect(requestDelta(undefined, 7)).toBe(0)
  })
})
