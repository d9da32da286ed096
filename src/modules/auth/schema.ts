import Type from 'typebox'
import { Page, PageQueryProperties, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { PERMISSIONS } from './permissions.js'

export const RealmName = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', minLength: 1, maxLength: 64 })
const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+$' })
const Jwt = Type.String({ minLength: 10, maxLength: 16384 })
const DateTime = Type.String({ format: 'date-time' })
const PermissionName = StringEnum(PERMISSIONS)
const TenantStatus = StringEnum(['active', 'disabled'], { examples: ['active'] })

export const LoginBody = StrictObject(
  {
    email: Email,
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    tenant: RealmName,
  },
  { title: 'LoginRequest' },
)

export const RefreshBody = StrictObject({ refreshToken: Jwt }, { title: 'RefreshRequest' })
export const LogoutBody = StrictObject({ refreshToken: Type.Optional(Jwt) }, { title: 'LogoutRequest' })

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
  { title: 'TokenResponse' },
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
  { title: 'Tenant' },
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
  { title: 'Me' },
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
  { title: 'CreateApiKeyRequest' },
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
  { title: 'ApiKey' },
)

export const CreatedApiKey = Type.Object(
  {
    ...ApiKey.properties,
    key: Type.String({ description: 'The key itself; shown this once and never again' }),
  },
  { title: 'CreatedApiKey' },
)

export const IdParams = Type.Object({ id: Uuid })
export const RealmParams = Type.Object({ realm: RealmName })

export const PageQuery = Type.Object({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })

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
  { title: 'CreateTenantRequest' },
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
  { title: 'CreatedTenant' },
)

export const UpdateTenantBody = StrictObject(
  {
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    status: Type.Optional(TenantStatus),
  },
  { title: 'UpdateTenantRequest', minProperties: 1 },
)

export const AuditQuery = Type.Object({
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
  tenantId: Type.Optional(Uuid),
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  action: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  resourceKind: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  from: Type.Optional(DateTime),
  to: Type.Optional(DateTime),
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
  { title: 'AuditEntry' },
)

export const TenantPage = Page(Tenant, 'TenantPage')
export const ApiKeyPage = Page(ApiKey, 'ApiKeyPage')
export const AuditPage = Page(AuditEntry, 'AuditPage')

/** JWKS and discovery documents are Keycloak's shapes, passed through. */
export const Jwks = Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.Unknown())) }, { additionalProperties: true })
export const Discovery = Type.Record(Type.String(), Type.Unknown())
