import { pipeline, Readable, Transform } from 'node:stream'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply } from 'fastify'
import Type, { type Static } from 'typebox'
import { AppError, ConflictError } from '../errors.js'
import { StrictObject } from '../http/schemas.js'
import { BlobNotFoundError } from './keys.js'
import { MAX_PART_NUMBER } from './multipart.js'
import { InvalidSignatureError, type SignedMethod, verifyBlobRequest } from './signing.js'
import type { BlobInfo, BlobStore } from './types.js'
import { StringEnum } from '../http/schemas.js'

/** The largest object one PUT may carry, the same as S3's single-PUT limit. */
export const BLOB_BODY_LIMIT_BYTES = 5 * 1024 ** 3

const SignedQuery = StrictObject({
  method: StringEnum(['GET', 'PUT']),
  expires: Type.Integer({ minimum: 0, maximum: 99_999_999_999 }),
  // Only bounded here: a malformed signature is a refused signature (403), not a bad request.
  sig: Type.String({ minLength: 1, maxLength: 128 }),
})
type SignedQuery = Static<typeof SignedQuery>

/** A part URL (presignPart) carries the upload and part number it was signed for. */
const SignedPutQuery = StrictObject({
  method: StringEnum(['GET', 'PUT']),
  expires: Type.Integer({ minimum: 0, maximum: 99_999_999_999 }),
  sig: Type.String({ minLength: 1, maxLength: 128 }),
  uploadId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  partNumber: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PART_NUMBER })),
})
type SignedPutQuery = Static<typeof SignedPutQuery>

const KeyParams = Type.Object({ '*': Type.String({ minLength: 1, maxLength: 1024 }) })

const PutHeaders = Type.Object({ 'content-type': Type.Optional(Type.String({ maxLength: 255 })) })

const StoredBlob = Type.Object(
  {
    key: Type.String({ maxLength: 1024 }),
    size: Type.Integer({ minimum: 0 }),
    etag: Type.String({ maxLength: 64 }),
  },
  {
    title: 'StoredBlob',
    examples: [{ key: 'user-imports/0b6a3c9e-2f4d-4e55-9a61-3c1f2a7d8e90/rows.json', size: 5120, etag: '9b2cf535f27731c974343645a3985328' }],
  },
)

/** Documented as binary; the handler replies with a stream, which Fastify sends without serializing. */
const ObjectBytes = Type.Unsafe<Readable>({
  type: 'string',
  format: 'binary',
  description: 'The bytes of the object, with its content type',
})

export class PayloadTooLargeError extends AppError {
  constructor() {
    super('PAYLOAD_TOO_LARGE', 413, `an object is at most ${BLOB_BODY_LIMIT_BYTES} bytes`)
  }
}

/**
 * The URLs the filesystem store signs (presignGet/presignPut) are served here, so that clients use
 * signed URLs the same way whichever store runs. The signature in the query string is the only
 * credential, hence `public`. Registered in its own scope: the PUT route takes bodies of every
 * content type as raw streams, which must not change how the rest of the API parses bodies.
 */
