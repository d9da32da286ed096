import { parse, stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KUBECONFIG_MAX_BYTES } from '../../../src/modules/cluster_ops/schema.js'
import { type ClusterHarness, startClusterHarness } from '../../helpers/clusters.js'
import type { StandInCluster } from '../../helpers/kube/index.js'

/**
 * An uploaded kubeconfig is untrusted: what would run a program, read our disk or reach our own
 * network is refused at once, naming the field, and nothing is kept of the attempt.
 */

let h: ClusterHarness
let standIn: StandInCluster

beforeAll(async () => {
  // A body deadline far beyond the tests' own: an upload held back until the deadline would time the test out.
  h = await startClusterHarness({ env: { REQUEST_TIMEOUT_SECONDS: '600' } })
  standIn = h.kube.addCluster({ nodes: ['cpu-small'] })
})
afterAll(async () => {
  await h?.close()
})

type Doc = {
  clusters: Array<{ name: string; cluster: Record<string, unknown> }>
  users: Array<{ name: string; user: Record<string, unknown> }>
  contexts: Array<{ name: string; context: Record<string, unknown> }>
  'current-context'?: string
}

/** The stand-in's valid kubeconfig, changed by `change`. */
function edited(change: (doc: Doc) => void): string {
  const doc = parse(standIn.kubeconfig()) as Doc
  change(doc)
  return stringify(doc)
}

/** Nothing of any refused upload is kept: no cluster (of any status) and no run in the tenant. */
async function expectNothingStored() {
  for (const status of ['', '&status=failed', '&status=deleted']) {
    const list = await h.call({ method: 'GET', url: `/v1/clusters?limit=1${status}` })
    expect(list.json().total, `clusters${status}`).toBe(0)
  }
  const runs = await h.call({ method: 'GET', url: '/v1/workflows?resourceKind=cluster&limit=1' })
  expect(runs.statusCode).toBe(200)
  expect(runs.json().total).toBe(0)
}

function multipartBody(fields: Record<string, string>, kubeconfig?: string, fileField = 'kubeconfig'): FormData {
  const form = new FormData()
  for (const [key, value] of Object.entries(fields)) form.append(key, value)
  if (kubeconfig !== undefined) form.append(fileField, new Blob([kubeconfig], { type: 'application/yaml' }), 'config.yaml')
  return form
}

const BILLION_LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
  'clusters: [*g]',
].join('\n')

