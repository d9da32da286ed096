import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EndpointHarness, type SeededModel, startEndpointHarness } from '../../helpers/endpoints.js'
import type { StandInCluster } from '../../helpers/kube/index.js'

/**
 * Each way a rollout fails on a cluster, as the stand-in's kubelets and scheduler produce it, ends
 * the deploy `failed` with the pod's own reason and message in the endpoint's status; and the API
 * key is in no event and no log line of any of it.
 */

let h: EndpointHarness
let clusterId: string
let standIn: StandInCluster
let model: SeededModel
const logLines: string[] = []

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(chunk.toString())
      done()
    },
  })
  h = await startEndpointHarness({ logger: pino({ level: 'debug' }, sink) })
  ;({ clusterId, standIn } = await h.addAvailableCluster({ nodes: ['a100-8x', 'cpu-small'] }))
  model = await h.seedModel()
}, 60_000)

afterAll(async () => {
  await h?.close()
})

/** Pods of the endpoint named `name` behave so (they carry the endpoint's name as a label). */
async function deployFailing(name: string, behaviour: Parameters<StandInCluster['behave']>[0]) {
  const undo = standIn.behave({ ...behaviour, labels: { 'app.kubernetes.io/name': name } })
  try {
    const res = await h.call({ method: 'POST', url: '/v1/endpoints', payload: { name, modelId: model.modelId, clusterId, replicas: 1 } })
    expect(res.statusCode, res.body).toBe(202)
    const { endpointId, workflowId } = res.json() as { endpointId: string; workflowId: string }
    const run = await h.finished(workflowId, 60_000)
    expect(run.status).toBe('failed')
    return await h.phase(endpointId, 'failed')
  } finally {
    undo()
  }
}

describe('a deploy that cannot roll out', () => {
  it('a runtime that crashes at start: failed with CrashLoopBackOff and its exit code', { timeout: 90_000 }, async () => {
    const failed = await deployFailing('crashes', { crash: { exitCode: 3, lines: ['Traceback (most recent call last):', 'RuntimeError: CUDA error: no kernel image'] } })
    expect(failed.failedStep).toBe('rollout')
    expect(failed.statusMessage).toMatch(/CrashLoopBackOff/)
    expect(failed.statusMessage).toMatch(/exit code 3/)
    expect(failed.conditions.find((c: { type: string }) => c.type === 'Ready')).toMatchObject({ status: 'False' })
  })

  it('a pod no node takes: failed with Unschedulable and the scheduler’s message', { timeout: 90_000 }, async () => {
    const failed = await deployFailing('nowhere', { unschedulable: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.' })
    expect(failed.statusMessage).toMatch(/Unschedulable/)
    expect(failed.statusMessage).toMatch(/Insufficient nvidia.com\/gpu/)
  })

  it('a pod that never becomes ready: failed once the progress deadline passes', { timeout: 90_000 }, async () => {
    const failed = await deployFailing('never-ready', { neverReady: true })
    expect(failed.statusMessage).toMatch(/ProgressDeadlineExceeded|ROLLOUT_TIMEOUT/)
  })

  it('the API key of any of them is in no event and no log line', async () => {
    const { items } = (await h.call({ method: 'GET', url: '/v1/endpoints?phase=failed&limit=100' })).json() as { items: Array<{ id: string }> }
    expect(items.length).toBeGreaterThanOrEqual(3)
    const events = (await h.call({ method: 'GET', url: '/v1/events/outbox?limit=100' })).body
    for (const { id } of items) {
      const { apiKey } = (await h.call({ method: 'GET', url: `/v1/endpoints/${id}/api-key` })).json() as { apiKey: string }
      expect(apiKey).toMatch(/^mp-/)
      expect(events).not.toContain(apiKey)
      expect(logLines.some((line) => line.includes(apiKey))).toBe(false)
    }
    // The logs did record the deploys (the check above looked at real lines).
    expect(logLines.some((line) => line.includes('endpoint deploy started'))).toBe(true)
  })
})
