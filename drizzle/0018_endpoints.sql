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
CREATE TABLE "cluster_serving_settings" (
	"tenant_id" uuid NOT NULL,
	"cluster_id" uuid NOT NULL,
	"registry_prefix" text,
	"image_pull_secrets" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"object_store_url" text,
	"ingress_host_suffix" text,
	"tls_secret_name" text,
	"ingress_class_name" text,
	"ingress_namespace" text,
	"api_server_cidrs" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"prometheus_url" text,
	"quota" jsonb,
	"version" integer DEFAULT 1 NOT NULL,
	"updated_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "cluster_serving_settings_tenant_id_cluster_id_pk" PRIMARY KEY("tenant_id","cluster_id")
);
--> statement-breakpoint
CREATE TABLE "runtimes" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid,
	"name" text NOT NULL,
	"engine" text NOT NULL,
	"device_type" text NOT NULL,
	"image" text NOT NULL,
	"tag" text NOT NULL,
	"product_tags" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"args_template" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"port" integer NOT NULL,
	"health_path" text NOT NULL,
	"readiness_path" text NOT NULL,
	"model_probe_path" text NOT NULL,
	"metrics_path" text NOT NULL,
	"concurrency_metric" text,
	"formats" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"tasks" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"openai_routes" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"api_key" jsonb NOT NULL,
	"run_as_user" integer,
	"enabled" boolean DEFAULT true NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"seeded" boolean DEFAULT false NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_by" text NOT NULL,
	"updated_by" text NOT NULL,
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
CREATE INDEX "endpoints_model_live_idx" ON "endpoints" USING btree ("model_id","version_id") WHERE "endpoints"."phase" <> 'deleted';--> statement-breakpoint
CREATE UNIQUE INDEX "runtimes_global_name_live_idx" ON "runtimes" USING btree ("name") WHERE "runtimes"."tenant_id" is null and "runtimes"."deleted_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "runtimes_tenant_name_live_idx" ON "runtimes" USING btree ("tenant_id","name") WHERE "runtimes"."tenant_id" is not null and "runtimes"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "runtimes_name_idx" ON "runtimes" USING btree ("name");--> statement-breakpoint
CREATE INDEX "runtimes_scope_list_idx" ON "runtimes" USING btree ("tenant_id","name") WHERE "runtimes"."deleted_at" is null;