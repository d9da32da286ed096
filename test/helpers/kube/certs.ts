import { makeCa, makeClientCert, makeServerCert } from '../tls.js'

/**
 * The certificates a stand-in API server and its clients need, made by test/helpers/tls.ts once
 * per process and shared by every stand-in in it.
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

let cached: StandInCerts | undefined

export function standInCerts(): StandInCerts {
  cached ??= makeCerts()
  return cached
}

function makeCerts(): StandInCerts {
  const ca = makeCa('kube-standin-ca')
  const wrongCa = makeCa('unrelated-ca')
  const server = makeServerCert(ca, ['127.0.0.1', 'localhost'])
  const client = makeClientCert(ca, CLIENT_CERT_USER, [CLIENT_CERT_GROUP])
  const stranger = makeClientCert(wrongCa, CLIENT_CERT_USER, [CLIENT_CERT_GROUP])
  return {
    caCert: ca.certPem,
    wrongCaCert: wrongCa.certPem,
    serverCert: server.certPem,
    serverKey: server.keyPem,
    clientCert: client.certPem,
    clientKey: client.keyPem,
    strangerCert: stranger.certPem,
    strangerKey: stranger.keyPem,
  }
}
