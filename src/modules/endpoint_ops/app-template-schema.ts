import Type from 'typebox'
import { EXAMPLE, Page, PageQueryProperties, SortParam, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { APP_FILE_LIMITS } from './apps/validate.js'
import { APP_TEMPLATE_SORT_FIELDS } from './app-template-crud.js'

export const TEMPLATE_SCOPES = ['global', 'tenant'] as const
const NO_CONTROL = '^[^\\x00-\\x1f\\x7f]*$'

const Name = Type.String({ minLength: 1, maxLength: 80, pattern: NO_CONTROL, examples: ['Hello JSON API'] })
const Description = Type.String({ maxLength: 2_000, pattern: '^[^\\x00]*$' })
/** Bounds in characters here; the validator counts bytes (100 KB a file, 500 KB in all) and says which file is over. */
const AppFileBody = StrictObject({
  path: Type.String({ minLength: 1, maxLength: APP_FILE_LIMITS.maxPathLength, examples: ['main.py'] }),
  content: Type.String({ maxLength: APP_FILE_LIMITS.maxFileBytes }),
})
const Files = Type.Array(AppFileBody, {
  minItems: 1,
  maxItems: APP_FILE_LIMITS.maxFiles,
  description: '.py files (one of them main.py when there are several) plus static .css/.js/.svg/.html/.json/.txt',
})
const Code = Type.String({ minLength: 1, maxLength: APP_FILE_LIMITS.maxFileBytes, description: 'a single-file app (stored as main.py)' })

const HELLO = 'from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get("/")\ndef hello():\n    return {"hello": "world"}\n'

export const AppTemplateCreate = StrictObject(
  {
    name: Name,
    description: Type.Optional(Description),
    code: Type.Optional(Code),
    files: Type.Optional(Files),
    scope: Type.Optional(StringEnum(TEMPLATE_SCOPES, { description: "'tenant' (default): yours; 'global': every tenant's (superusers only)" })),
  },
  {
    title: 'AppTemplateCreate',
    description: 'Exactly one of `code` and `files`. The code is checked as an app would be: 400 CODE_INVALID lists every problem.',
    examples: [{ name: 'My hello', description: 'A start', code: HELLO }],
  },
)

export const AppTemplateUpdate = StrictObject(
  {
    name: Type.Optional(Name),
    description: Type.Optional(Description),
    code: Type.Optional(Code),
    files: Type.Optional(Files),
  },
  { title: 'AppTemplateUpdate', description: 'At most one of `code` and `files`; new code is checked again.', examples: [{ description: 'Renamed' }] },
)

const Common = {
  id: Uuid,
  scope: StringEnum(TEMPLATE_SCOPES),
  /** Null for global templates. */
  ownerId: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
  mine: Type.Boolean({ description: 'the caller made it' }),
  seeded: Type.Boolean({ description: 'one of the templates every installation starts with' }),
  name: Type.String(),
  description: Type.String(),
  entry: Type.String({ description: 'the file the runner imports' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
}

const example = {
  id: '7e1d2c3b-4a59-4f68-8b7a-6c5d4e3f2a10',
  scope: 'global',
  ownerId: null,
  mine: false,
  seeded: true,
  name: 'Hello JSON API',
  description: 'A greeting, the server time and a validated echo.',
  entry: 'main.py',
  createdAt: EXAMPLE.createdAt,
  updatedAt: EXAMPLE.updatedAt,
}

export const AppTemplateSummary = Type.Object(
  { ...Common, paths: Type.Array(Type.String(), { description: "the template's files (GET the template for their content)" }) },
  { title: 'AppTemplateSummary', examples: [{ ...example, paths: ['main.py'] }] },
)

export const AppTemplate = Type.Object(
  { ...Common, files: Type.Array(Type.Object({ path: Type.String(), content: Type.String() })) },
  { title: 'AppTemplate', examples: [{ ...example, files: [{ path: 'main.py', content: HELLO }] }] },
)

export const AppTemplatePage = Page(AppTemplateSummary, 'AppTemplatePage')

export const AppTemplateListQuery = StrictObject({
  ...PageQueryProperties,
  sort: Type.Optional(SortParam(APP_TEMPLATE_SORT_FIELDS, { description: 'default name:asc' })),
  scope: Type.Optional(StringEnum(TEMPLATE_SCOPES)),
})

export const AppTemplateIdParams = StrictObject({ id: Uuid })
