import { OutboundError, type Outbound, type OutboundResponse } from '../../platform/net/outbound.js'
import { signV4 } from '../../platform/net/sigv4.js'
import type { ProviderField } from './tables.js'

export const PROVIDER_IDS = ['hugging_face', 'openai', 'anthropic', 'azure_openai', 'aws_bedrock', 'vllm_compatible'] as const
export type ProviderId = (typeof PROVIDER_IDS)[number]

export interface ProviderDefinition {
  id: ProviderId
  displayName: string
  kind: 'hub' | 'cloud'
  credentialFields: ProviderField[]
  settingsFields: ProviderField[]
  defaultBaseUrl: string | null
  /** The secret field the hint is cut from. */
  mainSecret: string
}

const secret = (name: string, description: string, required = true): ProviderField => ({ name, secret: true, required, description })
const setting = (name: string, description: string, required = false): ProviderField => ({ name, secret: false, required, description })

/** What modelplane knows of each provider; seeded into model_providers at start. */
export const PROVIDERS: readonly ProviderDefinition[] = [
  {
    id: 'hugging_face',
    displayName: 'Hugging Face',
    kind: 'hub',
    credentialFields: [secret('token', 'a user access token (hf_…), read scope is enough')],
    settingsFields: [],
    defaultBaseUrl: null,
    mainSecret: 'token',
  },
  {
    id: 'openai',
    displayName: 'OpenAI',
    kind: 'cloud',
    credentialFields: [secret('apiKey', 'an API key (sk-…)')],
    settingsFields: [
      setting('baseUrl', 'the API origin, for a gateway in front of OpenAI (default https://api.openai.com)'),
      setting('organization', 'sent as OpenAI-Organization'),
    ],
    defaultBaseUrl: 'https://api.openai.com',
    mainSecret: 'apiKey',
  },
  {
    id: 'anthropic',
    displayName: 'Anthropic',
    kind: 'cloud',
    credentialFields: [secret('apiKey', 'an API key (sk-ant-…)')],
    settingsFields: [setting('baseUrl', 'the API origin (default https://api.anthropic.com)')],
    defaultBaseUrl: 'https://api.anthropic.com',
    mainSecret: 'apiKey',
  },
  {
    id: 'azure_openai',
    displayName: 'Azure OpenAI',
    kind: 'cloud',
    credentialFields: [secret('apiKey', "one of the resource's keys")],
    settingsFields: [
      setting('endpoint', 'the resource endpoint, https://<resource>.openai.azure.com', true),
      setting('apiVersion', 'the data-plane API version (default 2024-10-21)'),
      setting('deployment', 'a deployment name, for models called through it'),
    ],
    defaultBaseUrl: null,
    mainSecret: 'apiKey',
  },
  {
    id: 'aws_bedrock',
    displayName: 'AWS Bedrock',
    kind: 'cloud',
    credentialFields: [
      secret('accessKeyId', 'an IAM access key id allowed bedrock:ListFoundationModels'),
      secret('secretAccessKey', 'its secret access key'),
      secret('sessionToken', 'for temporary credentials', false),
    ],
    settingsFields: [
      setting('region', 'the AWS region, e.g. us-east-1', true),
      setting('endpoint', 'a Bedrock control-plane endpoint other than https://bedrock.<region>.amazonaws.com (a VPC endpoint)'),
    ],
    defaultBaseUrl: null,
    mainSecret: 'accessKeyId',
  },
  {
    id: 'vllm_compatible',
    displayName: 'OpenAI-compatible server (vLLM, TGI, …)',
    kind: 'cloud',
    credentialFields: [secret('apiKey', 'sent as a Bearer token when the server asks for one', false)],
    settingsFields: [
      setting('baseUrl', 'the server origin; /v1/models must answer under it', true),
      setting('allowHttp', 'true to allow an http:// baseUrl (a server on a private network)'),
    ],
    defaultBaseUrl: null,
    mainSecret: 'apiKey',
  },
]

export const providerById = (id: string): ProviderDefinition | undefined => PROVIDERS.find((p) => p.id === id)

/** Settings that are URLs: checked against the address rule when stored and when dialled. */
export const URL_SETTINGS = new Set(['baseUrl', 'endpoint'])

