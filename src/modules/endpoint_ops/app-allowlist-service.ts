import type { Principal } from '../../platform/auth/principal.js'
import type { Database } from '../../platform/db/client.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { hasAdminRank, ownerOf } from './app-access.js'
import { findAllowlist, findAllowlistsFor, saveAllowlist } from './app-allowlist-crud.js'
import { allowlistAdminRequired, globalAllowlistNeedsSuperuser, invalidAllowlistEntries } from './app-allowlist-errors.js'
import type { AppImportAllowlistRow } from './app-tables.js'
import { DEFAULT_ALLOWED_IMPORTS, isAllowListEntry } from './apps/allowlist.js'

export type AllowlistScope = 'tenant' | 'global'

export interface AllowlistView {
  scope: 'tenant' | 'global' | 'default'
  entries: string[]
  defaults: string[]
  version: number
  updatedBy: string | null
  updatedAt: string | null
}

/** Whether the list lets an app say `from fastapi import FastAPI`, which every app must. */
function allowsFastapi(entries: readonly string[]): boolean {
  return entries.includes('fastapi') || entries.includes('fastapi.*')
}

function view(row: AppImportAllowlistRow | undefined, scope: AllowlistView['scope']): AllowlistView {
  return {
    scope: row ? scope : 'default',
    entries: row ? [...row.entries] : [...DEFAULT_ALLOWED_IMPORTS],
    defaults: [...DEFAULT_ALLOWED_IMPORTS],
    version: row?.version ?? 0,
    updatedBy: row?.updatedBy ?? null,
    updatedAt: row?.updatedAt.toISOString() ?? null,
  }
}

/** The ETag of a list as read: the built-in default has one too, so a first PUT can be guarded. */
export const allowlistEtag = (v: AllowlistView) => etagOf(v.updatedAt ?? new Date(0), v.version)

/**
 * What a tenant's apps may import. A tenant's own list replaces the global one, which replaces the
 * built-in default (DEFAULT_ALLOWED_IMPORTS): lists are not merged, so an admin who narrows the
 * list knows exactly what is left.
 */
export function createAllowlistService(deps: { db: Database }) {
  const { db } = deps

  /** The list the validator checks a tenant's apps against. */
  async function allowListFor(tenantId: string): Promise<readonly string[]> {
    const rows = await findAllowlistsFor(db, tenantId)
    return (rows.tenant ?? rows.global)?.entries ?? DEFAULT_ALLOWED_IMPORTS
  }

  /** The global list (what tenants without their own inherit). */
  async function globalList(): Promise<readonly string[]> {
    return (await findAllowlist(db, null))?.entries ?? DEFAULT_ALLOWED_IMPORTS
  }

  async function read(principal: Principal, scope: AllowlistScope = 'tenant'): Promise<AllowlistView> {
    if (scope === 'global') return view(await findAllowlist(db, null), 'global')
    const rows = await findAllowlistsFor(db, principal.tenantId)
    return rows.tenant ? view(rows.tenant, 'tenant') : view(rows.global, 'global')
  }

  function checkEntries(entries: readonly string[]): string[] {
    const problems = entries.flatMap((entry, index) =>
      isAllowListEntry(entry) ? [] : [{ index, message: `"${entry.slice(0, 80)}" is not a module name (a.b.c) nor a package with everything below it (a.*)` }],
    )
    if (problems.length > 0) throw invalidAllowlistEntries(problems)
    const unique = [...new Set(entries)].sort()
    if (!allowsFastapi(unique)) {
      throw invalidAllowlistEntries([{ index: 0, message: 'the list must allow fastapi (or fastapi.*): every app imports FastAPI from it' }])
    }
    return unique
  }

  /**
   * Replaces the tenant's list (admin rank) or the global one (superusers). If-Match against the
   * list as read guards against two admins' edits crossing; the check and the write share a row lock.
   */
  async function replace(principal: Principal, input: { entries: string[]; scope?: AllowlistScope }, expected: string[] | undefined): Promise<AllowlistView> {
    const scope = input.scope ?? 'tenant'
    if (scope === 'global' && !principal.isSuperuser) throw globalAllowlistNeedsSuperuser()
    if (!hasAdminRank(principal)) throw allowlistAdminRequired()
    const entries = checkEntries(input.entries)
    const tenantId = scope === 'global' ? null : principal.tenantId
    return db.transaction(async (tx) => {
      const current = await findAllowlist(tx, tenantId, true)
      // Before the tenant's first list, what the caller read (and may send the ETag of) was the inherited one.
      const shown = current ? view(current, scope) : tenantId === null ? view(undefined, 'global') : view(await findAllowlist(tx, null), 'global')
      assertIfMatch(expected, allowlistEtag(shown))
      return view(await saveAllowlist(tx, tenantId, entries, ownerOf(principal)), scope)
    })
  }

  return { allowListFor, globalList, read, replace }
}

export type AllowlistService = ReturnType<typeof createAllowlistService>
