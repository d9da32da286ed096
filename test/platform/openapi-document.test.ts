import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { documentServers } from '../../src/platform/http/openapi.js'
import { buildTestApp } from '../helpers/app.js'

/**
 * The OpenAPI document as Swagger UI's reader meets it: every answer described, every body and
 * success shown by an example that is itself valid, enums as lists, public routes without a lock,
 * and Dapr's sidecar routes left out.
 */
type Json = Record<string, unknown>
interface Operation {
  name: string
  method: string
  path: string
  op: Json
}

let app: FastifyInstance
let doc: Json
let operations: Operation[]

beforeAll(async () => {
  app = await buildTestApp()
  const response = await app.inject('/openapi.json')
  expect(response.statusCode).toBe(200)
  doc = response.json()
  operations = Object.entries(doc.paths as Record<string, Record<string, Json>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, op })),
  )
})

afterAll(() => app.close())

const pointer = (segments: string[]) => segments.map((s) => `/${encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'))}`).join('')

/** Every object of the document with its JSON pointer segments. */
function* walk(node: unknown, at: string[] = []): Generator<{ node: Json; at: string[] }> {
  if (Array.isArray(node)) {
    for (const [i, item] of node.entries()) yield* walk(item, [...at, String(i)])
  } else if (node && typeof node === 'object') {
    yield { node: node as Json, at }
    for (const [key, value] of Object.entries(node)) yield* walk(value, [...at, key])
  }
}

function resolve(schema: Json | undefined): Json | undefined {
  const ref = schema?.$ref
  if (typeof ref !== 'string') return schema
  return ref
    .replace(/^#\//, '')
    .split('/')
    .reduce<unknown>((node, key) => (node as Json)[key.replace(/~1/g, '/').replace(/~0/g, '~')], doc) as Json
}

/** The schema shows an example: its own, or each of its properties has one. */
function schemaHasExample(raw: Json | undefined): boolean {
  const schema = resolve(raw)
  if (!schema) return false
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return true
  if (schema.example !== undefined) return true
  const properties = Object.values((schema.properties ?? {}) as Record<string, Json>)
  return properties.length > 0 && properties.every((p) => schemaHasExample(p))
}

function mediaHasExample(media: Json): boolean {
  return media.example !== undefined || (media.examples !== undefined && Object.keys(media.examples as Json).length > 0) || schemaHasExample(media.schema as Json)
}

/** Every example in the document, with the pointer of the schema it claims to fit. */
function examples(): Array<{ schemaAt: string[]; value: unknown; where: string }> {
  const found: Array<{ schemaAt: string[]; value: unknown; where: string }> = []
  for (const { node, at } of walk(doc)) {
    // A schema's own examples (JSON Schema 2020-12's array).
    if (Array.isArray(node.examples)) {
      for (const value of node.examples) found.push({ schemaAt: at, value, where: at.join('/') })
    }
    // A media type's or parameter's example(s), beside the schema they illustrate.
    if (node.schema && typeof node.schema === 'object') {
      if (node.example !== undefined) found.push({ schemaAt: [...at, 'schema'], value: node.example, where: at.join('/') })
      if (node.examples && !Array.isArray(node.examples)) {
        for (const example of Object.values(node.examples as Record<string, { value: unknown }>)) {
          found.push({ schemaAt: [...at, 'schema'], value: example.value, where: at.join('/') })
        }
      }
    }
  }
  return found
}

/** A plausible address: a local part, an @, and a domain with a dot and a letter-only last label. */
const PLAUSIBLE_EMAIL = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/

function emailsIn(value: unknown, key = ''): string[] {
  // A string with an '@' but also spaces is text or code (a Python decorator), not an address.
  if (typeof value === 'string') return /email/i.test(key) || (value.includes('@') && !/\s/.test(value)) ? [value] : []
  if (Array.isArray(value)) return value.flatMap((v) => emailsIn(v, key))
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => emailsIn(v, k))
  return []
}

