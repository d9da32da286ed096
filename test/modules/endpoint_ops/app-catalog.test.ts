import { randomUUID } from 'node:crypto'
import { eq, inArray } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAllowlistService } from '../../../src/modules/endpoint_ops/app-allowlist-service.js'
import { appTemplates } from '../../../src/modules/endpoint_ops/app-tables.js'
import { SEEDED_APP_TEMPLATES } from '../../../src/modules/endpoint_ops/app-template-seeds.js'
import { createTemplateService } from '../../../src/modules/endpoint_ops/app-template-service.js'
import { createAppValidator, DEFAULT_ALLOWED_IMPORTS, type AppValidator } from '../../../src/modules/endpoint_ops/apps/validate.js'
import { buildTestApp } from '../../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../../helpers/auth.js'

/**
 * App templates and import allow-lists over HTTP: who sees and changes what, what the code check
 * refuses, and that seeded templates are written once. Users of tenant A (admin, two developers,
 * a viewer), B's admin, and a superuser.
 */
let app: FastifyInstance
let validator: AppValidator
let admin: SeededUser
let dev1: SeededUser
let dev2: SeededUser
let viewer: SeededUser
let otherAdmin: SeededUser
let otherViewer: SeededUser
let superuser: SeededUser

const HELLO = 'from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get("/")\ndef hello():\n    return {"hello": "world"}\n'

type Who = SeededUser
const as = (who: Who) => bearer(who.accessToken)
async function call(who: Who, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method, url, headers: { ...as(who), ...headers }, ...(payload === undefined ? {} : { payload: payload as object }) })
}
async function listTemplates(who: Who, query = 'limit=100') {
  const answer = await call(who, 'GET', `/v1/app-templates?${query}`)
  expect(answer.statusCode, answer.body).toBe(200)
  return answer.json() as { items: Array<{ id: string; name: string; scope: string; seeded: boolean; mine: boolean; paths: string[] }>; total: number }
}
async function createTemplate(who: Who, body: Record<string, unknown>) {
  const answer = await call(who, 'POST', '/v1/app-templates', body)
  expect(answer.statusCode, answer.body).toBe(201)
  return answer.json() as { id: string; name: string; scope: string; entry: string; mine: boolean; files: Array<{ path: string; content: string }> }
}

beforeAll(async () => {
  app = await buildTestApp()
  validator = createAppValidator()
  const realmA = uniqueRealm('tpla')
  const realmB = uniqueRealm('tplb')
  ;[admin, dev1, dev2, viewer, otherAdmin, otherViewer, superuser] = await Promise.all([
    seedUser(app, { realm: realmA, role: 'admin' }),
    seedUser(app, { realm: realmA, role: 'developer' }),
    seedUser(app, { realm: realmA, role: 'developer' }),
    seedUser(app, { realm: realmA, role: 'viewer' }),
    seedUser(app, { realm: realmB, role: 'admin' }),
    seedUser(app, { realm: realmB, role: 'viewer' }),
    seedUser(app, { realm: uniqueRealm('tplsu'), role: 'super_admin', isSuperuser: true }),
  ])
}, 60_000)

afterAll(async () => {
  await validator?.close()
  await app?.close()
})

