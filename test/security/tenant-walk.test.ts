import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { testConfig } from '../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { type KubeStandIn, type StandInCluster, startKubeStandIn } from '../helpers/kube/index.js'
import { waitFor } from '../helpers/wait.js'
import { FAST_HUB, uniqueHub } from '../helpers/workflow.js'

/**
 * The tenant walk: tenant A holds data of every kind; tenant B's admin (and B's super_admin by
 * role, who holds every permission but is no superuser) call EVERY route of the OpenAPI document
 * with A's ids in the path, A's tenant in the filters, and A's idempotency key in the headers.
 * B must see nothing of A (no id, email, realm or content of A in any answer), get for A's objects
 * exactly what a made-up id gets (404, or a permission 403 that does not depend on the id), and A's
 * rows must be as they were. The walk iterates the document, so a route added later is walked too;
 * a path parameter it cannot fill fails the test instead of being passed over.
 */
let app: FastifyInstance
let base: string
let kube: KubeStandIn
/** A cluster of B's own: the kubeconfig B's cluster writes carry (B registering it changes nothing of A's). */
let bCluster: StandInCluster
/** A's cluster as the stand-in sees it: what was asked of it. */
let aStandIn: StandInCluster

interface TenantA {
  admin: SeededUser
  member: SeededUser
  apiKey: { id: string; prefix: string; key: string }
  runId: string
  importId: string
  importedEmails: string[]
  idempotencyKey: string
  blobKey: string
  blobContent: string
  /** A registered, available cluster with nodes and a status history. */
  cluster: { id: string; name: string; server: string; token: string; workflowId: string }
  modelId: string
  versionId: string
  /** An open upload of a second version of A's model. */
  uploadId: string
  credentialId: string
  /** A running endpoint of A's model on A's cluster, and its one worker. */
  endpoint: { id: string; name: string; pod: string; apiKey: string }
  /** A running app of A's on A's cluster. */
  app: { id: string; name: string }
  /** A runtime of A's own catalog; A's cluster also has serving settings. */
  runtime: { id: string; name: string }
  /** A template of A's admin (its code holds a marker), and an entry only A's import allow-list has. */
  template: { id: string; name: string; marker: string }
  allowlistEntry: string
}
let a: TenantA
let attackers: Array<{ label: string; user: SeededUser }>

// ---- what the walk does with the document -------------------------------------------------------

/**
 * Path parameters by name, to A's object of the right kind. `id` names different things on
 * different routes, so it is resolved by the route; a route the resolver does not know answers
 * undefined, and the walk fails for it (add the route's kind here).
 */
const PATH_IDS: Record<string, (path: string, ids: PathIds) => string | undefined> = {
  UserID: (_path, ids) => ids.userId,
  // Not an object of A's but a name every tenant shares: the UserID beside it is what points at A.
  permission: (path) => (path.startsWith('/ai/admin/users/') ? 'model:view' : undefined),
  id: (path, ids) => {
    if (path.startsWith('/v1/tenants/')) return ids.tenantId
    if (path.startsWith('/v1/auth/api-keys/')) return ids.apiKeyId
    if (path.startsWith('/v1/workflows/') || path.startsWith('/ai/admin/users/import/')) return ids.runId
    if (path.startsWith('/v1/models/')) return ids.modelId
    if (path.startsWith('/v1/credentials/')) return ids.credentialId
    if (path.startsWith('/v1/clusters/')) return ids.clusterId
    if (path.startsWith('/v1/endpoints/')) return ids.endpointId
    if (path.startsWith('/v1/apps/')) return ids.appId
    if (path.startsWith('/v1/runtimes/')) return ids.runtimeId
    if (path.startsWith('/v1/app-templates/')) return ids.templateId
    return undefined
  },
  pod: (path, ids) => (path.startsWith('/v1/endpoints/{id}/workers/') ? ids.podName : undefined),
  version: (path, ids) => (path.startsWith('/v1/models/{id}/versions/') ? ids.versionId : undefined),
  upload: (path, ids) => (path.startsWith('/v1/models/{id}/versions/uploads/') ? ids.uploadId : undefined),
  '*': (path, ids) => (path.startsWith('/v1/blobs/') ? ids.blobKey : undefined),
}
interface PathIds {
  userId: string
  tenantId: string
  apiKeyId: string
  runId: string
  blobKey: string
  modelId: string
  versionId: string
  uploadId: string
  credentialId: string
  clusterId: string
  endpointId: string
  appId: string
  podName: string
  runtimeId: string
  templateId: string
}

/** Query filters that can point at A: each is tried on its own on every route that has it. */
const queryProbes = (): Record<string, string> => ({
  tenant: a.admin.tenantId,
  tenantId: a.admin.tenantId,
  actor: a.admin.id,
  resourceId: a.importId,
  email: a.admin.email,
  q: a.member.email,
})

