import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import Type from 'typebox'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Config } from '../../src/config.js'
import { registerOpenApi } from '../../src/platform/http/openapi.js'
import { StrictObject } from '../../src/platform/http/schemas.js'
import { buildTestApp } from '../helpers/app.js'
import { bearer, type SeededUser, seedUser, uniqueRealm } from '../helpers/auth.js'
import { waitFor } from '../helpers/wait.js'

/**
 * docs/api-style.md, enforced. The first part reads the OpenAPI document and checks every rule a
 * document can show, on every route it lists, so a new module's route that breaks one fails here
 * with the route and the rule named. The second part checks the rules a document cannot show by
 * calling the API.
 */

// ---- the rules, over any OpenAPI document ------------------------------------------------------

type Json = Record<string, unknown>
interface Parameter {
  name: string
  in: string
  schema?: Json
}
interface Operation {
  method: string
  path: string
  operationId: string
  op: Json
  query: Parameter[]
  headers: Parameter[]
}
interface Doc {
  paths: Record<string, Record<string, Json>>
  components?: { schemas?: Record<string, Json> }
}

function operationsOf(doc: Doc): Operation[] {
  const operations: Operation[] = []
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const parameters = (op.parameters ?? []) as Parameter[]
      operations.push({
        method: method.toUpperCase(),
        path,
        operationId: String(op.operationId),
        op,
        query: parameters.filter((p) => p.in === 'query'),
        headers: parameters.filter((p) => p.in === 'header'),
      })
    }
  }
  return operations
}

function resolve(doc: Doc, schema: Json | undefined): Json | undefined {
  const ref = schema?.$ref
  if (typeof ref !== 'string') return schema
  return doc.components?.schemas?.[ref.replace('#/components/schemas/', '')]
}

/** The JSON schema of a body or response; a route that produces another type files its errors under that type. */
function jsonSchemaOf(doc: Doc, holder: unknown): Json | undefined {
  const content = (holder as { content?: Record<string, { schema?: Json }> } | undefined)?.content ?? {}
  return resolve(doc, (content['application/json'] ?? Object.values(content)[0])?.schema)
}

const responseSchema = (doc: Doc, o: Operation, status: string) =>
  jsonSchemaOf(doc, (o.op.responses as Record<string, unknown> | undefined)?.[status])
const bodySchema = (doc: Doc, o: Operation) => jsonSchemaOf(doc, o.op.requestBody)
const responses = (o: Operation) => Object.keys((o.op.responses ?? {}) as Json)

/** The values of an enumerated schema (`enum`, or TypeBox's union of literals), else undefined. */
function enumValues(schema: Json | undefined): string[] | undefined {
  if (!schema) return undefined
  if (Array.isArray(schema.enum)) return schema.enum.map(String)
  if ('const' in schema) return [String(schema.const)]
  if (Array.isArray(schema.anyOf)) {
    const parts = (schema.anyOf as Json[]).map(enumValues)
    if (parts.every((p) => p !== undefined)) return parts.flat()
  }
  return undefined
}

const PAGING_SYNONYMS = ['offset', 'skip', 'take', 'size', 'pageSize', 'perPage', 'per_page', 'cursor', 'pageToken']
const SORT_SYNONYMS = ['order', 'orderBy', 'sortBy', 'sortOrder', 'direction', 'dir']
const ACTOR_SYNONYMS = ['startedBy', 'createdBy', 'updatedBy', 'actorId', 'user', 'userId', 'by', 'owner', 'ownerId', 'principal', 'principalId']
/** Filters whose values are a fixed set wherever they appear. */
const ALWAYS_ENUMERATED = ['status', 'role']
const LIST_SHAPE = ['items', 'total', 'totalExact', 'page', 'limit']

/** A 202 that starts nothing new, so there is nothing to start twice. */
const IDEMPOTENT_BY_NATURE: Record<string, string> = {
  cancelWorkflow: 'a second cancel of the same run finds it finished and starts nothing',
  completeModelUpload: 'a second complete of the same upload finds it no longer open (409) and starts nothing',
  wakeEndpoint: 'a second wake finds the endpoint waking (409 ENDPOINT_BUSY) or awake (200) and starts nothing',
  wakeApp: 'a second wake finds the app waking (409 ENDPOINT_BUSY) or awake (200) and starts nothing',
}

