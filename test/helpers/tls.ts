import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** PEM text of a certificate and its private key. */
export interface CertAndKey {
  certPem: string
  keyPem: string
}

/**
 * Certificates for tests, made by openssl at test time (EC P-256, one day): a CA, server
 * certificates for names and IPs, client certificates whose CN and O are the Kubernetes user and
 * groups. Nothing is written outside a temporary folder, which is removed.
 */
function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-'))
  try {
    return fn(dir)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function openssl(dir: string, args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

export function makeCa(name = 'test-ca'): CertAndKey {
  return withTempDir((dir) => {
    openssl(dir, [
      'req', '-x509', ...KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ])
    return read(dir, 'ca')
  })
}

function signed(ca: CertAndKey, subject: string, extensions: string): CertAndKey {
  return withTempDir((dir) => {
    fs.writeFileSync(path.join(dir, 'ca.crt'), ca.certPem)
    fs.writeFileSync(path.join(dir, 'ca.key'), ca.keyPem)
    fs.writeFileSync(path.join(dir, 'ext.cnf'), extensions)
    openssl(dir, ['req', ...KEY, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', subject])
    openssl(dir, [
      'x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-days', '1', '-out', 'leaf.crt', '-extfile', 'ext.cnf',
    ])
    return read(dir, 'leaf')
  })
}

/** `hosts` are DNS names or IP addresses; the first is also the CN. */
export function makeServerCert(ca: CertAndKey, hosts: string[]): CertAndKey {
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',')
  return signed(
    ca,
    `/CN=${hosts[0] ?? 'server'}`,
    `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`,
  )
}

/** As the API server reads it: CN is the user name, each O a group. */
export function makeClientCert(ca: CertAndKey, cn: string, groups: string[] = []): CertAndKey {
  const subject = `/CN=${cn}${groups.map((g) => `/O=${g}`).join('')}`
  return signed(ca, subject, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n')
}

function read(dir: string, base: string): CertAndKey {
  return {
    certPem: fs.readFileSync(path.join(dir, `${base}.crt`), 'utf8'),
    keyPem: fs.readFileSync(path.join(dir, `${base}.key`), 'utf8'),
  }
}

/** base64 of PEM text, as kubeconfig `*-data` fields hold it. */
export function b64(pem: string): string {
  return Buffer.from(pem).toString('base64')
}
