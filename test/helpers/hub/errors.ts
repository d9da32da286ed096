import type { ServerResponse } from 'node:http'
import type { Repo } from './repos.js'

/**
 * The hub's failures as it answers them: a status, a JSON body `{"error": message}`, and the
 * `X-Error-Code` / `X-Error-Message` headers that clients (huggingface_hub, @huggingface/hub) use to
 * tell a missing repository from a missing revision or file, since all three are 404.
 */
export class HubError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound' | 'GatedRepo',
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

export function sendHubError(res: ServerResponse, err: HubError, head: boolean) {
  const body = JSON.stringify({ error: err.message })
  res.writeHead(err.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'X-Error-Message': err.message,
    ...(err.code ? { 'X-Error-Code': err.code } : {}),
    ...err.headers,
  })
  res.end(head ? undefined : body)
}

/**
 * The hub does not say whether a repository it will not show exists: without a token a missing or
 * private repository is 401, with a token that cannot see it 404, both `RepoNotFound`.
 */
export const repoNotFound = (authenticated: boolean) =>
  new HubError(authenticated ? 404 : 401, 'Repository not found', 'RepoNotFound')

export const revisionNotFound = (revision: string) => new HubError(404, `Invalid rev id: ${revision}`, 'RevisionNotFound')

export const entryNotFound = () => new HubError(404, 'Entry not found', 'EntryNotFound')

export const invalidCredentials = () => new HubError(401, 'Invalid credentials in Authorization header')

export function gated(repo: Repo, authenticated: boolean, hubUrl: string): HubError {
  return authenticated
    ? new HubError(
        403,
        `Access to model ${repo.id} is restricted and you are not in the authorized list. Visit ${hubUrl}/${repo.id} to ask for access.`,
        'GatedRepo',
      )
    : new HubError(
        401,
        `Access to model ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        'GatedRepo',
      )
}

export const tooManyRequests = (retryAfterSeconds: number) =>
  new HubError(429, 'You have exceeded our rate limit. Retry later.', undefined, { 'Retry-After': String(retryAfterSeconds) })

export const badRequest = (message: string) => new HubError(400, message)
