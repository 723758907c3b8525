-- Tenant migrations: progress per (tenant, migration), including the keyset cursor of a
-- batched backfill, written in the same transaction as each batch so an interrupted run
-- resumes exactly where it stopped.
alter table enclave.tenant_migrations add column checksum text;
alter table enclave.tenant_migrations add column batch_cursor text;
alter table enclave.tenant_migrations add column batches integer not null default 0;

-- Offboarding, identity side: ends every way into the practice. Agreements are revoked (with
-- their history and audit events), assignments removed, sessions of the practice's members
-- and assigned agency staff ended, ingest credentials disabled, and the practice marked
-- offboarding so the gate refuses it from the next statement. Operators only.
create function enclave_private.close_practice_access(practice uuid)
returns table (agreements integer, sessions integer, credentials integer)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    revoked_agreements integer := 0;
    ended_sessions integer := 0;
    disabled_credentials integer := 0;
    agreement record;
begin
    if session_user <> 'enclave_maint' then
        raise exception 'only the maintenance role offboards practices' using errcode = '42501';
    end if;
    update enclave.practices set status = 'offboarding' where id = practice and status = 'active';
    for agreement in
        update enclave.baas set status = 'revoked', revoked_at = now()
        where practice_id = practice and status in ('proposed', 'active')
        returning id, agency_id, scopes
    loop
        revoked_agreements := revoked_agreements + 1;
        insert into enclave.baa_events (baa_id, actor_id, from_status, to_status) values (agreement.id, null, null, 'revoked');
        perform enclave_private.append_audit_event(
            practice, null, 'operator', null, 'baa.revoked', 'baa', agreement.id::text, 'ok', 'practice offboarded',
            null, null, null, jsonb_build_object('agency', agreement.agency_id));
    end loop;
    update enclave.sessions s set revoked_at = now()
    where s.revoked_at is null and s.user_id in (
        select m.user_id from enclave.memberships m where m.practice_id = practice
        union select a.user_id from enclave.agency_assignments a where a.practice_id = practice);
    get diagnostics ended_sessions = row_count;
    delete from enclave.agency_assignments where practice_id = practice;
    update enclave_private.ingest_credentials set disabled_at = now() where practice_id = practice and disabled_at is null;
    get diagnostics disabled_credentials = row_count;
    return query select revoked_agreements, ended_sessions, disabled_credentials;
end
$$;

create function enclave_private.finish_offboarding(practice uuid)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        raise exception 'only the maintenance role offboards practices' using errcode = '42501';
    end if;
    update enclave.practices set status = 'offboarded', offboarded_at = now() where id = practice;
end
$$;

revoke all on function enclave_private.close_practice_access(uuid) from public;
revoke all on function enclave_private.finish_offboarding(uuid) from public;
grant execute on function enclave_private.close_practice_access(uuid) to enclave_maint;
grant execute on function enclave_private.finish_offboarding(uuid) to enclave_maint;

-- Per-migration counts for `enclave tenants status`, without visiting every tenant. The table
-- holds ids and states only; the owner's functions may read it across tenants.
create policy owner_functions on enclave.tenant_migrations for all to enclave_owner using (true) with check (true);

create function enclave_private.tenant_migration_summary()
returns table (migration text, status text, tenants bigint)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select m.migration, m.status, count(*) from enclave.tenant_migrations m
    join enclave.practices p on p.id = m.tenant_id and p.status = 'active'
    group by 1, 2 order by 1, 2
$$;
revoke all on function enclave_private.tenant_migration_summary() from public;
grant execute on function enclave_private.tenant_migration_summary() to enclave_maint;
