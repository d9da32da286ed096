import { randomBytes } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { CLIENT_CERT_GROUP, CLIENT_CERT_USER } from './certs.js'

/**
 * Who a request is, and what they may do: bearer tokens issued by one cluster (another cluster's
 * token is unknown here), client certificates signed by the stand-in CA, and anonymous requests.
 * Rights are RBAC-like rules; authenticated users may always read discovery, anonymous ones only
 * /version and the health paths (kube-apiserver's default system:discovery and
 * system:public-info-viewer bindings).
 */

export interface Right {
  verb: string
  /** API group ('' is core); absent or '*' means any group. */
  group?: string
  /** Plural resource, 'pods/log' for a subresource, or '*'. */
  resource: string
}

export interface Identity {
  user: string
  groups: string[]
  rights: readonly Right[]
}

export interface ResourceAttributes {
  verb: string
  group: string
  resource: string
  subresource?: string
  namespace?: string
  name?: string
}

const EVERYTHING: readonly Right[] = [{ verb: '*', group: '*', resource: '*' }]
const READ_ONLY: readonly Right[] = ['get', 'list', 'watch'].map((verb) => ({ verb, group: '*', resource: '*' }))

export const ANONYMOUS: Identity = { user: 'system:anonymous', groups: ['system:unauthenticated'], rights: [] }

const PUBLIC_PATHS = new Set(['/version', '/healthz', '/livez', '/readyz'])
const DISCOVERY_PATHS = /^\/(api|apis|openapi)(\/|$)/

/** Real tokens are opaque strings of this length and alphabet or longer (JWTs). */
const MAX_AUTHORIZATION_LENGTH = 8192

export function createAuthority() {
  const tokens = new Map<string, Identity>()
  let issued = 0

  function issue(user: string, rights: readonly Right[]): string {
    const token = `standin.${randomBytes(24).toString('base64url')}`
    tokens.set(token, { user, groups: ['system:authenticated'], rights })
    return token
  }

  const clientCertIdentity: Identity = {
    user: CLIENT_CERT_USER,
    groups: [CLIENT_CERT_GROUP, 'system:authenticated'],
    rights: EVERYTHING,
  }

  return {
    adminToken: issue('admin', EVERYTHING),
    readOnlyToken: issue('reader', READ_ONLY),

    tokenWith(rights: Right[]): string {
      return issue(`limited-${++issued}`, rights.map((r) => ({ ...r })))
    },

    /**
     * The caller of a request, ANONYMOUS when it brings no credentials, or null when it brings
     * credentials this cluster does not know (a 401). A client certificate counts only when it
     * chains to the stand-in CA (the TLS layer asks for one but leaves the judgement here).
     */
    identify(authorization: string | undefined, socket: TLSSocket): Identity | null {
      if (authorization !== undefined) {
        if (authorization.length > MAX_AUTHORIZATION_LENGTH) return null
        const m = /^Bearer\s+(\S+)$/i.exec(authorization)
        return (m && tokens.get(m[1]!)) ?? null
      }
      const peer = socket.getPeerCertificate()
      if (peer && Object.keys(peer).length > 0) return socket.authorized ? clientCertIdentity : null
      return ANONYMOUS
    },
  }
}

export type Authority = ReturnType<typeof createAuthority>

function matches(pattern: string | undefined, value: string): boolean {
  return pattern === undefined || pattern === '*' || pattern === value
}

/** system:basic-user: every authenticated user may ask what they themselves may do. */
const SELF_REVIEWS = new Set(['selfsubjectaccessreviews', 'selfsubjectrulesreviews'])

export function mayAccess(identity: Identity, a: ResourceAttributes): boolean {
  if (identity !== ANONYMOUS && a.verb === 'create' && a.group === 'authorization.k8s.io' && SELF_REVIEWS.has(a.resource)) return true
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource
  return identity.rights.some((r) => matches(r.verb, a.verb) && matches(r.group, a.group) && matches(r.resource, resource))
}

export function mayGetPath(identity: Identity, path: string): boolean {
  if (PUBLIC_PATHS.has(path)) return true
  if (identity === ANONYMOUS) return false
  return DISCOVERY_PATHS.test(path) || identity.rights === EVERYTHING
}