/** Not resources of this API: the sidecar's callbacks and Keycloak's own paths keep their protocols' shapes. */
const foreignProtocol = (path: string) => path.startsWith('/dapr/') || path.startsWith('/realms/')

interface Context {
  doc: Doc
  ops: Operation[]
}

const isList = (ctx: Context, o: Operation) => {
  if (o.method !== 'GET') return false
  const ok = responseSchema(ctx.doc, o, '200')
  const collection = ctx.ops.some((other) => /^\{[^}]+\}$/.test(other.path.slice(o.path.length + 1)) && other.path.startsWith(`${o.path}/`))
  return (
    ok?.type === 'array' ||
    (ok?.properties as Json | undefined)?.items !== undefined ||
    o.query.some((p) => ['page', 'limit', ...PAGING_SYNONYMS].includes(p.name)) ||
    collection
  )
}

/** Each rule answers the problems of one operation; an empty list means it keeps the rule. */
/** A pattern naming asc|desc, or an enum of `field` and `field:asc|desc` values. */
function sortsByFieldAndDirection(schema: { pattern?: unknown; enum?: unknown } | undefined): boolean {
  if (String(schema?.pattern ?? '').includes('asc|desc')) return true
  const values = Array.isArray(schema?.enum) ? (schema.enum as unknown[]) : []
  return values.length > 0 && values.every((v) => typeof v === 'string' && /^[A-Za-z]+(:(asc|desc))?$/.test(v)) && values.some((v) => String(v).endsWith(':desc'))
}