/** Headers that can point at A's requests. */
const headerProbes = (): Record<string, string> => ({ 'idempotency-key': a.idempotencyKey })

/** A valid body for every write the walk sends, by operationId (a walked write without one fails the test). */
const bodies = (): Record<string, unknown> => ({
  updateTenant: { displayName: 'Owned by B', status: 'disabled' },
  updateAiUser: { name: 'Owned by B', role: 'admin', status: 'disabled' },
  patchAiUser: { name: 'Owned by B', role: 'admin', status: 'disabled' },
  createAiUser: { email: `planted-${randomUUID().slice(0, 8)}@example.test`, role: 'admin' },
  importAiUsers: [{ email: `b-import-${randomUUID().slice(0, 8)}@example.test`, role: 'viewer' }],
  uploadBlob: 'overwritten by tenant B',
  registerCluster: { name: `b-cluster-${randomUUID().slice(0, 8)}`, kubeconfig: bCluster.kubeconfig() },
  // A new kubeconfig too: it would start a verification that swaps A's credentials for B's.
  updateCluster: { name: 'owned-by-b', labels: { owner: 'b' }, kubeconfig: bCluster.kubeconfig() },
  updateModel: { displayName: 'Owned by B', tags: ['b'] },
  createModel: { source: 'upload', name: `b-model-${randomUUID().slice(0, 8)}` },
  // A new version of A's model: B must find no such model (and start no import).
  importModel: { source: 'hub', repo: 'b-owner/b-repo', modelId: a.modelId },
  // Never verified (B names A's nothing here but would learn of a taken name): stored unverified would need ?verify=false.
  createCredential: { provider: 'openai', name: `b-cred-${randomUUID().slice(0, 8)}`, secrets: { apiKey: 'sk-b-0000000000000000' }, settings: { baseUrl: 'https://127.0.0.1:9' } },
  updateCredential: { name: 'owned-by-b' },
  createModelUpload: { files: [{ path: 'b.bin', size: 1, sha256: '0'.repeat(64) }] },
  // A's model on A's cluster: B must find neither.
  deployEndpoint: { name: `b-ep-${randomUUID().slice(0, 8)}`, modelId: a.modelId, clusterId: a.cluster.id, replicas: 1 },
  updateEndpoint: { replicas: 0, env: { OWNED_BY: 'b' } },
  scaleEndpoint: { replicas: 0 },
  updateAppTemplate: { name: 'owned-by-b', code: 'from fastapi import FastAPI\n\napp = FastAPI(title="b")\n' },
  // On A's cluster: B must find no such cluster. An update of A's app: B must find no such app.
  createApp: { name: `b-app-${randomUUID().slice(0, 8)}`, clusterId: a.cluster.id, code: 'from fastapi import FastAPI\napp = FastAPI()\n' },
  updateApp: { code: 'from fastapi import FastAPI\napp = FastAPI(title="b")\n', env: { OWNED_BY: 'b' } },
  completeModelUpload: { files: [{ path: 'weights.bin', parts: [{ partNumber: 1, etag: '"0123456789abcdef0123456789abcdef"' }] }] },
  updateRuntime: { tag: 'v6.6.6', image: 'evil.example.com/runtime' },
  updateClusterServingSettings: { registryPrefix: 'evil.example.com/mirror', objectStoreUrl: 'https://evil.example.com' },
})

/** Routes not walked, and why. Every other route of the document is. */
const SKIPPED: Record<string, string> = {
  getRealmJwks: "public by OpenID design: a realm's signing keys are fetched by anyone who verifies its tokens",
  getRealmDiscovery: 'public by OpenID design: names the realm it is asked about, nothing else',
  login: "public; takes credentials, names no tenant's object",
  refreshToken: "public; takes a refresh token, names no tenant's object",
  acceptInvite: "public; takes a one-time token, names no tenant's object",
}
const DAPR_REASON = "Dapr-internal: authenticated by the sidecar's app token, not by a tenant's principal"

interface Operation {
  method: string
  path: string
  operationId: string
  pathParams: string[]
  queryParams: string[]
  headerParams: string[]
  hasBody: boolean
  eventStream: boolean
}

function operationsOf(doc: { paths: Record<string, Record<string, Record<string, unknown>>> }): Operation[] {
  const operations: Operation[] = []
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const parameters = (op.parameters ?? []) as Array<{ name: string; in: string }>
      const names = (where: string) => parameters.filter((p) => p.in === where).map((p) => p.name)
      const ok = (op.responses as Record<string, { content?: Record<string, unknown> }> | undefined)?.['200']
      operations.push({
        method: method.toUpperCase(),
        path,
        operationId: String(op.operationId),
        pathParams: names('path'),
        queryParams: names('query'),
        headerParams: names('header'),
        hasBody: op.requestBody !== undefined,
        eventStream: Object.keys(ok?.content ?? {}).includes('text/event-stream'),
      })
    }
  }
  return operations
}

