import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { PERMISSIONS } from './permissions.js'

export const RealmName = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', minLength: 1, maxLength: 64 })
const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$', examples: ['ada.lovelace@acme.example'] })
const Jwt = Type.String({ minLength: 10, maxLength: 16384 })
const DateTime = Type.String({ format: 'date-time' })
const PermissionName = StringEnum(PERMISSIONS)

/** Shortened tokens: the shape of a JWT, not one that verifies. */
const ACCESS_TOKEN_EXAMPLE = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImxvY2FsLTEifQ.eyJzdWIiOiI1ZjBjOGUyYSJ9.c2lnbmF0dXJl'
const REFRESH_TOKEN_EXAMPLE = 'eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJSZWZyZXNoIn0.cmVmcmVzaA'
const TENANT_EXAMPLE = {
  id: EXAMPLE.tenantId,
  realm: 'acme',
  displayName: 'Acme Corp',
  status: 'active',
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
}
const API_KEY_EXAMPLE = {
  id: EXAMPLE.apiKeyId,
  name: 'nightly-deploy',
  prefix: 'mp_7Kq2',
  scopes: ['model:view', 'endpoint:manage'],
  expiresAt: '2026-05-31T09:15:00.000Z',
  lastUsedAt: null,
  createdAt: EXAMPLE.createdAt,
}
const TenantStatus = StringEnum(['active', 'disabled'], { examples: ['active'] })

export const LoginBody = StrictObject(
  {
    email: Email,
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    tenant: RealmName,
  },
  { title: 'LoginRequest', examples: [{ email: 'ada.lovelace@acme.example', password: 'correct horse battery staple', tenant: 'acme' }] },
)

export const RefreshBody = StrictObject({ refreshToken: Jwt }, { title: 'RefreshRequest', examples: [{ refreshToken: REFRESH_TOKEN_EXAMPLE }] })
export const LogoutBody = StrictObject(
  { refreshToken: Type.Optional(Jwt) },
  { title: 'LogoutRequest', examples: [{ refreshToken: REFRESH_TOKEN_EXAMPLE }] },
)

/**
 * A password a user chooses: the same policy as an invited user's first password
 * (AcceptInviteBody in user_admin; test/security/sessions.test.ts keeps the two in step).
 */
export const NewPassword = Type.String({ minLength: 12, maxLength: 1024, description: 'at least 12 characters' })

export const ChangePasswordBody = StrictObject(
  {
    currentPassword: Type.String({ minLength: 1, maxLength: 1024 }),
    newPassword: NewPassword,
  },
  {
    title: 'ChangePasswordRequest',
    examples: [{ currentPassword: 'the one I have now', newPassword: 'correct horse battery staple' }],
  },
)

export const TokenResponse = Type.Object(
  {
    accessToken: Type.String(),
    refreshToken: Type.String(),
    expiresIn: Type.Integer({ description: 'seconds until the access token expires' }),
    tokenType: Type.Literal('Bearer'),
  },
  {
    title: 'TokenResponse',
    examples: [{ accessToken: ACCESS_TOKEN_EXAMPLE, refreshToken: REFRESH_TOKEN_EXAMPLE, expiresIn: 300, tokenType: 'Bearer' }],
  },
)