describe('seeded templates', () => {
  it('passes the validator with the default allow-list, each with the entry it is stored with', async () => {
    expect(SEEDED_APP_TEMPLATES.map((t) => t.seedKey)).toEqual(['hello-json-api', 'form-and-static-page', 'crud-pydantic'])
    for (const template of SEEDED_APP_TEMPLATES) {
      const result = await validator.validate(template.files, DEFAULT_ALLOWED_IMPORTS)
      expect(result, template.seedKey).toMatchObject({ ok: true, entry: template.entry })
    }
  }, 60_000)

  it('shows every tenant the global templates, once each, however many times the app started', async () => {
    // A second start on the same database: seeds are inserted when missing, never twice.
    const again = await buildTestApp()
    await again.close()
    for (const who of [viewer, otherViewer]) {
      const globals = (await listTemplates(who, 'scope=global&limit=100')).items.filter((t) => t.seeded)
      for (const seed of SEEDED_APP_TEMPLATES) expect(globals.filter((t) => t.name === seed.name), seed.name).toHaveLength(1)
    }
    const hello = (await listTemplates(viewer, 'scope=global&limit=100')).items.find((t) => t.name === 'Hello JSON API')!
    const got = await call(viewer, 'GET', `/v1/app-templates/${hello.id}`)
    expect(got.statusCode).toBe(200)
    expect(got.json()).toMatchObject({ scope: 'global', seeded: true, ownerId: null, entry: 'main.py', files: [{ path: 'main.py' }] })
  }, 60_000)

  it("keeps a superuser's edit of a seeded template across a restart", async () => {
    const crud = (await listTemplates(superuser, 'scope=global&limit=100')).items.find((t) => t.name === 'CRUD with pydantic models')!
    const original = (await call(superuser, 'GET', `/v1/app-templates/${crud.id}`)).json().description as string
    const edited = await call(superuser, 'PATCH', `/v1/app-templates/${crud.id}`, { description: 'Edited by the operator' })
    expect(edited.statusCode, edited.body).toBe(200)
    try {
      const restarted = await buildTestApp()
      await restarted.close()
      expect((await call(viewer, 'GET', `/v1/app-templates/${crud.id}`)).json().description).toBe('Edited by the operator')
    } finally {
      await call(superuser, 'PATCH', `/v1/app-templates/${crud.id}`, { description: original })
    }
  }, 60_000)

  it('does not bring back a deleted seed, nor overwrite an edited one, when seeding again', async () => {
    const db = app.platform.database.db
    const keys = [`test-${randomUUID()}`, `test-${randomUUID()}`]
    const seeds = keys.map((seedKey, i) => ({ seedKey, name: `Seed ${i}`, description: 'seeded', entry: 'main.py', files: [{ path: 'main.py', content: HELLO }] }))
    const service = createTemplateService({ db, validator, allowList: createAllowlistService({ db }), log: pino({ level: 'silent' }), seeds })
    try {
      expect(await service.seed()).toBe(2)
      const rows = await db.select().from(appTemplates).where(inArray(appTemplates.seedKey, keys))
      const [first, second] = keys.map((k) => rows.find((r) => r.seedKey === k)!)
      const edit = await call(superuser, 'PATCH', `/v1/app-templates/${first!.id}`, { name: 'Renamed seed' })
      expect(edit.statusCode, edit.body).toBe(200)
      expect((await call(superuser, 'DELETE', `/v1/app-templates/${second!.id}`)).statusCode).toBe(204)

      expect(await service.seed()).toBe(0)
      expect((await call(viewer, 'GET', `/v1/app-templates/${first!.id}`)).json().name).toBe('Renamed seed')
      expect((await call(viewer, 'GET', `/v1/app-templates/${second!.id}`)).statusCode).toBe(404)
      expect((await listTemplates(viewer, 'scope=global&limit=100')).items.map((t) => t.id)).not.toContain(second!.id)
    } finally {
      await db.delete(appTemplates).where(inArray(appTemplates.seedKey, keys))
    }
  }, 60_000)
})

