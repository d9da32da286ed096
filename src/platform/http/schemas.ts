import Type, { type TEnum, type TProperties, type TSchema, type TSchemaOptions } from 'typebox'

/** The one error envelope every failure uses, 4xx and 5xx alike. */
export const ErrorEnvelope = Type.Object(
  {
    errorCode: Type.String({ description: 'Stable SCREAMING_SNAKE code', examples: ['VALIDATION_ERROR'] }),
    message: Type.String(),
    details: Type.Object(
      { fields: Type.Array(Type.Object({ field: Type.String(), message: Type.String() })) },
      { additionalProperties: true, description: 'Always present: `fields` names the inputs at fault (may be empty); other keys depend on errorCode' },
    ),
    requestId: Type.String(),
  },
  { $id: 'ErrorEnvelope', title: 'ErrorEnvelope' },
)

/** Request bodies reject fields they do not know, so a typo is a 400 instead of a silent no-op. */
export function StrictObject<T extends TProperties>(properties: T, options: Record<string, unknown> = {}) {
  return Type.Object(properties, { ...options, additionalProperties: false })
}

/**
 * A string that is one of `values`, as `{type: 'string', enum: [...]}`. A union of literals is an
 * anyOf of constants instead: OpenAPI shows no list (Swagger UI no dropdown), and a wrong value
 * fails once per member. Every enumerated field uses this.
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: TSchemaOptions = {}): TEnum<[...T]> {
  return Type.Enum<[...T]>([...values] as [...T], { ...options, type: 'string' } as TSchemaOptions)
}

/** `sort` over an allow-list of fields, each alone (ascending) or with :asc or :desc. */
export function SortParam(fields: readonly string[], options: TSchemaOptions = {}) {
  return StringEnum(
    fields.flatMap((f) => [f, `${f}:asc`, `${f}:desc`]),
    options,
  )
}

export const Uuid = Type.String({ format: 'uuid', maxLength: 36 })

export const PageQueryProperties = {
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  sort: Type.Optional(Type.String({ maxLength: 64, pattern: '^[A-Za-z_]+(:(asc|desc))?$' })),
}

/** Values the examples of the document share, so one example's ids lead to another's. */
export const EXAMPLE = {
  tenantId: '0b6a3c9e-2f4d-4e55-9a61-3c1f2a7d8e90',
  userId: '5f0c8e2a-9b7d-4c1e-8a3f-2d6b1e9c4a70',
  workflowId: '9d2b6f14-7c3e-4a8b-b5d1-6e0f2a9c8b37',
  apiKeyId: 'c41e7a90-3b2d-4f6e-9a8c-1d5b7e2f0a63',
  createdAt: '2026-03-02T09:15:00.000Z',
  updatedAt: '2026-03-02T09:20:41.000Z',
} as const

/** A page of `item`s; its example is a page holding the item's own example. */
export function Page<T extends TSchema>(item: T, title: string) {
  const itemExample = (item as { examples?: unknown[] }).examples?.[0]
  return Type.Object(
    {
      items: Type.Array(item),
      total: Type.Integer({ minimum: 0 }),
      totalExact: Type.Boolean({ description: 'false when total is a lower bound (the count stopped early)' }),
      page: Type.Integer({ minimum: 1 }),
      limit: Type.Integer({ minimum: 1 }),
    },
    { title, ...(itemExample === undefined ? {} : { examples: [{ items: [itemExample], total: 1, totalExact: true, page: 1, limit: 20 }] }) },
  )
}
