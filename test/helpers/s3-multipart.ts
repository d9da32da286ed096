import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rename, rm, unlink } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

/**
 * S3's multipart upload protocol, answered in front of s3rver 3.7.1, which lacks most of it.
 *
 * What s3rver does itself (read in its source and tried): CreateMultipartUpload, UploadPart and
 * CompleteMultipartUpload exist, but Complete checks neither the part ETags, nor the order of the
 * list (it sorts it), nor the 5 MiB minimum, and answers the plain MD5 of the whole object as its
 * ETag; UploadPart accepts any upload ID (it makes a folder for it). ListMultipartUploads
 * (`GET /bucket?uploads`) answers 501 NotImplemented; ListParts (`GET ?uploadId`) and
 * AbortMultipartUpload (`DELETE ?uploadId`) answer 405 MethodNotAllowed. So the
 * minio client's putObject of anything above its part size (64 MiB), which starts by listing open
 * uploads, fails against it, and nothing of a client-driven upload could be tested.
 *
 * So every multipart call is answered here instead, after the signature check, and s3rver sees only
 * the finished object: parts are streamed to files in a temporary folder (never held in memory),
 * and Complete streams them, in order, as one plain PUT into s3rver.
 *
 * Modelled as S3 answers it: the six calls (Create, UploadPart, Complete, ListParts, Abort,
 * ListMultipartUploads) with their XML bodies; part ETags as the quoted MD5 of the part, and the
 * object's ETag as the MD5 of the parts' binary MD5s with `-N` appended (also on later HEAD and GET
 * of that object, for as long as its bytes are the ones assembled); part numbers 1–10000, a
 * re-sent part replacing the earlier one; errors NoSuchUpload (404, also for an upload ID used
 * with another key), NoSuchBucket, InvalidPart (unknown part or wrong ETag), InvalidPartOrder (not
 * strictly ascending), EntityTooSmall (a part below 5 MiB that is not the last one listed),
 * MalformedXML, InvalidArgument (part number, max-parts, max-uploads, encoding-type),
 * MissingContentLength (411), IncompleteBody, BadDigest (Content-MD5), XAmzContentSHA256Mismatch,
 * KeyTooLongError (over 1024 bytes), EntityTooLarge (a part over 5 GiB); parts not listed in
 * Complete are discarded; paging of ListParts (max-parts, part-number-marker) and of
 * ListMultipartUploads (prefix, delimiter with CommonPrefixes, key-marker, upload-id-marker,
 * max-uploads, encoding-type=url), the latter ordered by key and then by initiation time.
 *
 * Not modelled: UploadPartCopy and aws-chunked (streaming-signature) bodies (501 NotImplemented),
 * additional checksums (x-amz-checksum-*), SSE-C, object lock, conditional Complete (If-None-Match),
 * ETag rewriting in ListObjects, lifecycle rules (AbortIncompleteMultipartUpload: the sweep of
 * abandoned uploads is ours to write), virtual-hosted bucket addressing, the 200-then-error answer
 * S3 may give to a slow Complete, S3's success for a Complete repeated after it succeeded (here:
 * NoSuchUpload), and persistence: open uploads live as long as the gateway, their parts in a
 * temporary folder that close() removes.
 */
export interface MultipartStand {
  /** Answers the request when it is a multipart call and returns true; false leaves it to s3rver. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean
  /** The ETag S3 would give an object that Complete assembled, for a HEAD or GET answered upstream. */
  etagOf(bucket: string, key: string, upstreamETag: string | undefined): string | undefined
  close(): Promise<void>
}

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'
const MIN_PART_SIZE = 5 * 1024 * 1024
const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
const MAX_PART_NUMBER = 10_000
const MAX_KEY_BYTES = 1024
const MAX_LISTED = 1000
/** 10,000 parts of about 100 characters each, with room to spare. */
const MAX_COMPLETE_BODY = 2 * 1024 * 1024

