import { ValidationError } from '../errors.js'

export interface PageRequest {
  page: number
  limit: number
  offset: number
}

export interface SortRequest<F extends string> {
  field: F
  direction: 'asc' | 'desc'
}

export interface PageResult<T> {
  items: T[]
  total: number
  /** Every list says whether `total` is exact; lists that cap their count (users) set false past the cap. */
  totalExact: boolean
  page: number
  limit: number
}

export function pageRequest(query: { page?: number; limit?: number }): PageRequest {
  const page = query.page ?? 1
  const limit = query.limit ?? 20
  return { page, limit, offset: (page - 1) * limit }
}

/**
 * Parses `sort=field:asc|desc` against an allow-list, so only indexed orderings are ever run.
 * An unknown field is a 400 naming the allowed ones.
 */
export function parseSort<F extends string>(
  raw: string | undefined,
  allowed: readonly F[],
  fallback: SortRequest<F>,
): SortRequest<F> {
  if (!raw) return fallback
  const [field, direction = 'asc'] = raw.split(':')
  if (!allowed.includes(field as F) || (direction !== 'asc' && direction !== 'desc')) {
    throw new ValidationError(`sort must be one of ${allowed.map((f) => `${f}:asc|desc`).join(', ')}`, [
      { field: 'querystring.sort', message: `unknown sort "${raw}"` },
    ])
  }
  return { field: field as F, direction }
}

/** A page whose total was counted in full. */
export function pageResult<T>(items: T[], total: number, page: PageRequest): PageResult<T> {
  return { items, total, totalExact: true, page: page.page, limit: page.limit }
}