export async function registerBlobRoutes(
  app: FastifyInstance,
  store: BlobStore,
  signingKey: Buffer,
): Promise<void> {
  await app.register(async (plugin) => {
    const scope = plugin.withTypeProvider<TypeBoxTypeProvider>()
    scope.removeAllContentTypeParsers()
    // Handing the request stream on untouched; body size is then ours to enforce (see limitSize).
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload))

    const authorize = (method: SignedMethod, key: string, query: SignedPutQuery): void => {
      if (query.method !== method) throw new InvalidSignatureError()
      // Both or neither: a part URL stripped of its part is refused by the signature, not read as an object URL.
      if ((query.uploadId === undefined) !== (query.partNumber === undefined)) throw new InvalidSignatureError()
      const part = query.uploadId !== undefined ? { uploadId: query.uploadId, partNumber: query.partNumber! } : undefined
      verifyBlobRequest(signingKey, { method, key, expires: query.expires, sig: query.sig, part })
    }

    scope.get(
      '/v1/blobs/*',
      {
        config: { public: true },
        // HEAD is its own route: the automatic one would read the whole file only to discard it.
        exposeHeadRoute: false,
        schema: {
          operationId: 'downloadBlob',
          tags: ['blobs'],
          summary: 'Download an object through a signed URL',
          params: KeyParams,
          querystring: SignedQuery,
          // Whatever type the object was stored with; documented as bytes.
          produces: ['application/octet-stream'],
          response: { 200: ObjectBytes },
        },
      },
      async (request, reply) => {
        const key = request.params['*']
        authorize('GET', key, request.query)
        const { info, body } = await openConsistent(store, key)
        setObjectHeaders(reply, info)
        return reply.send(body)
      },
    )

    scope.head(
      '/v1/blobs/*',
      {
        config: { public: true },
        schema: {
          operationId: 'headBlob',
          tags: ['blobs'],
          summary: 'Size, type and ETag of an object through a signed GET URL',
          params: KeyParams,
          querystring: SignedQuery,
        },
      },
      async (request, reply) => {
        const key = request.params['*']
        authorize('GET', key, request.query)
        const info = await store.stat(key)
        if (!info) throw new BlobNotFoundError(key)
        setObjectHeaders(reply, info)
        return reply.send()
      },
    )

    scope.put(
      '/v1/blobs/*',
      {
        // No deadline for the body: a minimum transfer rate instead (see http/body-guards.ts).
        config: { public: true, upload: true },
        schema: {
          operationId: 'uploadBlob',
          tags: ['blobs'],
          summary: 'Upload an object, or one part of a multipart upload, through a signed URL; the body is stored as sent',
          description:
            'A part URL (with `uploadId` and `partNumber`) stores one part of an open multipart upload, as S3 does: the ' +
            '`etag` header (and field) is what CompleteMultipartUpload expects for that part; a part sent again replaces it; ' +
            'an upload that was completed or aborted answers 404 MULTIPART_UPLOAD_NOT_FOUND.',
          params: KeyParams,
          querystring: SignedPutQuery,
          headers: PutHeaders,
          response: { 200: StoredBlob },
        },
      },
      async (request, reply) => {
        const key = request.params['*']
        const query = request.query
        authorize('PUT', key, query)
        const declared = request.headers['content-length']
        if (Number(declared) > BLOB_BODY_LIMIT_BYTES) throw new PayloadTooLargeError()
        // No content-type and no length means an empty body, which Fastify does not parse at all.
        const body = request.body instanceof Readable ? limitSize(request.body) : Buffer.alloc(0)
        if (query.uploadId !== undefined) {
          const size = declared === undefined ? undefined : Number(declared)
          const part = await store.uploadPart(key, query.uploadId, query.partNumber!, body, size)
          reply.header('etag', `"${part.etag}"`)
          return { key, size: part.size, etag: part.etag }
        }
        const info = await store.put(key, body, { contentType: request.headers['content-type'] })
        return { key: info.key, size: info.size, etag: info.etag }
      },
    )
  })
}

/**
 * The headers come from stat and the bytes from get; a put between the two would pair one
 * version's length with another's bytes. Equal ETags before and after opening mean equal bytes.
 */
async function openConsistent(store: BlobStore, key: string): Promise<{ info: BlobInfo; body: Readable }> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = await store.stat(key)
    if (!before) throw new BlobNotFoundError(key)
    const body = await store.get(key)
    const after = await store.stat(key)
    if (after?.etag === before.etag) return { info: before, body }
    body.destroy()
  }
  throw new ConflictError('BLOB_CHANGING', 'the object kept changing while it was being read; try again')
}

function setObjectHeaders(reply: FastifyReply, info: BlobInfo): void {
  reply.header('content-type', info.contentType)
  reply.header('content-length', String(info.size))
  reply.header('etag', `"${info.etag}"`)
  reply.header('last-modified', info.lastModified.toUTCString())
  // Anyone holding a PUT URL chooses the bytes and the type: never let a browser render them as a
  // page of this origin.
  reply.header('content-disposition', 'attachment')
  reply.header('x-content-type-options', 'nosniff')
}

/**
 * Content-Length is checked up front; a chunked body is counted as it streams. pipeline() passes a
 * client abort on to the counter, so the store sees the failure and keeps nothing.
 */
function limitSize(source: Readable): Readable {
  let seen = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length
      callback(seen > BLOB_BODY_LIMIT_BYTES ? new PayloadTooLargeError() : null, chunk)
    },
  })
  return pipeline(source, counter, () => {})
}