/**
 * What the owner sees of a secret: enough to tell two keys apart, never enough to use one.
 * Long: first 3 + … + last 4; medium: … + last 4; short: … alone.
 */
export function hintOf(value: string | undefined): string | null {
  if (!value) return null
  if (value.length >= 16) return `${value.slice(0, 3)}…${value.slice(-4)}`
  if (value.length >= 8) return `…${value.slice(-4)}`
  return '…'
}

export type Secrets = Record<string, string>
export type Settings = Record<string, string | boolean>

export type VerificationFailure = {
  ok: false
  /** REJECTED (401/403), PROVIDER_ERROR (any other status), or the network failure. */
  reason: 'REJECTED' | 'PROVIDER_ERROR' | 'REFUSED' | 'UNREACHABLE' | 'TLS' | 'TIMEOUT' | 'TOO_LARGE' | 'INVALID_URL'
  providerStatus: number | null
  message: string
}
export type Verification = { ok: true; models: string[] | null } | VerificationFailure
/** Whether the provider has a model of that name for these credentials (`found` null: it cannot say). */
export type RemoteModelLookup = { ok: true; found: boolean | null; message?: string } | VerificationFailure

/**
 * Azure OpenAI's data-plane authoring API, which reads a deployment with a resource key
 * (`GET /openai/deployments/{name}`). The GA inference versions have no such read; listing
 * deployments otherwise takes the management plane and an Entra ID token, which a key is not.
 */
export const AZURE_DEPLOYMENTS_API_VERSION = '2022-12-01'

export interface ProviderCall {
  outbound: Outbound
  hubUrl: string
  signal?: AbortSignal
}

const MAX_PAGES = 10
const MAX_MESSAGE = 300

/** The provider's own error message, cut short, with every secret value taken out. */
function providerMessage(res: OutboundResponse, secrets: Secrets): string {
  let message: string
  try {
    const body = JSON.parse(res.body) as Record<string, unknown>
    const error = body.error
    message =
      typeof error === 'string'
        ? error
        : typeof (error as { message?: unknown })?.message === 'string'
          ? String((error as { message: string }).message)
          : String(body.message ?? body.Message ?? body.detail ?? '')
  } catch {
    message = ''
  }
  if (!message) message = `HTTP ${res.status}`
  for (const value of Object.values(secrets)) if (value.length >= 4) message = message.split(value).join('[redacted]')
  return message.slice(0, MAX_MESSAGE)
}

function failed(res: OutboundResponse, secrets: Secrets): VerificationFailure {
  return {
    ok: false,
    reason: res.status === 401 || res.status === 403 ? 'REJECTED' : 'PROVIDER_ERROR',
    providerStatus: res.status,
    message: providerMessage(res, secrets),
  }
}

const trim = (url: string) => url.replace(/\/+$/, '')

function ids(body: string, list: string, key: string): string[] {
  const parsed = JSON.parse(body) as Record<string, unknown>
  const items = parsed[list]
  if (!Array.isArray(items)) throw new SyntaxError(`no ${list} list in the answer`)
  return items.map((item) => String((item as Record<string, unknown>)[key] ?? '')).filter(Boolean)
}

/**
 * Whether `name` is a model these credentials can call. Azure OpenAI calls a *deployment* (the name
 * in the inference path), so it is read itself: `GET {endpoint}/openai/deployments/{name}`, 404
 * when there is none, `status` other than `succeeded` while it is being created or has failed.
 * The others: the name is in the provider's model list.
 */
export async function findRemoteModel(provider: ProviderDefinition, settings: Settings, secrets: Secrets, name: string, call: ProviderCall): Promise<RemoteModelLookup> {
  if (provider.id !== 'azure_openai') {
    const listed = await verifyWithProvider(provider, settings, secrets, call)
    if (!listed.ok) return listed
    return { ok: true, found: listed.models ? listed.models.includes(name) : null }
  }
  try {
    const url = new URL(`${trim(String(settings.endpoint))}/openai/deployments/${encodeURIComponent(name)}`)
    url.searchParams.set('api-version', AZURE_DEPLOYMENTS_API_VERSION)
    const res = await call.outbound.request(url, { headers: { 'api-key': secrets.apiKey! }, signal: call.signal })
    if (res.status === 404) return { ok: true, found: false, message: providerMessage(res, secrets) }
    if (res.status !== 200) return failed(res, secrets)
    const deployment = JSON.parse(res.body) as { id?: unknown; status?: unknown; model?: unknown }
    if (deployment.status !== undefined && deployment.status !== 'succeeded') {
      return { ok: true, found: false, message: `the deployment is ${String(deployment.status).slice(0, 40)}, not succeeded` }
    }
    return { ok: true, found: true }
  } catch (err) {
    if (err instanceof OutboundError) return { ok: false, reason: err.failure, providerStatus: null, message: err.message.slice(0, MAX_MESSAGE) }
    if (err instanceof SyntaxError) return { ok: false, reason: 'PROVIDER_ERROR', providerStatus: 200, message: 'the provider answered something other than a deployment' }
    throw err
  }
}