describe('a user\'s templates', () => {
  it('saves valid code as the caller\'s own template, single file or files in folders', async () => {
    const single = await createTemplate(dev1, { name: 'Mine', description: 'one file', code: HELLO })
    expect(single).toMatchObject({ scope: 'tenant', mine: true, entry: 'main.py', files: [{ path: 'main.py', content: HELLO }] })
    const pkg = await createTemplate(dev1, {
      name: 'Package',
      files: [
        { path: 'main.py', content: 'from fastapi import FastAPI\nfrom shop.models import Item\n\napp = FastAPI()\n' },
        { path: 'shop/__init__.py', content: '' },
        { path: 'shop/models.py', content: 'from pydantic import BaseModel\n\n\nclass Item(BaseModel):\n    name: str\n' },
        { path: 'static/style.css', content: 'body { color: #222; }\n' },
      ],
    })
    expect(pkg.entry).toBe('main.py')
    const listed = await listTemplates(dev1, 'scope=tenant')
    expect(listed.items.map((t) => t.id)).toEqual(expect.arrayContaining([single.id, pkg.id]))
    expect(listed.items.find((t) => t.id === pkg.id)!.paths).toEqual(['main.py', 'shop/__init__.py', 'shop/models.py', 'static/style.css'])
    expect(listed.items.every((t) => t.scope === 'tenant')).toBe(true)
  }, 60_000)

  it('refuses code with problems: 400 CODE_INVALID listing every one, and stores nothing', async () => {
    const before = (await listTemplates(dev1, 'scope=tenant')).total
    const code = 'import os\nfrom fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get("/")\ndef run(q: str):\n    return eval(q)\n'
    const answer = await call(dev1, 'POST', '/v1/app-templates', { name: 'Bad', code })
    expect(answer.statusCode).toBe(400)
    const body = answer.json()
    expect(body.errorCode).toBe('CODE_INVALID')
    expect(body.details.problems.map((p: { rule: string; line: number }) => `${p.rule}@${p.line}`)).toEqual(['import@1', 'forbidden-call@9'])
    expect(body.details.fields.every((f: { field: string }) => f.field === 'body.code')).toBe(true)
    expect((await listTemplates(dev1, 'scope=tenant')).total).toBe(before)
  }, 60_000)

  it('refuses both code and files, neither, an unknown field, and too many files, with 400', async () => {
    const both = await call(dev1, 'POST', '/v1/app-templates', { name: 'x', code: HELLO, files: [{ path: 'main.py', content: HELLO }] })
    expect(both.statusCode).toBe(400)
    expect(both.json().errorCode).toBe('VALIDATION_ERROR')
    expect((await call(dev1, 'POST', '/v1/app-templates', { name: 'x' })).json().errorCode).toBe('VALIDATION_ERROR')
    expect((await call(dev1, 'POST', '/v1/app-templates', { name: 'x', code: HELLO, owner: 'me' })).statusCode).toBe(400)
    const many = Array.from({ length: 51 }, (_, i) => ({ path: `f${i}.txt`, content: '' }))
    expect((await call(dev1, 'POST', '/v1/app-templates', { name: 'x', files: many })).statusCode).toBe(400)
  }, 30_000)

  it("keeps a user's template from other users of the tenant, shows it to the tenant's admins, and from other tenants entirely", async () => {
    const own = await createTemplate(dev1, { name: `Private ${randomUUID().slice(0, 6)}`, code: HELLO })
    // Another developer: not listed, 404 to read, change or delete.
    expect((await listTemplates(dev2)).items.map((t) => t.id)).not.toContain(own.id)
    expect((await call(dev2, 'GET', `/v1/app-templates/${own.id}`)).statusCode).toBe(404)
    expect((await call(dev2, 'PATCH', `/v1/app-templates/${own.id}`, { name: 'taken' })).statusCode).toBe(404)
    const refused = await call(dev2, 'DELETE', `/v1/app-templates/${own.id}`)
    expect(refused.statusCode).toBe(404)
    expect(refused.json().errorCode).toBe('APP_TEMPLATE_NOT_FOUND')
    // Another tenant's admin: the same, as for an id that never existed.
    for (const method of ['GET', 'DELETE'] as const) {
      const theirs = await call(otherAdmin, method, `/v1/app-templates/${own.id}`)
      const madeUp = await call(otherAdmin, method, `/v1/app-templates/${randomUUID()}`)
      expect([theirs.statusCode, theirs.json().errorCode]).toEqual([madeUp.statusCode, madeUp.json().errorCode])
      expect(theirs.statusCode).toBe(404)
    }
    expect((await listTemplates(otherAdmin)).items.map((t) => t.id)).not.toContain(own.id)
    // The tenant's admin sees it (not as theirs) and may delete it.
    const seen = (await listTemplates(admin)).items.find((t) => t.id === own.id)
    expect(seen).toMatchObject({ mine: false, scope: 'tenant' })
    expect((await call(admin, 'GET', `/v1/app-templates/${own.id}`)).statusCode).toBe(200)
    expect((await call(admin, 'DELETE', `/v1/app-templates/${own.id}`)).statusCode).toBe(204)
    expect((await call(dev1, 'GET', `/v1/app-templates/${own.id}`)).statusCode).toBe(404)
  }, 60_000)

  it('lets the maker change and delete their own; a viewer may read templates but not write any', async () => {
    const own = await createTemplate(dev1, { name: 'Editable', code: HELLO })
    const read = await call(dev1, 'GET', `/v1/app-templates/${own.id}`)
    const etag = read.headers.etag as string
    expect(etag).toBeTruthy()
    const changed = await call(dev1, 'PATCH', `/v1/app-templates/${own.id}`, { code: HELLO.replace('world', 'there') }, { 'if-match': etag })
    expect(changed.statusCode, changed.body).toBe(200)
    expect(changed.json().files[0].content).toContain('there')
    const stale = await call(dev1, 'PATCH', `/v1/app-templates/${own.id}`, { name: 'Late' }, { 'if-match': etag })
    expect(stale.statusCode).toBe(412)
    const invalid = await call(dev1, 'PATCH', `/v1/app-templates/${own.id}`, { code: 'app = 1\n' })
    expect([invalid.statusCode, invalid.json().errorCode]).toEqual([400, 'CODE_INVALID'])
    expect((await call(dev1, 'PATCH', `/v1/app-templates/${own.id}`, {})).statusCode).toBe(400)

    expect((await listTemplates(viewer)).items.length).toBeGreaterThanOrEqual(3)
    for (const [method, url, body] of [
      ['POST', '/v1/app-templates', { name: 'v', code: HELLO }],
      ['PATCH', `/v1/app-templates/${own.id}`, { name: 'v' }],
      ['DELETE', `/v1/app-templates/${own.id}`, undefined],
    ] as const) {
      const answer = await call(viewer, method, url, body)
      expect(answer.statusCode, `${method} ${url}`).toBe(403)
      expect(answer.json().errorCode).toBe('FORBIDDEN')
    }
    expect((await call(dev1, 'DELETE', `/v1/app-templates/${own.id}`)).statusCode).toBe(204)
    expect((await call(dev1, 'DELETE', `/v1/app-templates/${own.id}`)).statusCode).toBe(404)
  }, 60_000)
})