/** Headers given at Create that S3 keeps as the object's metadata. */
const KEPT_HEADERS = ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires']

interface Part {
  number: number
  /** Hex MD5 of the part, unquoted. */
  etag: string
  size: number
  lastModified: Date
  file: string
}

interface Upload {
  id: string
  bucket: string
  key: string
  initiated: Date
  headers: Record<string, string>
  parts: Map<number, Part>
  dir: string
  /** Set while Complete assembles it: from then on the upload answers as gone. */
  completing: boolean
}

class S3Failure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, string | number> = {},
  ) {
    super(message)
  }
}

const noSuchUpload = (id: string) =>
  new S3Failure(
    404,
    'NoSuchUpload',
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    { UploadId: id },
  )

function xmlEscape(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!)
}

function xmlUnescape(value: string): string {
  return value.replace(/&(quot|amp|lt|gt|apos|#(\d+)|#x([0-9a-f]+));/gi, (whole, name: string, dec?: string, hex?: string) => {
    if (dec) return String.fromCodePoint(Number(dec))
    if (hex) return String.fromCodePoint(parseInt(hex, 16))
    return ({ quot: '"', amp: '&', lt: '<', gt: '>', apos: "'" } as Record<string, string>)[name.toLowerCase()] ?? whole
  })
}

/** `<Name>value</Name>` for each pair, values escaped; undefined values are left out. */
function elements(fields: Array<[string, string | number | undefined]>): string {
  return fields
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `<${name}>${xmlEscape(String(value))}</${name}>`)
    .join('')
}

