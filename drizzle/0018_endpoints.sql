CREATE TABLE "endpoint_status_history" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"endpoint_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"from_phase" text,
	"to_phase" text NOT NULL,
	"reason" text,
	"message" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "endpoints" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"kind" text DEFAULT 'model' NOT NULL,
	"name" text NOT NULL,
	"cluster_id" uuid NOT NULL,
	"model_id" uuid,
	"version_id" uuid,
	"runtime" text,
	"device_type" text,
	"spec" jsonb NOT NULL,
	"revision" integer DEFAULT 1 NOT NULL,
	"applied_revision" integer,
	"applied_spec" jsonb,
	"plan" jsonb,
	"namespace" text,
	"phase" text NOT NULL,
	"conditions" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"status_reason" text,
	"status_message" text,
	"status_since" timestamp with time zone DEFAULT now() NOT NULL,
	"failed_step" text,
	"api_key_sealed" text,
	"base_url" text,
	"activity" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"last_activity_at" timestamp with time zone DEFAULT now() NOT NULL,
	"workflow_id" uuid,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "endpoint_status_history" ADD CONSTRAINT "endpoint_status_history_endpoint_id_endpoints_id_fk" FOREIGN KEY ("endpoint_id") REFERENCES "public"."endpoints"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "endpoint_status_history_endpoint_idx" ON "endpoint_status_history" USING btree ("endpoint_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "endpoints_tenant_kind_name_live_idx" ON "endpoints" USING btree ("tenant_id","kind","name") WHERE "endpoints"."phase" <> 'deleted';--> statement-breakpoint
CREATE INDEX "endpoints_tenant_created_idx" ON "endpoints" USING btree ("tenant_id","kind","created_at");--> statement-breakpoint
CREATE INDEX "endpoints_cluster_live_idx" ON "endpoints" USING btree ("cluster_id") WHERE "endpoints"."phase" <> 'deleted';--> statement-breakpoint
CREATE INDEX "endpoints_model_live_idx" ON "endpoints" USING btree ("model_id","version_id") WHERE "endpoints"."phase" <> 'deleted';