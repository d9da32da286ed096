import type { Principal } from '../../platform/auth/principal.js'
import { GrantNotAllowedError, RankTooLowError, RoleNotAllowedError } from './errors.js'
import { ROLE_RANK } from './permissions.js'

/**
 * Nobody acts above their own rank: the one rule every route that touches a user, a role, a key or
 * a grant goes through. Rank is the superuser flag first, then the role's place in ROLE_RANK;
 * a role outside ROLE_RANK (`none`, or one an operator made up) ranks lowest.
 *
 * Rank compares strictly by ROLE_RANK, job roles included: devops ranks above developer (it is
 * listed first), so a devops with user:manage may act on developers and not the other way round.
 * Two users of the same role are peers: they may act on each other for ordinary changes, but an
 * action that takes over an account (a credential reset) needs strictly higher rank.
 */
export interface Ranked {
  role: string
  isSuperuser: boolean
}

type Actor = Ranked & Pick<Principal, 'permissions'>

const SUPERUSER_RANK = ROLE_RANK.length + 1

/** Higher is stronger: the superuser flag above every role; unknown roles 0. */
export function rankOf(who: Ranked): number {
  if (who.isSuperuser) return SUPERUSER_RANK
  const at = (ROLE_RANK as readonly string[]).indexOf(who.role)
  return at === -1 ? 0 : ROLE_RANK.length - at
}

/** Whether `actor` may act on `target`: equal or lower rank, or strictly lower when `strictly`. */
export function mayActOn(actor: Ranked, target: Ranked, options: { strictly?: boolean } = {}): boolean {
  // Spelled out although rankOf implies it: a superuser is out of reach of everyone else, whatever their role.
  if (target.isSuperuser && !actor.isSuperuser) return false
  const [mine, theirs] = [rankOf(actor), rankOf(target)]
  return options.strictly ? theirs < mine : theirs <= mine
}

/** Whether `actor` may hand out `role` (and, when asked, the superuser flag). */
export function mayGrantRole(actor: Ranked, role: string, isSuperuser = false): boolean {
  if (isSuperuser && !actor.isSuperuser) return false
  return rankOf({ role, isSuperuser: false }) <= rankOf(actor)
}

/** The permissions among `permissions` that `actor` does not hold. */
export function permissionsBeyond(actor: Pick<Principal, 'permissions'>, permissions: readonly string[]): string[] {
  return permissions.filter((p) => !actor.permissions.has(p))
}

/** 403 RANK_TOO_LOW unless the actor may act on the target. */
export function assertMayActOn(actor: Ranked, target: Ranked, options: { strictly?: boolean } = {}): void {
  if (mayActOn(actor, target, options)) return
  throw new RankTooLowError(
    options.strictly && !(target.isSuperuser && !actor.isSuperuser) && rankOf(target) === rankOf(actor)
      ? 'this action needs a rank strictly above the user\'s: a peer cannot do it'
      : undefined,
  )
}

/**
 * 403 ROLE_NOT_ALLOWED for a role above the actor's rank or the superuser flag from a
 * non-superuser; 403 GRANT_NOT_ALLOWED for permissions the actor does not hold.
 */
export function assertMayGrant(actor: Actor, grant: { role?: string; isSuperuser?: boolean; permissions?: readonly string[] }): void {
  if (grant.role !== undefined && !mayGrantRole(actor, grant.role, grant.isSuperuser)) throw new RoleNotAllowedError()
  if (grant.isSuperuser && !actor.isSuperuser) throw new RoleNotAllowedError('only a superuser may make a superuser')
  const beyond = permissionsBeyond(actor, grant.permissions ?? [])
  if (beyond.length > 0) throw new GrantNotAllowedError(beyond)
}
