CREATE TABLE "cluster_nodes" (
	"cluster_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"roles" text[] NOT NULL,
	"schedulable" boolean NOT NULL,
	"ready" boolean NOT NULL,
	"device_type" text NOT NULL,
	"facts" jsonb NOT NULL,
	"used" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cluster_status_history" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"cluster_id" uuid NOT NULL,
	"tenant_id" uuid NOT NULL,
	"from_status" text,
	"to_status" text NOT NULL,
	"reason" text,
	"message" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "clusters" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"labels" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text NOT NULL,
	"status_reason" text,
	"status_message" text,
	"status_since" timestamp with time zone DEFAULT now() NOT NULL,
	"server" text NOT NULL,
	"identity" text NOT NULL,
	"kube_system_uid" text,
	"kubeconfig_sealed" text,
	"pending_kubeconfig_sealed" text,
	"allow_insecure_tls" boolean DEFAULT false NOT NULL,
	"allow_http" boolean DEFAULT false NOT NULL,
	"platform" text,
	"distribution" text,
	"kubernetes_version" text,
	"capabilities" jsonb,
	"permissions" jsonb,
	"summary" jsonb,
	"device_types" text[] DEFAULT '{}'::text[] NOT NULL,
	"node_count" integer DEFAULT 0 NOT NULL,
	"conditions" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"last_sync_at" timestamp with time zone,
	"last_sync_duration_ms" integer,
	"last_sync_error" text,
	"unreachable_since" timestamp with time zone,
	"registration_workflow_id" uuid,
	"created_by" text NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "cluster_nodes" ADD CONSTRAINT "cluster_nodes_cluster_id_clusters_id_fk" FOREIGN KEY ("cluster_id") REFERENCES "public"."clusters"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "cluster_status_history" ADD CONSTRAINT "cluster_status_history_cluster_id_clusters_id_fk" FOREIGN KEY ("cluster_id") REFERENCES "public"."clusters"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "cluster_nodes_cluster_name_idx" ON "cluster_nodes" USING btree ("cluster_id","name");--> statement-breakpoint
CREATE INDEX "cluster_nodes_cluster_device_idx" ON "cluster_nodes" USING btree ("cluster_id","device_type","name");--> statement-breakpoint
CREATE INDEX "cluster_status_history_cluster_idx" ON "cluster_status_history" USING btree ("cluster_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "clusters_tenant_identity_live_idx" ON "clusters" USING btree ("tenant_id","identity") WHERE "clusters"."status" not in ('failed', 'deleted');--> statement-breakpoint
CREATE UNIQUE INDEX "clusters_tenant_name_live_idx" ON "clusters" USING btree ("tenant_id","name") WHERE "clusters"."status" not in ('failed', 'deleted');--> statement-breakpoint
CREATE INDEX "clusters_tenant_created_idx" ON "clusters" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "clusters_tenant_name_idx" ON "clusters" USING btree ("tenant_id","name");--> statement-breakpoint
CREATE INDEX "clusters_tenant_status_idx" ON "clusters" USING btree ("tenant_id","status");--> statement-breakpoint
CREATE INDEX "clusters_tenant_kube_system_idx" ON "clusters" USING btree ("tenant_id","kube_system_uid");--> statement-breakpoint
CREATE INDEX "clusters_device_types_idx" ON "clusters" USING gin ("device_types");--> statement-breakpoint
CREATE INDEX "clusters_labels_idx" ON "clusters" USING gin ("labels");--> statement-breakpoint
CREATE INDEX "clusters_name_trgm_idx" ON "clusters" USING gin ("name" gin_trgm_ops);