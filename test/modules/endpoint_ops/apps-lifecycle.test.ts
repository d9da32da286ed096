import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_APP_RUNNER_IMAGE } from '../../../src/config.js'
import { CODE_HASH_ANNOTATION } from '../../../src/modules/endpoint_ops/apps/app-manifests.js'
import type { SeededUser } from '../../helpers/auth.js'
import { type EndpointHarness, startEndpointHarness } from '../../helpers/endpoints.js'
import type { StandInCluster } from '../../helpers/kube/index.js'
import { waitFor } from '../../helpers/wait.js'

/**
 * The life of an app on a stand-in cluster: validated code deployed as an endpoint of kind `app`,
 * running only once its pod is ready, rolled out again on new code, failed with the runner's own
 * log lines when the code crashes at import, scaled to zero when idle and woken, torn down to
 * nothing; with the limits on files and the owner rule.
 */

let h: EndpointHarness
let clusterId: string
let standIn: StandInCluster

const APP_LABEL = 'modelplane.io/app-id'
const RUNNER = DEFAULT_APP_RUNNER_IMAGE.split(':')[0]!
const HELLO = 'from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get("/")\ndef root():\n    return {"hello": "world"}\n'
const HELLO_2 = HELLO.replace('"world"', '"again"')
const HELLO_3 = HELLO.replace('"world"', '"once more"')

beforeAll(async () => {
  h = await startEndpointHarness()
  ;({ clusterId, standIn } = await h.addAvailableCluster({ nodes: ['cpu-small'] }))
}, 60_000)

afterAll(async () => {
  await h?.close()
})

