CREATE TABLE "sweep_leases" (
	"sweep" text NOT NULL,
	"resource_id" uuid NOT NULL,
	"due_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_token" uuid,
	"leased_by" text,
	"runs" integer DEFAULT 0 NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"last_started_at" timestamp with time zone,
	"last_finished_at" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sweep_leases_sweep_resource_id_pk" PRIMARY KEY("sweep","resource_id")
);
--> statement-breakpoint
CREATE INDEX "sweep_leases_due_idx" ON "sweep_leases" USING btree ("sweep","due_at");