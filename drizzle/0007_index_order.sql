DROP INDEX "users_tenant_created_at_idx";--> statement-breakpoint
DROP INDEX "api_keys_user_created_at_idx";--> statement-breakpoint
DROP INDEX "audit_log_tenant_created_at_idx";--> statement-breakpoint
DROP INDEX "audit_log_created_at_idx";--> statement-breakpoint
DROP INDEX "users_tenant_status_created_at_idx";--> statement-breakpoint
DROP INDEX "users_tenant_role_created_at_idx";--> statement-breakpoint
CREATE INDEX "users_tenant_live_created_at_idx" ON "users" USING btree ("tenant_id","created_at","id") WHERE "users"."status" <> 'deleted';--> statement-breakpoint
CREATE INDEX "api_keys_user_created_at_idx" ON "api_keys" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "audit_log_tenant_created_at_idx" ON "audit_log" USING btree ("tenant_id","created_at","id");--> statement-breakpoint
CREATE INDEX "audit_log_created_at_idx" ON "audit_log" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "users_tenant_status_created_at_idx" ON "users" USING btree ("tenant_id","status","created_at","id");--> statement-breakpoint
CREATE INDEX "users_tenant_role_created_at_idx" ON "users" USING btree ("tenant_id","role","created_at","id");