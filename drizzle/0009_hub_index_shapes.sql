-- Index shapes that a generic plan made on new, never-analysed tables cannot mistake for a lookup
-- by instance (see "Index shapes" in src/modules/workflow_ops/tables.ts).
DROP INDEX "workflow_activity_tasks_due_idx";--> statement-breakpoint
DROP INDEX "workflow_inbox_instance_idx";--> statement-breakpoint
DROP INDEX "workflow_instances_created_at_idx";--> statement-breakpoint
CREATE INDEX "workflow_activity_tasks_due_idx" ON "workflow_activity_tasks" USING btree ("hub","next_attempt_at") WHERE "workflow_activity_tasks"."next_attempt_at" is not null;--> statement-breakpoint
CREATE INDEX "workflow_inbox_instance_idx" ON "workflow_inbox" USING btree ("instance_id","hub","visible_at");--> statement-breakpoint
CREATE INDEX "workflow_instances_created_at_idx" ON "workflow_instances" USING btree ("created_at","hub");