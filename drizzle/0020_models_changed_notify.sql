-- Every change that could move a catalog count (a model added or removed, or a column the list
-- filters or searches on changed) notifies `models_changed` with the tenant id, on commit. The
-- catalog keeps its totals and facet counts until then (src/modules/model_ops/catalog-counts.ts).
-- Identical payloads within one transaction are delivered once.
create or replace function modelplane_notify_models_changed() returns trigger
language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    perform pg_notify('models_changed', old.tenant_id::text);
    return old;
  end if;
  if tg_op = 'UPDATE' and old.tenant_id is distinct from new.tenant_id then
    perform pg_notify('models_changed', old.tenant_id::text);
  end if;
  perform pg_notify('models_changed', new.tenant_id::text);
  return new;
end;
$$;
--> statement-breakpoint
create trigger models_changed_notify
  after insert or delete or update of tenant_id, status, source, provider_id, format, license, tasks, modalities, tags, name, description
  on models
  for each row execute function modelplane_notify_models_changed();
