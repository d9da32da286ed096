import { text } from 'node:stream/consumers'
import pino from 'pino'
import Type from 'typebox'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { type BlobStore, createBlobStore } from '../../src/platform/blob/index.js'
import { loggerOptions } from '../../src/platform/logger.js'
import { createVault, resolveVaultKeys } from '../../src/platform/vault.js'
import { FAST_HUB } from './workflow.js'

/**
 * One replica for the two-process tests (test/platform/replicas.test.ts): the app built from the
 * environment exactly as src/server.ts builds it (the shared-parts rule included), on the embedded
 * workflow hub named REPLICA_HUB, plus what only those tests need:
 *
 * - REPLICA_BLOB_DELAY_MS: every read from the object store waits this long first, as a distant S3
 *   would, so that an import's batches last long enough to be watched and interrupted;
 * - PUT /test/blobs/<key> stores a text through this replica and answers the URL this replica signs
 *   for it; GET /test/blobs/<key> reads it back through this replica.
 */
const config = loadConfig()
const log = pino(loggerOptions(config.logLevel))
const delayMs = Number(process.env.REPLICA_BLOB_DELAY_MS ?? 0)

const store = await createBlobStore({
  s3: config.s3,
  dataDir: config.dataDir,
  dir: config.blobDir,
  publicUrl: config.publicUrl,
  signingKey: createVault(resolveVaultKeys(config.vaultKeys, config.dataDir, log)).deriveKey('blob-url-signing'),
  log,
})
const pause = () => new Promise((resolve) => setTimeout(resolve, delayMs))
const blob: BlobStore = {
  ...store,
  get: async (key) => {
    await pause()
    return store.get(key)
  },
}

const app = await buildApp(config, {
  logger: log,
  blob,
  workflows: { hub: process.env.REPLICA_HUB!, tuning: FAST_HUB },
})

const KeyParams = Type.Object({ '*': Type.String({ minLength: 1, maxLength: 200 }) })
const Stored = Type.Object({ text: Type.String({ maxLength: 1000 }) })
app.put(
  '/test/blobs/*',
  {
    config: { public: true },
    schema: {
      operationId: 'testPutBlob',
      tags: ['test'],
      summary: 'Test only: store a text and sign a GET URL for it',
      params: KeyParams,
      body: Stored,
      response: { 200: Type.Object({ url: Type.String() }) },
    },
  },
  async (request) => {
    const { '*': key } = request.params as { '*': string }
    await store.put(key, (request.body as { text: string }).text, { contentType: 'text/plain' })
    return { url: await store.presignGet(key, 300) }
  },
)
app.get(
  '/test/blobs/*',
  {
    config: { public: true },
    schema: {
      operationId: 'testGetBlob',
      tags: ['test'],
      summary: 'Test only: read a text back',
      params: KeyParams,
      response: { 200: Stored },
    },
  },
  async (request) => {
    const { '*': key } = request.params as { '*': string }
    return { text: await text(await blob.get(key)) }
  },
)

await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
process.stdout.write('replica ready\n')
process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0))
})