const RULES: Record<string, (o: Operation, ctx: Context) => string[]> = {
  'path parameters are {id}, nested ones named by kind ({id}/workers/{pod}); {UserID} only under /ai/admin/users': (o) => {
    if (foreignProtocol(o.path)) return []
    const names = [...o.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!)
    return names.flatMap((name, i) => {
      if (name === '*' && o.path.startsWith('/v1/blobs/')) return [] // the object key, a wildcard
      if (i === 0) {
        if (name === 'id') return []
        if (name === 'UserID' && o.path.startsWith('/ai/admin/users/{UserID}')) return []
        return [`{${name}} should be {id}`]
      }
      if (name === 'id' || !/^[a-z][A-Za-z]*$/.test(name) || /Id$/.test(name)) {
        return [`nested {${name}} should name its kind in camelCase, like {pod}`]
      }
      return []
    })
  },

  'lists answer {items, total, totalExact, page, limit} and page with page (from 1) and limit (at most 100)': (o, ctx) => {
    if (!isList(ctx, o) || foreignProtocol(o.path)) return []
    const problems: string[] = []
    const ok = responseSchema(ctx.doc, o, '200')
    const properties = Object.keys((ok?.properties ?? {}) as Json)
    const required = (ok?.required ?? []) as string[]
    if (ok?.type === 'array') problems.push('answers a bare array')
    else if (properties.slice().sort().join() !== LIST_SHAPE.slice().sort().join()) {
      problems.push(`answers {${properties.join(', ')}}`)
    } else if (LIST_SHAPE.some((k) => !required.includes(k))) {
      problems.push(`does not require ${LIST_SHAPE.filter((k) => !required.includes(k)).join(', ')}`)
    }
    const page = o.query.find((p) => p.name === 'page')
    const limit = o.query.find((p) => p.name === 'limit')
    if (!page || page.schema?.minimum !== 1) problems.push('has no page parameter starting at 1')
    if (!limit || typeof limit.schema?.maximum !== 'number' || limit.schema.maximum > 100) problems.push('has no limit parameter of at most 100')
    for (const p of o.query) if (PAGING_SYNONYMS.includes(p.name)) problems.push(`pages with "${p.name}"`)
    return problems
  },

  'sort is sort=field:asc|desc': (o) =>
    o.query.flatMap((p) => {
      if (SORT_SYNONYMS.includes(p.name)) return [`sorts with "${p.name}"`]
      if (p.name === 'sort' && !sortsByFieldAndDirection(p.schema)) return ['sort does not take field:asc|desc']
      return []
    }),

  'date ranges are <field>From / <field>To, in pairs (createdFrom, createdTo)': (o) => {
    const dated = o.query.filter((p) => p.schema?.format === 'date-time' || /(from|to|since|until|before|after)$/i.test(p.name))
    const names = new Set(dated.map((p) => p.name))
    return dated.flatMap((p) => {
      const match = /^([a-z][A-Za-z]*)(From|To)$/.exec(p.name)
      if (!match) return [`date filter "${p.name}"`]
      const twin = `${match[1]}${match[2] === 'From' ? 'To' : 'From'}`
      return names.has(twin) ? [] : [`"${p.name}" without "${twin}"`]
    })
  },

  'the actor filter is named actor': (o) =>
    o.query.filter((p) => ACTOR_SYNONYMS.includes(p.name)).map((p) => `filters who did it with "${p.name}"`),

  'filters on enumerated fields are enums with the field values (role=bogus is a 400 like status=done)': (o, ctx) => {
    const ok = responseSchema(ctx.doc, o, '200')
    const itemSchema = resolve(ctx.doc, (ok?.properties as Record<string, Json> | undefined)?.items?.items as Json | undefined)
    const itemProperties = (itemSchema?.properties ?? {}) as Record<string, Json>
    return o.query.flatMap((p) => {
      const values = enumValues(p.schema)
      const fieldValues = enumValues(itemProperties[p.name])
      if (ALWAYS_ENUMERATED.includes(p.name) && !values) return [`"${p.name}" is not an enum`]
      if (fieldValues && !values) return [`"${p.name}" is not an enum of ${fieldValues.join('|')}`]
      if (fieldValues && values && values.slice().sort().join() !== fieldValues.slice().sort().join()) {
        return [`"${p.name}" allows ${values.join('|')} but the field holds ${fieldValues.join('|')}`]
      }
      return []
    })
  },

  'a POST to a collection creates: 201': (o, ctx) => {
    if (o.method !== 'POST') return []
    const listed = ctx.ops.some((other) => other.path === o.path && isList(ctx, other))
    if (!listed || responses(o).includes('201')) return []
    // Creating as long work: 202 naming the new object beside its workflow.
    const accepted = responses(o).includes('202') ? responseSchema(ctx.doc, o, '202') : undefined
    const required = ((accepted?.required ?? []) as string[])
    if (required.includes('workflowId') && required.some((k) => k !== 'workflowId' && k.endsWith('Id'))) return []
    return [`answers ${responses(o).join(', ')}`]
  },

  'PATCH is served wherever PUT merges, with the same body': (o, ctx) => {
    if (o.method !== 'PUT') return []
    const body = bodySchema(ctx.doc, o)
    // A body that requires nothing is a partial update: the fields sent are merged into the resource.
    if (!body || body.type !== 'object' || ((body.required ?? []) as string[]).length > 0) return []
    const patch = ctx.ops.find((other) => other.path === o.path && other.method === 'PATCH')
    if (!patch) return ['merges but has no PATCH twin']
    return JSON.stringify(bodySchema(ctx.doc, patch)) === JSON.stringify(body) ? [] : ['its PATCH twin takes another body']
  },

  'long work answers 202 {workflowId, ...} and honours Idempotency-Key': (o, ctx) => {
    if (!responses(o).includes('202')) return []
    const problems: string[] = []
    const accepted = responseSchema(ctx.doc, o, '202')
    if (!((accepted?.required ?? []) as string[]).includes('workflowId')) problems.push('202 without workflowId')
    if (o.method === 'POST' && !IDEMPOTENT_BY_NATURE[o.operationId] && !o.headers.some((h) => h.name === 'idempotency-key')) {
      problems.push('takes no Idempotency-Key')
    }
    return problems
  },

  'every failure is the error envelope {errorCode, message, details: {fields, ...}, requestId}': (o, ctx) =>
    ['4XX', '5XX'].flatMap((status) => {
      const schema = responseSchema(ctx.doc, o, status)
      const details = (schema?.properties as Record<string, Json> | undefined)?.details
      const ok =
        ['errorCode', 'message', 'details', 'requestId'].every((k) => ((schema?.required ?? []) as string[]).includes(k)) &&
        ((details?.required ?? []) as string[]).includes('fields')
      return ok ? [] : [`${status} is not the error envelope`]
    }),

  'operationIds are camelCase and unique': (o, ctx) => {
    const twins = ctx.ops.filter((other) => other.operationId === o.operationId).length
    return [
      ...(/^[a-z][A-Za-z0-9]*$/.test(o.operationId) ? [] : [`operationId "${o.operationId}"`]),
      ...(twins > 1 ? [`operationId "${o.operationId}" is used ${twins} times`] : []),
    ]
  },
}

