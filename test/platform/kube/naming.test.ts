import { describe, expect, it } from 'vitest'
import {
  dns1123Name,
  isDns1123Label,
  labelSelector,
  labelValue,
  managedLabels,
  managedSelector,
} from '../../../src/platform/kube/index.js'

const ID = '3f2c9a10-5b7e-4c1d-9e8f-0a1b2c3d4e5f'

describe('dns1123Name', () => {
  it('is the prefix and the id when that fits', () => {
    expect(dns1123Name('llama-3-8b', ID)).toBe(`llama-3-8b-${ID}`)
  })

  it('cuts a long name to 63 characters with a hash of the id, keeping the prefix readable', () => {
    const name = dns1123Name('Meta-Llama-3.1-405B-Instruct-FP8 on H100 (tensor parallel)', ID)
    expect(name.length).toBeLessThanOrEqual(63)
    expect(isDns1123Label(name)).toBe(true)
    expect(name.startsWith('meta-llama-3-1-405b-instruct-fp8-on-h100')).toBe(true)
  })

  it('gives two ids two names and one id always the same name', () => {
    const prefix = 'x'.repeat(80)
    const other = ID.replace('3f', '4f')
    expect(dns1123Name(prefix, ID)).toBe(dns1123Name(prefix, ID))
    expect(dns1123Name(prefix, ID)).not.toBe(dns1123Name(prefix, other))
  })

  it('hashes ids that would change when cleaned, so ABC and abc stay apart', () => {
    expect(dns1123Name('app', 'ABC')).not.toBe(dns1123Name('app', 'abc'))
    expect(isDns1123Label(dns1123Name('app', 'ABC'))).toBe(true)
  })

  it('honours a smaller max and survives a prefix with nothing usable', () => {
    expect(dns1123Name('endpoint', ID, 20).length).toBeLessThanOrEqual(20)
    expect(isDns1123Label(dns1123Name('---///', ID))).toBe(true)
  })
})

describe('labels', () => {
  it('carries what teardown finds objects by', () => {
    expect(
      managedLabels({ name: 'vllm', instance: 'llama-3-8b', tenantId: 't-1', owner: { key: 'modelplane.io/endpoint-id', id: ID } }),
    ).toEqual({
      'app.kubernetes.io/managed-by': 'modelplane',
      'app.kubernetes.io/name': 'vllm',
      'app.kubernetes.io/instance': 'llama-3-8b',
      'modelplane.io/tenant': 't-1',
      'modelplane.io/endpoint-id': ID,
    })
  })

  it('makes any display text a valid label value', () => {
    const value = labelValue('Llama 3.1 405B Instruct / FP8 — the big one, served on eight H100 GPUs')
    expect(value.length).toBeLessThanOrEqual(63)
    expect(value).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/)
  })

  it('refuses an id that is not a label value instead of altering it', () => {
    expect(() => managedLabels({ name: 'a', instance: 'b', tenantId: 'tenant with spaces' })).toThrow(/label value/)
  })

  it('builds a selector of ours for one tenant and owner', () => {
    expect(managedSelector('t-1', { key: 'modelplane.io/app-id', id: 'a-9' })).toBe(
      'app.kubernetes.io/managed-by=modelplane,modelplane.io/app-id=a-9,modelplane.io/tenant=t-1',
    )
  })

  it('refuses selector values that would change its meaning', () => {
    expect(() => labelSelector({ 'modelplane.io/tenant': 't-1,app.kubernetes.io/name=x' })).toThrow(/label value/)
  })
})