describe('OpenAPI document', () => {
  it('describes every answer of every operation in words of its own, not "Default Response"', () => {
    expect(operations.length).toBeGreaterThan(20)
    const undescribed = operations.flatMap(({ name, op }) =>
      Object.entries(op.responses as Record<string, { description?: string }>)
        .filter(([, r]) => !r.description || r.description === 'Default Response')
        .map(([status]) => `${name} ${status}`),
    )
    expect(undescribed).toEqual([])
    const created = (doc.paths as Json)['/ai/admin/users'] as Record<string, Json>
    expect((created.post!.responses as Record<string, Json>)['201']!.description).toBe('Created')
    const one = (doc.paths as Json)['/ai/admin/users/{UserID}'] as Record<string, Json>
    expect((one.get!.responses as Record<string, Json>)['404']!.description).toMatch(/^Not found/)
    expect((one.delete!.responses as Record<string, Json>)['204']!.description).toMatch(/^No Content/)
  })

  it('shows an example for every JSON request body and every JSON success', () => {
    const missing: string[] = []
    for (const { name, op } of operations) {
      const body = (op.requestBody as { content?: Record<string, Json> } | undefined)?.content?.['application/json']
      if (body && !mediaHasExample(body)) missing.push(`${name} request body`)
      for (const [status, response] of Object.entries(op.responses as Record<string, { content?: Record<string, Json> }>)) {
        const json = response.content?.['application/json']
        if (status.startsWith('2') && json && !mediaHasExample(json)) missing.push(`${name} ${status}`)
      }
    }
    expect(missing).toEqual([])
  })

  it('fills no optional parameter for "Try it out": an example there is sent as the value', () => {
    const prefilled = operations.flatMap(({ name, op }) =>
      ((op.parameters ?? []) as Json[])
        .filter((p) => !p.required && (p.example !== undefined || p.examples !== undefined || (p.schema as Json)?.examples !== undefined))
        .map((p) => `${name} ?${String(p.name)}`),
    )
    expect(prefilled).toEqual([])
  })

  it('has examples that fit their own schemas', () => {
    const ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true })
    // ajv-formats is CommonJS: its default import is the module object under NodeNext, the function under tsx.
    const withFormats = ((addFormats as unknown as { default?: unknown }).default ?? addFormats) as (ajv: Ajv2020) => Ajv2020
    withFormats(ajv)
    ajv.addSchema(doc, 'doc')
    const found = examples()
    expect(found.length).toBeGreaterThan(30)
    const wrong = found.flatMap(({ schemaAt, value, where }) => {
      const validate = ajv.getSchema(`doc#${pointer(schemaAt)}`)
      if (!validate) return [`${where}: no schema`]
      return validate(value) ? [] : [`${where}: ${ajv.errorsText(validate.errors)}`]
    })
    expect(wrong).toEqual([])
  })

  it('suggests a plain role in the example of a new user, and plausible addresses everywhere', () => {
    const create = ((doc.paths as Json)['/ai/admin/users'] as Record<string, Json>).post!
    const media = (create.requestBody as { content: Record<string, Json> }).content['application/json']!
    const example = (media.example ?? (resolve(media.schema as Json)!.examples as unknown[])[0]) as { role: string }
    expect(example.role).not.toMatch(/admin/)
    const addresses = examples().flatMap(({ value }) => emailsIn(value))
    expect(addresses.length).toBeGreaterThan(5)
    expect(addresses.filter((a) => !PLAUSIBLE_EMAIL.test(a))).toEqual([])
  })

  it('needs no credentials exactly on the public routes, and a token or API key everywhere else', () => {
    const publicRoutes = new Set(
      app.routeAccess.filter((r) => r.access === 'public').map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{*}')}`),
    )
    expect(publicRoutes.has('POST /v1/auth/login')).toBe(true)
    const wrong = operations.filter(({ name, op }) => {
      const open = Array.isArray(op.security) && op.security.length === 0
      return open !== publicRoutes.has(name)
    })
    expect(wrong.map((o) => o.name)).toEqual([])
    expect(doc.security).toEqual([{ bearer: [] }, { apiKey: [] }])
  })

  it("leaves Dapr's sidecar routes out and keeps the signed blob routes in", () => {
    const paths = Object.keys(doc.paths as Json)
    expect(paths.filter((p) => p.startsWith('/dapr/'))).toEqual([])
    expect(paths).toContain('/v1/blobs/{*}')
    expect(paths).toContain('/v1/events/outbox')
  })

  it('shows enumerated values as one enum, never as an anyOf of constants', () => {
    const isConstant = (s: Json) => 'const' in s || (Array.isArray(s.enum) && s.enum.length === 1)
    const unions = [...walk(doc)].filter(
      ({ node }) => Array.isArray(node.anyOf) && (node.anyOf as Json[]).length > 1 && (node.anyOf as Json[]).every(isConstant),
    )
    expect(unions.map(({ at }) => at.join('/'))).toEqual([])
    const create = resolve(
      ((((doc.paths as Json)['/ai/admin/users'] as Record<string, Json>).post!.requestBody as Json).content as Record<string, Json>)['application/json']!
        .schema as Json,
    )!
    expect((create.properties as Record<string, Json>).role).toMatchObject({
      type: 'string',
      enum: ['viewer', 'tester', 'developer', 'devops', 'admin', 'super_admin'],
    })
  })

  it('points "Try it out" at the address the document was fetched from, PUBLIC_URL second', () => {
    expect((doc.servers as Json[]).map((s) => s.url)).toEqual(['/', 'http://localhost:8080'])
    // Behind a proxy that serves the API under a path, the relative server keeps the path.
    expect(documentServers('https://api.acme.example/modelplane').map((s) => s.url)).toEqual([
      '/modelplane',
      'https://api.acme.example/modelplane',
    ])
  })
})
