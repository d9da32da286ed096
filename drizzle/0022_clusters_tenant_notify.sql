-- A tenant's cluster list keeps its totals (the count of each filter) until a change could move one:
-- a cluster added or removed, or a column the list filters on changed. Those NOTIFY
-- `clusters:<tenant id>` on `modelplane_changes`, on commit, through the function of migration
-- changes_notify. A sync that rewrites the same device types (every sync does) sends nothing.
create trigger clusters_tenant_change_notify after insert or delete on clusters
  for each row execute function modelplane_notify_change('clusters', 'tenant_id');
--> statement-breakpoint
create trigger clusters_tenant_update_notify after update of tenant_id, status, platform, device_types, labels, name on clusters
  for each row
  when (
    old.tenant_id is distinct from new.tenant_id or old.status is distinct from new.status
    or old.platform is distinct from new.platform or old.device_types is distinct from new.device_types
    or old.labels is distinct from new.labels or old.name is distinct from new.name
  )
  execute function modelplane_notify_change('clusters', 'tenant_id');
