ALTER TABLE "workflow_runs" ADD COLUMN "bytes_done" bigint;--> statement-breakpoint
ALTER TABLE "workflow_runs" ADD COLUMN "bytes_total" bigint;