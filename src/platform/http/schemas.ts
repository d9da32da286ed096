import Type, { type TProperties, type TSchema } from 'typebox'

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

export const Uuid = Type.String({ format: 'uuid', maxLength: 36 })

export const PageQueryProperties = {
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  sort: Type.Optional(Type.String({ maxLength: 64, pattern: '^[A-Za-z_]+(:(asc|desc))?$' })),
}

export function Page<T extends TSchema>(item: T, title: string) {
  return Type.Object(
    {
      items: Type.Array(item),
      total: Type.Integer({ minimum: 0 }),
      totalExact: Type.Boolean({ description: 'false when total is a lower bound (the count stopped early)' }),
      page: Type.Integer({ minimum: 1 }),
      limit: Type.Integer({ minimum: 1 }),
    },
    { title },
  )
}
