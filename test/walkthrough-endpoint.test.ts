import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listManaged } from '../src/platform/kube/index.js'
import { tempDir } from './helpers/app.js'
import { type EndpointHarness, startEndpointHarness } from './helpers/endpoints.js'
import { type HubStandIn, startHubStandIn, tinyModelRepo } from './helpers/hub/index.js'
import type { StandInCluster } from './helpers/kube/index.js'
import { ROOT, type Started, startCommand } from './helpers/process.js'
import { waitFor } from './helpers/wait.js'

/**
 * The README's endpoint walk-through, run as a user runs it: scripts/walkthrough-endpoint.mjs as a
 * child process against the app listening on a port, a stand-in cluster registered from a
 * kubeconfig file, and a tiny model imported from the hub stand-in. The stand-in has no ingress:
 * the script reaches the runtime through CALL_URL, served here by a small relay into the cluster
 * network, as `kubectl port-forward` would serve it on a real cluster.
 */

const REPO = 'acme/tiny-chat'
const ENDPOINT_NAME = 'walk-chat'

let hub: HubStandIn
let h: EndpointHarness
let baseUrl: string
let standIn: StandInCluster
let kubeconfigFile: string
let relay: http.Server
let relayUrl: string
const relayed: Array<{ method: string; path: string; status: number; authorization: string | undefined }> = []
const running: Started[] = []
/** The endpoint the relay forwards to, by name (as a port-forward names one Service). */
let relayTarget = ENDPOINT_NAME

/** Finds the endpoint's ready pod and its runtime port through the API, then calls the pod from inside the cluster. */
async function forward(req: http.IncomingMessage, body: string) {
  const list = (await h.call({ method: 'GET', url: `/v1/endpoints?q=${relayTarget}&phase=running` })).json()
  const endpoint = list.items[0]
  if (!endpoint) return { status: 503, contentType: 'text/plain', body: 'no running endpoint to forward to' }
  const workers = (await h.call({ method: 'GET', url: `/v1/endpoints/${endpoint.id}/workers` })).json().items as Array<{ name: string; ready: boolean }>
  const pod = workers.find((w) => w.ready)
  if (!pod) return { status: 503, contentType: 'text/plain', body: 'no ready pod' }
  const manifests = (await h.call({ method: 'GET', url: `/v1/endpoints/${endpoint.id}/manifests` })).json().items as Array<Record<string, any>> // eslint-disable-line @typescript-eslint/no-explicit-any
  const deployment = manifests.find((m) => m.kind === 'Deployment')!
  const port = deployment.spec.template.spec.containers[0].ports[0].containerPort as number
  const url = new URL(req.url!, 'http://relay')
  return standIn.callPod(endpoint.namespace, pod.name, port, {
    method: req.method!,
    path: url.pathname,
    query: url.searchParams,
    headers: { authorization: req.headers.authorization, 'content-type': req.headers['content-type'] },
    body,
  })
}

function run(env: Record<string, string>): Started {
  const started = startCommand(process.execPath, ['scripts/walkthrough-endpoint.mjs'], { BASE_URL: baseUrl, POLL_SECONDS: '0.2', WAIT_TIMEOUT_SECONDS: '60', ...env })
  running.push(started)
  return started
}

beforeAll(async () => {
  hub = await startHubStandIn()
  hub.addRepo(tinyModelRepo(REPO))
  h = await startEndpointHarness({ env: { MODEL_HUB_URL: hub.url } })
  baseUrl = await h.app.listen({ port: 0, host: '127.0.0.1' })
  standIn = h.kube.addCluster({ nodes: ['a100-8x', 'cpu-small'] })
  kubeconfigFile = path.join(tempDir('modelplane-walk-'), 'cluster.kubeconfig')
  fs.writeFileSync(kubeconfigFile, standIn.kubeconfig(), { mode: 0o600 })

  relay = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      forward(req, body)
        .catch((error: Error) => ({ status: 502, contentType: 'text/plain', body: error.message }))
        .then((answer) => {
          relayed.push({ method: req.method!, path: req.url!, status: answer.status, authorization: req.headers.authorization })
          res.writeHead(answer.status, { 'content-type': answer.contentType }).end(answer.body)
        })
    })
  })
  relay.listen(0, '127.0.0.1')
  await new Promise((resolve) => relay.once('listening', resolve))
  relayUrl = `http://127.0.0.1:${(relay.address() as AddressInfo).port}/v1`
}, 60_000)

afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL')
  await new Promise((resolve) => (relay ? relay.close(resolve) : resolve(undefined)))
  await h?.close()
  await hub?.close()
})

describe('the endpoint walk-through script', () => {
  let clusterId = ''
  let modelId = ''

  it('registers, imports, plans, deploys, calls and tears down, leaving nothing labelled in the cluster', async () => {
    const walk = run({
      EMAIL: h.admin.email,
      PASSWORD: h.admin.password,
      TENANT: h.admin.realm,
      KUBECONFIG_FILE: kubeconfigFile,
      CLUSTER_NAME: 'walk-cluster',
      HUB_REPO: REPO,
      ENDPOINT_NAME,
      CALL_URL: relayUrl,
    })
    const code = await walk.exited
    const out = walk.output()
    if (process.env.WALKTHROUGH_PRINT) process.stdout.write(out)
    expect(code, out).toBe(0)

    // Each step said what it did, in order.
    const steps = ['1. registering cluster walk-cluster', '2. importing acme/tiny-chat', '3. plan: vllm-cuda', '4. deploying endpoint walk-chat', '5. ', '6. tearing down endpoint walk-chat', 'done.']
    const at = steps.map((s) => out.indexOf(s))
    expect(at.every((i) => i >= 0), out).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)
    expect(out).toContain('cluster walk-cluster is available')
    expect(out).toMatch(/model acme--tiny-chat is ready \(LlamaForCausalLM, safetensors, 4656 parameters\)/)
    expect(out).toContain('endpoint walk-chat is running')
    expect(out).toContain(`curl -s ${relayUrl}/chat/completions`)

    // The runtime was really called, with the endpoint's key, and answered the prompt.
    expect(relayed.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(['GET /v1/models 200', 'POST /v1/chat/completions 200'])
    expect(out).toMatch(/"Say hello\." → "Hello from .+\."/)
    const key = relayed[0]!.authorization!.replace(/^Bearer /, '')
    expect(key).toMatch(/^mp-/)
    expect(out).not.toContain(key)
    expect(out).not.toContain(h.admin.password)

    // The endpoint ended deleted, and the cluster holds nothing of it.
    const clusters = (await h.call({ method: 'GET', url: '/v1/clusters?q=walk-cluster' })).json().items
    expect(clusters).toHaveLength(1)
    clusterId = clusters[0].id
    modelId = (await h.call({ method: 'GET', url: '/v1/models?q=acme--tiny-chat' })).json().items[0].id
    const endpoints = (await h.call({ method: 'GET', url: `/v1/endpoints?q=${ENDPOINT_NAME}&phase=deleted` })).json().items
    expect(endpoints).toHaveLength(1)
    expect(endpoints[0].phase).toBe('deleted')
    const left = await h.app.services.clusters.withClient(clusterId, async (c) => {
      const objects = await listManaged(c, { selector: `app.kubernetes.io/managed-by=modelplane,modelplane.io/endpoint-id=${endpoints[0].id}` })
      const pods = (await c.core.listPodForAllNamespaces({ labelSelector: `modelplane.io/endpoint-id=${endpoints[0].id}` })).items
      return [...objects.map((o) => `${o.kind}/${o.metadata?.name}`), ...pods.map((p) => `Pod/${p.metadata?.name}`)]
    })
    expect(left).toEqual([])
  }, 90_000)

  it('reuses a registered cluster and a catalog model; without an address it prints the port-forward, and PAUSE waits for Enter before calling', async () => {
    expect(clusterId, 'needs the cluster of the walk-through above').not.toBe('')
    const before = relayed.length
    const plain = run({ TOKEN: h.admin.accessToken, CLUSTER_ID: clusterId, MODEL_ID: modelId, ENDPOINT_NAME: 'walk-plain' })
    expect(await plain.exited, plain.output()).toBe(0)
    const endpointId = /4\. deploying endpoint walk-plain \(([0-9a-f-]{36})\)/.exec(plain.output())?.[1]
    expect(endpointId, plain.output()).toBeDefined()
    expect(plain.output()).toContain(`2. using model acme--tiny-chat (${modelId}), ready`)
    expect(plain.output()).toMatch(new RegExp(`kubectl -n modelplane-\\S+ port-forward svc/ep-walk-plain-${endpointId} 8000:80`))
    expect(plain.output()).toContain('(not called: run with CALL_URL set')
    expect(relayed.length).toBe(before)

    // PAUSE: the script holds with the endpoint running until the user presses Enter, then calls it.
    relayTarget = 'walk-paused'
    const child = spawn(process.execPath, ['scripts/walkthrough-endpoint.mjs'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', BASE_URL: baseUrl, POLL_SECONDS: '0.2', WAIT_TIMEOUT_SECONDS: '60', TOKEN: h.admin.accessToken, CLUSTER_ID: clusterId, MODEL_ID: modelId, ENDPOINT_NAME: 'walk-paused', CALL_URL: relayUrl, PAUSE: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    try {
      await waitFor(() => out.includes('press Enter to call'), 30_000, 'the script did not pause')
      const paused = (await h.call({ method: 'GET', url: '/v1/endpoints?q=walk-paused' })).json().items[0]
      expect(paused.phase).toBe('running')
      expect(relayed.length).toBe(before)
      child.stdin.end('\n')
      expect(await exited, out).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    expect(relayed.slice(before).map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(['GET /v1/models 200', 'POST /v1/chat/completions 200'])
    expect(out.indexOf('press Enter')).toBeLessThan(out.indexOf('serves acme--tiny-chat'))
    expect((await h.call({ method: 'GET', url: '/v1/endpoints?q=walk-paused&phase=deleted' })).json().total).toBe(1)
  }, 60_000)

  it('stops with the API’s error code and message when a step fails', async () => {
    expect(modelId, 'needs the model of the walk-through above').not.toBe('')
    expect(clusterId, 'needs the cluster of the walk-through above').not.toBe('')
    const missing = run({ TOKEN: h.admin.accessToken, CLUSTER_ID: clusterId, HUB_REPO: 'acme/no-such-model', ENDPOINT_NAME: 'walk-missing' })
    expect(await missing.exited, missing.output()).toBe(1)
    expect(missing.output()).toContain('1. using cluster walk-cluster')
    // The hub answers an unknown repository as it answers a private one: 401, so the run names both causes.
    expect(missing.output()).toMatch(/walk-through failed: model import: workflow \S+ failed: HUB_UNAUTHORIZED: the hub refused acme\/no-such-model \(401\)/)
    expect(missing.output()).not.toContain('3. plan')

    // A deploy that fails names the step and the pods' reason, and leaves the endpoint to look at.
    const undo = standIn.behave({ image: 'sglang', imagePullError: 'manifest unknown' })
    try {
      const broken = run({ TOKEN: h.admin.accessToken, CLUSTER_ID: clusterId, MODEL_ID: modelId, ENDPOINT_NAME: 'walk-broken', RUNTIME: 'sglang-cuda' })
      expect(await broken.exited, broken.output()).toBe(1)
      expect(broken.output()).toMatch(/walk-through failed: deploy: .*(ImagePullBackOff|ErrImagePull)/)
      const left = (await h.call({ method: 'GET', url: '/v1/endpoints?q=walk-broken' })).json().items[0]
      expect(left.phase).toBe('failed')
      expect(broken.output()).toContain(`the endpoint ${left.id} is left as it is`)
      expect(broken.output()).not.toContain('5. ')
    } finally {
      undo()
    }

    const refused = run({ EMAIL: h.admin.email, PASSWORD: 'not-the-password', TENANT: h.admin.realm, CLUSTER_ID: clusterId, HUB_REPO: REPO })
    expect(await refused.exited).toBe(1)
    expect(refused.output()).toMatch(new RegExp(`walk-through failed: log in as ${h.admin.email.replace(/[.+]/g, '\\$&')} in ${h.admin.realm}: 401 [A-Z_]+: `))
  }, 90_000)
})