describe('refused kubeconfigs: 400 KUBECONFIG_INVALID naming the field, nothing stored', () => {
  const cases: Array<[string, () => string, { context?: string }, string, RegExp]> = [
    [
      'an exec credential plugin',
      () => edited((d) => (d.users[0]!.user = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'aws', args: ['eks', 'get-token'] } })),
      {},
      'kubeconfig.users[0].user.exec',
      /exec credential plugins/,
    ],
    [
      'an auth-provider plugin',
      () => edited((d) => (d.users[0]!.user = { 'auth-provider': { name: 'gcp', config: { 'cmd-path': '/usr/bin/gcloud' } } })),
      {},
      'kubeconfig.users[0].user.auth-provider',
      /auth-provider/,
    ],
    [
      'a token file',
      () => edited((d) => (d.users[0]!.user = { tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' })),
      {},
      'kubeconfig.users[0].user.tokenFile',
      /file paths/,
    ],
    [
      'a client key read from a file',
      () => edited((d) => Object.assign(d.users[0]!.user, { 'client-certificate': '/etc/kube/me.crt', 'client-key': '/etc/kube/me.key' })),
      {},
      'kubeconfig.users[0].user.client-certificate',
      /file paths/,
    ],
    [
      'a CA read from a file',
      () =>
        edited((d) => {
          delete d.clusters[0]!.cluster['certificate-authority-data']
          d.clusters[0]!.cluster['certificate-authority'] = '/etc/ssl/ca.crt'
        }),
      {},
      'kubeconfig.clusters[0].cluster.certificate-authority',
      /file paths/,
    ],
    [
      'the cloud metadata address',
      () => edited((d) => (d.clusters[0]!.cluster.server = 'https://169.254.169.254:443')),
      {},
      'kubeconfig.clusters[0].cluster.server',
      /denied network range/,
    ],
    ['a context the kubeconfig does not have', () => standIn.kubeconfig(), { context: 'production' }, 'kubeconfig.contexts', /no context named "production"/],
    ['no context at all', () => edited((d) => delete d['current-context']), {}, 'kubeconfig.current-context', /no context chosen/],
    ['plain http without the flag', () => edited((d) => (d.clusters[0]!.cluster.server = 'http://127.0.0.1:6443')), {}, 'kubeconfig.clusters[0].cluster.server', /plain http/],
    [
      'skipping TLS verification without the flag',
      () => edited((d) => (d.clusters[0]!.cluster['insecure-skip-tls-verify'] = true)),
      {},
      'kubeconfig.clusters[0].cluster.insecure-skip-tls-verify',
      /not allowed/,
    ],
    ['a YAML bomb (nested aliases)', () => BILLION_LAUGHS, {}, 'kubeconfig', /aliases/],
    ['a single alias', () => `${standIn.kubeconfig()}\nextra: &x {a: 1}\nmore: *x\n`, {}, 'kubeconfig', /aliases/],
    // Noise just under the size limit, refused quickly (such shapes once held the event loop for a minute).
    ['binary garbage near the size limit', () => `{[: ${'\u0001\t]['.repeat((KUBECONFIG_MAX_BYTES - 16) / 4)}`, {}, 'kubeconfig', /control characters/],
    ['bracket garbage near the size limit', () => `${standIn.kubeconfig()}\n# ${']['.repeat((KUBECONFIG_MAX_BYTES - 4_096) / 2)}`, {}, 'kubeconfig', /too complex/],
    ['unbalanced garbage near the size limit', () => `x: "${'a'.repeat(KUBECONFIG_MAX_BYTES - 16)}`, {}, 'kubeconfig', /not valid YAML/],
    ['a YAML list instead of a mapping', () => '- a\n- b\n', {}, 'kubeconfig', /not a mapping/],
  ]

  it.each(cases)('%s', async (_what, kubeconfig, extra, field, reason) => {
    const text = kubeconfig()
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(KUBECONFIG_MAX_BYTES)
    const started = Date.now()
    const res = await h.register({ name: 'refused', kubeconfig: text, ...extra })
    expect(res.statusCode, res.body).toBe(400)
    const body = res.json()
    expect(body.errorCode).toBe('KUBECONFIG_INVALID')
    expect(body.message).toMatch(reason)
    expect(body.details.fields).toEqual([{ field, message: expect.stringMatching(reason) }])
    // The answer names the field, never echoes what was in it.
    expect(res.body).not.toContain('/var/run/secrets')
    expect(res.body).not.toContain(standIn.adminToken)
    expect(Date.now() - started).toBeLessThan(5_000)
    await expectNothingStored()
  })

  it('a kubeconfig over the size limit is refused by the schema before it is parsed', async () => {
    const res = await h.register({ name: 'huge', kubeconfig: `# ${'x'.repeat(KUBECONFIG_MAX_BYTES)}\n${standIn.kubeconfig()}` })
    expect(res.statusCode).toBe(400)
    expect(res.json().errorCode).toBe('VALIDATION_ERROR')
    await expectNothingStored()
  })

  it('the same refusals apply to a kubeconfig uploaded as a multipart file', async () => {
    const exec = edited((d) => (d.users[0]!.user = { exec: { command: 'sh', args: ['-c', 'id'] } }))
    const res = await h.call({ method: 'POST', url: '/v1/clusters', payload: multipartBody({ name: 'multipart-refused' }, exec) })
    expect(res.statusCode, res.body).toBe(400)
    expect(res.json()).toMatchObject({ errorCode: 'KUBECONFIG_INVALID', details: { fields: [{ field: 'kubeconfig.users[0].user.exec' }] } })

    const bomb = await h.call({ method: 'POST', url: '/v1/clusters', payload: multipartBody({ name: 'multipart-bomb' }, BILLION_LAUGHS) })
    expect(bomb.statusCode).toBe(400)
    expect(bomb.json().errorCode).toBe('KUBECONFIG_INVALID')

    const otherFile = await h.call({ method: 'POST', url: '/v1/clusters', payload: multipartBody({ name: 'multipart-other' }, standIn.kubeconfig(), 'config') })
    expect(otherFile.statusCode).toBe(400)
    await expectNothingStored()
  })

  it('a multipart upload that is too large or malformed is a 4xx in the error envelope, never a 500', async () => {
    const huge = `# ${'x'.repeat(KUBECONFIG_MAX_BYTES)}\n${standIn.kubeconfig()}`
    const cases: Array<[string, FormData, number, string]> = [
      ['a kubeconfig file over the size limit', multipartBody({ name: 'multipart-huge' }, huge), 413, 'kubeconfig file is larger than'],
      ['labels that are not JSON', multipartBody({ name: 'multipart-labels', labels: '{team: ml' }, standIn.kubeconfig()), 400, 'labels'],
      ['a flag that is not true or false', multipartBody({ name: 'multipart-flag', allowHttp: 'yes' }, standIn.kubeconfig()), 400, 'allowHttp'],
      ['no kubeconfig at all', multipartBody({ name: 'multipart-empty' }), 400, 'kubeconfig'],
    ]
    const twice = multipartBody({ name: 'multipart-twice' }, standIn.kubeconfig())
    twice.append('name', 'again')
    cases.push(['a field sent twice', twice, 400, 'name'])
    for (const [what, form, status, field] of cases) {
      const res = await h.call({ method: 'POST', url: '/v1/clusters', payload: form })
      expect(res.statusCode, `${what}: ${res.body.slice(0, 300)}`).toBe(status)
      const body = res.json()
      expect(body.errorCode, what).toMatch(status === 413 ? /^PAYLOAD_TOO_LARGE$/ : /^(VALIDATION_ERROR|KUBECONFIG_INVALID)$/)
      expect(body.requestId, what).toBeTruthy()
      expect(`${body.message} ${JSON.stringify(body.details ?? {})}`, what).toContain(field)
      expect(res.body).not.toContain(standIn.adminToken)
    }
    await expectNothingStored()
  })
})

describe('schema errors: 400 before the kubeconfig is looked at', () => {
  it('a missing name, an unknown field, a bad label or a wrong type is named in the answer', async () => {
    const kubeconfig = standIn.kubeconfig()
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ kubeconfig }, 'name'],
      [{ name: 'x', kubeconfig, region: 'eu' }, 'region'],
      [{ name: 'x', kubeconfig, labels: { 'bad key!': 'v' } }, 'labels'],
      [{ name: 'x', kubeconfig, allowHttp: 'yes' }, 'allowHttp'],
      [{ name: 'x' }, 'kubeconfig'],
      [{ name: 'x\u0000y', kubeconfig }, 'body'],
      [{ name: 'a/b', kubeconfig }, 'name'],
    ]
    for (const [body, field] of cases) {
      const res = await h.register(body)
      expect(res.statusCode, JSON.stringify(body).slice(0, 80)).toBe(400)
      expect(res.json().errorCode).toBe('VALIDATION_ERROR')
      expect(JSON.stringify(res.json().details), res.body).toContain(field)
    }
    await expectNothingStored()
  })
})

