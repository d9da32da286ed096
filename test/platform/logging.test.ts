import { Writable } from 'node:stream'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loggerOptions, redactSecrets, redactUrl } from '../../src/platform/logger.js'
import { testConfig } from '../helpers/app.js'

function capture() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  return { log: pino(loggerOptions('info'), stream), text: () => lines.join('') }
}

describe('logs never carry secrets', () => {
  it('redacts fields named like credentials at any depth', () => {
    const out = redactSecrets({
      clusterId: 'c1',
      spec: { kubeconfig: 'apiVersion...', nested: { password: 'p', apiKey: 'k', clientSecret: 's' } },
      tokens: [{ accessToken: 'a' }],
    })
    expect(JSON.stringify(out)).not.toMatch(/apiVersion|"p"|"k"|"s"|"a"/)
    expect(out).toMatchObject({ clusterId: 'c1' })
  })

  it('redacts credentials carried in query strings', () => {
    expect(redactUrl('/v1/blobs/a?expires=1&sig=abc&x=1')).toBe('/v1/blobs/a?expires=1&sig=%5Bredacted%5D&x=1')
    expect(redactUrl('/plain/path')).toBe('/plain/path')
  })

  it('keeps authorization headers, signed-URL signatures and secret fields out of request logs', async () => {
    const { log, text } = capture()
    const app = await buildApp(testConfig({ LOG_LEVEL: 'info' }), { logger: log })
    await app.ready()
    try {
      await app.inject({
        url: '/no/such?token=tok-123&sig=sig-456',
        headers: { authorization: 'Bearer eyJhbGciOi.secret', 'x-api-key': 'mp_key_789' },
      })
      app.log.info({ user: { email: 'a@b.c', password: 'pw-000' } }, 'something happened')
    } finally {
      await app.close()
    }
    const written = text()
    // The controls: the request was logged (its path, with the query values masked) and so was the
    // line with the user, so the absences below are not those of lines never written.
    expect(written).toContain('/no/such')
    expect(written).toContain('something happened')
    expect(written).toContain('a@b.c')
    for (const secret of ['tok-123', 'sig-456', 'eyJhbGciOi', 'mp_key_789', 'pw-000']) {
      expect(written).not.toContain(secret)
    }
  })
})
