import { beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import {
  KubeconfigRefused,
  type KubeconfigRules,
  parseKubeconfig,
  sealableTarget,
  targetFromSealed,
  targetIdentity,
} from '../../../src/platform/kube/index.js'
import { b64, type CertAndKey, makeCa, makeClientCert } from '../../helpers/tls.js'

const RULES: KubeconfigRules = {
  allowInsecureTls: false,
  allowHttp: false,
  deniedCidrs: ['169.254.0.0/16', 'fd00:ec2::254/128'],
}
const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.signature'

let ca: CertAndKey
let client: CertAndKey

beforeAll(() => {
  ca = makeCa()
  client = makeClientCert(ca, 'modelplane', ['system:masters'])
})

type Doc = Record<string, unknown>

/** A kubeconfig as kubectl writes one, with one context; `edit` changes it before it is serialized. */
function kubeconfig(edit: (doc: Doc & { cluster: Doc; user: Doc; context: Doc }) => void = () => {}): string {
  const cluster: Doc = { server: 'https://k8s.example.com:6443', 'certificate-authority-data': b64(ca.certPem) }
  const user: Doc = { token: TOKEN }
  const context: Doc = { cluster: 'prod', user: 'admin', namespace: 'serving' }
  const doc: Doc = {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'prod-admin',
    clusters: [{ name: 'prod', cluster }],
    users: [{ name: 'admin', user }],
    contexts: [{ name: 'prod-admin', context }],
  }
  edit(Object.assign(doc, { cluster, user, context }))
  const { cluster: _c, user: _u, context: _x, ...rest } = doc as Doc
  return stringify(rest)
}

function refusal(text: string, rules: Partial<KubeconfigRules> = {}): KubeconfigRefused {
  try {
    parseKubeconfig(text, { ...RULES, ...rules })
  } catch (err) {
    if (err instanceof KubeconfigRefused) return err
    throw err
  }
  throw new Error('the kubeconfig was accepted')
}

describe('parseKubeconfig accepts', () => {
  it('a token kubeconfig, keeping only the chosen context', () => {
    const target = parseKubeconfig(kubeconfig(), RULES)
    expect(target).toEqual({
      server: 'https://k8s.example.com:6443',
      caData: b64(ca.certPem),
      insecureSkipTlsVerify: false,
      token: TOKEN,
      contextName: 'prod-admin',
      clusterName: 'prod',
      userName: 'admin',
      namespace: 'serving',
    })
  })

  it('a client-certificate kubeconfig', () => {
    const target = parseKubeconfig(
      kubeconfig((d) => {
        delete d.user.token
        d.user['client-certificate-data'] = b64(client.certPem)
        d.user['client-key-data'] = b64(client.keyPem)
      }),
      RULES,
    )
    expect(target.clientCertData).toBe(b64(client.certPem))
    expect(target.clientKeyData).toBe(b64(client.keyPem))
    expect(target.token).toBeUndefined()
  })

  it('the same kubeconfig written as JSON', () => {
    const json = JSON.stringify({
      apiVersion: 'v1',
      'current-context': 'c',
      clusters: [{ name: 'k', cluster: { server: 'https://10.0.0.1:6443/', 'certificate-authority-data': b64(ca.certPem) } }],
      users: [{ name: 'u', user: { token: TOKEN } }],
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
    })
    const target = parseKubeconfig(json, RULES)
    expect(target.server).toBe('https://10.0.0.1:6443')
    expect(target.token).toBe(TOKEN)
  })

  it('another context than the current one when asked', () => {
    const text = kubeconfig((d) => {
      ;(d.clusters as Doc[]).push({ name: 'staging', cluster: { server: 'https://staging.example.com' } })
      ;(d.contexts as Doc[]).push({ name: 'staging-admin', context: { cluster: 'staging', user: 'admin' } })
    })
    const target = parseKubeconfig(text, { ...RULES, context: 'staging-admin' })
    expect(target.server).toBe('https://staging.example.com')
    expect(target.contextName).toBe('staging-admin')
  })

  it('insecure-skip-tls-verify and http when the request allows them', () => {
    const text = kubeconfig((d) => {
      d.cluster.server = 'http://k8s.example.com:8080'
      d.cluster['insecure-skip-tls-verify'] = true
    })
    const target = parseKubeconfig(text, { ...RULES, allowHttp: true, allowInsecureTls: true })
    expect(target.insecureSkipTlsVerify).toBe(true)
    expect(target.server).toBe('http://k8s.example.com:8080')
  })

  it('a server with a path prefix (a proxy in front of several clusters)', () => {
    const target = parseKubeconfig(kubeconfig((d) => (d.cluster.server = 'https://gw.example.com/c/abc/')), RULES)
    expect(target.server).toBe('https://gw.example.com/c/abc')
  })
})

describe('parseKubeconfig refuses', () => {
  const cases: Array<[string, (d: Doc & { cluster: Doc; user: Doc; context: Doc }) => void, string, RegExp]> = [
    ['an exec plugin', (d) => (d.user.exec = { command: 'aws', args: ['eks', 'get-token'] }), 'users[0].user.exec', /exec/],
    ['an auth-provider plugin', (d) => (d.user['auth-provider'] = { name: 'gcp' }), 'users[0].user.auth-provider', /auth-provider/],
    ['a token file', (d) => (d.user.tokenFile = '/var/run/secrets/token'), 'users[0].user.tokenFile', /file paths/],
    ['a client certificate file', (d) => (d.user['client-certificate'] = '/home/me/.kube/c.crt'), 'users[0].user.client-certificate', /file paths/],
    ['a client key file', (d) => (d.user['client-key'] = 'client.key'), 'users[0].user.client-key', /file paths/],
    ['a CA file', (d) => (d.cluster['certificate-authority'] = '/etc/ca.crt'), 'clusters[0].cluster.certificate-authority', /file paths/],
    ['any other key naming a file', (d) => (d.user['id-token-file'] = 'x'), 'users[0].user.id-token-file', /file paths/],
    ['any other value that is a path', (d) => (d.cluster['vendor-bundle'] = '/etc/ssl/bundle.pem'), 'clusters[0].cluster.vendor-bundle', /file paths/],
    ['a user name (basic auth)', (d) => (d.user.username = 'admin'), 'users[0].user.username', /basic/],
    ['a password (basic auth)', (d) => (d.user.password = 'hunter2'), 'users[0].user.password', /basic/],
    ['impersonation', (d) => (d.user.as = 'system:admin'), 'users[0].user.as', /impersonation/],
    ['insecure-skip-tls-verify not allowed', (d) => (d.cluster['insecure-skip-tls-verify'] = true), 'clusters[0].cluster.insecure-skip-tls-verify', /TLS/],
    ['an http server not allowed', (d) => (d.cluster.server = 'http://k8s.example.com'), 'clusters[0].cluster.server', /http/],
    ['another scheme', (d) => (d.cluster.server = 'file:///etc/passwd'), 'clusters[0].cluster.server', /https/],
    ['a server that is not a URL', (d) => (d.cluster.server = 'k8s.example.com:6443'), 'clusters[0].cluster.server', /URL/],
    ['credentials in the server URL', (d) => (d.cluster.server = 'https://u:p@k8s.example.com'), 'clusters[0].cluster.server', /credentials/],
    ['the metadata address', (d) => (d.cluster.server = 'https://169.254.169.254'), 'clusters[0].cluster.server', /denied/],
    ['the metadata address in another spelling', (d) => (d.cluster.server = 'https://2852039166:443'), 'clusters[0].cluster.server', /denied/],
    ['an IPv4-mapped metadata address', (d) => (d.cluster.server = 'https://[::ffff:169.254.169.254]'), 'clusters[0].cluster.server', /denied/],
    ['the IPv6 metadata address', (d) => (d.cluster.server = 'https://[fd00:ec2::254]:443'), 'clusters[0].cluster.server', /denied/],
    ['a proxy', (d) => (d.cluster['proxy-url'] = 'socks5://attacker:1080'), 'clusters[0].cluster.proxy-url', /prox/],
    ['a missing current-context', (d) => delete d['current-context'], 'current-context', /context/],
    ['an unknown context', (d) => (d['current-context'] = 'nope'), 'contexts', /no context named "nope"/],
    ['a context naming a missing cluster', (d) => (d.context.cluster = 'gone'), 'clusters', /no cluster named "gone"/],
    ['a context naming a missing user', (d) => (d.context.user = 'gone'), 'users', /no user named "gone"/],
    ['a user without a credential', (d) => delete d.user.token, 'users[0].user', /no credential/],
    ['invalid base64 in a -data field', (d) => (d.cluster['certificate-authority-data'] = 'not*base64!'), 'clusters[0].cluster.certificate-authority-data', /base64/],
    ['a CA that is not PEM', (d) => (d.cluster['certificate-authority-data'] = b64('hello world')), 'clusters[0].cluster.certificate-authority-data', /PEM certificate/],
    ['a client certificate without its key', (d) => (d.user['client-certificate-data'] = b64(client.certPem)), 'users[0].user.client-key-data', /key/],
    ['a client key that is not a key', (d) => {
      d.user['client-certificate-data'] = b64(client.certPem)
      d.user['client-key-data'] = b64('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
    }, 'users[0].user.client-key-data', /private key/],
  ]

  it.each(cases)('%s', (_name, edit, path, reason) => {
    const refused = refusal(kubeconfig(edit))
    expect(refused.path).toBe(path)
    expect(refused.reason).toMatch(reason)
  })

  it('text larger than maxBytes, before parsing it', () => {
    const refused = refusal(`# ${'x'.repeat(300 * 1024)}\n${kubeconfig()}`)
    expect(refused.reason).toMatch(/larger than 262144 bytes/)
  })

  it('YAML aliases (a billion-laughs document)', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]']
    const refused = refusal(`${bomb.join('\n')}\n${kubeconfig()}`)
    expect(refused.reason).toMatch(/aliases/)
  })

  it('a document that is not a mapping', () => {
    expect(refusal('- just\n- a list\n').reason).toMatch(/not a mapping/)
    expect(refusal('"a string"').reason).toMatch(/not a mapping/)
  })

  it('broken YAML', () => {
    expect(refusal('clusters: [\n').reason).toMatch(/not valid YAML/)
  })

  it('shapes that cost the YAML parser far more than their size, quickly and before parsing', () => {
    const size = 256 * 1024 - 16
    const shapes: Array<[string, string, RegExp]> = [
      ['control characters', `{[: ${'\u0001\t]['.repeat(size / 4)}`, /control characters/],
      ['deep nesting', '['.repeat(size), /brackets|nested deeper/],
      ['nesting under the bracket budget', `${'['.repeat(65)}${']'.repeat(65)}`, /nested deeper than 64/],
      ['thousands of errors', ']['.repeat(size / 2), /brackets/],
      ['tens of thousands of keys in one mapping', Array.from({ length: 20_000 }, (_, i) => `k${i}: v`).join('\n'), /colons/],
      ['a wall of quotes', '"'.repeat(size), /double quotes/],
      ['a wall of aliases', '*a '.repeat(1_000), /tags, anchors and aliases/],
    ]
    for (const [what, text, reason] of shapes) {
      const started = performance.now()
      expect(refusal(text).reason, what).toMatch(reason)
      expect(performance.now() - started, what).toBeLessThan(500)
    }
  })

  it('without ever repeating a secret in the refusal', () => {
    const withPassword = refusal(kubeconfig((d) => (d.user.password = 'hunter2-secret')))
    const withExec = refusal(kubeconfig((d) => (d.user.exec = { command: 'x', env: [{ name: 'T', value: TOKEN }] })))
    const badKey = refusal(
      kubeconfig((d) => {
        d.user['client-certificate-data'] = b64(client.certPem)
        d.user['client-key-data'] = b64('-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n')
      }),
    )
    for (const err of [withPassword, withExec, badKey]) {
      expect(err.message).not.toContain('hunter2')
      expect(err.message).not.toContain(TOKEN)
      expect(err.message).not.toContain('c2VjcmV0')
    }
  })
})