interface Answer {
  status: number
  errorCode?: string
  text: string
}

/** Over real HTTP, so an event stream can be read for a moment and let go. */
async function call(
  method: string,
  url: string,
  options: { headers?: Record<string, string>; body?: unknown; eventStream?: boolean } = {},
): Promise<Answer> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), options.eventStream ? 1_500 : 10_000)
  const headers: Record<string, string> = { ...options.headers }
  let body: string | undefined
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
    headers['content-type'] = typeof options.body === 'string' ? 'text/plain' : 'application/json'
  }
  try {
    const response = await fetch(`${base}${url}`, { method, headers, body, signal: controller.signal })
    let text = JSON.stringify(Object.fromEntries(response.headers))
    const reader = response.body?.getReader()
    const decoder = new TextDecoder()
    try {
      for (;;) {
        const chunk = await reader?.read()
        if (!chunk || chunk.done) break
        text += decoder.decode(chunk.value, { stream: true })
      }
    } catch (err) {
      // An event stream still open when the time is up: what arrived is what is checked.
      if ((err as Error).name !== 'AbortError') throw err
    }
    let errorCode: string | undefined
    try {
      errorCode = (JSON.parse(text.slice(text.indexOf('}') + 1)) as { errorCode?: string }).errorCode
    } catch {
      errorCode = undefined
    }
    return { status: response.status, errorCode, text }
  } finally {
    clearTimeout(timer)
  }
}

function fillPath(op: Operation, ids: PathIds): string | undefined {
  let url = op.path
  for (const name of op.pathParams) {
    const value = PATH_IDS[name]?.(op.path, ids)
    if (value === undefined) return undefined
    url = url.replace(`{${name}}`, value)
  }
  return url
}

/** The signed-URL query of the blob routes, with a signature B can only make up. */
const forgedSignature = (method: string) =>
  `method=${method === 'PUT' ? 'PUT' : 'GET'}&expires=${Math.floor(Date.now() / 1000) + 600}&sig=${randomBytes(32).toString('base64url')}`

function markers(): string[] {
  return [
    a.admin.tenantId,
    a.admin.realm,
    a.admin.id,
    a.admin.email,
    a.member.id,
    a.member.email,
    a.apiKey.id,
    a.apiKey.prefix,
    a.runId,
    a.importId,
    a.blobKey,
    a.blobContent,
    a.modelId,
    a.versionId,
    a.uploadId,
    a.credentialId,
    a.runtime.id,
    a.runtime.name,
    ...a.importedEmails,
    a.cluster.id,
    a.cluster.name,
    a.cluster.server,
    a.cluster.token,
    a.cluster.workflowId,
    a.endpoint.id,
    a.endpoint.name,
    a.endpoint.pod,
    a.endpoint.apiKey,
    a.template.id,
    a.template.name,
    a.template.marker,
    a.allowlistEntry,
    a.app.id,
    a.app.name,
  ]
}

function leaked(answer: Answer): string[] {
  const text = answer.text.toLowerCase()
  return markers().filter((marker) => text.includes(marker.toLowerCase()))
}

