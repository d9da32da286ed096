CREATE TABLE "workflow_run_steps" (
	"run_id" uuid NOT NULL,
	"step" integer NOT NULL,
	"message" text,
	"status" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "workflow_run_steps_run_id_step_pk" PRIMARY KEY("run_id","step")
);
--> statement-breakpoint
CREATE TABLE "workflow_runs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"type" text NOT NULL,
	"resource_kind" text NOT NULL,
	"resource_id" text NOT NULL,
	"started_by" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"current_step" integer DEFAULT 0 NOT NULL,
	"total_steps" integer,
	"percent" integer DEFAULT 0 NOT NULL,
	"message" text,
	"error_code" text,
	"error_message" text,
	"input" jsonb,
	"input_summary" text,
	"result" jsonb,
	"result_summary" text,
	"parent_id" uuid,
	"retry_of" uuid,
	"idempotency_key" text,
	"compensation" text,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "workflow_run_steps" ADD CONSTRAINT "workflow_run_steps_run_id_workflow_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."workflow_runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workflow_runs" ADD CONSTRAINT "workflow_runs_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workflow_runs" ADD CONSTRAINT "workflow_runs_parent_id_workflow_runs_id_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."workflow_runs"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workflow_runs" ADD CONSTRAINT "workflow_runs_retry_of_workflow_runs_id_fk" FOREIGN KEY ("retry_of") REFERENCES "public"."workflow_runs"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "workflow_runs_tenant_created_idx" ON "workflow_runs" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "workflow_runs_tenant_type_created_idx" ON "workflow_runs" USING btree ("tenant_id","type","created_at");--> statement-breakpoint
CREATE INDEX "workflow_runs_tenant_status_created_idx" ON "workflow_runs" USING btree ("tenant_id","status","created_at");--> statement-breakpoint
CREATE INDEX "workflow_runs_tenant_resource_created_idx" ON "workflow_runs" USING btree ("tenant_id","resource_kind","resource_id","created_at");--> statement-breakpoint
CREATE INDEX "workflow_runs_tenant_started_by_created_idx" ON "workflow_runs" USING btree ("tenant_id","started_by","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "workflow_runs_idempotency_uq" ON "workflow_runs" USING btree ("tenant_id","idempotency_key") WHERE "workflow_runs"."idempotency_key" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "workflow_runs_retry_of_uq" ON "workflow_runs" USING btree ("retry_of") WHERE "workflow_runs"."retry_of" is not null;