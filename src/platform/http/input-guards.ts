import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ValidationError } from '../errors.js'
import { nulRefused } from './body-guards.js'

/** Deeper JSON than any route's schema describes; refused before JSON.parse and any recursive walk sees it. */
export const MAX_JSON_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const LETTER_U = 0x75
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

/**
 * One pass over JSON text, without recursion: throws when objects and arrays nest deeper than
 * `maxDepth`, or when the text holds a NUL, raw or as `\u0000`. PostgreSQL text cannot store NUL,
 * so a NUL that got through used to end as a 500 at the first insert. Anything else wrong with
 * the text is left to the JSON parser.
 */
export function checkJsonText(text: string, maxDepth = MAX_JSON_DEPTH): void {
  let depth = 0
  const length = text.length
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      for (i++; i < length; i++) {
        const s = text.charCodeAt(i)
        if (s === QUOTE) break
        if (s === BACKSLASH) {
          i++
          if (text.charCodeAt(i) === LETTER_U && text.startsWith('0000', i + 1)) throw nulRefused('body')
        } else if (s === 0) {
          throw nulRefused('body')
        }
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) {
        throw new ValidationError(`the JSON body nests deeper than ${maxDepth} levels`, [
          { field: 'body', message: `nested deeper than ${maxDepth} levels` },
        ])
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--
    } else if (c === 0) {
      throw nulRefused('body')
    }
  }
}

type JsonParser = (request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => void

/**
 * Fastify's own JSON parser (secure-json-parse, refusing __proto__ and constructor.prototype
 * keys), behind the depth and NUL check. Used for every JSON media type the API accepts.
 */
export function guardedJsonParser(app: FastifyInstance): JsonParser {
  const parse = app.getDefaultJsonParser('error', 'error') as unknown as JsonParser
  return (request, body, done) => {
    checkJsonText(typeof body === 'string' ? body : body.toString('utf8'))
    parse(request, body, done)
  }
}

/**
 * What reaches a handler holds no NUL and no JSON nested past MAX_JSON_DEPTH. Path parameters
 * and query values are decoded from the URL, so `%00` anywhere in it is refused before routing
 * hands them on (and before authentication, so such a request leaves no trace but a log line).
 * Raw NUL bytes in the URL or in header values never get this far: Node's parser refuses them
 * (see server-limits.ts), and text bodies are refused at their first NUL byte (body-guards.ts).
 */
export function registerInputGuards(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, guardedJsonParser(app))
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.url.includes('%00')) done(nulRefused('URL'))
    else done()
  })
}
