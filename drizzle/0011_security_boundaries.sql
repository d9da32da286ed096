ALTER TABLE "outbox_events" ADD COLUMN "tenant_id" uuid;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "client_request_id" text;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "actor_tenant_id" uuid;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "sessions_valid_after" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "user_invites" ADD COLUMN "purpose" text DEFAULT 'invite' NOT NULL;--> statement-breakpoint
ALTER TABLE "workflow_runs" ADD COLUMN "idempotency_fingerprint" text;--> statement-breakpoint
CREATE INDEX "outbox_events_tenant_created_at_idx" ON "outbox_events" USING btree ("tenant_id","created_at");