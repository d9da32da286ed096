import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { PERMISSIONS, ROLE_RANK } from '../auth/permissions.js'

/** Keys of `attributes` and names of `secrets`: short, printable, no dots-only tricks. */
export const KEY_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$'
export const LIMITS = {
  attributeKeys: 100,
  /** Serialized JSON bytes of one attribute value. */
  attributeValueBytes: 4096,
  /** Nesting of objects/arrays inside one attribute value. */
  attributeDepth: 5,
  attributesTotalBytes: 32_768,
  secrets: 50,
  secretValueLength: 8192,
} as const

/** PostgreSQL text cannot hold NUL: refused here as a 400 rather than failing in the database. */
const NO_NUL = '^[^\\x00]*$'
const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^@\\s\\x00]+@[^@\\s\\x00]+$', examples: ['grace.hopper@acme.example'] })
const Name = Type.String({ maxLength: 200, pattern: NO_NUL, examples: ['Grace Hopper'] })
/** Lowest rank first: the list reads as a ladder, and a form's first choice grants the least. */
const ROLES_ASCENDING = [...ROLE_RANK].reverse() as Array<(typeof ROLE_RANK)[number]>
const Role = StringEnum(ROLES_ASCENDING, { examples: ['developer'] })
const WRITABLE_STATUSES = ['active', 'invited', 'disabled'] as const
const WritableStatus = StringEnum(WRITABLE_STATUSES, { examples: ['active'] })
// Also a list filter: no example, which Swagger UI would send on "Try it out".
const Status = StringEnum([...WRITABLE_STATUSES, 'deleted'])
const Tag = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]*$', examples: ['emp-1042'] })
const DateTime = Type.String({ format: 'date-time', maxLength: 64 })

const attributes = (value: ReturnType<typeof Type.Unknown>) =>
  Type.Record(Type.String({ pattern: KEY_PATTERN }), value, {
    maxProperties: LIMITS.attributeKeys,
    additionalProperties: false,
    description: `A JSON object: at most ${LIMITS.attributeKeys} keys, each value at most ${LIMITS.attributeValueBytes} bytes of JSON nested at most ${LIMITS.attributeDepth} deep`,
  })
const SecretValue = Type.String({ minLength: 1, maxLength: LIMITS.secretValueLength, pattern: NO_NUL })
const secrets = <T extends typeof SecretValue | ReturnType<typeof Type.Union>>(value: T) =>
  Type.Record(Type.String({ pattern: KEY_PATTERN }), value, {
    maxProperties: LIMITS.secrets,
    additionalProperties: false,
    description: 'name → value; sealed by the vault at rest and never returned (responses list the names only)',
  })

export const AiUserCreate = StrictObject(
  {
    email: Email,
    name: Type.Optional(Name),
    role: Role,
    tag: Type.Optional(Tag),
    status: Type.Optional(WritableStatus),
    attributes: Type.Optional(attributes(Type.Unknown())),
    secrets: Type.Optional(secrets(SecretValue)),
  },
  {
    $id: 'AiUserCreate',
    title: 'AiUserCreate',
    examples: [
      {
        email: 'grace.hopper@acme.example',
        name: 'Grace Hopper',
        role: 'developer',
        tag: 'emp-1042',
        attributes: { team: 'inference', costCenter: 'CC-311' },
        secrets: { 'registry-token': 'rt-4f9c2a7e' },
      },
    ],
  },
)

export const AiUserUpdate = StrictObject(
  {
    email: Type.Optional(Email),
    name: Type.Optional(Name),
    role: Type.Optional(Role),
    tag: Type.Optional(Type.Union([Tag, Type.Null()])),
    status: Type.Optional(WritableStatus),
    attributes: Type.Optional(attributes(Type.Unknown({ description: 'null removes the key' }))),
    secrets: Type.Optional(secrets(Type.Union([SecretValue, Type.Null()]))),
  },
  {
    $id: 'AiUserUpdate',
    title: 'AiUserUpdate',
    minProperties: 1,
    description: '`attributes` and `secrets` are merged key by key; a key set to null is removed',
    examples: [{ role: 'devops', attributes: { team: 'platform', costCenter: null } }],
  },
)

