import type { Principal } from '../../platform/auth/principal.js'
import { rankOf } from '../auth/rank.js'

const ADMIN_RANK = rankOf({ role: 'admin', isSuperuser: false })

/**
 * Whether the caller acts for the tenant as a whole: the admin role or one ranked above it, or a
 * superuser (auth's ROLE_RANK). Such a caller sees and manages every user's apps and templates of
 * the tenant and its import allow-list; anyone else only their own.
 */
export function hasAdminRank(principal: Pick<Principal, 'role' | 'isSuperuser'>): boolean {
  return rankOf(principal) >= ADMIN_RANK
}

/** Who owns what the caller creates: the user behind a token or an API key, else the principal itself. */
export function ownerOf(principal: Pick<Principal, 'id' | 'userId'>): string {
  return principal.userId ?? principal.id
}
