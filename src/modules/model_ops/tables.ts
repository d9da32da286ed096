import { sql } from 'drizzle-orm'
import { bigint, boolean, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

/** One field a provider asks for: a secret goes to the vault, a setting is stored as given. */
export interface ProviderField {
  name: string
  secret: boolean
  required: boolean
  description: string
}

/**
 * The providers modelplane knows, written from code at every start (upserted, so a new release's
 * fields reach an old database); rows are never edited through the API.
 */
export const modelProviders = pgTable('model_providers', {
  id: text('id').primaryKey(),
  displayName: text('display_name').notNull(),
  /** hub: weights are imported from it; cloud: models are called where they are. */
  kind: text('kind').notNull(),
  credentialFields: jsonb('credential_fields').$type<ProviderField[]>().notNull(),
  settingsFields: jsonb('settings_fields').$type<ProviderField[]>().notNull(),
  defaultBaseUrl: text('default_base_url'),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
})

export type ModelProviderRow = typeof modelProviders.$inferSelect

/**
 * A tenant's key to a provider. The secret fields are sealed together by the vault (context: the
 * row) and dropped when the credential is deleted; `hint` is all anyone sees of them again.
 */
export const modelCredentials = pgTable(
  'model_credentials',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id').notNull(),
    providerId: text('provider_id')
      .notNull()
      .references(() => modelProviders.id),
    name: text('name').notNull(),
    /** The provider's non-secret settings: baseUrl, region, apiVersion, allowHttp… */
    settings: jsonb('settings').$type<Record<string, string | boolean>>().notNull().default({}),
    secretSealed: text('secret_sealed'),
    /** What the owner sees of the main secret (sk-…3f9a); null when the provider takes none. */
    hint: text('hint'),
    /** verified | failed | unverified */
    status: text('status').notNull(),
    verifiedAt: timestamp('verified_at', { withTimezone: true }),
    lastError: text('last_error'),
    createdBy: text('created_by').notNull(),
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('model_credentials_tenant_name_live_idx').on(t.tenantId, t.name).where(sql`${t.deletedAt} is null`),
    index('model_credentials_tenant_created_idx').on(t.tenantId, t.createdAt),
    index('model_credentials_tenant_provider_idx').on(t.tenantId, t.providerId, t.createdAt),
  ],
)

export type ModelCredentialRow = typeof modelCredentials.$inferSelect

/**
 * A model in the catalog. Cloud models live at their provider (uri is the remote name) and have no
 * versions; the others hold their files as versions in the blob store, one of them the default.
 *
 * status: importing → ready | failed; any → deleted (soft: the name is free again).
 */
export const models = pgTable(
  'models',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id').notNull(),
    name: text('name').notNull(),
    displayName: text('display_name').notNull(),
    /** hub | url | upload | cloud */
    source: text('source').notNull(),
    providerId: text('provider_id').references(() => modelProviders.id),
    credentialId: uuid('credential_id').references(() => modelCredentials.id),
    /** The hub repo id, the URL, or the cloud model's name at its provider. */
    uri: text('uri'),
    tasks: text('tasks').array().notNull().default(sql`'{}'::text[]`),
    modalities: text('modalities').array().notNull().default(sql`'{}'::text[]`),
    architecture: text('architecture'),
    parameterCount: bigint('parameter_count', { mode: 'number' }),
    contextLength: integer('context_length'),
    dtype: text('dtype'),
    quantization: text('quantization'),
    /** safetensors | gguf | pytorch | onnx | other; null for cloud models. */
    format: text('format'),
    license: text('license'),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    description: text('description'),
    /** What the model's files said beyond the columns (attention heads, quantization config…). */
    metadata: jsonb('metadata').$type<Record<string, unknown>>().notNull().default({}),
    status: text('status').notNull(),
    statusReason: text('status_reason'),
    defaultVersionId: uuid('default_version_id'),
    createdBy: text('created_by').notNull(),
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('models_tenant_name_live_idx').on(t.tenantId, t.name).where(sql`${t.status} <> 'deleted'`),
    index('models_tenant_created_idx').on(t.tenantId, t.createdAt),
    index('models_tenant_updated_idx').on(t.tenantId, t.updatedAt),
    index('models_tenant_name_idx').on(t.tenantId, t.name),
    index('models_tenant_status_idx').on(t.tenantId, t.status),
    index('models_tenant_source_idx').on(t.tenantId, t.source),
    index('models_tenant_format_idx').on(t.tenantId, t.format),
    index('models_tenant_license_idx').on(t.tenantId, t.license),
    index('models_tenant_provider_idx').on(t.tenantId, t.providerId),
    index('models_tenant_parameters_idx').on(t.tenantId, t.parameterCount),
    index('models_credential_idx').on(t.credentialId).where(sql`${t.credentialId} is not null and ${t.status} <> 'deleted'`),
    index('models_tasks_idx').using('gin', t.tasks),
    index('models_modalities_idx').using('gin', t.modalities),
    index('models_tags_idx').using('gin', t.tags),
    index('models_name_trgm_idx').using('gin', sql`${t.name} gin_trgm_ops`),
    index('models_description_trgm_idx').using('gin', sql`${t.description} gin_trgm_ops`),
  ],
)

export type ModelRow = typeof models.$inferSelect

/** A file of a version as its manifest lists it. */
export interface ManifestFile {
  path: string
  size: number
  sha256: string | null
}

