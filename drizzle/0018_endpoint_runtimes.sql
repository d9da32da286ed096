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
CREATE UNIQUE INDEX "runtimes_global_name_live_idx" ON "runtimes" USING btree ("name") WHERE "runtimes"."tenant_id" is null and "runtimes"."deleted_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "runtimes_tenant_name_live_idx" ON "runtimes" USING btree ("tenant_id","name") WHERE "runtimes"."tenant_id" is not null and "runtimes"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "runtimes_name_idx" ON "runtimes" USING btree ("name");--> statement-breakpoint
CREATE INDEX "runtimes_scope_list_idx" ON "runtimes" USING btree ("tenant_id","name") WHERE "runtimes"."deleted_at" is null;