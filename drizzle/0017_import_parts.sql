ALTER TABLE "model_version_files" ADD COLUMN "multipart_upload_id" text;--> statement-breakpoint
ALTER TABLE "model_version_files" ADD COLUMN "part_etags" jsonb DEFAULT '[]'::jsonb NOT NULL;