/** "METHOD path: problem" for every operation that breaks the rule. */
function violations(doc: Doc, rule: string): string[] {
  const ctx = { doc, ops: operationsOf(doc) }
  return ctx.ops.flatMap((o) => RULES[rule]!(o, ctx).map((problem) => `${o.method} ${o.path}: ${problem}`))
}

// ---- the app ------------------------------------------------------------------------------------

let app: FastifyInstance
let doc: Doc
let realm: string
let superuser: SeededUser
let admin: SeededUser

beforeAll(async () => {
  app = await buildTestApp()
  doc = app.swagger() as unknown as Doc
  realm = uniqueRealm('style')
  superuser = await seedUser(app, { realm, role: 'super_admin', isSuperuser: true })
  admin = await seedUser(app, { realm, role: 'admin' })
})

afterAll(() => app.close())

describe('the OpenAPI document follows docs/api-style.md', () => {
  it.each(Object.keys(RULES))('%s', (rule) => {
    expect(operationsOf(doc).length).toBeGreaterThan(30)
    expect(violations(doc, rule), `routes breaking "${rule}"`).toEqual([])
  })
})

describe("a new module's route that breaks a rule", () => {
  /** A module written against none of the rules, in an app of its own. */
  async function sloppyModule(): Promise<Doc> {
    const bare = Fastify()
    await registerOpenApi(bare, { publicUrl: 'http://localhost' } as Config)
    const meta = (operationId: string) => ({ operationId, tags: ['clusters'], summary: operationId })
    const Cluster = Type.Object({ id: Type.String(), status: Type.Union([Type.Literal('ready'), Type.Literal('failed')]) })
    const handler = async () => ({})
    bare.get(
      '/v1/clusters',
      {
        schema: {
          ...meta('listClusters'),
          querystring: StrictObject({
            offset: Type.Optional(Type.Integer()),
            order: Type.Optional(Type.String()),
            since: Type.Optional(Type.String({ format: 'date-time' })),
            createdBy: Type.Optional(Type.String()),
            status: Type.Optional(Type.String()),
          }),
          response: { 200: Type.Object({ data: Type.Array(Cluster), count: Type.Integer() }) },
        },
      },
      handler,
    )
    bare.post('/v1/clusters', { schema: { ...meta('createCluster'), body: Type.Object({ name: Type.String() }), response: { 200: Cluster } } }, handler)
    bare.get('/v1/clusters/:clusterId', { schema: { ...meta('getCluster'), response: { 200: Cluster } } }, handler)
    bare.put(
      '/v1/clusters/:id',
      { schema: { ...meta('updateCluster'), body: StrictObject({ name: Type.Optional(Type.String()) }), response: { 200: Cluster } } },
      handler,
    )
    bare.get('/v1/clusters/:id/nodes/:nodeId', { schema: { ...meta('get_node') } }, handler)
    bare.post('/v1/clusters/:id/upgrade', { schema: { ...meta('upgradeCluster'), response: { 202: Type.Object({ jobId: Type.String() }) } } }, handler)
    await bare.ready()
    const sloppy = bare.swagger() as unknown as Doc
    await bare.close()
    return sloppy
  }

  it('fails each rule, naming the route', async () => {
    const sloppy = await sloppyModule()
    const expected: Record<string, string[]> = {
      'path parameters are {id}, nested ones named by kind ({id}/workers/{pod}); {UserID} only under /ai/admin/users': [
        'GET /v1/clusters/{clusterId}: {clusterId} should be {id}',
        'GET /v1/clusters/{id}/nodes/{nodeId}: nested {nodeId} should name its kind in camelCase, like {pod}',
      ],
      'lists answer {items, total, totalExact, page, limit} and page with page (from 1) and limit (at most 100)': [
        'GET /v1/clusters: answers {data, count}',
        'GET /v1/clusters: has no page parameter starting at 1',
        'GET /v1/clusters: has no limit parameter of at most 100',
        'GET /v1/clusters: pages with "offset"',
      ],
      'sort is sort=field:asc|desc': ['GET /v1/clusters: sorts with "order"'],
      'date ranges are <field>From / <field>To, in pairs (createdFrom, createdTo)': ['GET /v1/clusters: date filter "since"'],
      'the actor filter is named actor': ['GET /v1/clusters: filters who did it with "createdBy"'],
      'filters on enumerated fields are enums with the field values (role=bogus is a 400 like status=done)': [
        'GET /v1/clusters: "status" is not an enum',
      ],
      'a POST to a collection creates: 201': ['POST /v1/clusters: answers 200, 400, 401, 4XX, 5XX'],
      'PATCH is served wherever PUT merges, with the same body': ['PUT /v1/clusters/{id}: merges but has no PATCH twin'],
      'long work answers 202 {workflowId, ...} and honours Idempotency-Key': [
        'POST /v1/clusters/{id}/upgrade: 202 without workflowId',
        'POST /v1/clusters/{id}/upgrade: takes no Idempotency-Key',
      ],
      'operationIds are camelCase and unique': ['GET /v1/clusters/{id}/nodes/{nodeId}: operationId "get_node"'],
    }
    for (const [rule, problems] of Object.entries(expected)) expect(violations(sloppy, rule), rule).toEqual(problems)
  })

  it('refuses at start-up a query string that lets unknown parameters through', async () => {
    const bare = Fastify()
    await registerOpenApi(bare, { publicUrl: 'http://localhost' } as Config)
    const register = () =>
      bare.get(
        '/v1/clusters',
        { schema: { operationId: 'listClusters', tags: ['clusters'], summary: 'x', querystring: Type.Object({ page: Type.Optional(Type.Integer()) }) } },
        async () => ({}),
      )
    expect(register).toThrow(/GET \/v1\/clusters: its querystring lets unknown parameters through/)
    await bare.close()
  })
})