const USER_EXAMPLE = {
  id: EXAMPLE.userId,
  email: 'grace.hopper@acme.example',
  name: 'Grace Hopper',
  role: 'developer',
  status: 'active',
  tag: 'emp-1042',
  attributes: { team: 'inference', costCenter: 'CC-311' },
  secretNames: ['registry-token'],
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
}
const INVITE_EXAMPLE = { token: 'Xq7rV2mK9pL4sT8wZ1cN6bH3', expiresAt: '2026-03-09T09:15:00.000Z' }

export const AiUser = Type.Object(
  {
    id: Uuid,
    email: Type.String(),
    name: Type.String(),
    role: Type.String(),
    status: Status,
    tag: Type.Union([Type.String(), Type.Null()]),
    attributes: Type.Record(Type.String(), Type.Unknown()),
    secretNames: Type.Array(Type.String(), { description: 'names of the stored secrets; values are never returned' }),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { $id: 'AiUser', title: 'AiUser', examples: [USER_EXAMPLE] },
)

export const UserInvite = Type.Object(
  {
    token: Type.String({ description: 'one-time token for POST /v1/auth/accept-invite; shown only in this answer' }),
    expiresAt: DateTime,
  },
  { title: 'UserInvite', description: 'embedded mode only: how an invited user sets their password', examples: [INVITE_EXAMPLE] },
)

export const AiUserCreated = Type.Object(
  {
    ...AiUser.properties,
    invite: Type.Optional(UserInvite),
  },
  { title: 'AiUserCreated', examples: [{ ...USER_EXAMPLE, status: 'invited', invite: INVITE_EXAMPLE }] },
)

export const AiUserPage = Type.Object(
  {
    items: Type.Array(AiUser),
    total: Type.Integer({ minimum: 0, description: 'exact when totalExact, else a lower bound (see totalExact)' }),
    totalExact: Type.Boolean({
      description: 'false when more than page×limit+1000 users match: counting stops there and total is that lower bound',
    }),
    page: Type.Integer({ minimum: 1 }),
    limit: Type.Integer({ minimum: 1 }),
  },
  { title: 'AiUserPage', examples: [{ items: [USER_EXAMPLE], total: 1, totalExact: true, page: 1, limit: 20 }] },
)

export const SORT_FIELDS = ['createdAt', 'name', 'email'] as const

/**
 * Superusers: the tenant to act on, by id (ids never change; realm names can be reused after a tenant
 * is gone). Anyone else may name their own tenant; another is 404 TENANT_NOT_FOUND.
 */
const TenantParam = Type.Optional(
  Type.String({
    format: 'uuid',
    maxLength: 36,
    // No example: Swagger UI fills an optional parameter with it on "Try it out" and sends a made-up tenant.
    description: "Superusers: act on this tenant (its id) instead of their own; anyone else's other tenant is 404 TENANT_NOT_FOUND",
  }),
)

export const TenantQuery = StrictObject({ tenant: TenantParam })

export const AiUserListQuery = StrictObject({
  tenant: TenantParam,
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: NO_NUL, description: 'substring of name or email, case-insensitive' })),
  email: Type.Optional(Type.String({ minLength: 1, maxLength: 254, pattern: NO_NUL, description: 'exact email, case-insensitive' })),
  // Filters carry no example: Swagger UI would send it as the value on "Try it out".
  role: Type.Optional(StringEnum(ROLES_ASCENDING)),
  status: Type.Optional(Status),
  tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: NO_NUL })),
  createdFrom: Type.Optional(DateTime),
  createdTo: Type.Optional(DateTime),
  sort: Type.Optional(SortParam(SORT_FIELDS, { description: 'a field alone sorts ascending; default createdAt:desc' })),
  page: PageQueryProperties.page,
  limit: PageQueryProperties.limit,
})

export const UserIdParams = Type.Object({ UserID: Uuid })

export const UserGrantParams = Type.Object({
  UserID: Uuid,
  permission: StringEnum(PERMISSIONS, { description: 'a permission of the catalog', examples: ['user:manage'] }),
})

export const UserGrants = Type.Object(
  {
    userId: Uuid,
    grants: Type.Array(Type.String(), { description: "the user's permissions beyond their role, sorted", examples: [['audit:view']] }),
  },
  { title: 'UserGrants', examples: [{ userId: EXAMPLE.userId, grants: ['audit:view'] }] },
)

