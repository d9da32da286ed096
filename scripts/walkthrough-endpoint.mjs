#!/usr/bin/env node
// The endpoint walk-through of the README, as one script: register a cluster, import a model from a
// Hugging Face hub, plan, deploy, call the endpoint, tear it down. Each step says what it did; any
// refusal or failed run stops the script with the API's own error code and message (exit 1).
// Needs Node 20 (fetch) and nothing else. Run with --help for the settings.
import fs from 'node:fs'
import readline from 'node:readline'

const HELP = `Usage: node scripts/walkthrough-endpoint.mjs   (settings come from the environment)

  BASE_URL              the modelplane API (default http://localhost:8080)
  TOKEN                 a bearer access token, or
  MODELPLANE_API_KEY    an API key (needs cluster:manage, model:manage, endpoint:manage, workflow:view), or
  EMAIL, PASSWORD       to log in, with TENANT (default local)
  KUBECONFIG_FILE       kubeconfig of the cluster to register (inline credentials only), or
  CLUSTER_ID            an already registered cluster to use instead
  CLUSTER_NAME          name to register the cluster under (default walkthrough)
  HUB_REPO              Hugging Face repository to import (owner/name), or
  MODEL_ID              a model already in the catalog
  HUB_REVISION          branch, tag or commit (default: the repository's default branch)
  HUB_CREDENTIAL_ID     a hugging_face credential, for gated or private repositories
  ENDPOINT_NAME         default walkthrough
  RUNTIME, DEVICE_TYPE  passed to the deploy (default: the planner chooses)
  REPLICAS              default 1
  CALL_URL              the endpoint's OpenAI base URL as you reach it (e.g. http://127.0.0.1:8000/v1
                        through kubectl port-forward); default: the base URL the endpoint reports
  PAUSE                 1: wait for Enter before calling (time to start the port-forward the script
                        prints; CALL_URL then defaults to http://127.0.0.1:8000/v1)
  PROMPT                what to ask the model (default "Say hello.")
  WAIT_TIMEOUT_SECONDS  how long each long step may take (default 1800)
  POLL_SECONDS          how often to look (default 2)
`

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(HELP)
  process.exit(0)
}

const env = process.env

function seconds(name, fallback) {
  const value = env[name] ? Number(env[name]) : fallback
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`walk-through failed: ${name} must be a positive number of seconds, not ${JSON.stringify(env[name])}\n`)
    process.exit(1)
  }
  return value
}
const BASE_URL = (env.BASE_URL || 'http://localhost:8080').replace(/\/+$/, '')
const ENDPOINT_NAME = env.ENDPOINT_NAME || 'walkthrough'
const WAIT_MS = seconds('WAIT_TIMEOUT_SECONDS', 1800) * 1000
const POLL_MS = seconds('POLL_SECONDS', 2) * 1000
const FINISHED = new Set(['completed', 'failed', 'cancelled'])
const PAUSE = ['1', 'true', 'yes'].includes((env.PAUSE || '').toLowerCase())

class StepFailed extends Error {}