describe('global templates', () => {
  it('are changed by superusers only: 403 for a tenant admin, who may still use them', async () => {
    const hello = (await listTemplates(admin, 'scope=global&limit=100')).items.find((t) => t.name === 'Hello JSON API')!
    for (const [method, body] of [['DELETE', undefined], ['PATCH', { name: 'Mine now' }]] as const) {
      const answer = await call(admin, method, `/v1/app-templates/${hello.id}`, body)
      expect(answer.statusCode).toBe(403)
      expect(answer.json().errorCode).toBe('APP_TEMPLATE_GLOBAL_NEEDS_SUPERUSER')
    }
    const global = await call(admin, 'POST', '/v1/app-templates', { name: 'Everyone', code: HELLO, scope: 'global' })
    expect([global.statusCode, global.json().errorCode]).toEqual([403, 'APP_TEMPLATE_GLOBAL_NEEDS_SUPERUSER'])

    const made = await createTemplate(superuser, { name: `Global ${randomUUID().slice(0, 6)}`, code: HELLO, scope: 'global' })
    expect(made).toMatchObject({ scope: 'global' })
    expect((await listTemplates(otherViewer, 'scope=global&limit=100')).items.map((t) => t.id)).toContain(made.id)
    expect((await call(superuser, 'DELETE', `/v1/app-templates/${made.id}`)).statusCode).toBe(204)
    expect((await listTemplates(otherViewer, 'scope=global&limit=100')).items.map((t) => t.id)).not.toContain(made.id)
    // Not seeded: deleting it removes the row.
    expect(await app.platform.database.db.select().from(appTemplates).where(eq(appTemplates.id, made.id))).toEqual([])
  }, 60_000)
})