/** Everything of A the walk could change, read straight from the database and the store. */
async function snapshotOfA() {
  const tenantId = a.admin.tenantId
  const { rows } = await app.platform.database.db.execute(sql`
    select
      (select row_to_json(t) from tenants t where t.id = ${tenantId}) as tenant,
      (select json_agg(u order by u.id) from (
        select id, email, name, role, status, version, updated_at, sessions_valid_after from users where tenant_id = ${tenantId}) u) as users,
      (select json_agg(k order by k.id) from (select id, revoked_at from api_keys where tenant_id = ${tenantId}) k) as api_keys,
      (select count(*) from user_invites i join users u on u.id = i.user_id where u.tenant_id = ${tenantId}) as invites,
      (select json_agg(r order by r.id) from (select id, status, version, updated_at from workflow_runs where tenant_id = ${tenantId}) r) as runs,
      (select count(*) from audit_log where tenant_id = ${tenantId}) as audit_rows,
      (select count(*) from outbox_events where tenant_id = ${tenantId}) as events,
      (select json_agg(c order by c.id) from (select * from clusters where tenant_id = ${tenantId}) c) as clusters,
      (select json_agg(n order by n.cluster_id, n.name) from (select * from cluster_nodes where tenant_id = ${tenantId}) n) as cluster_nodes,
      (select json_agg(h order by h.id) from (select * from cluster_status_history where tenant_id = ${tenantId}) h) as cluster_history,
      (select json_agg(l order by l.resource_id) from (
        select * from sweep_leases where resource_id in (select id from clusters where tenant_id = ${tenantId})) l) as cluster_leases,

      (select json_agg(m order by m.id) from (select id, status, version, default_version_id from models where tenant_id = ${tenantId}) m) as models,
      (select json_agg(v order by v.id) from (select id, status from model_versions where tenant_id = ${tenantId}) v) as model_versions,
      (select json_agg(u order by u.id) from (select id, status, updated_at from model_uploads where tenant_id = ${tenantId}) u) as model_uploads,
      (select json_agg(c order by c.id) from (select id, name, version, deleted_at from model_credentials where tenant_id = ${tenantId}) c) as credentials,
      (select json_agg(e order by e.id) from (
        select id, phase, revision, version, spec, api_key_sealed, workflow_id, updated_at, last_activity_at from endpoints where tenant_id = ${tenantId}) e) as endpoints,
      (select count(*) from endpoint_status_history where tenant_id = ${tenantId}) as endpoint_history,
      (select json_agg(r order by r.id) from (select * from runtimes where tenant_id = ${tenantId}) r) as runtimes,
      (select json_agg(s order by s.cluster_id) from (select * from cluster_serving_settings where tenant_id = ${tenantId}) s) as serving_settings,
      (select json_agg(t order by t.id) from (select * from app_templates where tenant_id = ${tenantId}) t) as app_templates,
      (select row_to_json(l) from app_import_allowlist l where l.tenant_id = ${tenantId}) as app_import_allowlist`)
  const blob = await app.platform.blob.stat(a.blobKey)
  const modelFile = a.modelId ? await app.platform.blob.stat(`models/${a.modelId}/${a.versionId}/config.json`) : null
  return { ...(rows[0] as Record<string, unknown>), blob: blob?.etag, modelFile: modelFile?.etag } as Record<string, unknown>
}

// ---- seeding ------------------------------------------------------------------------------------------

