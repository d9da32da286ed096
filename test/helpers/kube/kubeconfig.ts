import { stringify } from 'yaml'

/**
 * A kubeconfig as users upload them: one cluster, one user, one context, inline credentials only
 * (certificate-authority-data, token or client-certificate-data + client-key-data).
 */
export interface KubeconfigParts {
  server: string
  context: string
  /** base64 PEM, or undefined to leave certificate-authority-data out (the system CAs apply). */
  caData?: string
  token?: string
  cert?: { certData: string; keyData: string }
}

export function kubeconfigYaml(p: KubeconfigParts): string {
  const user: Record<string, string> = {}
  if (p.token) user.token = p.token
  if (p.cert) {
    user['client-certificate-data'] = p.cert.certData
    user['client-key-data'] = p.cert.keyData
  }
  const cluster: Record<string, string> = { server: p.server }
  if (p.caData) cluster['certificate-authority-data'] = p.caData
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: p.context, cluster }],
    users: [{ name: p.context, user }],
    contexts: [{ name: p.context, context: { cluster: p.context, user: p.context } }],
    'current-context': p.context,
    preferences: {},
  })
}
