import { randomUUID } from 'node:crypto'
import type { Static } from 'typebox'
import type { Logger } from 'pino'
import type { Principal } from '../../platform/auth/principal.js'
import { type Database, transaction } from '../../platform/db/client.js'
import { ValidationError } from '../../platform/errors.js'
import type { EventBus } from '../../platform/events/index.js'
import { assertIfMatch, etagOf } from '../../platform/http/etag.js'
import { type PageResult, pageRequest, pageResult } from '../../platform/http/pagination.js'
import { OutboundError, type Outbound } from '../../platform/net/outbound.js'
import type { Vault } from '../../platform/vault.js'
import * as crud from './crud.js'
import { credentialInUse, credentialNameTaken, credentialNotFound, credentialVerificationFailed, nothingToUpdate } from './errors.js'
import {
  findRemoteModel,
  hintOf,
  type ProviderDefinition,
  providerById,
  type RemoteModelLookup,
  type Secrets,
  type Settings,
  URL_SETTINGS,
  type Verification,
  verifyWithProvider,
} from './providers.js'
import type { Credential } from './schema.js'
import type { ModelCredentialRow } from './tables.js'

export const CREDENTIAL_TOPIC = {
  created: 'credential.created',
  rotated: 'credential.rotated',
  deleted: 'credential.deleted',
} as const

export interface CredentialInput {
  provider: string
  name: string
  secrets: Secrets
  settings?: Settings
}

export interface CredentialUpdateInput {
  name?: string
  settings?: Settings
  secrets?: Secrets
}

export interface CredentialServiceDeps {
  db: Database
  vault: Pick<Vault, 'encrypt' | 'decrypt'>
  events: Pick<EventBus, 'publish'>
  outbound: Outbound
  hubUrl: string
  log: Logger
}

type CredentialView = Static<typeof Credential>

