import fs from 'node:fs'
import { ApiException } from '@kubernetes/client-node'
import { describe, expect, it } from 'vitest'
import { KubeError, toKubeError } from '../../../src/platform/kube/index.js'

interface Recorded {
  httpStatus: number
  body: Record<string, unknown>
}

/** What client-node 1.4 throws for a recorded answer: the status and the response text as `body`. */
function thrown(name: string): ApiException<string> {
  const recorded = JSON.parse(
    fs.readFileSync(new URL(`../../fixtures/kube/${name}.json`, import.meta.url), 'utf8'),
  ) as Recorded
  return new ApiException(recorded.httpStatus, 'Unknown API Status Code!', JSON.stringify(recorded.body), {
    'content-type': 'application/json',
  })
}

describe('toKubeError, on answers recorded from kube-apiserver 1.26', () => {
  it('401 is CLUSTER_UNAUTHORIZED', () => {
    const err = toKubeError(thrown('error-401-bad-token'))
    expect(err).toMatchObject({ code: 'CLUSTER_UNAUTHORIZED', httpStatus: 401, reason: 'Unauthorized', retryable: false })
  })

  it('401 as client-node throws it for typed APIs (no body) is CLUSTER_UNAUTHORIZED too', () => {
    const err = toKubeError(new ApiException(401, 'Unauthorized', undefined, {}))
    expect(err.code).toBe('CLUSTER_UNAUTHORIZED')
  })

  it('403 is CLUSTER_FORBIDDEN and says which verb on which resource was refused', () => {
    const err = toKubeError(thrown('error-403-no-rights'))
    expect(err.code).toBe('CLUSTER_FORBIDDEN')
    expect(err.message).toContain('cannot list resource "nodes"')
    expect(err.reason).toBe('Forbidden')
  })

  it('404 is CLUSTER_NOT_FOUND with the server message', () => {
    const err = toKubeError(thrown('error-404-namespace'))
    expect(err).toMatchObject({ code: 'CLUSTER_NOT_FOUND', reason: 'NotFound', message: 'namespaces "does-not-exist" not found' })
  })

  it('409 AlreadyExists is CLUSTER_CONFLICT', () => {
    const err = toKubeError(thrown('error-409-already-exists'))
    expect(err).toMatchObject({ code: 'CLUSTER_CONFLICT', reason: 'AlreadyExists', retryable: false })
  })

  it('409 of a server-side apply names the conflicting field', () => {
    const err = toKubeError(thrown('error-409-ssa-field-conflict'))
    expect(err.code).toBe('CLUSTER_CONFLICT')
    expect(err.causes).toEqual([{ field: '.spec.replicas', message: 'conflict with "modelplane"' }])
  })

  it('409 of an apply without a message still names the conflicting fields', () => {
    const body = { kind: 'Status', code: 409, reason: 'Conflict', details: { causes: [{ reason: 'FieldManagerConflict', message: 'conflict with "hpa"', field: '.spec.replicas' }] } }
    const err = toKubeError(new ApiException(409, '', JSON.stringify(body), {}))
    expect(err).toMatchObject({ code: 'CLUSTER_CONFLICT', message: 'the cluster reported a conflict on .spec.replicas' })
  })

  it('422 is CLUSTER_INVALID_OBJECT with the causes', () => {
    const err = toKubeError(thrown('error-422-invalid-name'))
    expect(err.code).toBe('CLUSTER_INVALID_OBJECT')
    expect(err.causes).toHaveLength(1)
    expect(err.causes![0]!.field).toBe('metadata.name')
    expect(err.causes![0]!.message).toMatch(/^Invalid value: "Not_Valid"/)
  })

  it("500 of an apply with an unknown field is CLUSTER_ERROR with the server's message, not to be retried", () => {
    const err = toKubeError(thrown('error-500-ssa-unknown-field'))
    expect(err).toMatchObject({ code: 'CLUSTER_ERROR', httpStatus: 500, retryable: false })
    expect(err.message).toContain('.spec.replicaz: field not declared in schema')
  })

  it('503 and 429 are CLUSTER_ERROR worth retrying', () => {
    expect(toKubeError(new ApiException(503, '', 'upstream down', {}))).toMatchObject({ code: 'CLUSTER_ERROR', retryable: true })
    expect(toKubeError(new ApiException(429, '', '', {})).retryable).toBe(true)
  })

  it('leaves the envelope status to ours: the cluster refusing our credentials is a 502 here, not a 401', () => {
    expect(toKubeError(thrown('error-401-bad-token')).status).toBe(502)
    expect(toKubeError(thrown('error-409-already-exists')).status).toBe(409)
  })
})

describe('toKubeError, on errors below HTTP', () => {
  const sysErr = (code: string, message = code) => Object.assign(new Error(message), { code })

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH'])('%s is CLUSTER_UNREACHABLE, retryable', (code) => {
    expect(toKubeError(sysErr(code))).toMatchObject({ code: 'CLUSTER_UNREACHABLE', retryable: true, status: 503 })
  })

  it.each([
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'CERT_HAS_EXPIRED',
  ])('%s is CLUSTER_TLS_ERROR, not retryable', (code) => {
    expect(toKubeError(sysErr(code))).toMatchObject({ code: 'CLUSTER_TLS_ERROR', retryable: false })
  })

  it('an abort is CLUSTER_UNREACHABLE', () => {
    const abort = Object.assign(new Error('The operation was aborted'), { name: 'AbortError' })
    expect(toKubeError(abort).code).toBe('CLUSTER_UNREACHABLE')
  })

  it('looks through wrapped causes and aggregate errors', () => {
    const wrapped = new Error('request to https://x failed', { cause: sysErr('CERT_HAS_EXPIRED') })
    expect(toKubeError(new Error('outer', { cause: wrapped })).code).toBe('CLUSTER_TLS_ERROR')
    const aggregate = new AggregateError([sysErr('ECONNREFUSED')], 'all addresses failed')
    expect(toKubeError(aggregate).code).toBe('CLUSTER_UNREACHABLE')
  })

  it('keeps a KubeError as it is', () => {
    const original = new KubeError('CLUSTER_FORBIDDEN', 'no')
    expect(toKubeError(original)).toBe(original)
  })

  it('anything else is CLUSTER_ERROR', () => {
    expect(toKubeError(new Error('surprise')).code).toBe('CLUSTER_ERROR')
    expect(toKubeError('a string').code).toBe('CLUSTER_ERROR')
  })

  it('bounds a huge server message', () => {
    const err = toKubeError(new ApiException(500, '', JSON.stringify({ kind: 'Status', message: 'x'.repeat(100_000) }), {}))
    expect(err.message.length).toBeLessThan(1_100)
  })
})
