import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createOutbound } from '../../src/platform/net/outbound.js'
import { signV4 } from '../../src/platform/net/sigv4.js'

describe('SigV4', () => {
  it("signs AWS's documented example (GET Object with Range) to the documented signature", () => {
    const headers = signV4(
      {
        method: 'GET',
        url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'),
        headers: { range: 'bytes=0-9', 'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
      },
      { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
      { region: 'us-east-1', service: 's3' },
      new Date('2013-05-24T00:00:00Z'),
    )
    expect(headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    )
  })
})

describe('outbound calls', () => {
  let server: http.Server
  let port: number
  beforeAll(async () => {
    server = http.createServer((_req, res) => res.end('{"ok":true}'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it('refuses http unless allowed, a denied literal address, and a name that resolves into a denied range', async () => {
    const open = createOutbound({ deniedCidrs: ['169.254.0.0/16'], timeoutMs: 2_000 })
    const closed = createOutbound({ deniedCidrs: ['127.0.0.0/8', '::1/128'], timeoutMs: 2_000 })
    try {
      await expect(open.request(`http://127.0.0.1:${port}/`)).rejects.toMatchObject({ failure: 'INVALID_URL' })
      expect((await open.request(`http://127.0.0.1:${port}/`, { allowHttp: true })).body).toBe('{"ok":true}')
      await expect(open.request('https://169.254.169.254/latest/meta-data/')).rejects.toMatchObject({ failure: 'REFUSED' })
      await expect(open.request('https://user:pw@example.com/')).rejects.toMatchObject({ failure: 'INVALID_URL' })
      await expect(closed.request(`http://localhost:${port}/`, { allowHttp: true })).rejects.toMatchObject({ failure: 'REFUSED' })
    } finally {
      open.close()
      closed.close()
    }
  })
})
