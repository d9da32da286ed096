import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Principal } from '../../platform/auth/principal.js'
import type { Database } from '../../platform/db/client.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { pageRequest, pageResult, parseSort } from '../../platform/http/pagination.js'
import { hasAdminRank, ownerOf } from './app-access.js'
import type { AllowlistService } from './app-allowlist-service.js'
import {
  APP_TEMPLATE_SORT_FIELDS,
  deleteTemplate,
  findVisibleTemplate,
  insertMissingSeeds,
  insertTemplate,
  listTemplates,
  type TemplateViewer,
  updateTemplate,
} from './app-template-crud.js'
import { appTemplateNotFound, codeOrFiles, globalTemplateNeedsSuperuser, noTemplateChange } from './app-template-errors.js'
import { SEEDED_APP_TEMPLATES, type SeededAppTemplate } from './app-template-seeds.js'
import type { AppTemplateRow } from './app-tables.js'
import { appFilesFromCode, type AppFile, type AppValidator, requireValidApp } from './apps/validate.js'

export interface TemplateInput {
  name: string
  description?: string
  code?: string
  files?: AppFile[]
  scope?: 'global' | 'tenant'
}

export type TemplatePatch = Partial<Omit<TemplateInput, 'scope'>>

export interface TemplateView {
  id: string
  scope: 'global' | 'tenant'
  ownerId: string | null
  mine: boolean
  seeded: boolean
  name: string
  description: string
  entry: string
  files: AppFile[]
  createdAt: string
  updatedAt: string
}

const viewerOf = (principal: Principal): TemplateViewer => ({
  tenantId: principal.tenantId,
  ownerId: ownerOf(principal),
  allOfTenant: hasAdminRank(principal),
})

/**
 * App templates: the global ones every tenant sees (seeded once, changed by superusers only) and
 * the tenant's own, each visible to the user who made it and to the tenant's admins. A template's
 * code is checked like an app's, against the allow-list of the scope it is saved in.
 */
export function createTemplateService(deps: { db: Database; validator: AppValidator; allowList: AllowlistService; log: Pick<Logger, 'info'>; seeds?: readonly SeededAppTemplate[] }) {
  const { db, validator, allowList } = deps

  function view(row: AppTemplateRow, principal: Principal): TemplateView {
    return {
      id: row.id,
      scope: row.tenantId === null ? 'global' : 'tenant',
      ownerId: row.ownerId,
      mine: row.ownerId !== null && row.ownerId === ownerOf(principal),
      seeded: row.seedKey !== null,
      name: row.name,
      description: row.description,
      entry: row.entry,
      files: row.files,
      createdAt: row.createdAt.toISOString(),
      updatedAt: row.updatedAt.toISOString(),
    }
  }

  /** May the caller change this template (which they can see)? Global: superusers; the tenant's: its maker or an admin. */
  function assertMayChange(principal: Principal, row: AppTemplateRow, action: string): void {
    if (row.tenantId === null) {
      if (!principal.isSuperuser) throw globalTemplateNeedsSuperuser(action)
      return
    }
    // Visibility already limits a caller without admin rank to their own templates.
    if (!hasAdminRank(principal) && row.ownerId !== ownerOf(principal)) throw appTemplateNotFound()
  }

  async function checkedFiles(input: { code?: string; files?: AppFile[] }, global: boolean, principal: Principal) {
    if ((input.code === undefined) === (input.files === undefined)) throw codeOrFiles()
    const files = input.code !== undefined ? appFilesFromCode(input.code) : input.files!.map((f) => ({ path: f.path, content: f.content }))
    const allowed = global ? await allowList.globalList() : await allowList.allowListFor(principal.tenantId)
    // Checked before any transaction: the validator may take a moment.
    return requireValidApp(await validator.validate(files, allowed), input.code !== undefined ? 'body.code' : 'body.files')
  }

  async function list(principal: Principal, query: { page?: number; limit?: number; sort?: string; scope?: 'global' | 'tenant' }) {
    const page = pageRequest(query)
    const sort = parseSort(query.sort, APP_TEMPLATE_SORT_FIELDS, { field: 'name', direction: 'asc' })
    const { rows, total } = await listTemplates(db, viewerOf(principal), { scope: query.scope }, sort, page)
    return pageResult(
      rows.map((row) => view(row, principal)),
      total,
      page,
    )
  }

  async function get(principal: Principal, id: string): Promise<{ template: TemplateView; etag: string }> {
    const row = await findVisibleTemplate(db, viewerOf(principal), id)
    if (!row) throw appTemplateNotFound()
    return { template: view(row, principal), etag: etagOf(row.updatedAt, row.version) }
  }

  async function create(principal: Principal, input: TemplateInput): Promise<{ template: TemplateView; etag: string }> {
    const global = input.scope === 'global'
    if (global && !principal.isSuperuser) throw globalTemplateNeedsSuperuser('add')
    const { entry, files } = await checkedFiles(input, global, principal)
    const row = await insertTemplate(db, {
      id: randomUUID(),
      tenantId: global ? null : principal.tenantId,
      ownerId: global ? null : ownerOf(principal),
      name: input.name,
      description: input.description ?? '',
      files,
      entry,
      createdBy: ownerOf(principal),
    })
    return { template: view(row, principal), etag: etagOf(row.updatedAt, row.version) }
  }

  async function update(principal: Principal, id: string, patch: TemplatePatch, expected: string[] | undefined) {
    const { code, files, ...rest } = patch
    if (Object.values(patch).every((v) => v === undefined)) throw noTemplateChange()
    const found = await findVisibleTemplate(db, viewerOf(principal), id)
    if (!found) throw appTemplateNotFound()
    assertMayChange(principal, found, 'change')
    const checked = code !== undefined || files !== undefined ? await checkedFiles({ code, files }, found.tenantId === null, principal) : undefined
    const row = await db.transaction(async (tx) => {
      const current = await findVisibleTemplate(tx, viewerOf(principal), id, true)
      if (!current) throw appTemplateNotFound()
      assertIfMatch(expected, etagOf(current.updatedAt, current.version))
      return updateTemplate(tx, id, {
        ...(rest.name !== undefined ? { name: rest.name } : {}),
        ...(rest.description !== undefined ? { description: rest.description } : {}),
        ...(checked ? { files: checked.files, entry: checked.entry } : {}),
      })
    })
    return { template: view(row, principal), etag: etagOf(row.updatedAt, row.version) }
  }

  async function remove(principal: Principal, id: string): Promise<void> {
    await db.transaction(async (tx) => {
      const row = await findVisibleTemplate(tx, viewerOf(principal), id, true)
      if (!row) throw appTemplateNotFound()
      assertMayChange(principal, row, 'delete')
      await deleteTemplate(tx, row)
    })
  }

  /** Inserts the seeded templates that were never there; an edited or deleted one is left alone. */
  async function seed(): Promise<number> {
    const seeds = deps.seeds ?? SEEDED_APP_TEMPLATES
    const added = await insertMissingSeeds(
      db,
      seeds.map((s) => ({ id: randomUUID(), tenantId: null, ownerId: null, seedKey: s.seedKey, name: s.name, description: s.description, files: s.files, entry: s.entry })),
    )
    if (added > 0) deps.log.info({ added }, 'app templates seeded')
    return added
  }

  return { list, get, create, update, remove, seed }
}

export type TemplateService = ReturnType<typeof createTemplateService>