/**
 * The provider's cheapest read with these credentials: its model list (Hugging Face: who the token
 * belongs to, and `models` is null). Never throws for what the provider or the network did.
 */
export async function verifyWithProvider(
  provider: ProviderDefinition,
  settings: Settings,
  secrets: Secrets,
  call: ProviderCall,
): Promise<Verification> {
  const { outbound, signal } = call
  try {
    switch (provider.id) {
      case 'hugging_face': {
        const res = await outbound.request(`${call.hubUrl}/api/whoami-v2`, { headers: { authorization: `Bearer ${secrets.token}` }, signal })
        return res.status === 200 ? { ok: true, models: null } : failed(res, secrets)
      }
      case 'openai':
      case 'vllm_compatible': {
        const base = trim(String(settings.baseUrl ?? provider.defaultBaseUrl))
        const headers: Record<string, string> = {}
        if (secrets.apiKey) headers.authorization = `Bearer ${secrets.apiKey}`
        if (settings.organization) headers['openai-organization'] = String(settings.organization)
        const res = await outbound.request(`${base}/v1/models`, { headers, signal, allowHttp: settings.allowHttp === true })
        return res.status === 200 ? { ok: true, models: ids(res.body, 'data', 'id') } : failed(res, secrets)
      }
      case 'anthropic': {
        const base = trim(String(settings.baseUrl ?? provider.defaultBaseUrl))
        const models: string[] = []
        let after: string | undefined
        for (let page = 0; page < MAX_PAGES; page++) {
          const url = new URL(`${base}/v1/models`)
          url.searchParams.set('limit', '1000')
          if (after) url.searchParams.set('after_id', after)
          const res = await outbound.request(url, { headers: { 'x-api-key': secrets.apiKey!, 'anthropic-version': '2023-06-01' }, signal })
          if (res.status !== 200) return failed(res, secrets)
          models.push(...ids(res.body, 'data', 'id'))
          const body = JSON.parse(res.body) as { has_more?: boolean; last_id?: string }
          if (!body.has_more || !body.last_id) break
          after = body.last_id
        }
        return { ok: true, models }
      }
      case 'azure_openai': {
        const url = new URL(`${trim(String(settings.endpoint))}/openai/models`)
        url.searchParams.set('api-version', String(settings.apiVersion ?? '2024-10-21'))
        const res = await outbound.request(url, { headers: { 'api-key': secrets.apiKey! }, signal })
        return res.status === 200 ? { ok: true, models: ids(res.body, 'data', 'id') } : failed(res, secrets)
      }
      case 'aws_bedrock': {
        const region = String(settings.region)
        const url = new URL(`${trim(String(settings.endpoint ?? `https://bedrock.${region}.amazonaws.com`))}/foundation-models`)
        const headers = signV4(
          { method: 'GET', url, headers: { accept: 'application/json' } },
          { accessKeyId: secrets.accessKeyId!, secretAccessKey: secrets.secretAccessKey!, sessionToken: secrets.sessionToken },
          { region, service: 'bedrock' },
        )
        const res = await outbound.request(url, { headers, signal })
        return res.status === 200 ? { ok: true, models: ids(res.body, 'modelSummaries', 'modelId') } : failed(res, secrets)
      }
    }
  } catch (err) {
    if (err instanceof OutboundError) return { ok: false, reason: err.failure, providerStatus: null, message: err.message.slice(0, MAX_MESSAGE) }
    if (err instanceof SyntaxError) return { ok: false, reason: 'PROVIDER_ERROR', providerStatus: 200, message: 'the provider answered something other than its model list' }
    throw err
  }
}