export const Tenant = Type.Object(
  {
    id: Uuid,
    realm: Type.String(),
    displayName: Type.String(),
    status: TenantStatus,
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { title: 'Tenant', examples: [TENANT_EXAMPLE] },
)

export const Me = Type.Object(
  {
    kind: StringEnum(['user', 'api_key', 'service'], { examples: ['user'] }),
    user: Type.Union([
      Type.Object({
        id: Uuid,
        email: Type.String(),
        name: Type.String(),
        status: Type.String(),
        isSuperuser: Type.Boolean(),
      }),
      Type.Null(),
    ]),
    tenant: Tenant,
    role: Type.String(),
    permissions: Type.Array(Type.String()),
  },
  {
    title: 'Me',
    examples: [
      {
        kind: 'user',
        user: { id: EXAMPLE.userId, email: 'grace.hopper@acme.example', name: 'Grace Hopper', status: 'active', isSuperuser: false },
        tenant: TENANT_EXAMPLE,
        role: 'developer',
        permissions: ['cluster:view', 'endpoint:manage', 'endpoint:view', 'model:manage', 'model:view', 'user:view', 'workflow:view'],
      },
    ],
  },
)

/**
 * No key lives longer than this: a key is a password that scripts keep in files, and one that never
 * expires outlives the reason it was made. Absent `expiresInDays` means this many days.
 */
export const API_KEY_MAX_DAYS = 365

export const CreateApiKeyBody = StrictObject(
  {
    name: Type.String({ minLength: 1, maxLength: 100, examples: ['nightly-deploy'] }),
    scopes: Type.Array(PermissionName, {
      minItems: 1,
      maxItems: PERMISSIONS.length,
      uniqueItems: true,
      description: "permissions the caller holds; at each use a key carries only those its owner still holds",
      examples: [['model:view', 'endpoint:manage']],
    }),
    expiresInDays: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: API_KEY_MAX_DAYS,
        description: `days until the key expires; at most ${API_KEY_MAX_DAYS}, which is also the default`,
        examples: [90],
      }),
    ),
  },
  { title: 'CreateApiKeyRequest', examples: [{ name: 'nightly-deploy', scopes: ['model:view', 'endpoint:manage'], expiresInDays: 90 }] },
)

export const ApiKey = Type.Object(
  {
    id: Uuid,
    name: Type.String(),
    prefix: Type.String(),
    scopes: Type.Array(Type.String()),
    expiresAt: Type.Union([DateTime, Type.Null()]),
    lastUsedAt: Type.Union([DateTime, Type.Null()]),
    createdAt: DateTime,
  },
  { title: 'ApiKey', examples: [API_KEY_EXAMPLE] },
)

export const CreatedApiKey = Type.Object(
  {
    ...ApiKey.properties,
    key: Type.String({ description: 'The key itself; shown this once and never again' }),
  },
  { title: 'CreatedApiKey', examples: [{ ...API_KEY_EXAMPLE, key: 'mp_7Kq2wX9vB4nR8tY1mZ6cL3pD5sF0gH2j' }] },
)

export const IdParams = Type.Object({ id: Uuid })
export const RealmParams = Type.Object({ realm: RealmName })

export const PageQuery = StrictObject({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })

const InitialAdmin = StrictObject(
  {
    email: Type.String({ ...Email, examples: ['ops-lead@acme.example'] }),
    name: Type.String({ maxLength: 200, pattern: '^[^\\x00]*$', examples: ['Ada Lovelace'] }),
  },
  { title: 'InitialAdmin', description: "The tenant's first admin (role admin), who can then administer the tenant" },
)

export const CreateTenantBody = StrictObject(
  {
    realm: Type.String({
      ...RealmName,
      description: 'Letters, digits, _ and -; `master` (Keycloak\'s administration realm) is reserved',
      examples: ['acme'],
    }),
    displayName: Type.String({ minLength: 1, maxLength: 200, examples: ['Acme Corp'] }),
    initialAdmin: Type.Optional(InitialAdmin),
  },
  {
    title: 'CreateTenantRequest',
    examples: [{ realm: 'acme', displayName: 'Acme Corp', initialAdmin: { email: 'ops-lead@acme.example', name: 'Ada Lovelace' } }],
  },
)

