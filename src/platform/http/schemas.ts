import Type, { type TEnum, type TProperties, type TSchema, type TSchemaOptions } from 'typebox'

/** The one error envelope every failure uses, 4xx and 5xx alike. */
export const ErrorEnvelope = Type.Object(
  {
    errorCode: Type.String({ description: 'Stable SCREAMING_SNAKE code', examples: ['VALIDATION_ERROR'] }),
    message: Type.String(),
    details: Type.Optional(Type.Unknown()),
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

export function Page<T extends TSchema>(item: T, title: string) {
  return Type.Object(
    {
      items: Type.Array(item),
      total: Type.Integer({ minimum: 0 }),
      page: Type.Integer({ minimum: 1 }),
      limit: Type.Integer({ minimum: 1 }),
    },
    { title },
  )
}
