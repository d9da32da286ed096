import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import type { VaultKey } from '../config.js'
import { AppError } from './errors.js'

/**
 * Secrets at rest: AES-256-GCM with a key ring. A ciphertext is
 * `v1.<keyId>.<iv>.<ciphertext>.<tag>` (base64url parts), so any key still in the ring opens it
 * and rotation is "put the new key first". The optional context (say, "cluster:<id>:kubeconfig")
 * is bound as additional data: a ciphertext copied to another row or column will not open.
 */
export interface Vault {
  encrypt(plaintext: string, context?: string): string
  decrypt(ciphertext: string, context?: string): string
  /** True when the ciphertext was sealed with a key other than the newest: re-encrypt it. */
  needsRotation(ciphertext: string): boolean
  /** A 32-byte key for one purpose (e.g. signing URLs), derived from the newest vault key. */
  deriveKey(purpose: string): Buffer
  readonly currentKeyId: string
}

export class VaultError extends AppError {
  constructor(message: string) {
    super('SECRET_UNREADABLE', 500, message)
  }
}

const VERSION = 'v1'
const IV_BYTES = 12

export function createVault(keys: readonly VaultKey[]): Vault {
  const newest = keys[0]
  if (!newest) throw new Error('the vault needs at least one key')
  const byId = new Map(keys.map((k) => [k.id, k.key]))

  return {
    currentKeyId: newest.id,
    encrypt(plaintext, context = '') {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', newest.key, iv)
      cipher.setAAD(Buffer.from(`${newest.id}|${context}`))
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      const tag = cipher.getAuthTag()
      return [VERSION, newest.id, iv.toString('base64url'), body.toString('base64url'), tag.toString('base64url')].join(
        '.',
      )
    },
    decrypt(ciphertext, context = '') {
      const parts = ciphertext.split('.')
      if (parts.length !== 5 || parts[0] !== VERSION) throw new VaultError('not a vault ciphertext')
      const [, keyId, iv, body, tag] = parts as [string, string, string, string, string]
      const key = byId.get(keyId)
      if (!key) throw new VaultError(`no key "${keyId}" in the vault key ring`)
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
        decipher.setAAD(Buffer.from(`${keyId}|${context}`))
        decipher.setAuthTag(Buffer.from(tag, 'base64url'))
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8')
      } catch {
        throw new VaultError('ciphertext failed authentication (tampered, or sealed for another context)')
      }
    },
    needsRotation(ciphertext) {
      return ciphertext.split('.')[1] !== newest.id
    },
    deriveKey(purpose) {
      return Buffer.from(hkdfSync('sha256', newest.key, Buffer.alloc(0), `modelplane:${purpose}`, 32))
    },
  }
}

/**
 * VAULT_KEYS when set. Otherwise (embedded mode only: config refuses DATABASE_URL without keys)
 * a key generated once into DATA_DIR/vault.key, readable by the owner only.
 */
export function resolveVaultKeys(configured: readonly VaultKey[], dataDir: string, log: Logger): VaultKey[] {
  if (configured.length > 0) return [...configured]
  const file = path.join(dataDir, 'vault.key')
  if (fs.existsSync(file)) {
    const [id, material] = fs.readFileSync(file, 'utf8').trim().split(':')
    const key = Buffer.from(material ?? '', 'base64')
    if (!id || key.length !== 32) throw new Error(`${file} is not a vault key ("<id>:<base64 of 32 bytes>")`)
    return [{ id, key }]
  }
  fs.mkdirSync(dataDir, { recursive: true })
  const key = { id: 'local1', key: randomBytes(32) }
  fs.writeFileSync(file, `${key.id}:${key.key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
  log.warn(
    { file },
    'VAULT_KEYS is not set: generated a vault key in the data folder. Back it up with the data, or set VAULT_KEYS in production',
  )
  return [key]
}