// ---- what the document cannot show --------------------------------------------------------------

/** A stand-in for every path parameter: validation answers before any handler looks it up. */
function fill(path: string): string {
  return path
    .replace('{*}', 'style/probe.txt')
    .replace('{realm}', realm)
    .replace('{permission}', 'model:view')
    .replace(/\{[^}]+\}/g, () => randomUUID())
}

function expectUnknownParameter(response: { statusCode: number; json: () => unknown }, name: string, route: string) {
  expect(response.statusCode, route).toBe(400)
  const body = response.json() as { errorCode: string; message: string; details: { fields: unknown[] } }
  expect(body.errorCode, route).toBe('VALIDATION_ERROR')
  expect(body.message, route).toContain(`querystring.${name}`)
  expect(body.details.fields, route).toContainEqual({ field: `querystring.${name}`, message: 'unknown query parameter' })
}

describe('query strings', () => {
  it('refuses an unknown query parameter on every GET route with 400 VALIDATION_ERROR naming it', async () => {
    // The sidecar's routes answer 401 to anyone else before reading anything; their query strings are strict all the same.
    const gets = operationsOf(doc).filter((o) => o.method === 'GET' && !o.path.startsWith('/dapr/'))
    expect(gets.map((o) => o.operationId)).toEqual(expect.arrayContaining(['listAiUsers', 'listWorkflows', 'listAuditEntries', 'listOutboxEvents']))
    for (const o of gets) {
      const response = await app.inject({ method: 'GET', url: `${fill(o.path)}?limt=5`, headers: bearer(superuser.accessToken) })
      expectUnknownParameter(response, 'limt', `GET ${o.path}`)
    }
  })

  it('keeps nothing of the old names: from, to and startedBy are unknown parameters; createdFrom, createdTo and actor filter', async () => {
    const call = (url: string) => app.inject({ method: 'GET', url, headers: bearer(superuser.accessToken) })
    const start = new Date(Date.now() - 1_000).toISOString()
    expectUnknownParameter(await call(`/v1/audit?from=${start}`), 'from', 'audit from')
    expectUnknownParameter(await call(`/v1/audit?to=${start}`), 'to', 'audit to')
    expectUnknownParameter(await call(`/v1/workflows?startedBy=${superuser.id}`), 'startedBy', 'workflows startedBy')

    const made = await app.inject({
      method: 'POST',
      url: '/ai/admin/users',
      headers: bearer(superuser.accessToken),
      payload: { email: `a-${randomUUID().slice(0, 8)}@example.test`, role: 'viewer' },
    })
    expect(made.statusCode).toBe(201)
    const audit = async (query: string) => (await call(`/v1/audit?${query}`)).json() as { items: Array<{ resourceId: string }> }
    const madeId = (made.json() as { id: string }).id
    // The audit entry is written after the answer.
    await waitFor(async () => (await audit(`actor=${superuser.id}&createdFrom=${start}`)).items.some((e) => e.resourceId === madeId))
    expect((await audit(`actor=${superuser.id}&createdTo=${start}`)).items.map((e) => e.resourceId)).not.toContain(madeId)
    // The admin logged in (audited as login) but created nothing.
    expect((await audit(`actor=${admin.id}&action=createAiUser&createdFrom=${start}`)).items).toEqual([])
    expect((await audit(`actor=${superuser.id}&action=createAiUser&createdFrom=${start}`)).items.map((e) => e.resourceId)).toContain(madeId)
  })

  it('refuses an unknown query parameter on a write too, and changes nothing', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/ai/admin/users',
      headers: bearer(admin.accessToken),
      payload: { email: `q-${randomUUID().slice(0, 8)}@example.test`, name: 'Before', role: 'viewer' },
    })
    expect(created.statusCode).toBe(201)
    const id = (created.json() as { id: string }).id
    const patched = await app.inject({
      method: 'PATCH',
      url: `/ai/admin/users/${id}?tenantt=${admin.tenantId}`,
      headers: bearer(admin.accessToken),
      payload: { name: 'After' },
    })
    expectUnknownParameter(patched, 'tenantt', 'PATCH user')
    const deleted = await app.inject({ method: 'DELETE', url: `/ai/admin/users/${id}?force=true`, headers: bearer(admin.accessToken) })
    expectUnknownParameter(deleted, 'force', 'DELETE user')
    const after = await app.inject({ method: 'GET', url: `/ai/admin/users/${id}`, headers: bearer(admin.accessToken) })
    expect(after.json()).toMatchObject({ name: 'Before', status: 'invited' })
  })

  it('refuses role=bogus exactly as it refuses status=done: one problem naming the allowed values', async () => {
    const call = (url: string) => app.inject({ method: 'GET', url, headers: bearer(admin.accessToken) })
    const cases = [
      { url: '/ai/admin/users?role=bogus', field: 'querystring.role', allowed: ['viewer', 'tester', 'developer', 'devops', 'admin', 'super_admin'] },
      { url: '/ai/admin/users?status=done', field: 'querystring.status', allowed: ['active', 'invited', 'disabled', 'deleted'] },
      { url: '/v1/workflows?status=done', field: 'querystring.status', allowed: ['pending', 'running', 'completed', 'failed', 'cancelled'] },
    ]
    for (const { url, field, allowed } of cases) {
      const response = await call(url)
      expect(response.statusCode, url).toBe(400)
      expect(response.json(), url).toMatchObject({
        errorCode: 'VALIDATION_ERROR',
        message: `invalid request: ${field} must be one of ${allowed.join(', ')}`,
        details: { fields: [{ field, message: `must be one of ${allowed.join(', ')}` }] },
      })
    }
    // A value of the enumeration still filters.
    const viewers = await call('/ai/admin/users?role=admin')
    expect(viewers.statusCode).toBe(200)
    expect((viewers.json() as { items: Array<{ id: string }> }).items.map((u) => u.id)).toContain(admin.id)
  })
})

