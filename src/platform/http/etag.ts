import { createHash } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { PreconditionFailedError } from '../errors.js'

/** A weak validator from the row's identity and last change; any write moves updated_at. */
export function etagOf(id: string, updatedAt: Date | string, version?: number): string {
  const stamp = updatedAt instanceof Date ? updatedAt.toISOString() : updatedAt
  const digest = createHash('sha1').update(`${id}|${stamp}|${version ?? ''}`).digest('base64url').slice(0, 22)
  return `W/"${digest}"`
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