async function create(body: Record<string, unknown>, user?: SeededUser, cluster = clusterId) {
  const res = await h.call({ method: 'POST', url: '/v1/apps', payload: { clusterId: cluster, code: HELLO, ...body } }, user)
  expect(res.statusCode, res.body).toBe(202)
  return res.json() as { appId: string; workflowId: string }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getApp(id: string, user?: SeededUser): Promise<Record<string, any>> {
  const res = await h.call({ method: 'GET', url: `/v1/apps/${id}` }, user)
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function phase(id: string, want: string, timeoutMs = 30_000): Promise<Record<string, any>> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let last: Record<string, any> = {}
  try {
    await waitFor(async () => {
      last = await getApp(id)
      return last.phase === want
    }, timeoutMs)
  } catch {
    throw new Error(`app ${id} never reached ${want}: ${JSON.stringify({ phase: last.phase, reason: last.statusReason, message: last.statusMessage })}`)
  }
  return last
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>

/** What the cluster holds with the app's label (objects and pods), read from the stand-in's store. */
function labelled(cluster: StandInCluster, namespace: string, appId: string): Obj[] {
  const kinds = ['configmaps', 'deployments', 'services', 'networkpolicies', 'serviceaccounts', 'ingresses', 'pods', 'replicasets']
  return kinds.flatMap((kind) => (cluster.list(kind, namespace) as Obj[]).filter((o) => o.metadata?.labels?.[APP_LABEL] === appId).map((o) => ({ ...o, kind })))
}

describe('an app', () => {
  let appId: string
  let namespace: string

  it('is deploying until its pod is ready, then running; its logs are the runner’s', { timeout: 90_000 }, async () => {
    // Ready well within the Deployment's progress deadline (300 s, 3 s on the stand-in's clock), yet long enough to be seen not ready.
    const undo = standIn.behave({ image: RUNNER, readyAfterMs: 1_500 })
    try {
      let workflowId: string
      ;({ appId, workflowId } = await create({ name: 'hello' }))
      // A pod that has started but is not ready yet: still deploying.
      await waitFor(async () => {
        const app = await getApp(appId)
        return app.namespace !== null && labelled(standIn, app.namespace, appId).some((o) => o.kind === 'pods' && o.status?.phase === 'Running')
      }, 20_000)
      const early = await getApp(appId)
      expect(early.phase).toBe('deploying')
      const running = await phase(appId, 'running')
      namespace = running.namespace
      expect(running.files).toEqual([{ path: 'main.py', bytes: Buffer.byteLength(HELLO) }])
      expect(running.codeHash).toMatch(/^[0-9a-f]{64}$/)
      // APP_IDLE_MINUTES (default 1440) unless the app sets its own.
      expect(running.idleMinutes).toBe(1440)
      expect(running.conditions.find((c: Obj) => c.type === 'Ready')).toMatchObject({ status: 'True' })
      expect(running.conditions.find((c: Obj) => c.type === 'Healthy')).toMatchObject({ status: 'True', reason: 'Probed' })
      // The run's steps speak of the app, not of an endpoint, a runtime or a model.
      const run = await h.finished(workflowId, 30_000)
      const said = run.steps.map((s) => s.message ?? '')
      expect(said.join('\n')).toMatch(/the app's code/)
      expect(said.join('\n')).toMatch(/the app's pods/)
      expect(said.join('\n')).toMatch(/the app's runner for \/health/)
      expect(said.join('\n')).not.toMatch(/endpoint|runtime|model/i)
    } finally {
      undo()
    }
    const logs = await h.call({ method: 'GET', url: `/v1/apps/${appId}/logs?tailLines=50` })
    expect(logs.statusCode, logs.body).toBe(200)
    expect(logs.body).toMatch(/listening on :8000/)
  })

  it('new code is a new code hash: a new ConfigMap, a new pod template and a rollout; If-Match is honoured', { timeout: 90_000 }, async () => {
    const before = await h.call({ method: 'GET', url: `/v1/apps/${appId}` })
    const oldHash = before.json().codeHash as string
    const deploymentBefore = labelled(standIn, namespace, appId).find((o) => o.kind === 'deployments')!
    const oldConfigMap = deploymentBefore.spec.template.spec.volumes.find((v: Obj) => v.name === 'code').configMap.name as string
    expect(deploymentBefore.spec.template.metadata.annotations[CODE_HASH_ANNOTATION]).toBe(oldHash)

    const stale = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: { code: HELLO_2 }, headers: { 'if-match': '"stale"' } })
    expect(stale.statusCode).toBe(412)
    const res = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: { code: HELLO_2 }, headers: { 'if-match': before.headers.etag as string } })
    expect(res.statusCode, res.body).toBe(202)
    expect((await h.finished(res.json().workflowId, 60_000)).status).toBe('completed')
    const after = await phase(appId, 'running')
    expect(after.codeHash).not.toBe(oldHash)
    expect(after.revision).toBe(2)

    const objects = labelled(standIn, namespace, appId)
    const deployment = objects.find((o) => o.kind === 'deployments')!
    const configMap = deployment.spec.template.spec.volumes.find((v: Obj) => v.name === 'code').configMap.name as string
    expect(configMap).not.toBe(oldConfigMap)
    expect(configMap).toContain(after.codeHash.slice(0, 10))
    expect(deployment.spec.template.metadata.annotations[CODE_HASH_ANNOTATION]).toBe(after.codeHash)
    // The new version's ConfigMap holds the new code; the old version's stays (immutable) until teardown.
    const configMaps = objects.filter((o) => o.kind === 'configmaps')
    expect(configMaps.find((c) => c.metadata.name === configMap)!.data['main.py']).toBe(HELLO_2)
    expect(configMaps.map((c) => c.metadata.name).sort()).toEqual([configMap, oldConfigMap].sort())
    // Every pod now runs the new template.
    await waitFor(() => labelled(standIn, namespace, appId).filter((o) => o.kind === 'pods').every((p) => p.metadata.annotations?.[CODE_HASH_ANNOTATION] === after.codeHash), 20_000)

    // A third version: its ConfigMap and the one that served before it stay, the oldest is deleted.
    const third = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: { code: HELLO_3 } })
    expect(third.statusCode, third.body).toBe(202)
    expect((await h.finished(third.json().workflowId, 60_000)).status).toBe('completed')
    const latest = await phase(appId, 'running')
    const now = labelled(standIn, namespace, appId)
    const latestConfigMap = now.find((o) => o.kind === 'deployments')!.spec.template.spec.volumes.find((v: Obj) => v.name === 'code').configMap.name as string
    expect(latestConfigMap).toContain(latest.codeHash.slice(0, 10))
    expect(now.filter((o) => o.kind === 'configmaps').map((c) => c.metadata.name).sort()).toEqual([latestConfigMap, configMap].sort())
  })

  it('a code update that crashes: failed with the runner’s log lines while the last good code serves; a good update brings it back', { timeout: 150_000 }, async () => {
    const before = await getApp(appId)
    const servingPods = labelled(standIn, namespace, appId).filter((o) => o.kind === 'pods').map((p) => p.metadata.name as string)
    const undo = standIn.behave({
      labels: { [APP_LABEL]: appId },
      crash: { lines: ['Traceback (most recent call last):', '  File "/app/code/main.py", line 4, in <module>', 'KeyError: \'SETTING\''] },
    })
    try {
      const broken = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: { code: `${HELLO}x = {}["SETTING"]\n` } })
      expect(broken.statusCode, broken.body).toBe(202)
      expect((await h.finished(broken.json().workflowId, 90_000)).status).toBe('failed')
      const failed = await phase(appId, 'failed')
      expect(failed.statusReason).toBe('APP_CRASHED')
      expect(failed.statusMessage).toContain("KeyError: 'SETTING'")
      expect(failed.statusMessage).toMatch(new RegExp(`revision ${before.revision} keeps serving`))
      expect(failed.failedStep).toBe('rollout')
      // The last good code is what the Deployment runs again, on the pods that served before.
      const deployment = labelled(standIn, namespace, appId).find((o) => o.kind === 'deployments')!
      expect(deployment.spec.template.metadata.annotations[CODE_HASH_ANNOTATION]).toBe(before.codeHash)
      expect(labelled(standIn, namespace, appId).filter((o) => o.kind === 'pods' && servingPods.includes(o.metadata.name)).length).toBeGreaterThan(0)
    } finally {
      undo()
    }
    const fixed = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: { code: HELLO } })
    expect(fixed.statusCode, fixed.body).toBe(202)
    expect((await h.finished(fixed.json().workflowId, 90_000)).status).toBe('completed')
    const back = await phase(appId, 'running')
    expect(back.revision).toBe(before.revision + 2)
    expect(back.appliedRevision).toBe(back.revision)
    expect(back.statusReason).toBeNull()
  })

  it('idle for its minutes: scaled to zero, not deleted; traffic and POST …/activity keep it awake; wake brings it back', { timeout: 120_000 }, async () => {
    const { appId: id } = await create({ name: 'sleepy', idleMinutes: 1 })
    const app = await phase(id, 'running')
    const db = h.app.platform.database.db
    const ago = (seconds: number) => db.execute(sql`update endpoints set last_activity_at = now() - make_interval(secs => ${seconds}) where id = ${id}`)
    const lastActivity = async () => new Date((await getApp(id)).lastActivityAt).getTime()

    // Real requests count: the loop reads the runner's counter and the clock starts again.
    const pod = labelled(standIn, app.namespace, id).find((o) => o.kind === 'pods')!.metadata.name as string
    await waitFor(async () => {
      const row = await h.app.services.endpoints.get({ tenantId: h.admin.tenantId, id: h.admin.id, role: 'admin', isSuperuser: false } as never, id, 'app')
      return Object.keys((row.endpoint.activity as { pods?: object }).pods ?? {}).length > 0
    }, 15_000)
    await ago(30)
    standIn.sendRequests(app.namespace, pod, 2)
    await waitFor(async () => Date.now() - (await lastActivity()) < 10_000, 15_000)

    // 55 s of a 60 s idle time gone, then the user says the app is in use: still running well past the minute.
    await ago(55)
    const touched = await h.call({ method: 'POST', url: `/v1/apps/${id}/activity` })
    expect(touched.statusCode, touched.body).toBe(200)
    expect(Date.now() - new Date(touched.json().lastActivityAt).getTime()).toBeLessThan(5_000)
    await new Promise((r) => setTimeout(r, 8_000))
    expect((await getApp(id)).phase).toBe('running')

    await ago(120)
    const asleep = await phase(id, 'scaled_to_zero', 30_000)
    expect(asleep.replicas).toBe(0)
    const deployment = labelled(standIn, app.namespace, id).find((o) => o.kind === 'deployments')!
    expect(deployment.spec.replicas).toBe(0)
    expect(labelled(standIn, app.namespace, id).some((o) => o.kind === 'configmaps')).toBe(true)

    const woken = await h.call({ method: 'POST', url: `/v1/apps/${id}/wake` })
    expect(woken.statusCode, woken.body).toBe(202)
    const awake = await phase(id, 'running')
    expect(awake.replicas).toBe(1)
  })

  it('deleted: a teardown removes everything labelled with it and keeps the record as deleted', { timeout: 90_000 }, async () => {
    const res = await h.call({ method: 'DELETE', url: `/v1/apps/${appId}` })
    expect(res.statusCode, res.body).toBe(202)
    expect((await h.finished(res.json().workflowId, 60_000)).status).toBe('completed')
    expect((await getApp(appId)).phase).toBe('deleted')
    expect(labelled(standIn, namespace, appId)).toEqual([])
  })
})