export function credentialView(row: crud.CredentialViewRow): CredentialView {
  return {
    id: row.id,
    provider: row.providerId as CredentialView['provider'],
    name: row.name,
    settings: row.settings,
    hint: row.hint,
    status: row.status as CredentialView['status'],
    verifiedAt: row.verifiedAt ? row.verifiedAt.toISOString() : null,
    lastError: row.lastError,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}

const etag = (row: Pick<ModelCredentialRow, 'updatedAt' | 'version'>) => etagOf(row.updatedAt, row.version)
/** Binds the ciphertext to its row: copied to another credential, it does not open. */
const secretContext = (id: string) => `model-credential:${id}:secrets`

/** Checks secrets and settings against what the provider declares; 400 naming the field otherwise. */
function checkFields(provider: ProviderDefinition, secrets: Secrets, settings: Settings, outbound: Outbound): void {
  const problems: Array<{ field: string; message: string }> = []
  for (const name of Object.keys(secrets)) {
    if (!provider.credentialFields.some((f) => f.name === name)) problems.push({ field: `body.secrets.${name}`, message: `${provider.id} takes no such secret` })
  }
  for (const f of provider.credentialFields) {
    if (f.required && !secrets[f.name]) problems.push({ field: `body.secrets.${f.name}`, message: 'required' })
  }
  for (const [name, value] of Object.entries(settings)) {
    const field = provider.settingsFields.find((f) => f.name === name)
    if (!field) problems.push({ field: `body.settings.${name}`, message: `${provider.id} takes no such setting` })
    else if (name === 'allowHttp' ? typeof value !== 'boolean' : typeof value !== 'string') {
      problems.push({ field: `body.settings.${name}`, message: name === 'allowHttp' ? 'must be true or false' : 'must be text' })
    }
  }
  for (const f of provider.settingsFields) {
    if (f.required && (settings[f.name] === undefined || settings[f.name] === '')) problems.push({ field: `body.settings.${f.name}`, message: 'required' })
  }
  if (settings.region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(String(settings.region))) {
    problems.push({ field: 'body.settings.region', message: 'not an AWS region name (us-east-1)' })
  }
  for (const name of URL_SETTINGS) {
    if (typeof settings[name] !== 'string') continue
    try {
      outbound.check(String(settings[name]), settings.allowHttp === true)
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err
      problems.push({ field: `body.settings.${name}`, message: err.message })
    }
  }
  if (problems.length > 0) throw new ValidationError(`the credential was refused: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems)
}

function normalized(settings: Settings): Settings {
  const out: Settings = {}
  for (const [k, v] of Object.entries(settings)) out[k] = URL_SETTINGS.has(k) && typeof v === 'string' ? v.replace(/\/+$/, '') : v
  return out
}

export function createCredentialService(deps: CredentialServiceDeps) {
  const { db, vault, events, outbound, hubUrl, log } = deps

  function verify(provider: ProviderDefinition, settings: Settings, secrets: Secrets, signal?: AbortSignal): Promise<Verification> {
    return verifyWithProvider(provider, settings, secrets, { outbound, hubUrl, signal })
  }

  async function visible(principal: Principal, id: string): Promise<ModelCredentialRow> {
    const row = await crud.getCredential(db, principal.tenantId, id)
    if (!row) throw credentialNotFound()
    return row
  }

  const open = (row: ModelCredentialRow): Secrets =>
    row.secretSealed ? (JSON.parse(vault.decrypt(row.secretSealed, secretContext(row.id))) as Secrets) : {}

  function rename(err: unknown, name: string): never {
    if (crud.uniqueViolationOf(err) === 'model_credentials_tenant_name_live_idx') throw credentialNameTaken(name)
    throw err
  }

  return {
    /** Verified with the provider first (unless told not to): a refused key is never stored. */
    async create(principal: Principal, input: CredentialInput, options: { verify: boolean }): Promise<{ credential: CredentialView; etag: string }> {
      const provider = providerById(input.provider)!
      const settings = normalized(input.settings ?? {})
      checkFields(provider, input.secrets, settings, outbound)
      if (await crud.getCredentialByName(db, principal.tenantId, input.name)) throw credentialNameTaken(input.name)
      let verifiedAt: Date | null = null
      if (options.verify) {
        const result = await verify(provider, settings, input.secrets)
        if (!result.ok) throw credentialVerificationFailed(result)
        verifiedAt = new Date()
      }
      const id = randomUUID()
      const row = await transaction(db, async (tx) => {
        const inserted = await crud
          .insertCredential(tx, {
            id,
            tenantId: principal.tenantId,
            providerId: provider.id,
            name: input.name,
            settings,
            secretSealed: vault.encrypt(JSON.stringify(input.secrets), secretContext(id)),
            hint: hintOf(input.secrets[provider.mainSecret]),
            status: verifiedAt ? 'verified' : 'unverified',
            verifiedAt,
            createdBy: principal.id,
          })
          .catch((err: unknown) => rename(err, input.name))
        await events.publish(tx, CREDENTIAL_TOPIC.created, { credentialId: id, name: input.name, provider: provider.id }, { tenantId: principal.tenantId })
        return inserted
      })
      log.info({ credentialId: id, provider: provider.id, verified: verifiedAt !== null }, 'model credential created')
      return { credential: credentialView(row), etag: etag(row) }
    },

    async list(principal: Principal, query: { provider?: string; page?: number; limit?: number }): Promise<PageResult<CredentialView>> {
      const page = pageRequest(query)
      const { rows, total } = await crud.listCredentials(db, principal.tenantId, { provider: query.provider }, page)
      return pageResult(rows.map(credentialView), total, page)
    },

    async get(principal: Principal, id: string): Promise<{ credential: CredentialView; etag: string }> {
      const row = await visible(principal, id)
      return { credential: credentialView(row), etag: etag(row) }
    },

    /**
     * Rename, new settings, or new secrets (a rotation). Whatever reaches the provider differently
     * is verified before it is stored. A new base URL needs the secrets sent with it, so that
     * nobody can point a stored key at a server of their own.
     */
    async update(
      principal: Principal,
      id: string,
      input: CredentialUpdateInput,
      options: { verify: boolean; ifMatch?: string[] },
    ): Promise<{ credential: CredentialView; etag: string }> {
      if (input.name === undefined && input.settings === undefined && input.secrets === undefined) throw nothingToUpdate('name, settings or secrets')
      const before = await visible(principal, id)
      assertIfMatch(options.ifMatch, etag(before))
      const provider = providerById(before.providerId)!
      const settings = input.settings === undefined ? before.settings : normalized(input.settings)
      const movesUrl = [...URL_SETTINGS].some((k) => settings[k] !== before.settings[k]) || settings.allowHttp !== before.settings.allowHttp
      if (movesUrl && !input.secrets) {
        throw new ValidationError('a new baseUrl or endpoint needs the secrets sent with it', [{ field: 'body.secrets', message: 'required with a new address' }])
      }
      const secrets = input.secrets ?? open(before)
      const reaches = input.secrets !== undefined || input.settings !== undefined
      if (reaches) checkFields(provider, secrets, settings, outbound)
      let verifiedAt: Date | null | undefined
      if (reaches && options.verify) {
        const result = await verify(provider, settings, secrets)
        if (!result.ok) throw credentialVerificationFailed(result)
        verifiedAt = new Date()
      }
      const row = await transaction(db, async (tx) => {
        const locked = await crud.lockCredential(tx, id)
        if (!locked || locked.tenantId !== principal.tenantId || locked.deletedAt) throw credentialNotFound()
        // Checked again under the lock: another writer may have come between the read and the call.
        assertIfMatch(options.ifMatch, etag(locked))
        if (locked.version !== before.version && reaches) assertIfMatch([etag(before)], etag(locked))
        const patch: crud.CredentialPatch = {}
        if (input.name !== undefined) patch.name = input.name
        if (input.settings !== undefined) patch.settings = settings
        if (input.secrets !== undefined) {
          patch.secretSealed = vault.encrypt(JSON.stringify(input.secrets), secretContext(id))
          patch.hint = hintOf(input.secrets[provider.mainSecret])
        }
        if (reaches) {
          patch.status = verifiedAt ? 'verified' : 'unverified'
          patch.verifiedAt = verifiedAt ?? null
          patch.lastError = null
        }
        const updated = await crud.updateCredential(tx, id, patch).catch((err: unknown) => rename(err, input.name ?? ''))
        if (input.secrets !== undefined) {
          await events.publish(tx, CREDENTIAL_TOPIC.rotated, { credentialId: id, name: updated.name, provider: provider.id }, { tenantId: principal.tenantId })
        }
        return updated
      })
      if (input.secrets !== undefined) log.info({ credentialId: id }, 'model credential rotated')
      return { credential: credentialView(row), etag: etag(row) }
    },

    /** Soft: the row stays as a record, without its secrets; 409 while a model calls with it. */
    async remove(principal: Principal, id: string, ifMatch?: string[]): Promise<void> {
      await transaction(db, async (tx) => {
        const row = await crud.lockCredential(tx, id)
        if (!row || row.tenantId !== principal.tenantId || row.deletedAt) throw credentialNotFound()
        assertIfMatch(ifMatch, etag(row))
        const using = await crud.countModelsUsingCredential(tx, id)
        if (using > 0) throw credentialInUse(using)
        await crud.updateCredential(tx, id, { deletedAt: new Date(), secretSealed: null })
        await events.publish(tx, CREDENTIAL_TOPIC.deleted, { credentialId: id, name: row.name, provider: row.providerId }, { tenantId: principal.tenantId })
      })
      log.info({ credentialId: id }, 'model credential deleted')
    },

    /**
     * The secrets of a tenant's live credential of `providerId`, for an activity that calls the
     * provider itself (a hub import); undefined when there is no such credential. Never logged.
     */
    async secretsOf(tenantId: string, id: string, providerId: string): Promise<Secrets | undefined> {
      const row = await crud.getCredential(db, tenantId, id)
      return row && row.providerId === providerId ? open(row) : undefined
    },

    /** The provider's model list through a stored credential (for cloud models). */
    async remoteModels(tenantId: string, id: string, signal?: AbortSignal): Promise<{ provider: ProviderDefinition; result: Verification } | undefined> {
      const row = await crud.getCredential(db, tenantId, id)
      if (!row) return undefined
      const provider = providerById(row.providerId)!
      return { provider, result: await verify(provider, row.settings, open(row), signal) }
    },

    /** Whether the credential's provider has `name` (Azure: a deployment of that name) for it; undefined when the credential is not the tenant's. */
    async remoteModel(tenantId: string, id: string, name: string, signal?: AbortSignal): Promise<{ provider: ProviderDefinition; result: RemoteModelLookup } | undefined> {
      const row = await crud.getCredential(db, tenantId, id)
      if (!row) return undefined
      const provider = providerById(row.providerId)!
      return { provider, result: await findRemoteModel(provider, row.settings, open(row), name, { outbound, hubUrl, signal }) }
    },
  }
}

export type CredentialService = ReturnType<typeof createCredentialService>
