CREATE TABLE "app_import_allowlist" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid,
	"entries" text[] NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"updated_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "app_import_allowlist_tenant_key" UNIQUE NULLS NOT DISTINCT("tenant_id")
);
--> statement-breakpoint
CREATE TABLE "app_templates" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid,
	"owner_id" text,
	"seed_key" text,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"files" jsonb NOT NULL,
	"entry" text NOT NULL,
	"created_by" text,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE UNIQUE INDEX "app_templates_seed_key_idx" ON "app_templates" USING btree ("seed_key");--> statement-breakpoint
CREATE INDEX "app_templates_global_name_idx" ON "app_templates" USING btree ("name","id") WHERE "app_templates"."tenant_id" is null and "app_templates"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "app_templates_tenant_name_idx" ON "app_templates" USING btree ("tenant_id","name","id") WHERE "app_templates"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "app_templates_tenant_owner_idx" ON "app_templates" USING btree ("tenant_id","owner_id") WHERE "app_templates"."deleted_at" is null;