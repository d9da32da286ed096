-- Every change to who is listed in a tenant (a user added or removed, or a listed column changed)
-- notifies `users_changed` with the tenant id, on commit. User administration keeps the totals of
-- its listings until then (src/modules/user_admin/totals.ts). Identical payloads within one
-- transaction are delivered once, so a bulk insert notifies once per tenant.
create or replace function modelplane_notify_users_changed() returns trigger
language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    perform pg_notify('users_changed', old.tenant_id::text);
    return old;
  end if;
  if tg_op = 'UPDATE' and old.tenant_id is distinct from new.tenant_id then
    perform pg_notify('users_changed', old.tenant_id::text);
  end if;
  perform pg_notify('users_changed', new.tenant_id::text);
  return new;
end;
$$;
--> statement-breakpoint
create trigger users_changed_notify
  after insert or delete or update of tenant_id, email, name, role, status, tag, created_at
  on users
  for each row execute function modelplane_notify_users_changed();