describe('import allow-list', () => {
  it('starts from the built-in default and is replaced by admins only', async () => {
    const first = await call(viewer, 'GET', '/v1/app-import-allowlist')
    expect(first.statusCode).toBe(200)
    expect(first.json()).toMatchObject({ entries: [...DEFAULT_ALLOWED_IMPORTS], version: 0 })
    expect(['default', 'global']).toContain(first.json().scope)

    const entries = [...DEFAULT_ALLOWED_IMPORTS, 'numpy.*']
    const viewerPut = await call(viewer, 'PUT', '/v1/app-import-allowlist', { entries })
    expect([viewerPut.statusCode, viewerPut.json().errorCode]).toEqual([403, 'FORBIDDEN'])
    const devPut = await call(dev1, 'PUT', '/v1/app-import-allowlist', { entries })
    expect([devPut.statusCode, devPut.json().errorCode]).toEqual([403, 'APP_ALLOWLIST_ADMIN_REQUIRED'])
    const globalPut = await call(admin, 'PUT', '/v1/app-import-allowlist', { entries, scope: 'global' })
    expect([globalPut.statusCode, globalPut.json().errorCode]).toEqual([403, 'APP_ALLOWLIST_GLOBAL_NEEDS_SUPERUSER'])

    const stale = await call(admin, 'PUT', '/v1/app-import-allowlist', { entries }, { 'if-match': 'W/"9.zz"' })
    expect(stale.statusCode).toBe(412)
    const put = await call(admin, 'PUT', '/v1/app-import-allowlist', { entries }, { 'if-match': first.headers.etag as string })
    expect(put.statusCode, put.body).toBe(200)
    expect(put.json()).toMatchObject({ scope: 'tenant', version: 1, updatedBy: admin.id })
    expect(put.json().entries).toContain('numpy.*')
    expect((await call(viewer, 'GET', '/v1/app-import-allowlist')).json()).toMatchObject({ scope: 'tenant', version: 1 })

    // Another tenant keeps its own (here: the inherited) list.
    const other = (await call(otherViewer, 'GET', '/v1/app-import-allowlist')).json()
    expect(other.entries).not.toContain('numpy.*')
    expect(other.scope).not.toBe('tenant')

    // What the lifecycle asks for: the tenant's list.
    const lists = createAllowlistService({ db: app.platform.database.db })
    expect(await lists.allowListFor(admin.tenantId)).toContain('numpy.*')
    expect(await lists.allowListFor(otherAdmin.tenantId)).not.toContain('numpy.*')
  }, 30_000)

  it('checks templates against the tenant\'s own list', async () => {
    const code = 'import numpy\nfrom fastapi import FastAPI\n\napp = FastAPI()\n'
    // Tenant A allows numpy (previous test); tenant B does not.
    expect((await call(dev1, 'POST', '/v1/app-templates', { name: 'np', code })).statusCode).toBe(201)
    const refused = await call(otherAdmin, 'POST', '/v1/app-templates', { name: 'np', code })
    expect([refused.statusCode, refused.json().errorCode]).toEqual([400, 'CODE_INVALID'])
    expect(refused.json().details.problems[0]).toMatchObject({ rule: 'import', line: 1 })
  }, 60_000)

  it('refuses entries that are not module names, and a list without fastapi, naming the entry', async () => {
    const bad = await call(admin, 'PUT', '/v1/app-import-allowlist', { entries: ['fastapi.*', 'os; rm -rf', 'json'] })
    expect(bad.statusCode).toBe(400)
    expect(bad.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR', details: { fields: [{ field: 'body.entries.1' }] } })
    const noFastapi = await call(admin, 'PUT', '/v1/app-import-allowlist', { entries: ['json'] })
    expect(noFastapi.statusCode).toBe(400)
    expect(noFastapi.json().message).toMatch(/fastapi/)
    expect((await call(admin, 'PUT', '/v1/app-import-allowlist', { entries: [] })).statusCode).toBe(400)
    expect((await call(viewer, 'GET', '/v1/app-import-allowlist')).json().version).toBe(1)
  }, 30_000)

  it("lets a superuser set the global list, which tenants without their own inherit and a tenant's own list overrides", async () => {
    const before = (await call(superuser, 'GET', '/v1/app-import-allowlist?scope=global')).json()
    const entries = [...DEFAULT_ALLOWED_IMPORTS, 'xml.etree.ElementTree']
    const put = await call(superuser, 'PUT', '/v1/app-import-allowlist', { entries, scope: 'global' })
    expect(put.statusCode, put.body).toBe(200)
    try {
      expect((await call(otherViewer, 'GET', '/v1/app-import-allowlist')).json()).toMatchObject({ scope: 'global' })
      expect((await call(otherViewer, 'GET', '/v1/app-import-allowlist')).json().entries).toContain('xml.etree.ElementTree')
      const own = (await call(viewer, 'GET', '/v1/app-import-allowlist')).json()
      expect(own.scope).toBe('tenant')
      expect(own.entries).not.toContain('xml.etree.ElementTree')
    } finally {
      // Other test files share the database: leave the global list as it was found.
      await call(superuser, 'PUT', '/v1/app-import-allowlist', { entries: before.entries, scope: 'global' })
    }
  }, 30_000)
})