export const InitialAdminGrant = Type.Object(
  {
    userId: Uuid,
    email: Type.String(),
    invite: Type.Optional(
      Type.Object({
        token: Type.String({ description: 'Embedded mode: one-time token for POST /v1/auth/accept-invite; shown only in this answer' }),
        expiresAt: DateTime,
      }),
    ),
    temporaryPassword: Type.Optional(
      Type.String({
        description: 'Keycloak mode: one-time password for the first sign-in, where Keycloak makes the admin choose their own; shown only in this answer',
      }),
    ),
    requiredActions: Type.Optional(Type.Array(Type.String(), { description: 'Keycloak mode: what Keycloak asks at the first sign-in', examples: [['UPDATE_PASSWORD']] })),
  },
  { title: 'InitialAdminGrant', description: 'How the first admin signs in; hand it to them over a trusted channel' },
)

export const CreatedTenant = Type.Object(
  { ...Tenant.properties, initialAdmin: Type.Optional(InitialAdminGrant) },
  {
    title: 'CreatedTenant',
    examples: [
      {
        ...TENANT_EXAMPLE,
        initialAdmin: {
          userId: EXAMPLE.userId,
          email: 'ops-lead@acme.example',
          invite: { token: 'Xq7rV2mK9pL4sT8wZ1cN6bH3', expiresAt: '2026-03-09T09:15:00.000Z' },
        },
      },
    ],
  },
)

export const UpdateTenantBody = StrictObject(
  {
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    status: Type.Optional(TenantStatus),
  },
  { title: 'UpdateTenantRequest', minProperties: 1, examples: [{ displayName: 'Acme Corporation' }] },
)

export const AuditQuery = StrictObject({
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
  tenantId: Type.Optional(Uuid),
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  action: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  resourceKind: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  createdFrom: Type.Optional(DateTime),
  createdTo: Type.Optional(DateTime),
})

export const AuditEntry = Type.Object(
  {
    id: Uuid,
    tenantId: Type.Union([Uuid, Type.Null()]),
    actorKind: Type.String(),
    actorId: Type.String(),
    action: Type.String(),
    resourceKind: Type.Union([Type.String(), Type.Null()]),
    resourceId: Type.Union([Type.String(), Type.Null()]),
    actorTenantId: Type.Union([Uuid, Type.Null()], {
      description: "The actor's own tenant when a superuser acted on this one; null when the actor belongs to the tenant",
    }),
    requestId: Type.String(),
    outcome: Type.Integer(),
    method: Type.String(),
    path: Type.String(),
    createdAt: DateTime,
  },
  {
    title: 'AuditEntry',
    examples: [
      {
        id: 'e7a1c3f5-2b4d-4e6f-8a0b-9c1d3e5f7a29',
        tenantId: EXAMPLE.tenantId,
        actorKind: 'user',
        actorId: EXAMPLE.userId,
        action: 'createAiUser',
        resourceKind: 'users',
        resourceId: '3c8e1f6a-5d2b-4a7c-9e0f-8b1d4a6c2e95',
        actorTenantId: null,
        requestId: 'a4f2c9e1-7b3d-4e8a-b6c0-2d5f8e1a9c74',
        outcome: 201,
        method: 'POST',
        path: '/ai/admin/users',
        createdAt: EXAMPLE.createdAt,
      },
    ],
  },
)

export const TenantPage = Page(Tenant, 'TenantPage')
export const ApiKeyPage = Page(ApiKey, 'ApiKeyPage')
export const AuditPage = Page(AuditEntry, 'AuditPage')

/** JWKS and discovery documents are Keycloak's shapes, passed through. */
export const Jwks = Type.Object(
  { keys: Type.Array(Type.Record(Type.String(), Type.Unknown())) },
  {
    additionalProperties: true,
    examples: [{ keys: [{ kty: 'RSA', kid: 'local-1', use: 'sig', alg: 'RS256', n: 'u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw', e: 'AQAB' }] },
    ],
  },
)
export const Discovery = Type.Record(Type.String(), Type.Unknown(), {
  examples: [
    {
      issuer: 'http://localhost:8080/realms/acme',
      jwks_uri: 'http://localhost:8080/realms/acme/protocol/openid-connect/certs',
      id_token_signing_alg_values_supported: ['RS256'],
    },
  ],
})
