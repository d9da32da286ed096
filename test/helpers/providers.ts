import fs from 'node:fs'
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { signV4 } from '../../src/platform/net/sigv4.js'
import { makeCa, makeServerCert } from './tls.js'

/**
 * One HTTPS server standing in for every provider modelplane verifies credentials with, each under
 * its own prefix and answering in that provider's shape (lists, and the error bodies each sends
 * for a bad key). Each checks its credential the way the provider does. The OpenAI stand-in echoes
 * a wrong key whole in its message, so a test can show that modelplane never passes it on.
 *
 *   /openai/v1/models          Bearer
 *   /anthropic/v1/models       x-api-key + anthropic-version: 2023-06-01, paged by after_id
 *   /azure/openai/models       api-key, ?api-version required
 *   /azure/openai/deployments/{name}  api-key, ?api-version required; 404 DeploymentNotFound as Azure answers it
 *   /bedrock/foundation-models SigV4 (service bedrock)
 *   /hub/api/whoami-v2         Bearer (Hugging Face)
 *   /vllm/v1/models            Bearer when a key is configured
 */
export interface ProviderStandIn {
  /** https://127.0.0.1:<port> */
  url: string
  /** A PEM file of the CA that signed the server's certificate (OUTBOUND_CA_FILE). */
  caFile: string
  keys: {
    openai: string
    anthropic: string
    azure: string
    hub: string
    vllm: string
    bedrock: { accessKeyId: string; secretAccessKey: string; region: string }
  }
  models: { openai: string[]; anthropic: string[]; azure: string[]; bedrock: string[]; vllm: string[] }
  /** Azure OpenAI deployments by name (what a cloud model on azure_openai names), with the model each serves. */
  azureDeployments: Map<string, { model: string; status: string }>
  /** Every request seen, as method + path. */
  calls: string[]
  close(): Promise<void>
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

function bedrockSignatureOk(req: IncomingMessage, url: URL, creds: ProviderStandIn['keys']['bedrock']): boolean {
  const auth = String(req.headers.authorization ?? '')
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/bedrock\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth)
  if (!match || match[1] !== creds.accessKeyId || match[3] !== creds.region) return false
  const date = String(req.headers['x-amz-date'] ?? '')
  const when = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date)
  if (!when) return false
  const at = new Date(Date.UTC(+when[1]!, +when[2]! - 1, +when[3]!, +when[4]!, +when[5]!, +when[6]!))
  // AWS refuses a request signed more than 5 minutes away from its clock.
  if (Math.abs(at.getTime() - Date.now()) > 5 * 60_000) return false
  const signed = match[4]!.split(';').filter((h) => h !== 'host' && h !== 'x-amz-date')
  const headers = Object.fromEntries(signed.map((h) => [h, String(req.headers[h] ?? '')]))
  const expected = signV4({ method: req.method ?? 'GET', url: new URL(`https://${req.headers.host}${url.pathname}${url.search}`), headers }, creds, {
    region: creds.region,
    service: 'bedrock',
  }, at)
  return expected.authorization === auth
}

