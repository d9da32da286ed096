import { createHash, createPrivateKey, X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { parseDocument } from 'yaml'
import { addressDenier } from '../net/addresses.js'

/** The one context we will use, reduced to inline credentials. */
export interface KubeTarget {
  /** https://host:port[/path], no trailing slash */
  server: string
  /** base64 PEM (certificate-authority-data) */
  caData?: string
  insecureSkipTlsVerify: boolean
  /** the name the server certificate is checked against when it is not the URL's host */
  tlsServerName?: string
  token?: string
  /** base64 PEM */
  clientCertData?: string
  /** base64 PEM */
  clientKeyData?: string
  contextName: string
  clusterName: string
  userName: string
  namespace?: string
}

export interface KubeconfigRules {
  /** which context; default current-context */
  context?: string
  /** insecure-skip-tls-verify only when true */
  allowInsecureTls: boolean
  /** http:// servers only when true */
  allowHttp: boolean
  /** e.g. 169.254.0.0/16, fd00:ec2::254/128 */
  deniedCidrs: readonly string[]
  /** default 256 KiB */
  maxBytes?: number
}

/** An uploaded kubeconfig we will not use; `path` names the offending field (`users[0].user.exec`). */
export class KubeconfigRefused extends Error {
  constructor(
    readonly reason: string,
    readonly path: string,
  ) {
    super(path ? `${path}: ${reason}` : reason)
    this.name = 'KubeconfigRefused'
  }
}

const DEFAULT_MAX_BYTES = 256 * 1024
const MAX_NAME = 253
const MAX_SERVER = 2_048
const MAX_TOKEN = 16 * 1024

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v)
}

/** Own properties only: a document may carry `__proto__` or `constructor` keys. */
function get(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined
}

/**
 * Reads an uploaded kubeconfig (YAML, hence JSON too) into the one target we will talk to. It runs
 * nothing and reads no file: plugins, file paths, proxies and impersonation are refused, and so is
 * anything that would let the API reach its own network. Refusals name the field, never a value.
 */
export function parseKubeconfig(text: string, rules: KubeconfigRules): KubeTarget {
  const maxBytes = rules.maxBytes ?? DEFAULT_MAX_BYTES
  if (Buffer.byteLength(text, 'utf8') > maxBytes) {
    throw new KubeconfigRefused(`the kubeconfig is larger than ${maxBytes} bytes`, '')
  }
  refuseUnparseable(text)
  // No aliases at all (a few nested ones make a "billion laughs"), no merge keys, no custom tags.
  // prettyErrors off: each pretty error costs a pass over the text, many errors a quadratic time.
  const parsed = parseDocument(text, { merge: false, schema: 'core', uniqueKeys: true, logLevel: 'error', prettyErrors: false })
  if (parsed.errors.length > 0) throw new KubeconfigRefused('not valid YAML or JSON', '')
  let doc: unknown
  try {
    doc = parsed.toJS({ maxAliasCount: 0 })
  } catch {
    throw new KubeconfigRefused('YAML aliases and anchors are not accepted', '')
  }
  if (!isObj(doc)) throw new KubeconfigRefused('the kubeconfig is not a mapping', '')

  const contextName = rules.context ?? get(doc, 'current-context')
  if (typeof contextName !== 'string' || contextName === '') {
    throw new KubeconfigRefused('no context chosen and no current-context set', 'current-context')
  }
  const ctx = findNamed(doc, 'contexts', 'context', contextName)
  const clusterName = nameField(ctx.value, 'cluster', `${ctx.path}.cluster`)
  const userName = nameField(ctx.value, 'user', `${ctx.path}.user`)
  const namespace = get(ctx.value, 'namespace')
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace.length > 63)) {
    throw new KubeconfigRefused('namespace must be a name of at most 63 characters', `${ctx.path}.namespace`)
  }
  const cluster = findNamed(doc, 'clusters', 'cluster', clusterName)
  const user = findNamed(doc, 'users', 'user', userName)

  return {
    ...readCluster(cluster.value, cluster.path, rules),
    ...readUser(user.value, user.path),
    contextName,
    clusterName,
    userName,
    ...(namespace ? { namespace } : {}),
  }
}