beforeAll(async () => {
  kube = await startKubeStandIn()
  bCluster = kube.addCluster({ nodes: ['cpu-small'] })
  // The stand-in listens on 127.0.0.1, which the default denied ranges leave alone.
  // A's endpoint is not reconciled during the walk: every call to A's cluster must be one B caused.
  app = await buildApp(testConfig({ ENDPOINT_RECONCILE_INTERVAL_SECONDS: '3600', ENDPOINT_ROLLOUT_POLL_SECONDS: '0.2' }), {
    workflows: { hub: uniqueHub('walk'), tuning: FAST_HUB },
  })
  await app.ready()
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const realmA = uniqueRealm('walka')
  const admin = await seedUser(app, { realm: realmA, role: 'admin' })
  const member = await seedUser(app, { realm: realmA, role: 'viewer' })
  const asA = bearer(admin.accessToken)

  const key = await call('POST', '/v1/auth/api-keys', { headers: asA, body: { name: 'a-key', scopes: ['user:view', 'workflow:view'] } })
  expect(key.status, key.text).toBe(201)
  const apiKey = JSON.parse(key.text.slice(key.text.indexOf('}') + 1)) as TenantA['apiKey']

  const importedEmails = [`imp1-${randomUUID().slice(0, 8)}@example.test`, `imp2-${randomUUID().slice(0, 8)}@example.test`]
  const idempotencyKey = `a-import-${randomUUID()}`
  const started = await call('POST', '/ai/admin/users/import', {
    headers: { ...asA, 'idempotency-key': idempotencyKey },
    // The last row is refused (duplicate in the file), so the import has an error report too.
    body: importedEmails.map((email) => ({ email, role: 'viewer' })).concat([{ email: importedEmails[0]!, role: 'viewer' }]),
  })
  expect(started.status, started.text).toBe(202)
  const runId = (JSON.parse(started.text.slice(started.text.indexOf('}') + 1)) as { workflowId: string }).workflowId
  let run: { status: string; resource: { id: string } } | undefined
  await waitFor(async () => {
    run = (await app.inject({ method: 'GET', url: `/v1/workflows/${runId}`, headers: asA })).json()
    return run?.status === 'completed' || run?.status === 'failed'
  }, 20_000, "tenant A's import did not finish")
  expect(run?.status).toBe('completed')

  // A's object in the store, as an import that failed leaves its staged rows behind.
  const blobKey = `user-imports/${admin.tenantId}/${randomUUID()}/rows.json`
  const blobContent = `secret-of-a-${randomUUID()}`
  await app.platform.blob.put(blobKey, blobContent, { contentType: 'application/json' })

  // A's cluster, registered through the API and available, with nodes and a history.
  const standIn = (aStandIn = kube.addCluster({ nodes: ['a100-8x', 'cpu-small'] }))
  const clusterName = `a-cluster-${randomUUID().slice(0, 8)}`
  const registered = await call('POST', '/v1/clusters', { headers: asA, body: { name: clusterName, kubeconfig: standIn.kubeconfig() } })
  expect(registered.status, registered.text).toBe(202)
  const accepted = JSON.parse(registered.text.slice(registered.text.indexOf('}') + 1)) as { clusterId: string; workflowId: string }
  await waitFor(async () => {
    const got = await app.inject({ method: 'GET', url: `/v1/clusters/${accepted.clusterId}`, headers: asA })
    return got.json().status === 'available'
  }, 20_000, "tenant A's cluster did not become available")
  const cluster = { id: accepted.clusterId, name: clusterName, server: standIn.server, token: standIn.adminToken, workflowId: accepted.workflowId }

  // A's catalog: a model with a sealed version (and its file in the store), and a credential.
  const model = await call('POST', '/v1/models', { headers: asA, body: { source: 'upload', name: `a-model-${randomUUID().slice(0, 8)}` } })
  expect(model.status, model.text).toBe(201)
  const modelId = (JSON.parse(model.text.slice(model.text.indexOf('}') + 1)) as { id: string }).id
  const version = await app.services.models.startVersion(admin.tenantId, modelId, {
    label: 'v1',
    status: 'uploading',
    createdBy: admin.id,
    files: [{ path: 'config.json', size: 2 }],
  })
  await app.platform.blob.put(`models/${modelId}/${version.id}/config.json`, '{}')
  await app.services.models.sealVersion(version.id)
  const upload = await call('POST', `/v1/models/${modelId}/versions/uploads`, {
    headers: asA,
    body: { label: 'v2', files: [{ path: 'weights.bin', size: 3, sha256: createHash('sha256').update('abc').digest('hex') }] },
  })
  expect(upload.status, upload.text).toBe(201)
  const uploadId = (JSON.parse(upload.text.slice(upload.text.indexOf('}') + 1)) as { id: string }).id
  const credential = await call('POST', '/v1/credentials?verify=false', {
    headers: asA,
    body: { provider: 'openai', name: `a-cred-${randomUUID().slice(0, 8)}`, secrets: { apiKey: 'sk-a-0000000000000000' } },
  })
  expect(credential.status, credential.text).toBe(201)
  const credentialId = (JSON.parse(credential.text.slice(credential.text.indexOf('}') + 1)) as { id: string }).id

  // A's endpoint of that model on that cluster, running, with one worker.
  const endpointName = `a-ep-${randomUUID().slice(0, 8)}`
  const deployed = await call('POST', '/v1/endpoints', { headers: asA, body: { name: endpointName, modelId, clusterId: cluster.id, replicas: 1 } })
  expect(deployed.status, deployed.text).toBe(202)
  const endpointId = (JSON.parse(deployed.text.slice(deployed.text.indexOf('}') + 1)) as { endpointId: string }).endpointId
  await waitFor(async () => {
    const got = await app.inject({ method: 'GET', url: `/v1/endpoints/${endpointId}`, headers: asA })
    return got.json().phase === 'running'
  }, 30_000, "tenant A's endpoint did not reach running")
  const workers = (await app.inject({ method: 'GET', url: `/v1/endpoints/${endpointId}/workers`, headers: asA })).json().items as Array<{ name: string }>
  const endpointKey = (await app.inject({ method: 'GET', url: `/v1/endpoints/${endpointId}/api-key`, headers: asA })).json().apiKey as string
  // A's app on that cluster, running.
  const appName = `a-app-${randomUUID().slice(0, 8)}`
  const created = await call('POST', '/v1/apps', { headers: asA, body: { name: appName, clusterId: cluster.id, code: 'from fastapi import FastAPI\napp = FastAPI()\n' } })
  expect(created.status, created.text).toBe(202)
  const appId = (JSON.parse(created.text.slice(created.text.indexOf('}') + 1)) as { appId: string }).appId
  await waitFor(async () => {
    const got = await app.inject({ method: 'GET', url: `/v1/apps/${appId}`, headers: asA })
    return got.json().phase === 'running'
  }, 60_000, "tenant A's app did not reach running")
  // A's own runtime, and serving settings for A's cluster.
  const runtimeName = `a-runtime-${randomUUID().slice(0, 8)}`
  const createdRuntime = await call('POST', '/v1/runtimes', {
    headers: asA,
    body: {
      name: runtimeName,
      engine: 'vllm',
      deviceType: 'cuda',
      image: 'registry.a.example/vllm-openai',
      tag: 'v0.29.0',
      argsTemplate: ['--model', '{modelPath}'],
      port: 8000,
      formats: ['safetensors'],
      tasks: ['text-generation'],
      openaiRoutes: ['/v1/chat/completions'],
    },
  })
  expect(createdRuntime.status, createdRuntime.text).toBe(201)
  const runtimeId = (JSON.parse(createdRuntime.text.slice(createdRuntime.text.indexOf('}') + 1)) as { id: string }).id
  const settings = await call('PATCH', `/v1/clusters/${cluster.id}/serving-settings`, {
    headers: asA,
    body: { registryPrefix: 'registry.a.example/mirror', imagePullSecrets: ['a-pull'] },
  })
  expect(settings.status, settings.text).toBe(200)

  // A's app template and A's own import allow-list.
  const templateMarker = `a_marker_${randomUUID().replace(/-/g, '')}`
  const templateName = `a-tpl-${randomUUID().slice(0, 8)}`
  // Injected rather than fetched: the first check starts the Python checker, longer than call() waits on a busy machine.
  const template = await app.inject({
    method: 'POST',
    url: '/v1/app-templates',
    headers: asA,
    payload: { name: templateName, code: `from fastapi import FastAPI\n\napp = FastAPI(title="${templateMarker}")\n` },
  })
  expect(template.statusCode, template.body).toBe(201)
  const templateId = (template.json() as { id: string }).id
  const allowlistEntry = `a_only_${randomUUID().replace(/-/g, '').slice(0, 12)}`
  const allowlist = await call('PUT', '/v1/app-import-allowlist', { headers: asA, body: { entries: ['fastapi.*', 'pydantic.*', 'typing', allowlistEntry] } })
  expect(allowlist.status, allowlist.text).toBe(200)

  a = {
    admin,
    member,
    apiKey,
    runId,
    importId: run!.resource.id,
    importedEmails,
    idempotencyKey,
    blobKey,
    blobContent,
    cluster,
    modelId,
    versionId: version.id,
    uploadId,
    credentialId,
    endpoint: { id: endpointId, name: endpointName, pod: workers[0]!.name, apiKey: endpointKey },
    app: { id: appId, name: appName },
    runtime: { id: runtimeId, name: runtimeName },
    template: { id: templateId, name: templateName, marker: templateMarker },
    allowlistEntry,
  }
  // A's events reach the outbox and A's audit rows are written (both after the answers).
  await app.platform.events.drain()
  await waitFor(async () => Number((await snapshotOfA()).audit_rows) >= 2, 5_000, "A's audit rows were not written")

  const realmB = uniqueRealm('walkb')
  attackers = [
    { label: "B's admin", user: await seedUser(app, { realm: realmB, role: 'admin' }) },
    { label: "B's super_admin (by role, not a superuser)", user: await seedUser(app, { realm: realmB, role: 'super_admin' }) },
  ]
}, 60_000)