/**
 * A set of files of one model. Immutable once `ready` (sealed_at set): a change is a new version.
 *
 * status: importing | uploading → verifying → ready | failed; ready → deleted.
 */
export const modelVersions = pgTable(
  'model_versions',
  {
    id: uuid('id').primaryKey(),
    modelId: uuid('model_id')
      .notNull()
      .references(() => models.id, { onDelete: 'cascade' }),
    tenantId: uuid('tenant_id').notNull(),
    /** v1, v2… or the hub revision it came from. */
    label: text('label').notNull(),
    /** The hub commit the files were pinned to. */
    sourceRevision: text('source_revision'),
    status: text('status').notNull(),
    statusReason: text('status_reason'),
    manifest: jsonb('manifest').$type<{ files: ManifestFile[] }>().notNull().default({ files: [] }),
    fileCount: integer('file_count').notNull().default(0),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull().default(0),
    workflowId: uuid('workflow_id'),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    sealedAt: timestamp('sealed_at', { withTimezone: true }),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('model_versions_model_label_live_idx').on(t.modelId, t.label).where(sql`${t.status} <> 'deleted'`),
    index('model_versions_model_created_idx').on(t.modelId, t.createdAt),
  ],
)

export type ModelVersionRow = typeof modelVersions.$inferSelect

/**
 * The ledger of a version's files: what imports and uploads fill in, file by file, and what a
 * resumed run reads to know where it stopped. status: pending → stored → verified.
 */
export const modelVersionFiles = pgTable(
  'model_version_files',
  {
    versionId: uuid('version_id')
      .notNull()
      .references(() => modelVersions.id, { onDelete: 'cascade' }),
    path: text('path').notNull(),
    size: bigint('size', { mode: 'number' }).notNull(),
    sha256: text('sha256'),
    /** The git blob SHA-1 the hub states for a small (non-LFS) file. */
    gitOid: text('git_oid'),
    lfs: boolean('lfs').notNull().default(false),
    blobKey: text('blob_key').notNull(),
    status: text('status').notNull(),
    bytesDone: bigint('bytes_done', { mode: 'number' }).notNull().default(0),
    /** The store's multipart upload an import is writing a large file into, until it is assembled. */
    multipartUploadId: text('multipart_upload_id'),
    /** The ETags of that upload's parts stored so far, by part number - 1. */
    partEtags: jsonb('part_etags').$type<string[]>().notNull().default([]),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.versionId, t.path] })],
)

export type ModelVersionFileRow = typeof modelVersionFiles.$inferSelect

/**
 * A client's upload of a new version straight into the object store: one S3 multipart upload per
 * file, whose parts the client PUTs through presigned URLs; the API never sees the bytes.
 *
 * status: open → completing → verifying → completed | failed; open → aborted | expired.
 * `completing` is held while the store assembles the files (outside any transaction): a second
 * complete finds it and is refused, so one upload makes one version.
 */
export const modelUploads = pgTable(
  'model_uploads',
  {
    id: uuid('id').primaryKey(),
    tenantId: uuid('tenant_id').notNull(),
    modelId: uuid('model_id')
      .notNull()
      .references(() => models.id, { onDelete: 'cascade' }),
    versionId: uuid('version_id')
      .notNull()
      .references(() => modelVersions.id, { onDelete: 'cascade' }),
    status: text('status').notNull(),
    statusReason: text('status_reason'),
    /** Every part but a file's last is this long. */
    partSize: bigint('part_size', { mode: 'number' }).notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    workflowId: uuid('workflow_id'),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('model_uploads_version_idx').on(t.versionId), index('model_uploads_tenant_model_idx').on(t.tenantId, t.modelId)],
)

export type ModelUploadRow = typeof modelUploads.$inferSelect

/**
 * Each file of an upload: the store's multipart upload it goes into, what the client declared, and
 * what we computed from the stored bytes. status: open → completed (assembled in the store) → verified.
 */
export const modelUploadFiles = pgTable(
  'model_upload_files',
  {
    uploadId: uuid('upload_id')
      .notNull()
      .references(() => modelUploads.id, { onDelete: 'cascade' }),
    path: text('path').notNull(),
    blobKey: text('blob_key').notNull(),
    storeUploadId: text('store_upload_id').notNull(),
    size: bigint('size', { mode: 'number' }).notNull(),
    /** As the client declared it: compared with what we compute, never trusted. */
    declaredSha256: text('declared_sha256').notNull(),
    sha256: text('sha256'),
    partCount: integer('part_count').notNull(),
    status: text('status').notNull(),
  },
  (t) => [primaryKey({ columns: [t.uploadId, t.path] }), index('model_upload_files_store_upload_idx').on(t.storeUploadId)],
)

export type ModelUploadFileRow = typeof modelUploadFiles.$inferSelect

/** The ledger of parts: the size each part must have, and the ETag the client reported once the store confirmed it. */
export const modelUploadParts = pgTable(
  'model_upload_parts',
  {
    uploadId: uuid('upload_id')
      .notNull()
      .references(() => modelUploads.id, { onDelete: 'cascade' }),
    path: text('path').notNull(),
    partNumber: integer('part_number').notNull(),
    size: bigint('size', { mode: 'number' }).notNull(),
    etag: text('etag'),
  },
  (t) => [primaryKey({ columns: [t.uploadId, t.path, t.partNumber] })],
)

export type ModelUploadPartRow = typeof modelUploadParts.$inferSelect
