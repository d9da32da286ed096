-- Every write to the rows a plan is computed from NOTIFYs its scope on `modelplane_changes`, on
-- commit, whoever wrote it: `cluster:<id>` (the cluster, its nodes, its serving settings),
-- `model:<id>` (the model and its versions), `version:<id>` (a version's files) and
-- `runtimes:<tenant id>` or `runtimes:global`. Every process keeps what it computed from those rows
-- until it hears that one of its scopes changed (src/platform/db/changes.ts). The trigger's
-- arguments name the scope's prefix and the column holding its id (null reads as `global`).
-- Identical payloads within one transaction are delivered once.
create or replace function modelplane_notify_change() returns trigger
language plpgsql as $$
declare
  before_scope text;
  after_scope text;
begin
  if tg_op <> 'INSERT' then
    before_scope := tg_argv[0] || ':' || coalesce(to_jsonb(old) ->> tg_argv[1], 'global');
    perform pg_notify('modelplane_changes', before_scope);
  end if;
  if tg_op <> 'DELETE' then
    after_scope := tg_argv[0] || ':' || coalesce(to_jsonb(new) ->> tg_argv[1], 'global');
    if after_scope is distinct from before_scope then
      perform pg_notify('modelplane_changes', after_scope);
    end if;
  end if;
  return null;
end;
$$;
--> statement-breakpoint
create trigger clusters_change_notify after insert or update or delete on clusters
  for each row execute function modelplane_notify_change('cluster', 'id');
--> statement-breakpoint
create trigger cluster_nodes_change_notify after insert or update or delete on cluster_nodes
  for each row execute function modelplane_notify_change('cluster', 'cluster_id');
--> statement-breakpoint
create trigger cluster_serving_settings_change_notify after insert or update or delete on cluster_serving_settings
  for each row execute function modelplane_notify_change('cluster', 'cluster_id');
--> statement-breakpoint
create trigger models_change_notify after insert or update or delete on models
  for each row execute function modelplane_notify_change('model', 'id');
--> statement-breakpoint
create trigger model_versions_change_notify after insert or update or delete on model_versions
  for each row execute function modelplane_notify_change('model', 'model_id');
--> statement-breakpoint
create trigger model_version_files_change_notify after insert or update or delete on model_version_files
  for each row execute function modelplane_notify_change('version', 'version_id');
--> statement-breakpoint
create trigger runtimes_change_notify after insert or update or delete on runtimes
  for each row execute function modelplane_notify_change('runtimes', 'tenant_id');