afterAll(async () => {
  await app?.close()
  await kube?.close()
})

// ---- the walk ------------------------------------------------------------------------------------------

describe('tenant walk', () => {
  it('walks every route of the OpenAPI document as tenant B and B sees and changes nothing of A', async () => {
    const doc = app.swagger() as unknown as Parameters<typeof operationsOf>[0]
    const operations = operationsOf(doc)
    const access = (op: Operation) =>
      app.routeAccess.find((r) => r.method === op.method && r.url === op.path.replace(/\{([^}]+)\}/g, ':$1'))?.access ??
      app.routeAccess.find((r) => r.method === op.method && r.url === op.path.replace('{*}', '*'))?.access
    const ids: PathIds = {
      userId: a.member.id,
      tenantId: a.admin.tenantId,
      apiKeyId: a.apiKey.id,
      runId: a.runId,
      blobKey: a.blobKey,
      clusterId: a.cluster.id,
      modelId: a.modelId,
      versionId: a.versionId,
      uploadId: a.uploadId,
      credentialId: a.credentialId,
      endpointId: a.endpoint.id,
      appId: a.app.id,
      podName: a.endpoint.pod,
      runtimeId: a.runtime.id,
      templateId: a.template.id,
    }
    const madeUp: PathIds = {
      userId: randomUUID(),
      tenantId: randomUUID(),
      apiKeyId: randomUUID(),
      runId: randomUUID(),
      blobKey: `user-imports/${randomUUID()}/${randomUUID()}/rows.json`,
      modelId: randomUUID(),
      versionId: randomUUID(),
      uploadId: randomUUID(),
      credentialId: randomUUID(),
      clusterId: randomUUID(),
      endpointId: randomUUID(),
      appId: randomUUID(),
      podName: `made-up-${randomUUID().slice(0, 8)}`,
      runtimeId: randomUUID(),
      templateId: randomUUID(),
    }
    const problems: string[] = []
    const walked: string[] = []
    const skipped: string[] = []
    const before = await snapshotOfA()
    const askedOfA = aStandIn.requests.length

    const requestsOf = (op: Operation, pathIds: PathIds, attacker: SeededUser) => {
      const path = fillPath(op, pathIds)!
      const blob = op.pathParams.includes('*')
      const auth = blob ? {} : bearer(attacker.accessToken)
      const plain = blob ? `${path}?${forgedSignature(op.method)}` : path
      const probes = queryProbes()
      const variants: Array<{ what: string; url: string; headers: Record<string, string> }> = []
      // With A's ids in the path, bare; then each filter that can point at A, on its own.
      if (op.pathParams.length > 0 || op.method === 'GET') variants.push({ what: 'path', url: plain, headers: auth })
      for (const name of op.queryParams.filter((q) => q in probes)) {
        const sep = plain.includes('?') ? '&' : '?'
        variants.push({ what: `?${name}`, url: `${plain}${sep}${name}=${encodeURIComponent(probes[name]!)}`, headers: auth })
      }
      for (const name of op.headerParams.filter((h) => h in headerProbes())) {
        variants.push({ what: `header ${name}`, url: plain, headers: { ...auth, [name]: headerProbes()[name]! } })
      }
      return variants
    }

    const walkOne = async (op: Operation, attacker: { label: string; user: SeededUser }) => {
      const variants = requestsOf(op, ids, attacker.user)
      const controls = requestsOf(op, madeUp, attacker.user)
      const body = bodies()[op.operationId]
      if (op.hasBody && body === undefined) {
        problems.push(`${op.method} ${op.path}: no body for ${op.operationId} in bodies()`)
        return
      }
      for (const [index, variant] of variants.entries()) {
        const where = `${attacker.label}: ${op.method} ${variant.url.split('?')[0]} (${variant.what})`
        const answer = await call(op.method, variant.url, { headers: variant.headers, body, eventStream: op.eventStream })
        const seen = leaked(answer)
        if (seen.length > 0) problems.push(`${where}: answered ${answer.status} showing A's ${seen.join(', ')}`)
        if (answer.status >= 500) problems.push(`${where}: answered ${answer.status}`)
        if (variant.what === 'path' && op.pathParams.length > 0) {
          // A's object must be indistinguishable from one that does not exist.
          const control = await call(op.method, controls[index]!.url, { headers: controls[index]!.headers, body, eventStream: op.eventStream })
          if (answer.status !== control.status || answer.errorCode !== control.errorCode) {
            problems.push(`${where}: answered ${answer.status} ${answer.errorCode} for A's id, ${control.status} ${control.errorCode} for a made-up one`)
          }
          const refused = answer.status === 404 || (answer.status === 403 && ['FORBIDDEN', 'INVALID_SIGNATURE'].includes(answer.errorCode ?? ''))
          if (!refused) problems.push(`${where}: answered ${answer.status} ${answer.errorCode}, expected 404 (or a permission 403)`)
        }
        if (variant.what === '?tenant' && answer.status !== 404 && answer.status !== 403) {
          problems.push(`${where}: naming A's tenant answered ${answer.status}, expected 404`)
        }
      }
    }

    const plan: Operation[] = []
    for (const op of operations) {
      const name = `${op.method} ${op.path}`
      if (op.path.startsWith('/dapr/')) {
        skipped.push(`${name}: ${DAPR_REASON}`)
        continue
      }
      if (SKIPPED[op.operationId]) {
        skipped.push(`${name}: ${SKIPPED[op.operationId]}`)
        continue
      }
      const unknown = op.pathParams.filter((p) => PATH_IDS[p]?.(op.path, ids) === undefined)
      if (unknown.length > 0) {
        problems.push(`${name}: no id of A's for path parameter(s) ${unknown.join(', ')}: add the route's kind to PATH_IDS`)
        continue
      }
      const pointsAtA =
        op.pathParams.length > 0 ||
        op.queryParams.some((q) => q in queryProbes()) ||
        op.headerParams.some((h) => h in headerProbes())
      if (op.method !== 'GET' && !pointsAtA) {
        skipped.push(`${name}: a write that can name nothing of another tenant`)
        continue
      }
      if (access(op) === 'public' && !op.pathParams.includes('*') && op.method !== 'GET') {
        problems.push(`${name}: a public write the walk does not know; walk it or say in SKIPPED why not`)
        continue
      }
      plan.push(op)
    }

    // Reads first, by every attacker, before any write of theirs lands in their own audit log.
    for (const attacker of attackers) {
      for (const op of plan.filter((o) => o.method === 'GET')) {
        await walkOne(op, attacker)
        walked.push(`${attacker.label}: ${op.method} ${op.path}`)
      }
    }
    for (const attacker of attackers) {
      for (const op of plan.filter((o) => o.method !== 'GET')) {
        await walkOne(op, attacker)
        walked.push(`${attacker.label}: ${op.method} ${op.path}`)
      }
    }

    expect(problems, `${problems.join('\n')}\n\nskipped:\n${skipped.join('\n')}`).toEqual([])
    expect(await snapshotOfA()).toEqual(before)
    // Nothing B did reached A's cluster either (a refresh or a rotation would have called it).
    expect(aStandIn.requests.slice(askedOfA)).toEqual([])
    // The walk covered the routes that hold A's data (a document that lost them would pass vacuously).
    const mustWalk = [
      'GET /v1/events/outbox',
      'GET /v1/workflows/{id}/events',
      'DELETE /ai/admin/users/{UserID}',
      'PUT /v1/blobs/{*}',
      'PATCH /v1/tenants/{id}',
      'GET /v1/clusters',
      'GET /v1/clusters/{id}/nodes',
      'PATCH /v1/clusters/{id}',
      'DELETE /v1/clusters/{id}',
      'POST /v1/clusters/{id}/refresh',
      'DELETE /v1/models/{id}/versions/{version}',
      'POST /v1/models/{id}/versions/uploads',
      'POST /v1/models/{id}/versions/uploads/{upload}/complete',
      'POST /v1/models/{id}/versions/uploads/{upload}/parts',
      'DELETE /v1/models/{id}/versions/uploads/{upload}',
      'PATCH /v1/credentials/{id}',
      'GET /v1/endpoints',
      'GET /v1/endpoints/{id}',
      'GET /v1/endpoints/{id}/api-key',
      'GET /v1/endpoints/{id}/workers/{pod}/logs',
      'GET /v1/endpoints/{id}/manifests',
      'PATCH /v1/endpoints/{id}',
      'POST /v1/endpoints/{id}/api-key/rotate',
      'DELETE /v1/endpoints/{id}',
      'GET /v1/apps',
      'GET /v1/apps/{id}',
      'GET /v1/apps/{id}/logs',
      'PATCH /v1/apps/{id}',
      'POST /v1/apps/{id}/activity',
      'POST /v1/apps/{id}/wake',
      'DELETE /v1/apps/{id}',
      'GET /v1/runtimes',
      'GET /v1/runtimes/{id}',
      'PATCH /v1/runtimes/{id}',
      'DELETE /v1/runtimes/{id}',
      'GET /v1/clusters/{id}/serving-settings',
      'PATCH /v1/clusters/{id}/serving-settings',
      'GET /v1/app-templates',
      'GET /v1/app-templates/{id}',
      'PATCH /v1/app-templates/{id}',
      'DELETE /v1/app-templates/{id}',
      'GET /v1/app-import-allowlist',
    ]
    for (const expected of mustWalk) {
      expect(walked.some((w) => w.endsWith(expected)), `${expected} was not walked`).toBe(true)
    }
  }, 120_000)

  it("shows A's admin what B was refused: the ids the walk uses are A's real objects", async () => {
    const asA = bearer(a.admin.accessToken)
    const reads = [
      `/ai/admin/users/${a.member.id}`,
      `/v1/tenants/${a.admin.tenantId}`,
      `/v1/workflows/${a.runId}`,
      `/ai/admin/users/import/${a.runId}/errors`,
      `/v1/events/outbox?limit=100`,
      `/v1/audit?limit=100`,
      `/v1/auth/api-keys`,
      `/v1/clusters`,
      `/v1/clusters/${a.cluster.id}`,
      `/v1/runtimes?scope=tenant`,
      `/v1/runtimes/${a.runtime.id}`,
      `/v1/workflows?limit=100`,
      `/v1/endpoints`,
      `/v1/endpoints/${a.endpoint.id}`,
      `/v1/endpoints/${a.endpoint.id}/workers`,
      `/v1/app-templates`,
      `/v1/app-templates/${a.template.id}`,
      `/v1/app-import-allowlist`,
      `/v1/apps`,
      `/v1/apps/${a.app.id}`,
    ]
    for (const url of reads) {
      const answer = await call('GET', url, { headers: asA })
      expect(answer.status, `${url}: ${answer.text}`).toBe(200)
      expect(leaked(answer).length, `${url} shows A's admin nothing of A`).toBeGreaterThan(0)
    }
    const stream = await call('GET', `/v1/workflows/${a.runId}/events`, { headers: asA, eventStream: true })
    expect(stream.status).toBe(200)
    expect(stream.text).toContain(a.runId)
    const signed = new URL(await app.platform.blob.presignGet(a.blobKey, 60))
    const blob = await call('GET', `${signed.pathname}${signed.search}`)
    expect(blob.status).toBe(200)
    expect(blob.text).toContain(a.blobContent)
  })
})