describe('code that crashes at import', () => {
  it('fails the first deploy with the runner’s last log lines; a cluster with apps is not deleted without force', { timeout: 120_000 }, async () => {
    const other = await h.addAvailableCluster({ nodes: ['cpu-small'] })
    other.standIn.behave({
      image: RUNNER,
      crash: { lines: ['Traceback (most recent call last):', '  File "/app/code/main.py", line 3, in <module>', 'ZeroDivisionError: division by zero'] },
    })
    const { appId } = await create({ name: 'crashy', code: 'from fastapi import FastAPI\n\napp = FastAPI()\nx = 1 / 0\n' }, undefined, other.clusterId)
    const failed = await phase(appId, 'failed', 60_000)
    expect(failed.statusMessage).toMatch(/CrashLoopBackOff|Error/)
    expect(failed.statusMessage).toContain('ZeroDivisionError: division by zero')
    expect(failed.failedStep).toBe('rollout')
    expect(failed.statusReason).toBe('APP_CRASHED')

    // Another try that crashes too: still failed, and the status does not claim that an earlier version serves.
    const retried = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: { code: 'from fastapi import FastAPI\n\napp = FastAPI()\nx = 2 / 0\n' } })
    expect(retried.statusCode, retried.body).toBe(202)
    expect((await h.finished(retried.json().workflowId, 60_000)).status).toBe('failed')
    const again = await phase(appId, 'failed')
    expect(again.revision).toBe(2)
    expect(again.statusReason).toBe('APP_CRASHED')
    expect(again.statusMessage).toContain('no earlier revision ever ran')
    expect(again.statusMessage).toContain('ZeroDivisionError: division by zero')

    const refused = await h.call({ method: 'DELETE', url: `/v1/clusters/${other.clusterId}` })
    expect(refused.statusCode).toBe(409)
    expect(refused.json().errorCode).toBe('CLUSTER_IN_USE')
    const forced = await h.call({ method: 'DELETE', url: `/v1/clusters/${other.clusterId}?force=true` })
    expect(forced.statusCode, forced.body).toBe(202)
    expect((await h.finished(forced.json().workflowId, 60_000)).status).toBe('completed')
    expect((await getApp(appId)).phase).toBe('deleted')
  })
})

