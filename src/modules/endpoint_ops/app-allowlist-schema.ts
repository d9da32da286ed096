import Type from 'typebox'
import { EXAMPLE, StrictObject, StringEnum } from '../../platform/http/schemas.js'

export const ALLOWLIST_SCOPES = ['tenant', 'global'] as const
const Entry = Type.String({ minLength: 1, maxLength: 200, examples: ['numpy.*'] })

export const AppImportAllowlist = Type.Object(
  {
    scope: StringEnum(['tenant', 'global', 'default'] as const, {
      description: "where the tenant's list comes from: its own row, the global row, or the built-in default",
    }),
    entries: Type.Array(Type.String()),
    defaults: Type.Array(Type.String(), { description: 'the built-in list, for comparison' }),
    version: Type.Integer({ minimum: 0 }),
    updatedBy: Type.Union([Type.String(), Type.Null()]),
    updatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  {
    title: 'AppImportAllowlist',
    examples: [
      {
        scope: 'tenant',
        entries: ['fastapi.*', 'json', 'math', 'pydantic.*', 'typing'],
        defaults: ['fastapi.*', 'starlette.*', 'pydantic.*', 'typing', 'json'],
        version: 3,
        updatedBy: EXAMPLE.userId,
        updatedAt: EXAMPLE.updatedAt,
      },
    ],
  },
)

export const AppImportAllowlistPut = StrictObject(
  {
    entries: Type.Array(Entry, {
      minItems: 1,
      maxItems: 500,
      description: 'module names, each exact (`urllib.parse`) or a package with everything below it (`starlette.*`); must allow fastapi',
    }),
    scope: Type.Optional(StringEnum(ALLOWLIST_SCOPES, { description: "'tenant' (default): the caller's tenant; 'global': every tenant without a list of its own (superusers only)" })),
  },
  { title: 'AppImportAllowlistPut', examples: [{ entries: ['fastapi.*', 'pydantic.*', 'typing', 'json', 'math'] }] },
)

export const AppImportAllowlistQuery = StrictObject({
  scope: Type.Optional(StringEnum(ALLOWLIST_SCOPES, { description: "'global': the list tenants without their own inherit" })),
})
