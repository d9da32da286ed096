CREATE TABLE "model_credentials" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"provider_id" text NOT NULL,
	"name" text NOT NULL,
	"settings" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"secret_sealed" text,
	"hint" text,
	"status" text NOT NULL,
	"verified_at" timestamp with time zone,
	"last_error" text,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "model_providers" (
	"id" text PRIMARY KEY NOT NULL,
	"display_name" text NOT NULL,
	"kind" text NOT NULL,
	"credential_fields" jsonb NOT NULL,
	"settings_fields" jsonb NOT NULL,
	"default_base_url" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "model_version_files" (
	"version_id" uuid NOT NULL,
	"path" text NOT NULL,
	"size" bigint NOT NULL,
	"sha256" text,
	"git_oid" text,
	"lfs" boolean DEFAULT false NOT NULL,
	"blob_key" text NOT NULL,
	"status" text NOT NULL,
	"bytes_done" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "model_version_files_version_id_path_pk" PRIMARY KEY("version_id","path")
);
--> statement-breakpoint
CREATE TABLE "model_versions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"model_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"label" text NOT NULL,
	"source_revision" text,
	"status" text NOT NULL,
	"status_reason" text,
	"manifest" jsonb DEFAULT '{"files":[]}'::jsonb NOT NULL,
	"file_count" integer DEFAULT 0 NOT NULL,
	"size_bytes" bigint DEFAULT 0 NOT NULL,
	"workflow_id" uuid,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sealed_at" timestamp with time zone,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "models" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"display_name" text NOT NULL,
	"source" text NOT NULL,
	"provider_id" text,
	"credential_id" uuid,
	"uri" text,
	"tasks" text[] DEFAULT '{}'::text[] NOT NULL,
	"modalities" text[] DEFAULT '{}'::text[] NOT NULL,
	"architecture" text,
	"parameter_count" bigint,
	"context_length" integer,
	"dtype" text,
	"quantization" text,
	"format" text,
	"license" text,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"description" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text NOT NULL,
	"status_reason" text,
	"default_version_id" uuid,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "model_credentials" ADD CONSTRAINT "model_credentials_provider_id_model_providers_id_fk" FOREIGN KEY ("provider_id") REFERENCES "public"."model_providers"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "model_version_files" ADD CONSTRAINT "model_version_files_version_id_model_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."model_versions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "model_versions" ADD CONSTRAINT "model_versions_model_id_models_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."models"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "models" ADD CONSTRAINT "models_provider_id_model_providers_id_fk" FOREIGN KEY ("provider_id") REFERENCES "public"."model_providers"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "models" ADD CONSTRAINT "models_credential_id_model_credentials_id_fk" FOREIGN KEY ("credential_id") REFERENCES "public"."model_credentials"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "model_credentials_tenant_name_live_idx" ON "model_credentials" USING btree ("tenant_id","name") WHERE "model_credentials"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "model_credentials_tenant_created_idx" ON "model_credentials" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "model_credentials_tenant_provider_idx" ON "model_credentials" USING btree ("tenant_id","provider_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "model_versions_model_label_live_idx" ON "model_versions" USING btree ("model_id","label") WHERE "model_versions"."status" <> 'deleted';--> statement-breakpoint
CREATE INDEX "model_versions_model_created_idx" ON "model_versions" USING btree ("model_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "models_tenant_name_live_idx" ON "models" USING btree ("tenant_id","name") WHERE "models"."status" <> 'deleted';--> statement-breakpoint
CREATE INDEX "models_tenant_created_idx" ON "models" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "models_tenant_updated_idx" ON "models" USING btree ("tenant_id","updated_at");--> statement-breakpoint
CREATE INDEX "models_tenant_name_idx" ON "models" USING btree ("tenant_id","name");--> statement-breakpoint
CREATE INDEX "models_tenant_status_idx" ON "models" USING btree ("tenant_id","status");--> statement-breakpoint
CREATE INDEX "models_tenant_source_idx" ON "models" USING btree ("tenant_id","source");--> statement-breakpoint
CREATE INDEX "models_tenant_format_idx" ON "models" USING btree ("tenant_id","format");--> statement-breakpoint
CREATE INDEX "models_tenant_license_idx" ON "models" USING btree ("tenant_id","license");--> statement-breakpoint
CREATE INDEX "models_tenant_provider_idx" ON "models" USING btree ("tenant_id","provider_id");--> statement-breakpoint
CREATE INDEX "models_tenant_parameters_idx" ON "models" USING btree ("tenant_id","parameter_count");--> statement-breakpoint
CREATE INDEX "models_credential_idx" ON "models" USING btree ("credential_id") WHERE "models"."credential_id" is not null and "models"."status" <> 'deleted';--> statement-breakpoint
CREATE INDEX "models_tasks_idx" ON "models" USING gin ("tasks");--> statement-breakpoint
CREATE INDEX "models_modalities_idx" ON "models" USING gin ("modalities");--> statement-breakpoint
CREATE INDEX "models_tags_idx" ON "models" USING gin ("tags");--> statement-breakpoint
CREATE INDEX "models_name_trgm_idx" ON "models" USING gin ("name" gin_trgm_ops);--> statement-breakpoint
CREATE INDEX "models_description_trgm_idx" ON "models" USING gin ("description" gin_trgm_ops);