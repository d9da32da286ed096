import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'

/** A realm name no other test (or test run) uses. */
export function uniqueRealm(prefix = 't'): string {
  return `${prefix}-${randomUUID().slice(0, 18)}`
}

export interface SeededUser {
  id: string
  email: string
  password: string
  realm: string
  tenantId: string
  accessToken: string
  refreshToken: string
}

/** Creates a user with a password in the embedded issuer (and the realm's tenant if needed), then logs in. */
export async function seedUser(
  app: FastifyInstance,
  input: { realm: string; role: string; isSuperuser?: boolean; email?: string },
): Promise<SeededUser> {
  const email = input.email ?? `${input.role}-${randomUUID().slice(0, 8)}@example.test`
  const password = `pw-${randomUUID()}`
  const user = await app.services.auth.createLocalUser({
    realm: input.realm,
    email,
    role: input.role,
    password,
    isSuperuser: input.isSuperuser,
  })
  const response = await app.inject({
    method: 'POST',
    url: '/v1/auth/login',
    payload: { email, password, tenant: input.realm },
  })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.body}`)
  const tokens = response.json() as { accessToken: string; refreshToken: string }
  return { id: user.id, email, password, realm: input.realm, tenantId: user.tenantId, ...tokens }
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
