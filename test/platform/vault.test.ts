import fs from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { createVault, resolveVaultKeys } from '../../src/platform/vault.js'
import { tempDir } from '../helpers/app.js'

const k = (id: string, fill: number) => ({ id, key: Buffer.alloc(32, fill) })

describe('vault', () => {
  it('round-trips a secret and never stores it in the clear', () => {
    const vault = createVault([k('a', 1)])
    const sealed = vault.encrypt('apiVersion: v1\nusers: [token: s3cr3t]', 'cluster:1:kubeconfig')
    expect(sealed).not.toContain('s3cr3t')
    expect(vault.decrypt(sealed, 'cluster:1:kubeconfig')).toBe('apiVersion: v1\nusers: [token: s3cr3t]')
  })

  it('still opens old ciphertexts after a key rotation, and flags them for re-encryption', () => {
    const before = createVault([k('a', 1)])
    const sealed = before.encrypt('secret')
    const after = createVault([k('b', 2), k('a', 1)])
    expect(after.decrypt(sealed)).toBe('secret')
    expect(after.needsRotation(sealed)).toBe(true)
    expect(after.needsRotation(after.encrypt('secret'))).toBe(false)
  })

  it('rejects a tampered ciphertext', () => {
    const vault = createVault([k('a', 1)])
    const parts = vault.encrypt('secret').split('.')
    const body = Buffer.from(parts[3]!, 'base64url')
    body[0] = body[0]! ^ 0xff
    parts[3] = body.toString('base64url')
    expect(() => vault.decrypt(parts.join('.'))).toThrow(/authentication/)
  })

  it('rejects a ciphertext moved to another context', () => {
    const vault = createVault([k('a', 1)])
    const sealed = vault.encrypt('secret', 'user:1')
    expect(() => vault.decrypt(sealed, 'user:2')).toThrow()
  })

  it('rejects a ciphertext whose key left the ring', () => {
    const sealed = createVault([k('old', 1)]).encrypt('secret')
    expect(() => createVault([k('new', 2)]).decrypt(sealed)).toThrow(/no key "old"/)
  })

  it('generates one key into the data folder in embedded mode and reuses it', () => {
    const dir = tempDir()
    const first = resolveVaultKeys([], dir, pino({ level: 'silent' }))
    const second = resolveVaultKeys([], dir, pino({ level: 'silent' }))
    expect(second[0]!.key.equals(first[0]!.key)).toBe(true)
    expect(fs.statSync(path.join(dir, 'vault.key')).mode & 0o077).toBe(0)
  })
})