function sendXml(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'application/xml',
    'x-amz-request-id': randomBytes(8).toString('hex').toUpperCase(),
    ...headers,
  })
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`)
}

function sendFailure(res: http.ServerResponse, failure: S3Failure): void {
  if (res.headersSent) return void res.destroy()
  const details = Object.entries(failure.details)
  sendXml(res, failure.status, `<Error>${elements([['Code', failure.code], ['Message', failure.message], ...details])}</Error>`)
}

/** The parts a CompleteMultipartUpload body lists, in the order given. */
function parseCompleteBody(body: string): Array<{ number: number; etag: string }> {
  const malformed = new S3Failure(
    400,
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema',
  )
  const root = /^\s*(?:<\?xml[^>]*\?>)?\s*<CompleteMultipartUpload(?:\s[^>]*)?>([\s\S]*)<\/CompleteMultipartUpload>\s*$/.exec(body)
  if (!root) throw malformed
  const parts: Array<{ number: number; etag: string }> = []
  const rest = root[1]!.replace(/<Part>([\s\S]*?)<\/Part>/g, (_whole, inner: string) => {
    const number = /<PartNumber>\s*(\d{1,5})\s*<\/PartNumber>/.exec(inner)
    const etag = /<ETag>([^<]{1,200})<\/ETag>/.exec(inner)
    if (!number || !etag) throw malformed
    parts.push({ number: Number(number[1]), etag: xmlUnescape(etag[1]!).trim() })
    return ''
  })
  if (rest.trim() !== '' || parts.length === 0) throw malformed
  return parts
}

function unquote(etag: string): string {
  return etag.replace(/^"|"$/g, '')
}

/** A whole-number query parameter within [min, max], its default when absent; InvalidArgument otherwise. */
function intParam(url: URL, name: string, min: number, max: number, fallback: number): number {
  const raw = url.searchParams.get(name)
  if (raw === null) return fallback
  const value = Number(raw)
  if (!/^\d{1,9}$/.test(raw) || value < min || value > max) {
    throw new S3Failure(400, 'InvalidArgument', `Provided ${name} not an integer or within integer range`, {
      ArgumentName: name,
      ArgumentValue: raw.slice(0, 64),
    })
  }
  return value
}

async function readBounded(req: http.IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) {
      req.resume()
      throw new S3Failure(400, 'MaxMessageLengthExceeded', 'Your request was too big.')
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export async function createMultipartStand(options: { upstream: URL; owner: string }): Promise<MultipartStand> {
  const root = await mkdtemp(join(tmpdir(), 'modelplane-s3-parts-'))
  const uploads = new Map<string, Upload>()
  /** `bucket/key` → the plain MD5 s3rver gave the assembled object, and the multipart ETag S3 would. */
  const assembled = new Map<string, { upstream: string; multipart: string }>()
  const owner = `<ID>${xmlEscape(options.owner)}</ID><DisplayName>${xmlEscape(options.owner)}</DisplayName>`

  function openUpload(id: string, bucket: string, key: string): Upload {
    const upload = uploads.get(id)
    if (!upload || upload.completing || upload.bucket !== bucket || upload.key !== key) throw noSuchUpload(id)
    return upload
  }

  /** Upstream's answer for the bucket; s3rver serves any request unsigned, so none is signed. */
  function upstreamRequest(method: string, path: string, headers: http.OutgoingHttpHeaders = {}): http.ClientRequest {
    return http.request({ host: options.upstream.hostname, port: options.upstream.port, method, path, headers })
  }

  async function requireBucket(bucket: string): Promise<void> {
    const status = await new Promise<number>((resolve, reject) => {
      const req = upstreamRequest('HEAD', `/${encodeURIComponent(bucket)}`)
      req.on('response', (res) => {
        res.resume()
        resolve(res.statusCode ?? 502)
      })
      req.on('error', reject)
      req.end()
    })
    if (status === 404) {
      throw new S3Failure(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket })
    }
    if (status !== 200) throw new Error(`the bucket check answered ${status}`)
  }

  async function create(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, key: string): Promise<void> {
    req.resume()
    await requireBucket(bucket)
    const id = randomBytes(32).toString('base64url')
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string' && (KEPT_HEADERS.includes(name) || name.startsWith('x-amz-meta-'))) headers[name] = value
    }
    const dir = join(root, id)
    await mkdir(dir)
    uploads.set(id, { id, bucket, key, initiated: new Date(), headers, parts: new Map(), dir, completing: false })
    sendXml(
      res,
      200,
      `<InitiateMultipartUploadResult xmlns="${XMLNS}">${elements([['Bucket', bucket], ['Key', key], ['UploadId', id]])}</InitiateMultipartUploadResult>`,
    )
  }

  async function uploadPart(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, key: string, url: URL): Promise<void> {
    const id = url.searchParams.get('uploadId') ?? ''
    if (req.headers['x-amz-copy-source'] !== undefined) {
      throw new S3Failure(501, 'NotImplemented', 'UploadPartCopy is not modelled by the test gateway')
    }
    const payloadHash = String(req.headers['x-amz-content-sha256'] ?? 'UNSIGNED-PAYLOAD')
    if (payloadHash.startsWith('STREAMING-')) {
      throw new S3Failure(501, 'NotImplemented', 'aws-chunked bodies are not modelled by the test gateway')
    }
    const number = intParam(url, 'partNumber', 1, MAX_PART_NUMBER, 0)
    if (number === 0) {
      throw new S3Failure(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
        ArgumentName: 'partNumber',
      })
    }
    const upload = openUpload(id, bucket, key)
    const declared = req.headers['content-length']
    if (declared === undefined) throw new S3Failure(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.')
    if (Number(declared) > MAX_PART_SIZE) {
      throw new S3Failure(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
        ProposedSize: declared,
        MaxSizeAllowed: MAX_PART_SIZE,
      })
    }

    const partial = join(upload.dir, `${number}.${randomUUID()}.partial`)
    const md5 = createHash('md5')
    const sha256 = createHash('sha256')
    let size = 0
    try {
      await pipeline(
        req,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            md5.update(chunk)
            sha256.update(chunk)
            size += chunk.length
            yield chunk
          }
        },
        createWriteStream(partial),
      )
      const digest = md5.digest()
      if (size !== Number(declared)) {
        throw new S3Failure(400, 'IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header')
      }
      const contentMd5 = req.headers['content-md5']
      if (contentMd5 !== undefined && contentMd5 !== digest.toString('base64')) {
        throw new S3Failure(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.')
      }
      if (/^[0-9a-f]{64}$/.test(payloadHash) && payloadHash !== sha256.digest('hex')) {
        throw new S3Failure(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.")
      }
      // Aborted or completed while the bytes were arriving: they belong to nothing any more.
      if (uploads.get(id) !== upload || upload.completing) throw noSuchUpload(id)
      const file = join(upload.dir, String(number))
      await rename(partial, file)
      const etag = digest.toString('hex')
      upload.parts.set(number, { number, etag, size, lastModified: new Date(), file })
      res.writeHead(200, { etag: `"${etag}"`, 'content-length': 0 })
      res.end()
    } catch (error) {
      await unlink(partial).catch(() => undefined)
      throw error
    }
  }

  async function complete(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, key: string, url: URL): Promise<void> {
    const id = url.searchParams.get('uploadId') ?? ''
    const body = await readBounded(req, MAX_COMPLETE_BODY)
    const upload = openUpload(id, bucket, key)
    const listed = parseCompleteBody(body)
    for (let i = 1; i < listed.length; i++) {
      if (listed[i]!.number <= listed[i - 1]!.number) {
        throw new S3Failure(
          400,
          'InvalidPartOrder',
          'The list of parts was not in ascending order. Parts must be ordered by part number.',
          { UploadId: id },
        )
      }
    }
    const parts = listed.map(({ number, etag }) => {
      const part = upload.parts.get(number)
      if (!part || part.etag !== unquote(etag)) {
        throw new S3Failure(
          400,
          'InvalidPart',
          "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
          { UploadId: id, PartNumber: number, ETag: etag },
        )
      }
      return part
    })
    parts.slice(0, -1).forEach((part) => {
      if (part.size < MIN_PART_SIZE) {
        throw new S3Failure(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size', {
          ProposedSize: part.size,
          MinSizeAllowed: MIN_PART_SIZE,
          PartNumber: part.number,
          ETag: `"${part.etag}"`,
        })
      }
    })

    upload.completing = true
    try {
      const total = parts.reduce((sum, part) => sum + part.size, 0)
      const put = upstreamRequest('PUT', `/${[bucket, ...key.split('/')].map(encodeURIComponent).join('/')}`, {
        ...upload.headers,
        'content-length': total,
      })
      const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
        put.on('response', resolve)
        put.on('error', reject)
      })
      const [, answer] = await Promise.all([
        pipeline(
          Readable.from(
            (async function* () {
              for (const part of parts) yield* createReadStream(part.file)
            })(),
          ),
          put,
        ),
        answered,
      ])
      answer.resume()
      if (answer.statusCode !== 200) throw new Error(`s3rver answered ${answer.statusCode} to the assembled object`)
      const multipart = `"${createHash('md5')
        .update(Buffer.concat(parts.map((part) => Buffer.from(part.etag, 'hex'))))
        .digest('hex')}-${parts.length}"`
      assembled.set(`${bucket}/${key}`, { upstream: String(answer.headers.etag ?? ''), multipart })
      uploads.delete(id)
      await rm(upload.dir, { recursive: true, force: true })
      const location = `http://${req.headers.host ?? 'localhost'}/${[bucket, ...key.split('/')].map(encodeURIComponent).join('/')}`
      sendXml(
        res,
        200,
        `<CompleteMultipartUploadResult xmlns="${XMLNS}">${elements([
          ['Location', location],
          ['Bucket', bucket],
          ['Key', key],
          ['ETag', multipart],
        ])}</CompleteMultipartUploadResult>`,
      )
    } catch (error) {
      upload.completing = false
      throw error
    }
  }

  function listParts(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, key: string, url: URL): void {
    req.resume()
    const id = url.searchParams.get('uploadId') ?? ''
    const upload = openUpload(id, bucket, key)
    const maxParts = intParam(url, 'max-parts', 0, 2_147_483_647, MAX_LISTED)
    const marker = intParam(url, 'part-number-marker', 0, 2_147_483_647, 0)
    const after = [...upload.parts.values()].filter((part) => part.number > marker).sort((a, b) => a.number - b.number)
    const page = after.slice(0, Math.min(maxParts, MAX_LISTED))
    const truncated = after.length > page.length
    const partsXml = page
      .map(
        (part) =>
          `<Part>${elements([
            ['PartNumber', part.number],
            ['LastModified', part.lastModified.toISOString()],
            ['ETag', `"${part.etag}"`],
            ['Size', part.size],
          ])}</Part>`,
      )
      .join('')
    sendXml(
      res,
      200,
      `<ListPartsResult xmlns="${XMLNS}">${elements([['Bucket', bucket], ['Key', key], ['UploadId', id]])}` +
        `<Initiator>${owner}</Initiator><Owner>${owner}</Owner>` +
        elements([
          ['StorageClass', 'STANDARD'],
          ['PartNumberMarker', marker],
          ['NextPartNumberMarker', page.at(-1)?.number ?? 0],
          ['MaxParts', maxParts],
          ['IsTruncated', String(truncated)],
        ]) +
        `${partsXml}</ListPartsResult>`,
    )
  }

  async function abort(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, key: string, url: URL): Promise<void> {
    req.resume()
    const upload = openUpload(url.searchParams.get('uploadId') ?? '', bucket, key)
    uploads.delete(upload.id)
    await rm(upload.dir, { recursive: true, force: true })
    res.writeHead(204, { 'x-amz-request-id': randomBytes(8).toString('hex').toUpperCase() })
    res.end()
  }

  async function listUploads(req: http.IncomingMessage, res: http.ServerResponse, bucket: string, url: URL): Promise<void> {
    req.resume()
    const prefix = url.searchParams.get('prefix') ?? ''
    const delimiter = url.searchParams.get('delimiter') ?? ''
    const keyMarker = url.searchParams.get('key-marker') ?? ''
    const idMarker = keyMarker ? (url.searchParams.get('upload-id-marker') ?? '') : ''
    const encoding = url.searchParams.get('encoding-type')
    if (encoding !== null && encoding !== 'url') {
      throw new S3Failure(400, 'InvalidArgument', 'Invalid Encoding Method specified in Request', {
        ArgumentName: 'encoding-type',
      })
    }
    const maxUploads = intParam(url, 'max-uploads', 0, 2_147_483_647, MAX_LISTED)
    await requireBucket(bucket)
    const encode = (value: string) => (encoding === 'url' ? encodeURIComponent(value) : value)

    const ordered = [...uploads.values()]
      .filter((upload) => upload.bucket === bucket && upload.key.startsWith(prefix))
      .sort((a, b) =>
        a.key !== b.key ? (a.key < b.key ? -1 : 1) : a.initiated.getTime() - b.initiated.getTime() || (a.id < b.id ? -1 : 1),
      )
    const markerIndex = idMarker ? ordered.findIndex((upload) => upload.key === keyMarker && upload.id === idMarker) : -1
    // A key marker that is a common prefix (as NextKeyMarker is when a page ends on one) skips the keys below it.
    const skipsBelow = delimiter !== '' && keyMarker.endsWith(delimiter)
    const candidates = ordered.filter((upload, index) => {
      if (!keyMarker) return true
      if (skipsBelow && upload.key.startsWith(keyMarker)) return false
      if (upload.key === keyMarker) return markerIndex >= 0 && index > markerIndex
      return upload.key > keyMarker
    })

    const listed: Upload[] = []
    const prefixes: string[] = []
    let truncated = false
    let nextKey: string | undefined
    let nextId: string | undefined
    for (const upload of candidates) {
      const cut = delimiter ? upload.key.indexOf(delimiter, prefix.length) : -1
      const common = cut >= 0 ? upload.key.slice(0, cut + delimiter.length) : undefined
      if (common !== undefined && prefixes.at(-1) === common) continue
      if (listed.length + prefixes.length >= Math.min(maxUploads, MAX_LISTED)) {
        truncated = true
        break
      }
      if (common !== undefined) {
        prefixes.push(common)
        nextKey = common
        nextId = undefined
      } else {
        listed.push(upload)
        nextKey = upload.key
        nextId = upload.id
      }
    }
    const uploadsXml = listed
      .map(
        (upload) =>
          `<Upload>${elements([['Key', encode(upload.key)], ['UploadId', upload.id]])}` +
          `<Initiator>${owner}</Initiator><Owner>${owner}</Owner>` +
          `${elements([['StorageClass', 'STANDARD'], ['Initiated', upload.initiated.toISOString()]])}</Upload>`,
      )
      .join('')
    const prefixesXml = prefixes.map((common) => `<CommonPrefixes>${elements([['Prefix', encode(common)]])}</CommonPrefixes>`).join('')
    sendXml(
      res,
      200,
      `<ListMultipartUploadsResult xmlns="${XMLNS}">` +
        elements([
          ['Bucket', bucket],
          ['KeyMarker', encode(keyMarker)],
          ['UploadIdMarker', idMarker],
          ['NextKeyMarker', truncated && nextKey !== undefined ? encode(nextKey) : undefined],
          ['NextUploadIdMarker', truncated ? (nextId ?? '') : undefined],
          ['Delimiter', delimiter ? encode(delimiter) : undefined],
          ['Prefix', encode(prefix)],
          ['MaxUploads', maxUploads],
          ['EncodingType', encoding ?? undefined],
          ['IsTruncated', String(truncated)],
        ]) +
        `${uploadsXml}${prefixesXml}</ListMultipartUploadsResult>`,
    )
  }

  return {
    handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://gateway')
      const [, rawBucket = '', ...rawKey] = url.pathname.split('/')
      let bucket: string
      let key: string
      try {
        bucket = decodeURIComponent(rawBucket)
        key = rawKey.map(decodeURIComponent).join('/')
      } catch {
        return false
      }
      const q = url.searchParams
      let call: (() => Promise<void> | void) | undefined
      if (!key && bucket && req.method === 'GET' && q.has('uploads')) call = () => listUploads(req, res, bucket, url)
      else if (key && req.method === 'POST' && q.has('uploads')) call = () => create(req, res, bucket, key)
      else if (key && q.has('uploadId')) {
        if (req.method === 'PUT') call = () => uploadPart(req, res, bucket, key, url)
        else if (req.method === 'POST') call = () => complete(req, res, bucket, key, url)
        else if (req.method === 'GET') call = () => listParts(req, res, bucket, key, url)
        else if (req.method === 'DELETE') call = () => abort(req, res, bucket, key, url)
      }
      if (!call) return false
      const run = async () => {
        if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
          req.resume()
          throw new S3Failure(400, 'KeyTooLongError', 'Your key is too long', { MaxSizeAllowed: MAX_KEY_BYTES })
        }
        await call()
      }
      run().catch((error: unknown) => {
        req.resume()
        sendFailure(
          res,
          error instanceof S3Failure ? error : new S3Failure(500, 'InternalError', 'We encountered an internal error. Please try again.'),
        )
      })
      return true
    },

    etagOf(bucket, key, upstreamETag) {
      const known = assembled.get(`${bucket}/${key}`)
      return known && upstreamETag === known.upstream ? known.multipart : upstreamETag
    },

    async close() {
      uploads.clear()
      await rm(root, { recursive: true, force: true })
    },
  }
}