/**
 * The YAML parser runs on the event loop and some shapes cost it far more than their size: 256 KiB
 * of `][` pairs took over a minute, a few hundred thousand `[` exhausted the heap, and mapping keys
 * are checked for duplicates in quadratic time. A kubeconfig has little structure (a few keys per
 * entry, base64 blobs on one line), so structure beyond these bounds is refused before parsing.
 */
const STRUCTURE_LIMITS: Array<[RegExp, number, string]> = [
  [/[[\]{}]/g, 2_000, 'brackets and braces'],
  [/:/g, 5_000, 'colons'],
  [/,/g, 5_000, 'commas'],
  [/"/g, 20_000, 'double quotes'],
  [/[!&*]/g, 100, 'tags, anchors and aliases'],
  [/\n/g, 20_000, 'lines'],
]
const MAX_FLOW_DEPTH = 64
// YAML allows tab, line feed and carriage return of the C0 controls, and not DEL.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/

function refuseUnparseable(text: string): void {
  if (CONTROL.test(text)) throw new KubeconfigRefused('not valid YAML or JSON: it contains control characters', '')
  for (const [pattern, max, what] of STRUCTURE_LIMITS) {
    let count = 0
    pattern.lastIndex = 0
    while (pattern.exec(text) !== null) {
      if (++count > max) throw new KubeconfigRefused(`too complex for a kubeconfig: more than ${max} ${what}`, '')
    }
  }
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_FLOW_DEPTH) throw new KubeconfigRefused(`too complex for a kubeconfig: nested deeper than ${MAX_FLOW_DEPTH}`, '')
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--
  }
}

function findNamed(doc: Obj, listKey: string, itemKey: string, name: string): { value: Obj; path: string } {
  const list = get(doc, listKey)
  if (!Array.isArray(list)) throw new KubeconfigRefused(`no ${listKey} list`, listKey)
  let found: { value: Obj; path: string } | undefined
  list.forEach((entry, i) => {
    if (!isObj(entry) || get(entry, 'name') !== name) return
    const path = `${listKey}[${i}]`
    if (found) throw new KubeconfigRefused(`more than one ${itemKey} is named "${bounded(name)}"`, path)
    const value = get(entry, itemKey)
    if (!isObj(value)) throw new KubeconfigRefused(`the ${itemKey} has no settings`, `${path}.${itemKey}`)
    found = { value, path: `${path}.${itemKey}` }
  })
  if (!found) throw new KubeconfigRefused(`no ${itemKey} named "${bounded(name)}"`, listKey)
  return found
}

function nameField(o: Obj, key: string, path: string): string {
  const v = get(o, key)
  if (typeof v !== 'string' || v === '' || v.length > MAX_NAME) throw new KubeconfigRefused(`missing ${key}`, path)
  return v
}

// Keys that make client-go read a file from our disk, by where they appear.
const CLUSTER_FILE_KEYS = ['certificate-authority']
const USER_FILE_KEYS = ['client-certificate', 'client-key', 'tokenFile', 'token-file']
const CLUSTER_KNOWN = new Set([
  'server',
  'certificate-authority-data',
  'insecure-skip-tls-verify',
  'tls-server-name',
  'disable-compression',
  'extensions',
])
const USER_KNOWN = new Set(['token', 'client-certificate-data', 'client-key-data', 'extensions'])