describe('a target', () => {
  it('survives sealing and opening unchanged', () => {
    const target = parseKubeconfig(kubeconfig(), RULES)
    expect(targetFromSealed(sealableTarget(target))).toEqual(target)
  })

  it('has the same identity however its server URL and CA PEM are spelled', () => {
    const a = parseKubeconfig(kubeconfig((d) => (d.cluster.server = 'https://K8S.example.com/')), RULES)
    const rewrapped = ca.certPem.replace(/\n/g, '\r\n')
    const b = parseKubeconfig(
      kubeconfig((d) => {
        d.cluster.server = 'https://k8s.example.com:443'
        d.cluster['certificate-authority-data'] = b64(rewrapped)
      }),
      RULES,
    )
    expect(targetIdentity(a)).toBe(targetIdentity(b))
  })

  it('has another identity with another CA or another server', () => {
    const base = parseKubeconfig(kubeconfig(), RULES)
    const otherCa = makeCa('other')
    const withOtherCa = { ...base, caData: b64(otherCa.certPem) }
    const otherServer = { ...base, server: 'https://k8s.example.com:6444' }
    expect(targetIdentity(withOtherCa)).not.toBe(targetIdentity(base))
    expect(targetIdentity(otherServer)).not.toBe(targetIdentity(base))
    expect(targetIdentity(base)).not.toContain(TOKEN)
  })
})