describe('a valid upload', () => {
  it('registers through multipart/form-data with the kubeconfig as a file and labels as JSON text', async () => {
    const res = await h.call({
      method: 'POST',
      url: '/v1/clusters',
      payload: multipartBody({ name: 'uploaded', labels: JSON.stringify({ team: 'ml' }) }, standIn.kubeconfig()),
    })
    expect(res.statusCode, res.body).toBe(202)
    const { clusterId, workflowId } = res.json()
    expect(res.headers.location).toBe(`/v1/clusters/${clusterId}`)
    expect((await h.finished(workflowId)).status).toBe('completed')
    const cluster = await h.cluster(clusterId)
    expect(cluster).toMatchObject({ name: 'uploaded', labels: { team: 'ml' }, status: 'available', server: standIn.server })
    expect(cluster.summary.nodes.total).toBe(1)
  })

  it('JSON text with several contexts: the one asked for is registered, and only its server is called', async () => {
    const chosen = h.kube.addCluster({ nodes: ['a100-8x'] })
    const decoy = h.kube.addCluster({ nodes: ['cpu-small'] })
    const doc = parse(decoy.kubeconfig({ context: 'decoy' })) as Doc
    const wanted = parse(chosen.kubeconfig({ context: 'gpu-prod' })) as Doc
    doc.clusters.push(...wanted.clusters)
    doc.users.push(...wanted.users)
    doc.contexts.push(...wanted.contexts)
    expect(doc['current-context']).toBe('decoy')
    const { clusterId } = await h.registerAvailable({ name: 'json-context', kubeconfig: JSON.stringify(doc), context: 'gpu-prod' })
    const cluster = await h.cluster(clusterId)
    expect(cluster).toMatchObject({ status: 'available', server: chosen.server })
    expect(cluster.summary.byDeviceType.cuda.devices).toBe(8)
    expect(chosen.requests.length).toBeGreaterThan(0)
    expect(decoy.requests).toHaveLength(0)
  })

  it('skipping TLS verification when the request allows it: registered without a CA', async () => {
    const other = h.kube.addCluster({ nodes: ['cpu-small'] })
    const doc = parse(other.kubeconfig({ ca: 'none' })) as Doc
    doc.clusters[0]!.cluster['insecure-skip-tls-verify'] = true
    const { clusterId } = await h.registerAvailable({ name: 'insecure-allowed', kubeconfig: stringify(doc), allowInsecureTls: true })
    expect(await h.cluster(clusterId)).toMatchObject({ status: 'available', server: other.server })
    expect((await h.row(clusterId))?.allowInsecureTls).toBe(true)
  })

  it('a multipart kubeconfig file just under the size limit is read whole and registered', async () => {
    const other = h.kube.addCluster({ nodes: ['cpu-small'] })
    // Comments pad it to most of the limit: far more than the request stream buffers at once.
    const padded = `${other.kubeconfig()}\n${'# padding line of a long kubeconfig\n'.repeat(Math.floor((KUBECONFIG_MAX_BYTES - 8_192) / 36))}`
    expect(Buffer.byteLength(padded)).toBeGreaterThan(KUBECONFIG_MAX_BYTES - 10_000)
    expect(Buffer.byteLength(padded)).toBeLessThanOrEqual(KUBECONFIG_MAX_BYTES)
    const res = await h.call({ method: 'POST', url: '/v1/clusters', payload: multipartBody({ name: 'padded' }, padded) })
    expect(res.statusCode, res.body).toBe(202)
    expect((await h.finished(res.json().workflowId)).status).toBe('completed')
    expect(await h.cluster(res.json().clusterId)).toMatchObject({ name: 'padded', status: 'available', server: other.server })
  })

  it('a client certificate instead of a token is accepted and works', async () => {
    const other = h.kube.addCluster({ nodes: ['cpu-small'] })
    const { clusterId } = await h.registerAvailable({ name: 'by-cert', kubeconfig: other.kubeconfig({ cert: true }) })
    expect((await h.cluster(clusterId)).status).toBe('available')
  })
})
