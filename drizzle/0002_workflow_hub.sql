CREATE TABLE "workflow_activity_tasks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"hub" text NOT NULL,
	"instance_id" text NOT NULL,
	"execution_id" text NOT NULL,
	"task_id" integer NOT NULL,
	"name" text NOT NULL,
	"input" text,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_token" uuid,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workflow_activity_tasks_task_uq" UNIQUE("hub","instance_id","execution_id","task_id")
);
--> statement-breakpoint
CREATE TABLE "workflow_history" (
	"hub" text NOT NULL,
	"instance_id" text NOT NULL,
	"seq" integer NOT NULL,
	"event" "bytea" NOT NULL,
	CONSTRAINT "workflow_history_hub_instance_id_seq_pk" PRIMARY KEY("hub","instance_id","seq")
);
--> statement-breakpoint
CREATE TABLE "workflow_inbox" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "workflow_inbox_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"hub" text NOT NULL,
	"instance_id" text NOT NULL,
	"event" "bytea" NOT NULL,
	"visible_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "workflow_instances" (
	"hub" text NOT NULL,
	"instance_id" text NOT NULL,
	"execution_id" text NOT NULL,
	"name" text NOT NULL,
	"status" text NOT NULL,
	"input" text,
	"output" text,
	"custom_status" text,
	"failure" jsonb,
	"parent_instance_id" text,
	"parent_task_id" integer,
	"history_length" integer DEFAULT 0 NOT NULL,
	"next_work_at" timestamp with time zone,
	"lease_token" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "workflow_instances_hub_instance_id_pk" PRIMARY KEY("hub","instance_id")
);
--> statement-breakpoint
ALTER TABLE "workflow_activity_tasks" ADD CONSTRAINT "workflow_activity_tasks_hub_instance_id_workflow_instances_hub_instance_id_fk" FOREIGN KEY ("hub","instance_id") REFERENCES "public"."workflow_instances"("hub","instance_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workflow_history" ADD CONSTRAINT "workflow_history_hub_instance_id_workflow_instances_hub_instance_id_fk" FOREIGN KEY ("hub","instance_id") REFERENCES "public"."workflow_instances"("hub","instance_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workflow_inbox" ADD CONSTRAINT "workflow_inbox_hub_instance_id_workflow_instances_hub_instance_id_fk" FOREIGN KEY ("hub","instance_id") REFERENCES "public"."workflow_instances"("hub","instance_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "workflow_activity_tasks_due_idx" ON "workflow_activity_tasks" USING btree ("hub","next_attempt_at");--> statement-breakpoint
CREATE INDEX "workflow_inbox_instance_idx" ON "workflow_inbox" USING btree ("hub","instance_id","visible_at");--> statement-breakpoint
CREATE INDEX "workflow_instances_due_idx" ON "workflow_instances" USING btree ("hub","next_work_at") WHERE "workflow_instances"."next_work_at" is not null;--> statement-breakpoint
CREATE INDEX "workflow_instances_created_at_idx" ON "workflow_instances" USING btree ("hub","created_at");--> statement-breakpoint
CREATE INDEX "workflow_instances_parent_idx" ON "workflow_instances" USING btree ("hub","parent_instance_id") WHERE "workflow_instances"."parent_instance_id" is not null;