import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The certificates a stand-in API server and its clients need, made with the system's openssl
 * once per process (a few hundred milliseconds) and shared by every stand-in in it. EC P-256
 * keys: quick to make and accepted by Node's TLS like the RSA keys clusters usually carry.
 */
export interface StandInCerts {
  /** PEM of the CA that signs the server certificate and the client certificate. */
  caCert: string
  /** PEM of a CA that has signed nothing here: a kubeconfig naming it must fail TLS. */
  wrongCaCert: string
  serverCert: string
  serverKey: string
  /** A client certificate with CN=user and O=group, signed by caCert. */
  clientCert: string
  clientKey: string
  /** A client certificate with the same subject signed by the wrong CA: the server must refuse it. */
  strangerCert: string
  strangerKey: string
}

export const CLIENT_CERT_USER = 'user'
export const CLIENT_CERT_GROUP = 'group'

const OPENSSL = '/usr/bin/openssl'
const DAYS = '3650'

let cached: StandInCerts | undefined

export function standInCerts(): StandInCerts {
  cached ??= makeCerts()
  return cached
}

function makeCerts(): StandInCerts {
  const dir = mkdtempSync(join(tmpdir(), 'kube-standin-certs-'))
  const run = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  const file = (name: string) => readFileSync(join(dir, name), 'utf8')
  const key = (name: string) => run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name)
  const ca = (name: string, cn: string) => {
    key(`${name}.key`)
    run('req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.crt`, '-days', DAYS, '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  }
  // A leaf signed by a CA; extensions come from a file because `x509 -req` takes no -addext.
  const leaf = (name: string, issuer: string, subject: string, extensions: string) => {
    key(`${name}.key`)
    run('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subject)
    writeFileSync(join(dir, `${name}.ext`), extensions)
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial',
      '-out', `${name}.crt`, '-days', DAYS, '-extfile', `${name}.ext`)
  }
  try {
    ca('ca', 'kube-standin-ca')
    ca('wrong-ca', 'unrelated-ca')
    leaf('server', 'ca', '/CN=kube-apiserver',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n')
    const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
    leaf('client', 'ca', `/O=${CLIENT_CERT_GROUP}/CN=${CLIENT_CERT_USER}`, clientExt)
    leaf('stranger', 'wrong-ca', `/O=${CLIENT_CERT_GROUP}/CN=${CLIENT_CERT_USER}`, clientExt)
    return {
      caCert: file('ca.crt'),
      wrongCaCert: file('wrong-ca.crt'),
      serverCert: file('server.crt'),
      serverKey: file('server.key'),
      clientCert: file('client.crt'),
      clientKey: file('client.key'),
      strangerCert: file('stranger.crt'),
      strangerKey: file('stranger.key'),
    }
  } finally {
    // The keys are test keys, but nothing needs them on disk after this.
    rmSync(dir, { recursive: true, force: true })
  }
}