describe('an app that runs but never answers /health', () => {
  it('fails with APP_NOT_HEALTHY once its pods have not become ready in time', { timeout: 120_000 }, async () => {
    const other = await h.addAvailableCluster({ nodes: ['cpu-small'] })
    other.standIn.behave({ image: RUNNER, neverReady: true })
    const { appId, workflowId } = await create({ name: 'silent' }, undefined, other.clusterId)
    expect((await h.finished(workflowId, 90_000)).status).toBe('failed')
    const failed = await phase(appId, 'failed')
    expect(failed.statusReason).toBe('APP_NOT_HEALTHY')
    expect(failed.statusMessage).toMatch(/never answered \/health/)
    expect(failed.conditions.find((c: Obj) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'APP_NOT_HEALTHY' })
    const forced = await h.call({ method: 'DELETE', url: `/v1/clusters/${other.clusterId}?force=true` })
    expect(forced.statusCode, forced.body).toBe(202)
  })
})

describe('limits and owners', () => {
  it('refuses oversized and malformed apps with a 400 saying why, before anything is created', { timeout: 60_000 }, async () => {
    const kb = (n: number) => `# ${'x'.repeat(n * 1024 - 3)}\n`
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['51 files', { files: Array.from({ length: 51 }, (_, i) => ({ path: `f${i}.txt`, content: 'x' })) }, 'VALIDATION_ERROR'],
      ['a file over 100 KB', { files: [{ path: 'main.py', content: HELLO }, { path: 'big.txt', content: 'é'.repeat(60 * 1024) }] }, 'CODE_INVALID'],
      ['over 500 KB in all', { files: [{ path: 'main.py', content: HELLO }, ...Array.from({ length: 6 }, (_, i) => ({ path: `s${i}.txt`, content: kb(95) }))] }, 'CODE_INVALID'],
      ['a syntax error', { code: 'from fastapi import FastAPI\napp = FastAPI(\n' }, 'CODE_INVALID'],
      ['no FastAPI app', { code: 'x = 1\n' }, 'CODE_INVALID'],
      ['a forbidden import', { code: 'import os\nfrom fastapi import FastAPI\napp = FastAPI()\n' }, 'CODE_INVALID'],
      ['code and files', { files: [{ path: 'main.py', content: HELLO }] }, 'VALIDATION_ERROR'],
      ['a variable the runner sets', { env: { PORT: '1' } }, 'VALIDATION_ERROR'],
      ['a file type not allowed', { files: [{ path: 'main.py', content: HELLO }, { path: 'run.sh', content: 'echo' }] }, 'CODE_INVALID'],
    ]
    for (const [what, body, code] of cases) {
      const payload = { name: 'limits', clusterId, ...(body.files && what !== 'code and files' ? {} : { code: HELLO }), ...body }
      const res = await h.call({ method: 'POST', url: '/v1/apps', payload })
      expect(res.statusCode, `${what}: ${res.body}`).toBe(400)
      expect(res.json().errorCode, what).toBe(code)
    }
    const invalid = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'limits', clusterId, code: 'import os\nimport subprocess\nx = 1\n' } })
    // Every problem at once, with where it is.
    expect(invalid.json().details.problems.length).toBeGreaterThanOrEqual(3)
    expect(invalid.json().details.problems[0]).toMatchObject({ file: 'main.py', line: expect.any(Number), column: expect.any(Number), rule: expect.any(String) })
    expect((await h.call({ method: 'GET', url: '/v1/apps?q=limits' })).json().total).toBe(0)
  })

  it('imports what the tenant’s allow-list says: an admin adds a module and apps importing it pass; a developer cannot; other tenants are not affected', { timeout: 90_000 }, async () => {
    const CSV_APP = 'import csv\nfrom fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get("/")\ndef root():\n    return {"dialects": csv.list_dialects()}\n'
    const developer = await h.seed('developer')
    const refused = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'csv-app', clusterId, code: CSV_APP } }, developer)
    expect([refused.statusCode, refused.json().errorCode]).toEqual([400, 'CODE_INVALID'])
    expect(refused.json().details.problems).toEqual([expect.objectContaining({ rule: 'import', line: 1, column: 8, message: expect.stringContaining('csv') })])

    // A developer may deploy code but not decide what the tenant's code may import.
    const current = await h.call({ method: 'GET', url: '/v1/app-import-allowlist' }, developer)
    const entries = [...(current.json().entries as string[]), 'csv']
    const byDeveloper = await h.call({ method: 'PUT', url: '/v1/app-import-allowlist', payload: { entries } }, developer)
    expect([byDeveloper.statusCode, byDeveloper.json().errorCode]).toEqual([403, 'APP_ALLOWLIST_ADMIN_REQUIRED'])
    const byAdmin = await h.call({ method: 'PUT', url: '/v1/app-import-allowlist', payload: { entries }, headers: { 'if-match': current.headers.etag as string } })
    expect(byAdmin.statusCode, byAdmin.body).toBe(200)

    const passed = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'csv-app', clusterId, code: CSV_APP } }, developer)
    expect(passed.statusCode, passed.body).toBe(202)
    await phase(passed.json().appId, 'running')

    // Another tenant's list is its own: the same code is still refused there.
    const { seedUser, uniqueRealm } = await import('../../helpers/auth.js')
    const stranger = await seedUser(h.app, { realm: uniqueRealm('csv'), role: 'admin' })
    const elsewhere = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'csv-app', clusterId, code: CSV_APP } }, stranger)
    expect([elsewhere.statusCode, elsewhere.json().errorCode]).toEqual([400, 'CODE_INVALID'])
    expect((await h.call({ method: 'GET', url: '/v1/app-import-allowlist' }, stranger)).json().entries).not.toContain('csv')
    expect((await h.call({ method: 'DELETE', url: `/v1/apps/${passed.json().appId}` })).statusCode).toBe(202)
  })

  it('lists apps a page at a time, sorted and filtered, with the total of the filter', { timeout: 90_000 }, async () => {
    const owner = await h.seed('developer')
    const names = ['page-c', 'page-a', 'page-d', 'page-b', 'page-e']
    const ids = new Map<string, string>()
    for (const name of names) ids.set(name, (await create({ name }, owner)).appId)
    const list = async (query: string) => {
      const res = await h.call({ method: 'GET', url: `/v1/apps?${query}` }, owner)
      expect(res.statusCode, res.body).toBe(200)
      return res.json() as { items: Obj[]; total: number; page: number; limit: number }
    }
    const first = await list('q=page-&sort=name:asc&limit=2&page=1')
    expect(first).toMatchObject({ total: 5, page: 1, limit: 2 })
    expect(first.items.map((a) => a.name)).toEqual(['page-a', 'page-b'])
    expect((await list('q=page-&sort=name:asc&limit=2&page=2')).items.map((a) => a.name)).toEqual(['page-c', 'page-d'])
    expect((await list('q=page-&sort=name:asc&limit=2&page=3')).items.map((a) => a.name)).toEqual(['page-e'])
    expect((await list('q=page-&sort=name:asc&limit=2&page=4')).items).toEqual([])
    expect((await list('q=page-&sort=name:desc&limit=1')).items.map((a) => a.name)).toEqual(['page-e'])
    // Filters: a name fragment (any case), a phase, a cluster.
    expect((await list('q=PAGE-B')).items.map((a) => a.id)).toEqual([ids.get('page-b')])
    await phase(ids.get('page-a')!, 'running')
    expect((await h.call({ method: 'DELETE', url: `/v1/apps/${ids.get('page-a')}` }, owner)).statusCode).toBe(202)
    await phase(ids.get('page-a')!, 'deleted')
    expect((await list('q=page-&phase=deleted')).items.map((a) => a.name)).toEqual(['page-a'])
    // A deleted app is listed only when asked for by its phase.
    expect((await list(`q=page-&clusterId=${clusterId}`)).total).toBe(4)
    expect((await list(`q=page-&clusterId=${h.admin.tenantId}`)).total).toBe(0)
    // Wrong paging and sorting are 400s naming the parameter, not a 500 nor a silent default.
    for (const query of ['limit=0', 'limit=101', 'page=0', 'sort=secret:asc', 'sort=name:sideways']) {
      const res = await h.call({ method: 'GET', url: `/v1/apps?${query}` }, owner)
      expect(res.statusCode, query).toBe(400)
      expect(res.json().details.fields[0].field, query).toMatch(/^querystring\./)
    }
    for (const id of ids.values()) await h.call({ method: 'DELETE', url: `/v1/apps/${id}` }, owner)
  })

  it('a developer sees and changes only their own apps, an admin all of the tenant’s, another tenant none', { timeout: 90_000 }, async () => {
    const alice = await h.seed('developer')
    const bob = await h.seed('developer')
    const viewer = await h.seed('viewer')
    const key = `k-${Date.now()}`
    const first = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'alices', clusterId, code: HELLO }, headers: { 'idempotency-key': key } }, alice)
    expect(first.statusCode, first.body).toBe(202)
    const { appId } = first.json() as { appId: string }
    // The same request again with the same key: the same app and run, nothing new.
    const again = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'alices', clusterId, code: HELLO }, headers: { 'idempotency-key': key } }, alice)
    expect(again.statusCode, again.body).toBe(202)
    expect(again.json()).toEqual(first.json())
    await phase(appId, 'running')
    const { appId: bobsApp } = await create({ name: 'bobs' }, bob)

    expect((await h.call({ method: 'GET', url: `/v1/apps/${appId}` }, alice)).statusCode).toBe(200)
    const alicesList = (await h.call({ method: 'GET', url: '/v1/apps' }, alice)).json()
    expect(alicesList.items.map((a: Obj) => a.id)).toEqual([appId])
    // A page shows the same files and code hash as the app itself.
    const one = await getApp(appId)
    expect(alicesList.items[0].files).toEqual([{ path: 'main.py', bytes: Buffer.byteLength(HELLO) }])
    expect(alicesList.items[0].codeHash).toBe(one.codeHash)
    expect(one.codeHash).toMatch(/^[0-9a-f]{64}$/)
    // The admin sees every app of the tenant.
    const adminList = (await h.call({ method: 'GET', url: '/v1/apps?limit=100' })).json()
    expect(adminList.items.map((a: Obj) => a.id)).toEqual(expect.arrayContaining([appId, bobsApp]))
    expect((await h.call({ method: 'GET', url: `/v1/apps/${appId}` })).statusCode).toBe(200)
    // Filters: by name, phase and cluster.
    const byName = (await h.call({ method: 'GET', url: '/v1/apps?q=alices' })).json()
    expect(byName.items.map((a: Obj) => a.id)).toEqual([appId])
    expect((await h.call({ method: 'GET', url: `/v1/apps?q=alices&phase=failed` })).json().total).toBe(0)
    expect((await h.call({ method: 'GET', url: `/v1/apps?q=alices&clusterId=${clusterId}` })).json().total).toBe(1)
    expect((await h.call({ method: 'GET', url: `/v1/apps?q=alices&clusterId=${h.admin.tenantId}` })).json().total).toBe(0)
    expect((await h.call({ method: 'GET', url: '/v1/apps?phase=sleeping' })).statusCode).toBe(400)

    expect((await h.call({ method: 'GET', url: '/v1/apps' }, bob)).json().items.map((a: Obj) => a.id)).toEqual([bobsApp])
    // An API key acts for its user: Alice's key sees Alice's app, and only hers.
    const made = await h.call({ method: 'POST', url: '/v1/auth/api-keys', payload: { name: 'script', scopes: ['endpoint:view'] } }, alice)
    expect(made.statusCode, made.body).toBe(201)
    const viaKey = await h.app.inject({ method: 'GET', url: '/v1/apps', headers: { 'x-api-key': made.json().key } })
    expect(viaKey.statusCode, viaKey.body).toBe(200)
    expect(viaKey.json().items.map((a: Obj) => a.id)).toEqual([appId])
    for (const [method, url, payload] of [
      ['GET', `/v1/apps/${appId}`, undefined],
      ['GET', `/v1/apps/${appId}/logs`, undefined],
      ['PATCH', `/v1/apps/${appId}`, { env: { BY: 'bob' } }],
      ['POST', `/v1/apps/${appId}/activity`, undefined],
      ['POST', `/v1/apps/${appId}/wake`, undefined],
      ['DELETE', `/v1/apps/${appId}`, undefined],
    ] as const) {
      expect((await h.call({ method, url, ...(payload ? { payload } : {}) }, bob)).statusCode, `bob: ${method} ${url}`).toBe(404)
    }
    // A viewer may not create or change apps at all, and sees no one else's.
    expect((await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'v', clusterId, code: HELLO } }, viewer)).statusCode).toBe(403)
    expect((await h.call({ method: 'POST', url: `/v1/apps/${appId}/activity` }, viewer)).statusCode).toBe(403)
    expect((await h.call({ method: 'GET', url: `/v1/apps/${appId}` }, viewer)).statusCode).toBe(404)

    const { seedUser, uniqueRealm } = await import('../../helpers/auth.js')
    const stranger = await seedUser(h.app, { realm: uniqueRealm('other'), role: 'admin' })
    expect((await h.call({ method: 'GET', url: `/v1/apps/${appId}` }, stranger)).statusCode).toBe(404)
    expect((await h.call({ method: 'DELETE', url: `/v1/apps/${appId}` }, stranger)).statusCode).toBe(404)
    expect((await h.call({ method: 'GET', url: '/v1/apps' }, stranger)).json().total).toBe(0)
    // Nor can another tenant put an app on this tenant's cluster.
    const onTheirs = await h.call({ method: 'POST', url: '/v1/apps', payload: { name: 'x', clusterId, code: HELLO } }, stranger)
    expect(onTheirs.statusCode).toBe(404)

    const empty = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: {} }, alice)
    expect(empty.statusCode).toBe(400)
    expect(empty.json().message).toMatch(/code or files/)
    // The owner changes it; the admin may delete it.
    const changed = await h.call({ method: 'PATCH', url: `/v1/apps/${appId}`, payload: { env: { GREETING: 'hi' } } }, alice)
    expect(changed.statusCode, changed.body).toBe(202)
    expect((await h.finished(changed.json().workflowId, 60_000)).status).toBe('completed')
    expect((await getApp(appId)).env).toEqual({ GREETING: 'hi' })
    for (const id of [appId, bobsApp]) expect((await h.call({ method: 'DELETE', url: `/v1/apps/${id}` })).statusCode).toBe(202)
  })
})