describe('error details', () => {
  it("have one shape for a schema's and a service's validation error, a 409, a 412, a 404 and a 401", async () => {
    const email = `d-${randomUUID().slice(0, 8)}@example.test`
    const headers = bearer(admin.accessToken)
    const created = await app.inject({ method: 'POST', url: '/ai/admin/users', headers, payload: { email, role: 'viewer' } })
    expect(created.statusCode).toBe(201)
    const id = (created.json() as { id: string }).id
    const answers = {
      validation: await app.inject({ method: 'POST', url: '/ai/admin/users', headers, payload: { email, role: 'viewer', colour: 'red' } }),
      // A bound the schema cannot state (bytes of one attribute's JSON): checked by the service.
      serviceValidation: await app.inject({
        method: 'PATCH',
        url: `/ai/admin/users/${id}`,
        headers,
        payload: { attributes: { notes: 'x'.repeat(5_000) } },
      }),
      conflict: await app.inject({ method: 'POST', url: '/ai/admin/users', headers, payload: { email, role: 'viewer' } }),
      stale: await app.inject({
        method: 'PATCH',
        url: `/ai/admin/users/${id}`,
        headers: { ...headers, 'if-match': '"0-stale"' },
        payload: { name: 'Late' },
      }),
      missing: await app.inject({ method: 'GET', url: `/ai/admin/users/${randomUUID()}`, headers }),
      anonymous: await app.inject({ method: 'GET', url: '/ai/admin/users' }),
    }
    expect(Object.fromEntries(Object.entries(answers).map(([k, r]) => [k, [r.statusCode, (r.json() as { errorCode: string }).errorCode]]))).toEqual({
      validation: [400, 'VALIDATION_ERROR'],
      serviceValidation: [400, 'VALIDATION_ERROR'],
      conflict: [409, 'DUPLICATE_EMAIL'],
      stale: [412, 'PRECONDITION_FAILED'],
      missing: [404, 'USER_NOT_FOUND'],
      anonymous: [401, 'UNAUTHENTICATED'],
    })
    for (const [name, response] of Object.entries(answers)) {
      const details = (response.json() as { details: { fields: unknown } }).details
      expect(details, name).toEqual(expect.objectContaining({ fields: expect.any(Array) }))
      for (const field of details.fields as unknown[]) expect(field, name).toEqual({ field: expect.any(String), message: expect.any(String) })
    }
    expect((answers.validation.json() as { details: unknown }).details).toEqual({ fields: [{ field: 'body.colour', message: 'unknown field' }] })
    expect((answers.serviceValidation.json() as { details: unknown }).details).toEqual({
      fields: [{ field: 'body.attributes.notes', message: 'at most 4096 bytes of JSON' }],
    })
    expect((answers.stale.json() as { details: unknown }).details).toEqual({ fields: [] })
    const after = await app.inject({ method: 'GET', url: `/ai/admin/users/${id}`, headers })
    expect(after.json()).toMatchObject({ name: '' })
  })
})

