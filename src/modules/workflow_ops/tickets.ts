import { createHmac, timingSafeEqual } from 'node:crypto'
import type { SessionRef } from '../../platform/auth/principal.js'
import { UnauthenticatedError } from '../../platform/errors.js'

/**
 * Stream tickets: the credential of a progress stream opened by a browser's EventSource, which
 * cannot send an Authorization header. A ticket is an HMAC-signed statement "this user session may
 * read this stream until then", with a key derived from the vault for this purpose alone, so it
 * opens nothing else: the guard never takes it as a bearer token (it is no JWT and no API key), and
 * a ticket for one run does not open another run's stream or the tenant stream. Stateless, so any
 * replica checks it; rotating VAULT_KEYS ends outstanding tickets, which only costs a reconnect.
 */

/** How long a ticket opens its stream; an open stream is ended when its ticket expires. */
export const STREAM_TICKET_TTL_SECONDS = 60

const VERSION = 'st1'
const MAX_TICKET_LENGTH = 2048

/** What the ticket opens: one run's stream, or every run of the holder's tenant. */
export type TicketScope = { kind: 'run'; runId: string } | { kind: 'tenant' }

interface TicketClaims {
  /** `run:<id>` or `tenant` */
  scope: string
  userId: string
  tenantId: string
  tokenId?: string
  sessionId?: string
  /** The access token's expiry, ms. */
  tokenExpiresAt: number
  /** ms */
  issuedAt: number
  /** The access token's iat, ms: what a session cut-off is compared with. */
  tokenIssuedAt: number
  /** ms */
  expiresAt: number
}

export type TicketCheck = { status: 'valid'; holder: SessionRef; expiresAt: Date } | { status: 'expired' }

const scopeName = (scope: TicketScope) => (scope.kind === 'run' ? `run:${scope.runId}` : 'tenant')

export function createStreamTickets(options: { key: Buffer; ttlSeconds?: number; now?: () => number }) {
  const ttlMs = (options.ttlSeconds ?? STREAM_TICKET_TTL_SECONDS) * 1000
  const now = options.now ?? Date.now

  const sign = (payload: string) => createHmac('sha256', options.key).update(`${VERSION}.${payload}`).digest('base64url')

  return {
    /** A ticket for the session's holder, never outliving the access token it was asked with. */
    issue(holder: SessionRef, scope: TicketScope): { ticket: string; expiresAt: Date } {
      const issuedAt = now()
      const expiresAt = Math.min(issuedAt + ttlMs, holder.tokenExpiresAt.getTime())
      const claims: TicketClaims = {
        scope: scopeName(scope),
        userId: holder.userId,
        tenantId: holder.tenantId,
        ...(holder.tokenId ? { tokenId: holder.tokenId } : {}),
        ...(holder.sessionId ? { sessionId: holder.sessionId } : {}),
        tokenExpiresAt: holder.tokenExpiresAt.getTime(),
        issuedAt,
        tokenIssuedAt: holder.issuedAt.getTime(),
        expiresAt,
      }
      const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
      return { ticket: `${VERSION}.${payload}.${sign(payload)}`, expiresAt: new Date(expiresAt) }
    },

    /**
     * The ticket's holder when it was made here for this very scope and is still in its time;
     * `expired` when it was ours and has run out (the stream answers 204, not 401); anything else
     * (forged, altered, for another stream) is refused. The signature is checked before the expiry,
     * so "expired" is only ever said of a ticket this service issued.
     */
    check(ticket: string, scope: TicketScope): TicketCheck {
      const refused = () => new UnauthenticatedError('the stream ticket is not valid for this stream')
      if (ticket.length > MAX_TICKET_LENGTH) throw refused()
      const [version, payload, signature, extra] = ticket.split('.')
      if (version !== VERSION || !payload || !signature || extra !== undefined) throw refused()
      const expected = Buffer.from(sign(payload))
      const given = Buffer.from(signature)
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refused()
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TicketClaims
      if (claims.scope !== scopeName(scope)) throw refused()
      if (claims.expiresAt <= now()) return { status: 'expired' }
      return {
        status: 'valid',
        expiresAt: new Date(claims.expiresAt),
        holder: {
          userId: claims.userId,
          tenantId: claims.tenantId,
          ...(claims.tokenId ? { tokenId: claims.tokenId } : {}),
          ...(claims.sessionId ? { sessionId: claims.sessionId } : {}),
          tokenExpiresAt: new Date(claims.tokenExpiresAt),
          issuedAt: new Date(claims.tokenIssuedAt),
        },
      }
    },
  }
}

export type StreamTickets = ReturnType<typeof createStreamTickets>