export const CredentialReset = Type.Object(
  {
    userId: Uuid,
    revokedApiKeys: Type.Integer({ minimum: 0, description: 'API keys of the user revoked by the reset', examples: [2] }),
    token: Type.Optional(
      Type.String({
        description: 'embedded mode: one-time token for POST /v1/auth/accept-invite, where the user sets a new password; shown only in this answer',
        examples: ['J4bQk0v3c1Wm8RtY2uZp6sXa'],
      }),
    ),
    expiresAt: Type.Optional(DateTime),
    temporaryPassword: Type.Optional(
      Type.String({
        description: 'Keycloak mode: a temporary password Keycloak makes the user change at the next login; shown only in this answer',
      }),
    ),
  },
  {
    title: 'CredentialReset',
    description: 'every session and API key of the user has ended and their password is gone',
    examples: [{ userId: EXAMPLE.userId, revokedApiKeys: 2, token: 'J4bQk0v3c1Wm8RtY2uZp6sXa', expiresAt: '2026-03-05T09:15:00.000Z' }],
  },
)

export const AcceptInviteBody = StrictObject(
  {
    token: Type.String({ minLength: 16, maxLength: 128 }),
    password: Type.String({ minLength: 12, maxLength: 1024 }),
  },
  { title: 'AcceptInviteRequest', examples: [{ token: 'Xq7rV2mK9pL4sT8wZ1cN6bH3', password: 'correct horse battery staple' }] },
)

// ---- bulk import -------------------------------------------------------------------------------

export const IMPORT_MAX_ROWS = 100_000
export const IMPORT_CSV_COLUMNS = ['email', 'name', 'role', 'tag', 'status'] as const

/** One row of a bulk import: AiUserCreate without attributes and secrets (secrets never sit in a staged file). */
export const AiUserImportRow = StrictObject(
  {
    email: Email,
    name: Type.Optional(Name),
    role: Role,
    tag: Type.Optional(Tag),
    status: Type.Optional(WritableStatus),
  },
  { title: 'AiUserImportRow' },
)

/**
 * Rows are checked one by one by the import itself (an invalid row is reported, the others are
 * created), so the request only has to be an array of at most IMPORT_MAX_ROWS items.
 */
export const AiUserImportBody = Type.Array(Type.Unknown({ description: 'an AiUserImportRow: email, role, and optionally name, tag, status' }), {
  minItems: 1,
  maxItems: IMPORT_MAX_ROWS,
  description:
    `JSON: an array of rows {email, name?, role, tag?, status?}. text/csv: a header row naming columns among ` +
    `${IMPORT_CSV_COLUMNS.join(',')} (email and role required), then one user per line. At most ${IMPORT_MAX_ROWS} rows.`,
  examples: [
    [
      { email: 'ada.lovelace@acme.example', name: 'Ada Lovelace', role: 'developer', tag: 'emp-1001' },
      { email: 'alan.turing@acme.example', role: 'viewer', status: 'active' },
    ],
  ],
})

export const AiUserImportAccepted = Type.Object(
  {
    workflowId: Uuid,
    rows: Type.Integer({ minimum: 1, description: 'rows received' }),
  },
  { title: 'AiUserImportAccepted', examples: [{ workflowId: EXAMPLE.workflowId, rows: 2 }] },
)

export const ImportErrorsParams = Type.Object({ id: Uuid })

export const ImportRowError = Type.Object(
  {
    row: Type.Integer({ minimum: 1, description: '1-based; in CSV the first line after the header is row 1' }),
    email: Type.Union([Type.String(), Type.Null()]),
    code: Type.String({ description: 'VALIDATION_ERROR | ROLE_NOT_ALLOWED | DUPLICATE_IN_FILE | DUPLICATE_EMAIL | DUPLICATE_TAG' }),
    message: Type.String(),
  },
  {
    title: 'ImportRowError',
    examples: [{ row: 7, email: 'alan.turing@acme.example', code: 'DUPLICATE_EMAIL', message: 'a user with this email already exists in the tenant' }],
  },
)

export const ImportErrorsPage = Page(ImportRowError, 'ImportErrorsPage')

export const ImportErrorsQuery = StrictObject({ page: PageQueryProperties.page, limit: PageQueryProperties.limit })