export async function startProviderStandIn(): Promise<ProviderStandIn> {
  const ca = makeCa('providers-ca')
  const cert = makeServerCert(ca, ['127.0.0.1', 'localhost'])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'providers-'))
  const caFile = path.join(dir, 'ca.pem')
  fs.writeFileSync(caFile, ca.certPem)

  const keys: ProviderStandIn['keys'] = {
    openai: `sk-proj-${'a1B2c3D4'.repeat(5)}`,
    anthropic: `sk-ant-api03-${'Zx9Yw8Vu'.repeat(5)}`,
    azure: '0123456789abcdef0123456789abcdef',
    hub: `hf_${'QwErTyUi'.repeat(4)}`,
    vllm: 'vllm-token-42',
    bedrock: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', region: 'eu-central-1' },
  }
  const models: ProviderStandIn['models'] = {
    openai: ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'],
    // More than one page, so paging is followed.
    anthropic: Array.from({ length: 25 }, (_, i) => `claude-test-${i}`).concat(['claude-sonnet-4-5']),
    azure: ['gpt-4o', 'gpt-35-turbo'],
    bedrock: ['anthropic.claude-3-haiku-20240307-v1:0', 'amazon.titan-embed-text-v2:0'],
    vllm: ['meta-llama/Llama-3.1-8B-Instruct'],
  }
  const azureDeployments: ProviderStandIn['azureDeployments'] = new Map([
    ['chat-prod', { model: 'gpt-4o', status: 'succeeded' }],
    ['embed-creating', { model: 'text-embedding-3-small', status: 'running' }],
  ])
  const calls: string[] = []

  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://stand-in')
    calls.push(`${req.method} ${url.pathname}`)
    const bearer = String(req.headers.authorization ?? '').replace(/^Bearer /, '')
    if (/^\/azure\/openai\/deployments\/[^/]+$/.test(url.pathname)) {
      if (!url.searchParams.get('api-version')) return json(res, 404, { error: { code: '404', message: 'Resource not found' } })
      if (req.headers['api-key'] !== keys.azure) {
        return json(res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } })
      }
      const name = decodeURIComponent(url.pathname.split('/').pop()!)
      const deployment = azureDeployments.get(name)
      if (!deployment) {
        return json(res, 404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.' } })
      }
      return json(res, 200, {
        scale_settings: { scale_type: 'standard' },
        model: deployment.model,
        owner: 'organization-owner',
        id: name,
        status: deployment.status,
        created_at: 1715367049,
        updated_at: 1715367049,
        object: 'deployment',
      })
    }
    switch (url.pathname) {
      case '/openai/v1/models':
        if (bearer !== keys.openai) {
          return json(res, 401, {
            error: { message: `Incorrect API key provided: ${bearer}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
          })
        }
        return json(res, 200, { object: 'list', data: models.openai.map((id) => ({ id, object: 'model', created: 1715367049, owned_by: 'system' })) })
      case '/anthropic/v1/models': {
        if (req.headers['anthropic-version'] !== '2023-06-01') {
          return json(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'anthropic-version: header is required' } })
        }
        if (req.headers['x-api-key'] !== keys.anthropic) return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } })
        const limit = 20
        const after = url.searchParams.get('after_id')
        const start = after ? models.anthropic.indexOf(after) + 1 : 0
        const page = models.anthropic.slice(start, start + limit)
        return json(res, 200, {
          data: page.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-02-19T00:00:00Z' })),
          has_more: start + limit < models.anthropic.length,
          first_id: page[0] ?? null,
          last_id: page.at(-1) ?? null,
        })
      }
      case '/azure/openai/models':
        if (!url.searchParams.get('api-version')) return json(res, 404, { error: { code: '404', message: 'Resource not found' } })
        if (req.headers['api-key'] !== keys.azure) {
          return json(res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } })
        }
        return json(res, 200, { object: 'list', data: models.azure.map((id) => ({ id, object: 'model', status: 'succeeded' })) })
      case '/bedrock/foundation-models':
        if (!bedrockSignatureOk(req, url, keys.bedrock)) {
          return json(res, 403, { message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.' })
        }
        return json(res, 200, { modelSummaries: models.bedrock.map((modelId) => ({ modelId, modelArn: `arn:aws:bedrock:${keys.bedrock.region}::foundation-model/${modelId}` })) })
      case '/hub/api/whoami-v2':
        if (bearer !== keys.hub) return json(res, 401, { error: 'Invalid credentials in Authorization header' })
        return json(res, 200, { type: 'user', name: 'model-importer', auth: { type: 'access_token', accessToken: { displayName: 'ci', role: 'read' } } })
      case '/vllm/v1/models':
        if (bearer !== keys.vllm) return json(res, 401, { error: 'Unauthorized' })
        return json(res, 200, { object: 'list', data: models.vllm.map((id) => ({ id, object: 'model', owned_by: 'vllm', max_model_len: 131072 })) })
      default:
        return json(res, 404, { error: { message: `no route ${url.pathname}` } })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `https://127.0.0.1:${port}`,
    caFile,
    keys,
    models,
    azureDeployments,
    calls,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
