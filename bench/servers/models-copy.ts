import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { Client } from 'minio'

/**
 * Bench only: the plain copy an import is measured against, in a process of its own as the app is.
 * One GET of the file from the hub stand-in (fetch, following the redirect to the CDN URL) streamed
 * into the store with its size: minio's putObject into S3 (the client the app uses, so the same
 * multipart upload), or a write stream into a file. The bytes are hashed on the way (sha256, as the
 * import checks them), so the copy does the work an import cannot skip and nothing more.
 * Prints one JSON line: {ms, bytes, sha256}.
 *
 * COPY_URL: the resolve URL; COPY_TO: s3 | file; COPY_KEY (s3) or COPY_FILE (file);
 * S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET, S3_REGION as the app reads them.
 */
const env = process.env
const started = performance.now()
const answer = await fetch(env.COPY_URL!, { redirect: 'follow' })
if (answer.status !== 200 || !answer.body) throw new Error(`the hub answered ${answer.status}`)
const size = Number(answer.headers.get('content-length'))
const hash = createHash('sha256')
let bytes = 0
const hashed = new Transform({
  transform(chunk: Buffer, _encoding, done) {
    hash.update(chunk)
    bytes += chunk.length
    done(null, chunk)
  },
})
const source = Readable.fromWeb(answer.body as WebReadableStream<Uint8Array>)
if (env.COPY_TO === 's3') {
  const endpoint = new URL(env.S3_ENDPOINT!)
  const client = new Client({
    endPoint: endpoint.hostname,
    port: Number(endpoint.port),
    useSSL: endpoint.protocol === 'https:',
    accessKey: env.S3_ACCESS_KEY!,
    secretKey: env.S3_SECRET_KEY!,
    region: env.S3_REGION!,
    pathStyle: true,
  })
  await Promise.all([pipeline(source, hashed), client.putObject(env.S3_BUCKET!, env.COPY_KEY!, hashed, size)])
} else {
  await pipeline(source, hashed, fs.createWriteStream(env.COPY_FILE!))
}
console.log(JSON.stringify({ ms: performance.now() - started, bytes, sha256: hash.digest('hex') }))
