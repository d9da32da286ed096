import { createHash } from 'node:crypto'

const HASH_LENGTH = 8

/** A short, stable hash of an id, in characters valid in DNS names and label values. */
export function shortHash(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, HASH_LENGTH)
}

/** Lowercase, invalid runs turned into one '-', no '-' at either end. */
function dnsSafe(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '')
}

/**
 * A DNS-1123 label (what Kubernetes wants for most object names) of at most `max` characters:
 * `<prefix>-<id>` when that fits and the id is already a valid part of a name, otherwise the
 * prefix cut short plus a hash of the id — still readable, still unique per id, always the same.
 */
export function dns1123Name(prefix: string, id: string, max = 63): string {
  if (!Number.isInteger(max) || max < HASH_LENGTH + 2 || max > 63) throw new Error('max must be between 10 and 63')
  const readable = dnsSafe(prefix.slice(0, 1_000))
  const idPart = dnsSafe(id.slice(0, 1_000))
  const full = readable ? `${readable}-${idPart}` : idPart
  if (idPart === id && idPart !== '' && full.length <= max) return full
  const room = max - HASH_LENGTH - 1
  const cut = readable.slice(0, room).replace(/-+$/, '')
  return cut ? `${cut}-${shortHash(id)}` : shortHash(id)
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

export function isDns1123Label(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name)
}