function readCluster(c: Obj, path: string, rules: KubeconfigRules) {
  for (const key of CLUSTER_FILE_KEYS) {
    if (get(c, key) !== undefined) throw new KubeconfigRefused('file paths are not accepted: inline the data', `${path}.${key}`)
  }
  if (get(c, 'proxy-url') !== undefined) {
    throw new KubeconfigRefused('proxies are not accepted: the cluster must be reached directly', `${path}.proxy-url`)
  }
  refusePathLikeKeys(c, path, CLUSTER_KNOWN)

  const server = checkServer(get(c, 'server'), `${path}.server`, rules)
  const insecure = get(c, 'insecure-skip-tls-verify')
  if (insecure !== undefined && typeof insecure !== 'boolean') {
    throw new KubeconfigRefused('must be true or false', `${path}.insecure-skip-tls-verify`)
  }
  if (insecure === true && !rules.allowInsecureTls) {
    throw new KubeconfigRefused(
      'skipping TLS verification was not allowed for this cluster',
      `${path}.insecure-skip-tls-verify`,
    )
  }
  const caData = optionalPemData(c, 'certificate-authority-data', path, 'certificate')
  const tlsServerName = get(c, 'tls-server-name')
  if (tlsServerName !== undefined && (typeof tlsServerName !== 'string' || tlsServerName.length > MAX_NAME)) {
    throw new KubeconfigRefused('must be a host name', `${path}.tls-server-name`)
  }
  return {
    server,
    insecureSkipTlsVerify: insecure === true,
    ...(caData ? { caData } : {}),
    ...(tlsServerName ? { tlsServerName } : {}),
  }
}

function readUser(u: Obj, path: string) {
  if (get(u, 'exec') !== undefined) {
    throw new KubeconfigRefused('exec credential plugins are not accepted: they run programs', `${path}.exec`)
  }
  if (get(u, 'auth-provider') !== undefined) {
    throw new KubeconfigRefused('auth-provider plugins are not accepted: use a token or a client certificate', `${path}.auth-provider`)
  }
  for (const key of USER_FILE_KEYS) {
    if (get(u, key) !== undefined) throw new KubeconfigRefused('file paths are not accepted: inline the data', `${path}.${key}`)
  }
  for (const key of ['username', 'password']) {
    if (get(u, key) !== undefined) {
      throw new KubeconfigRefused('basic authentication is not accepted: use a token or a client certificate', `${path}.${key}`)
    }
  }
  for (const key of ['as', 'as-uid', 'as-groups', 'as-user-extra']) {
    if (get(u, key) !== undefined) throw new KubeconfigRefused('impersonation is not accepted', `${path}.${key}`)
  }
  refusePathLikeKeys(u, path, USER_KNOWN)

  const token = get(u, 'token')
  if (token !== undefined && (typeof token !== 'string' || token.length > MAX_TOKEN || /[\r\n]/.test(token))) {
    throw new KubeconfigRefused('the token must be one line of text', `${path}.token`)
  }
  const clientCertData = optionalPemData(u, 'client-certificate-data', path, 'certificate')
  const clientKeyData = optionalPemData(u, 'client-key-data', path, 'key')
  if (clientCertData && !clientKeyData) {
    throw new KubeconfigRefused('a client certificate needs its key', `${path}.client-key-data`)
  }
  if (clientKeyData && !clientCertData) {
    throw new KubeconfigRefused('a client key needs its certificate', `${path}.client-certificate-data`)
  }
  if (!token && !clientCertData) {
    throw new KubeconfigRefused('the user has no credential: give a token or a client certificate and key', path)
  }
  return {
    ...(token ? { token } : {}),
    ...(clientCertData && clientKeyData ? { clientCertData, clientKeyData } : {}),
  }
}

/**
 * Other tools add their own keys that point at files (`*-file`, `*-path`, or a value that is an
 * absolute path). We would not read them anyway, but a kubeconfig relying on one would not work as
 * its author expects, so it is refused rather than silently half-used.
 */
function refusePathLikeKeys(o: Obj, path: string, known: ReadonlySet<string>) {
  for (const key of Object.keys(o)) {
    if (known.has(key)) continue
    const value = o[key]
    const pathLikeKey = /(file|path|dir)$/i.test(key)
    const pathLikeValue = typeof value === 'string' && /^(\/|~\/|\.\.?\/|[A-Za-z]:\\)/.test(value)
    if (pathLikeKey || pathLikeValue) {
      throw new KubeconfigRefused('file paths are not accepted: inline the data', `${path}.${bounded(key)}`)
    }
  }
}