const say = (line) => process.stdout.write(`${line}\n`)
const fail = (message) => {
  throw new StepFailed(message)
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits for a line on stdin (or its end). */
async function pressEnter(prompt) {
  say(prompt)
  const rl = readline.createInterface({ input: process.stdin })
  await new Promise((resolve) => {
    rl.once('line', resolve)
    rl.once('close', resolve)
  })
  rl.close()
}

/** The error envelope in one line: `409 INSUFFICIENT_CAPACITY: needs 4× cuda …`. */
function describeError(status, body) {
  if (body && typeof body === 'object' && body.errorCode) return `${status} ${body.errorCode}: ${body.message}`
  return `${status} ${typeof body === 'string' ? body.slice(0, 500) : JSON.stringify(body)}`
}

// --- credentials -------------------------------------------------------------------------------

let accessToken = env.TOKEN || ''
let refreshToken = ''

function authHeaders() {
  if (env.MODELPLANE_API_KEY) return { 'x-api-key': env.MODELPLANE_API_KEY }
  return accessToken ? { authorization: `Bearer ${accessToken}` } : {}
}

async function rawRequest(method, path, body) {
  const headers = { ...authHeaders() }
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res
  try {
    res = await fetch(`${BASE_URL}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  } catch (error) {
    fail(`${method} ${path}: cannot reach ${BASE_URL}: ${error.cause?.message ?? error.message}`)
  }
  const text = await res.text()
  let parsed = text
  try {
    parsed = text ? JSON.parse(text) : null
  } catch {
    // not JSON: kept as text for the message
  }
  return { status: res.status, body: parsed }
}

/** One API call; a refusal stops the walk-through with the API's message. An expired login is renewed once. */
async function api(method, path, body, expected = [200]) {
  let res = await rawRequest(method, path, body)
  if (res.status === 401 && refreshToken) {
    const renewed = await rawRequest('POST', '/v1/auth/refresh', { refreshToken })
    if (renewed.status === 200) {
      accessToken = renewed.body.accessToken
      refreshToken = renewed.body.refreshToken
      res = await rawRequest(method, path, body)
    }
  }
  if (!expected.includes(res.status)) fail(`${method} ${path}: ${describeError(res.status, res.body)}`)
  return res.body
}

async function logIn() {
  if (env.MODELPLANE_API_KEY || accessToken) return
  if (!env.EMAIL || !env.PASSWORD) fail('set TOKEN, MODELPLANE_API_KEY, or EMAIL and PASSWORD (see --help)')
  const tenant = env.TENANT || 'local'
  const res = await rawRequest('POST', '/v1/auth/login', { email: env.EMAIL, password: env.PASSWORD, tenant })
  if (res.status !== 200) fail(`log in as ${env.EMAIL} in ${tenant}: ${describeError(res.status, res.body)}`)
  accessToken = res.body.accessToken
  refreshToken = res.body.refreshToken
  say(`logged in as ${env.EMAIL} (tenant ${tenant})`)
}

// --- waiting -----------------------------------------------------------------------------------

/** Follows a workflow run until it ends, printing each new step message; a run that does not complete stops the script. */
async function waitForRun(workflowId, what) {
  const deadline = Date.now() + WAIT_MS
  let lastLine = ''
  for (;;) {
    const run = await api('GET', `/v1/workflows/${workflowId}`)
    const line = run.message ? `  … ${run.percent ?? 0}% ${run.message}` : ''
    if (line && line !== lastLine) say(line)
    lastLine = line || lastLine
    if (FINISHED.has(run.status)) {
      if (run.status !== 'completed') {
        const why = run.error ? `${run.error.code}: ${run.error.message}` : run.status
        fail(`${what}: workflow ${workflowId} ${run.status}: ${why}`)
      }
      return run
    }
    if (Date.now() > deadline) fail(`${what}: workflow ${workflowId} still ${run.status} after ${WAIT_MS / 1000} s`)
    await sleep(POLL_MS)
  }
}

/** Reads a resource until `done` says so; `failed` says why it never will. */
async function waitForState(path, what, done, failed) {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const current = await api('GET', path)
    if (done(current)) return current
    const why = failed(current)
    if (why) fail(`${what}: ${why}`)
    if (Date.now() > deadline) fail(`${what}: not done after ${WAIT_MS / 1000} s`)
    await sleep(POLL_MS)
  }
}

// --- the steps ---------------------------------------------------------------------------------

async function registerCluster() {
  if (env.CLUSTER_ID) {
    const cluster = await api('GET', `/v1/clusters/${env.CLUSTER_ID}`)
    if (cluster.status !== 'available') fail(`cluster ${cluster.name} is ${cluster.status}: ${cluster.statusMessage ?? 'not available'}`)
    say(`1. using cluster ${cluster.name} (${cluster.id}), available`)
    return cluster.id
  }
  if (!env.KUBECONFIG_FILE) fail('set KUBECONFIG_FILE (or CLUSTER_ID)')
  let kubeconfig
  try {
    kubeconfig = fs.readFileSync(env.KUBECONFIG_FILE, 'utf8')
  } catch (error) {
    fail(`read KUBECONFIG_FILE: ${error.message}`)
  }
  const name = env.CLUSTER_NAME || 'walkthrough'
  const accepted = await api('POST', '/v1/clusters', { name, kubeconfig }, [202])
  say(`1. registering cluster ${name} (${accepted.clusterId}), workflow ${accepted.workflowId}`)
  await waitForRun(accepted.workflowId, 'cluster registration')
  const cluster = await api('GET', `/v1/clusters/${accepted.clusterId}`)
  if (cluster.status !== 'available') fail(`cluster ${name} is ${cluster.status}: ${cluster.statusMessage ?? ''}`)
  const devices = cluster.summary?.deviceTypes ?? []
  const version = cluster.kubernetesVersion ? `Kubernetes ${cluster.kubernetesVersion}` : 'Kubernetes'
  say(`   cluster ${name} is available: ${version}, ${cluster.summary?.nodes?.total ?? 0} node(s), device types ${devices.join(', ') || 'none'}`)
  return accepted.clusterId
}

async function importModel() {
  if (env.MODEL_ID) {
    const model = await api('GET', `/v1/models/${env.MODEL_ID}`)
    if (model.status !== 'ready') fail(`model ${model.name} is ${model.status}: ${model.statusReason ?? 'not ready'}`)
    say(`2. using model ${model.name} (${model.id}), ready`)
    return model
  }
  if (!env.HUB_REPO) fail('set HUB_REPO (or MODEL_ID)')
  const body = { source: 'hub', repo: env.HUB_REPO }
  if (env.HUB_REVISION) body.revision = env.HUB_REVISION
  if (env.HUB_CREDENTIAL_ID) body.credentialId = env.HUB_CREDENTIAL_ID
  const accepted = await api('POST', '/v1/models/import', body, [202])
  say(`2. importing ${env.HUB_REPO} as model ${accepted.modelId}, version ${accepted.versionId}, workflow ${accepted.workflowId}`)
  await waitForRun(accepted.workflowId, 'model import')
  const model = await api('GET', `/v1/models/${accepted.modelId}`)
  if (model.status !== 'ready') fail(`model ${model.name} is ${model.status}: ${model.statusReason ?? ''}`)
  const params = model.parameterCount ? `, ${model.parameterCount} parameters` : ''
  say(`   model ${model.name} is ready (${model.architecture ?? 'unknown architecture'}, ${model.format ?? 'unknown format'}${params})`)
  return model
}

function deployBody(clusterId, modelId) {
  const body = { name: ENDPOINT_NAME, modelId, clusterId, replicas: Number(env.REPLICAS || 1) }
  if (env.RUNTIME) body.runtime = env.RUNTIME
  if (env.DEVICE_TYPE) body.deviceType = env.DEVICE_TYPE
  return body
}

async function plan(body) {
  const p = await api('POST', '/v1/endpoints/plan', body)
  const nodes = p.placement.nodes.map((n) => n.node).join(', ')
  say(`3. plan: ${p.runtime.name} (${p.runtime.image}) on ${p.deviceType}, ${p.replicas} replica(s) on ${nodes || 'no node'}`)
  say(`   engine arguments: ${p.engineArgs.join(' ') || '(none)'}`)
  say(`   manifests: ${p.manifests.map((m) => m.kind).join(', ')}`)
  for (const a of p.assumptions) say(`   assumed: ${a}`)
}

/** Set once the deploy is accepted: a failure after it leaves the endpoint for inspection, and says so. */
let createdEndpointId = ''

async function deploy(body) {
  const accepted = await api('POST', '/v1/endpoints', body, [202])
  createdEndpointId = accepted.endpointId
  say(`4. deploying endpoint ${ENDPOINT_NAME} (${accepted.endpointId}), workflow ${accepted.workflowId}`)
  await waitForRun(accepted.workflowId, 'deploy')
  const endpoint = await waitForState(
    `/v1/endpoints/${accepted.endpointId}`,
    'deploy',
    (e) => e.phase === 'running',
    (e) => (['failed', 'degraded', 'deleted'].includes(e.phase) ? `endpoint is ${e.phase}${e.failedStep ? ` at ${e.failedStep}` : ''}: ${e.statusMessage ?? e.statusReason ?? ''}` : null),
  )
  say(`   endpoint ${endpoint.name} is running (revision ${endpoint.appliedRevision}, namespace ${endpoint.namespace})`)
  const workers = await api('GET', `/v1/endpoints/${endpoint.id}/workers`)
  for (const w of workers.items) say(`   worker ${w.name} on ${w.node ?? '?'}: ${w.phase}${w.ready ? ', ready' : ''}`)
  return endpoint
}

async function callEndpoint(endpoint, model) {
  const { apiKey } = await api('GET', `/v1/endpoints/${endpoint.id}/api-key`)
  // The key is a secret: it is used, never printed. The lines below read it into $API_KEY.
  say(`5. the endpoint's API key: API_KEY=$(curl -s ${BASE_URL}/v1/endpoints/${endpoint.id}/api-key -H "authorization: Bearer $TOKEN" | jq -r .apiKey)`)
  let base = (env.CALL_URL || endpoint.baseUrl || '').replace(/\/+$/, '')
  if (!base) {
    const manifests = await api('GET', `/v1/endpoints/${endpoint.id}/manifests`)
    const service = manifests.items.find((m) => m.kind === 'Service')
    const target = service ? `svc/${service.metadata.name} 8000:${service.spec?.ports?.[0]?.port ?? 80}` : `deployment/<its Deployment> 8000`
    say('   the endpoint has no public address (its cluster has no ingress host suffix); from your machine:')
    say(`   kubectl -n ${endpoint.namespace} port-forward ${target}`)
    if (PAUSE) base = 'http://127.0.0.1:8000/v1'
  }
  const embeddings = (model.tasks ?? []).some((t) => ['feature-extraction', 'sentence-similarity', 'embeddings'].includes(t))
  const prompt = env.PROMPT || 'Say hello.'
  const shown = base || 'http://127.0.0.1:8000/v1'
  const payload = embeddings
    ? { path: 'embeddings', body: (served) => ({ model: served, input: prompt }) }
    : { path: 'chat/completions', body: (served) => ({ model: served, messages: [{ role: 'user', content: prompt }], max_tokens: 64 }) }
  say(`   curl -s ${shown}/models -H "authorization: Bearer $API_KEY"`)
  say(`   curl -s ${shown}/${payload.path} -H "authorization: Bearer $API_KEY" -H 'content-type: application/json' -d '${JSON.stringify(payload.body('<model id from /models>'))}'`)
  if (!base) {
    say('   (not called: run with CALL_URL set, or PAUSE=1 to start the port-forward while the script waits)')
    return
  }
  if (PAUSE) await pressEnter(`   press Enter to call ${base} (Ctrl-C stops here and leaves the endpoint running)`)

  const call = async (method, path, body) => {
    let res
    try {
      res = await fetch(`${base}/${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      })
    } catch (error) {
      fail(`call ${base}/${path}: ${error.cause?.message ?? error.message}`)
    }
    const text = await res.text()
    if (res.status !== 200) fail(`call ${method} ${base}/${path}: ${res.status} ${text.slice(0, 500)}`)
    return JSON.parse(text)
  }
  const models = await call('GET', 'models')
  const served = models.data?.[0]?.id
  if (!served) fail(`call ${base}/models: no model listed`)
  say(`   ${base}/models serves ${served}`)
  const answer = await call('POST', payload.path, payload.body(served))
  if (embeddings) say(`   embedding of ${JSON.stringify(prompt)}: ${answer.data?.[0]?.embedding?.length ?? 0} dimensions`)
  else say(`   ${JSON.stringify(prompt)} → ${JSON.stringify(answer.choices?.[0]?.message?.content ?? '')}`)
}

async function tearDown(endpoint) {
  const accepted = await api('DELETE', `/v1/endpoints/${endpoint.id}`, undefined, [202])
  say(`6. tearing down endpoint ${endpoint.name}, workflow ${accepted.workflowId}`)
  await waitForRun(accepted.workflowId, 'teardown')
  await waitForState(`/v1/endpoints/${endpoint.id}`, 'teardown', (e) => e.phase === 'deleted', () => null)
  createdEndpointId = ''
  say(`   endpoint ${endpoint.name} is deleted; its objects are gone from the cluster`)
}

async function main() {
  say(`modelplane at ${BASE_URL}`)
  await logIn()
  const clusterId = await registerCluster()
  const model = await importModel()
  const body = deployBody(clusterId, model.id)
  await plan(body)
  const endpoint = await deploy(body)
  await callEndpoint(endpoint, model)
  await tearDown(endpoint)
  say(`done. The cluster (${clusterId}) and the model (${model.id}) stay registered: DELETE /v1/clusters/{id} and /v1/models/{id} remove them.`)
}

try {
  await main()
} catch (error) {
  if (error instanceof StepFailed) process.stderr.write(`walk-through failed: ${error.message}\n`)
  else process.stderr.write(`walk-through failed: ${error.stack ?? error}\n`)
  if (createdEndpointId) {
    process.stderr.write(`the endpoint ${createdEndpointId} is left as it is, to look at (GET /v1/endpoints/${createdEndpointId}, its /workers, /events and logs);\n`)
    process.stderr.write(`remove it with: curl -X DELETE ${BASE_URL}/v1/endpoints/${createdEndpointId} -H "authorization: Bearer $TOKEN"\n`)
  }
  process.exit(1)
}