describe('PATCH /ai/admin/users/{UserID}', () => {
  it('merges as PUT does, and answers If-Match with 412', async () => {
    const headers = bearer(admin.accessToken)
    const created = await app.inject({
      method: 'POST',
      url: '/ai/admin/users',
      headers,
      payload: { email: `p-${randomUUID().slice(0, 8)}@example.test`, role: 'viewer', attributes: { team: 'a', floor: 2 } },
    })
    const id = (created.json() as { id: string }).id
    const patched = await app.inject({ method: 'PATCH', url: `/ai/admin/users/${id}`, headers, payload: { attributes: { floor: null, desk: 7 } } })
    expect(patched.statusCode).toBe(200)
    expect(patched.json()).toMatchObject({ attributes: { team: 'a', desk: 7 } })
    expect((patched.json() as { attributes: Json }).attributes).not.toHaveProperty('floor')
    const etag = patched.headers.etag as string
    const put = await app.inject({ method: 'PUT', url: `/ai/admin/users/${id}`, headers: { ...headers, 'if-match': etag }, payload: { name: 'Put' } })
    expect(put.statusCode).toBe(200)
    const stale = await app.inject({ method: 'PATCH', url: `/ai/admin/users/${id}`, headers: { ...headers, 'if-match': etag }, payload: { name: 'Patch' } })
    expect(stale.statusCode).toBe(412)
    expect((await app.inject({ method: 'GET', url: `/ai/admin/users/${id}`, headers })).json()).toMatchObject({ name: 'Put' })
  })

  it("gives another tenant's admin a 404, a viewer a 403 and a lower rank RANK_TOO_LOW, and changes nothing", async () => {
    const other = await seedUser(app, { realm: uniqueRealm('style-b'), role: 'admin' })
    const viewer = await seedUser(app, { realm, role: 'viewer' })
    const developer = await seedUser(app, { realm, role: 'developer' })
    const granted = await app.inject({ method: 'PUT', url: `/ai/admin/users/${developer.id}/grants/user:manage`, headers: bearer(superuser.accessToken) })
    expect(granted.statusCode).toBe(200)
    const patch = (who: SeededUser) =>
      app.inject({ method: 'PATCH', url: `/ai/admin/users/${admin.id}`, headers: bearer(who.accessToken), payload: { name: 'Taken over' } })
    const answers = [await patch(other), await patch(viewer), await patch(developer)].map((r) => [r.statusCode, (r.json() as { errorCode: string }).errorCode])
    expect(answers).toEqual([
      [404, 'USER_NOT_FOUND'],
      [403, 'FORBIDDEN'],
      [403, 'RANK_TOO_LOW'],
    ])
    const after = await app.inject({ method: 'GET', url: `/ai/admin/users/${admin.id}`, headers: bearer(admin.accessToken) })
    expect(after.json()).not.toMatchObject({ name: 'Taken over' })
  })
})