function checkServer(value: unknown, path: string, rules: KubeconfigRules): string {
  if (typeof value !== 'string' || value === '' || value.length > MAX_SERVER) {
    throw new KubeconfigRefused('the server must be an https URL', path)
  }
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new KubeconfigRefused('the server is not a URL', path)
  }
  if (url.protocol === 'http:') {
    if (!rules.allowHttp) throw new KubeconfigRefused('plain http was not allowed for this cluster: use https', path)
  } else if (url.protocol !== 'https:') {
    throw new KubeconfigRefused('the server must be an https URL', path)
  }
  if (url.username || url.password) throw new KubeconfigRefused('credentials in the server URL are not accepted', path)
  if (url.search || url.hash) throw new KubeconfigRefused('the server URL must not have a query or fragment', path)
  const host = hostOf(url)
  // Names are checked again on every connection, against what they resolve to (DNS rebinding).
  if (isIP(host) && addressDenier(rules.deniedCidrs)(host)) {
    throw new KubeconfigRefused('the server address is in a denied network range', path)
  }
  return normalizeServer(url)
}

/** The URL's host without IPv6 brackets. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
}

function normalizeServer(url: URL): string {
  const path = url.pathname.replace(/\/+$/, '')
  return `${url.protocol}//${url.host}${path}`
}

function optionalPemData(o: Obj, key: string, path: string, kind: 'certificate' | 'key'): string | undefined {
  const value = get(o, key)
  if (value === undefined) return undefined
  const at = `${path}.${key}`
  if (typeof value !== 'string') throw new KubeconfigRefused('must be base64 text', at)
  const b64 = value.replace(/\s+/g, '')
  if (b64 === '' || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
    throw new KubeconfigRefused('is not valid base64', at)
  }
  const pem = Buffer.from(b64, 'base64').toString('utf8')
  try {
    if (kind === 'certificate') {
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('not PEM')
      new X509Certificate(pem)
    } else {
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new Error('not PEM')
      createPrivateKey(pem)
    }
  } catch {
    throw new KubeconfigRefused(kind === 'certificate' ? 'is not a PEM certificate' : 'is not a PEM private key', at)
  }
  return b64
}

function bounded(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s
}

const SEALED_VERSION = 1

/** The text to seal in the vault: the target only, never the uploaded document. */
export function sealableTarget(t: KubeTarget): string {
  return JSON.stringify({ v: SEALED_VERSION, ...t })
}

export function targetFromSealed(s: string): KubeTarget {
  const o: unknown = JSON.parse(s)
  if (!isObj(o) || get(o, 'v') !== SEALED_VERSION) throw new Error('not a sealed kube target')
  const str = (k: string, required: boolean) => {
    const v = get(o, k)
    if (v === undefined && !required) return undefined
    if (typeof v !== 'string') throw new Error(`sealed kube target: ${k} is not text`)
    return v
  }
  const optional = (k: string) => {
    const v = str(k, false)
    return v === undefined ? {} : { [k]: v }
  }
  return {
    server: str('server', true)!,
    insecureSkipTlsVerify: get(o, 'insecureSkipTlsVerify') === true,
    contextName: str('contextName', true)!,
    clusterName: str('clusterName', true)!,
    userName: str('userName', true)!,
    ...optional('caData'),
    ...optional('tlsServerName'),
    ...optional('token'),
    ...optional('clientCertData'),
    ...optional('clientKeyData'),
    ...optional('namespace'),
  }
}

/**
 * Two registrations are the same cluster when they reach the same server URL and trust the same
 * CA. The CA is hashed by its certificates' DER bytes, so re-wrapped PEM text is still the same CA.
 */
export function targetIdentity(t: KubeTarget): string {
  const url = new URL(t.server)
  const port = url.port || (url.protocol === 'https:' ? '443' : '80')
  const server = `${url.protocol}//${url.hostname.toLowerCase()}:${port}${url.pathname.replace(/\/+$/, '')}`
  return `${server}|${caFingerprint(t)}`
}

function caFingerprint(t: KubeTarget): string {
  if (!t.caData) return t.insecureSkipTlsVerify ? 'insecure' : 'system-ca'
  const pem = Buffer.from(t.caData, 'base64').toString('utf8')
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  const hash = createHash('sha256')
  for (const block of blocks) hash.update(new X509Certificate(block).raw)
  return `sha256:${hash.digest('hex')}`
}
