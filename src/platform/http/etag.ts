import type { FastifyReply, FastifyRequest } from 'fastify'
import { PreconditionFailedError } from '../errors.js'

/**
 * A weak validator from the row's last change: any write moves updated_at (and, where the table
 * has one, the version). An ETag belongs to one URL, so the id is not part of it; nothing in it
 * is secret, so it is not hashed either (a hash per response showed in the read-by-id profile).
 */
export function etagOf(updatedAt: Date | string, version?: number): string {
  const ms = (updatedAt instanceof Date ? updatedAt : new Date(updatedAt)).getTime()
  return `W/"${version === undefined ? '' : `${version.toString(36)}.`}${ms.toString(36)}"`
}

/** The If-Match header's tags, or undefined when the caller sent none. */
export function ifMatch(request: FastifyRequest): string[] | undefined {
  const header = request.headers['if-match']
  if (header === undefined || header === '') return undefined
  return String(header)
    .split(',')
    .map((tag) => tag.trim())
    .filter(Boolean)
}

/** Throws 412 when the caller's If-Match names none of the current tags (comparison is weak, as for W/ tags). */
export function assertIfMatch(expected: string[] | undefined, current: string): void {
  if (!expected) return
  if (expected.includes('*')) return
  const bare = (tag: string) => tag.replace(/^W\//, '')
  if (!expected.some((tag) => bare(tag) === bare(current))) throw new PreconditionFailedError()
}

export function setEtag(reply: FastifyReply, etag: string): void {
  reply.header('etag', etag)
}
