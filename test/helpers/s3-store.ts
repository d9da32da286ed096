import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'minio'
import { type SigV4Gateway, startSigV4Gateway } from './s3-gateway.js'

interface S3rverServer {
  run(): Promise<{ port: number }>
  close(): Promise<void>
}

/**
 * An S3 blob store for an app under test: s3rver in a temporary folder behind the SigV4 gateway,
 * the env that points the app at it, and a listing of keys to check what the app left behind.
 */
export async function startS3(bucket: string): Promise<{ env: Record<string, string>; list(prefix: string): Promise<string[]>; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'modelplane-s3-'))
  const S3rver = createRequire(import.meta.url)('s3rver') as new (o: Record<string, unknown>) => S3rverServer
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir })
  const { port } = await server.run()
  const gateway: SigV4Gateway = await startSigV4Gateway({ upstream: `http://127.0.0.1:${port}`, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1' })
  const url = new URL(gateway.url)
  const client = new Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: 'S3RVER', secretKey: 'S3RVER', region: 'us-east-1', pathStyle: true })
  return {
    env: { S3_ENDPOINT: gateway.url, S3_ACCESS_KEY: 'S3RVER', S3_SECRET_KEY: 'S3RVER', S3_BUCKET: bucket, S3_REGION: 'us-east-1' },
    async list(prefix) {
      const keys: string[] = []
      for await (const item of client.listObjectsV2(bucket, prefix, true)) if (item.name) keys.push(item.name)
      return keys
    },
    async close() {
      await gateway.close()
      await server.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
