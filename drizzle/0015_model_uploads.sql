CREATE TABLE "model_upload_files" (
	"upload_id" uuid NOT NULL,
	"path" text NOT NULL,
	"blob_key" text NOT NULL,
	"store_upload_id" text NOT NULL,
	"size" bigint NOT NULL,
	"declared_sha256" text NOT NULL,
	"sha256" text,
	"part_count" integer NOT NULL,
	"status" text NOT NULL,
	CONSTRAINT "model_upload_files_upload_id_path_pk" PRIMARY KEY("upload_id","path")
);
--> statement-breakpoint
CREATE TABLE "model_upload_parts" (
	"upload_id" uuid NOT NULL,
	"path" text NOT NULL,
	"part_number" integer NOT NULL,
	"size" bigint NOT NULL,
	"etag" text,
	CONSTRAINT "model_upload_parts_upload_id_path_part_number_pk" PRIMARY KEY("upload_id","path","part_number")
);
--> statement-breakpoint
CREATE TABLE "model_uploads" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"model_id" uuid NOT NULL,
	"version_id" uuid NOT NULL,
	"status" text NOT NULL,
	"status_reason" text,
	"part_size" bigint NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"workflow_id" uuid,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "model_upload_files" ADD CONSTRAINT "model_upload_files_upload_id_model_uploads_id_fk" FOREIGN KEY ("upload_id") REFERENCES "public"."model_uploads"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "model_upload_parts" ADD CONSTRAINT "model_upload_parts_upload_id_model_uploads_id_fk" FOREIGN KEY ("upload_id") REFERENCES "public"."model_uploads"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "model_uploads" ADD CONSTRAINT "model_uploads_model_id_models_id_fk" FOREIGN KEY ("model_id") REFERENCES "public"."models"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "model_uploads" ADD CONSTRAINT "model_uploads_version_id_model_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."model_versions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "model_upload_files_store_upload_idx" ON "model_upload_files" USING btree ("store_upload_id");--> statement-breakpoint
CREATE UNIQUE INDEX "model_uploads_version_idx" ON "model_uploads" USING btree ("version_id");--> statement-breakpoint
CREATE INDEX "model_uploads_tenant_model_idx" ON "model_uploads" USING btree ("tenant_id","model_id");