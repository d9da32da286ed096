-- The catalog's totals and facets move onto the change feed (src/platform/db/kept-counts.ts):
-- every change that could move a count (a model added or removed, or a column the list filters or
-- searches on written) now NOTIFYs `models:<tenant id>` on `modelplane_changes`, through the
-- function of migration changes_notify, instead of the tenant id on a channel of its own
-- (migration models_changed_notify, whose trigger and function go).
drop trigger if exists models_changed_notify on models;
--> statement-breakpoint
drop function if exists modelplane_notify_models_changed();
--> statement-breakpoint
create trigger models_tenant_change_notify
  after insert or delete or update of tenant_id, status, source, provider_id, format, license, tasks, modalities, tags, name, description
  on models
  for each row execute function modelplane_notify_change('models', 'tenant_id');
