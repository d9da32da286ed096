import Type from 'typebox'
import { EXAMPLE, StrictObject, StringEnum, Uuid } from '../../platform/http/schemas.js'
import { MAX_FILE_PATH_LENGTH, MAX_FILES_PER_VERSION } from './paths.js'
import { MODEL_EXAMPLE } from './schema.js'

export const UPLOAD_STATUSES = ['open', 'completing', 'verifying', 'completed', 'failed', 'aborted', 'expired'] as const
export const UPLOAD_FILE_STATUSES = ['open', 'completed', 'verified'] as const

const FilePath = Type.String({ minLength: 1, maxLength: MAX_FILE_PATH_LENGTH, description: 'relative, of A-Za-z0-9._- segments joined by /' })
const Sha256 = Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'the hex SHA-256 of the whole file, as the client computed it' })
const ETag = Type.String({ minLength: 1, maxLength: 128, pattern: '^"?[0-9A-Za-z-]{1,100}"?$', description: 'the ETag header the PUT of the part answered' })
const Label = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' })

export const UploadParams = StrictObject({ id: Uuid, upload: Uuid })

export const UploadPartsQuery = StrictObject({
  all: Type.Optional(Type.Boolean({ description: 'a URL for every part, stored or not (to send one again); by default only for the parts the store lacks' })),
})

const UPLOAD_ID = 'e7a1c3d5-6b2f-4e8a-9c1d-3f5b7a9e2c40'
const VERSION_ID = '2c8e4a6f-1b3d-4f5e-8a7c-9d0b2e4f6a18'
const PART_URL = `https://s3.example.com/models/models/${MODEL_EXAMPLE.id}/${VERSION_ID}/model.safetensors?partNumber=1&uploadId=…&X-Amz-Signature=…`

export const UploadCreate = StrictObject(
  {
    label: Type.Optional(Label),
    files: Type.Array(
      StrictObject({
        path: FilePath,
        size: Type.Integer({ minimum: 0, maximum: 2 ** 53 - 1 }),
        sha256: Sha256,
      }),
      { minItems: 1, maxItems: MAX_FILES_PER_VERSION },
    ),
  },
  {
    title: 'ModelUploadCreate',
    examples: [
      {
        label: 'v2',
        files: [
          { path: 'config.json', size: 826, sha256: 'a3f1c0d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7' },
          { path: 'model.safetensors', size: 16060555550, sha256: '5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a4938271605f' },
        ],
      },
    ],
  },
)

export const UploadComplete = StrictObject(
  {
    files: Type.Array(
      StrictObject({
        path: FilePath,
        parts: Type.Array(StrictObject({ partNumber: Type.Integer({ minimum: 1, maximum: 10_000 }), etag: ETag }), { minItems: 1, maxItems: 10_000 }),
      }),
      { minItems: 1, maxItems: MAX_FILES_PER_VERSION },
    ),
  },
  {
    title: 'ModelUploadComplete',
    examples: [
      {
        files: [
          { path: 'config.json', parts: [{ partNumber: 1, etag: '"9b2cf535f27731c974343645a3985328"' }] },
          { path: 'model.safetensors', parts: [{ partNumber: 1, etag: '"5d41402abc4b2a76b9719d911017c592"' }, { partNumber: 2, etag: '"7d793037a0760186574b0282f2f435e7"' }] },
        ],
      },
    ],
  },
)

const Part = Type.Object({
  partNumber: Type.Integer({ minimum: 1 }),
  size: Type.Integer({ minimum: 0 }),
  url: Type.Optional(Type.String({ description: 'PUT the part here, as it is, before expiresAt; only in the answer that opens the upload' })),
})

export const ModelUpload = Type.Object(
  {
    id: Uuid,
    modelId: Uuid,
    versionId: Uuid,
    status: StringEnum(UPLOAD_STATUSES),
    statusReason: Type.Union([Type.String(), Type.Null()]),
    partSize: Type.Integer({ minimum: 1 }),
    expiresAt: Type.String({ format: 'date-time' }),
    workflowId: Type.Union([Uuid, Type.Null()], { description: 'the verification run, once completed' }),
    createdBy: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    files: Type.Array(
      Type.Object({
        path: Type.String(),
        size: Type.Integer({ minimum: 0 }),
        sha256: Type.String({ description: 'as declared; the version\'s manifest holds what was computed' }),
        status: StringEnum(UPLOAD_FILE_STATUSES),
        parts: Type.Array(Part),
      }),
    ),
  },
  {
    title: 'ModelUpload',
    examples: [
      {
        id: UPLOAD_ID,
        modelId: MODEL_EXAMPLE.id,
        versionId: VERSION_ID,
        status: 'open',
        statusReason: null,
        partSize: 67108864,
        expiresAt: '2026-03-02T15:15:00.000Z',
        workflowId: null,
        createdBy: EXAMPLE.userId,
        createdAt: EXAMPLE.createdAt,
        files: [
          { path: 'config.json', size: 826, sha256: 'a3f1c0d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7', status: 'open', parts: [{ partNumber: 1, size: 826, url: PART_URL }] },
        ],
      },
    ],
  },
)
