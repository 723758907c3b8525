-- Operators' functions (enclave_maint): offboarding, the tenant migration summary, master key
-- rotation of the secrets wrapped directly by a master key, and readiness.

-- Offboarding, identity side: ends every way into the practice. Agreements are revoked (with
-- their history and audit events), assignments removed, sessions of the practice's members
-- and assigned agency staff ended, ingest credentials disabled, and the practice marked
-- offboarding so the gate refuses it from the next statement. Operators only.
create or replace function enclave_private.close_practice_access(practice uuid)
returns table (agreements integer, sessions integer, credentials integer)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    revoked_agreements integer := 0;
    ended_sessions integer := 0;
    disabled_credentials integer := 0;
    agreement record;
begin
    perform enclave_private.require_operator();
    if exists (select from enclave.legal_holds h where h.practice_id = practice and h.released_at is null) then
        raise exception 'legal_hold_active' using errcode = '55000';
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
revoke all on function enclave_private.close_practice_access(uuid) from public;
grant execute on function enclave_private.close_practice_access(uuid) to enclave_maint;

create or replace function enclave_private.finish_offboarding(practice uuid)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    -- Its pool numbers and web properties go back: they would attribute calls to a closed practice.
    delete from enclave_private.number_directory d where d.practice_id = practice;
    delete from enclave_private.web_properties w where w.practice_id = practice;
    update enclave.practices set status = 'offboarded', offboarded_at = now() where id = practice;
end
$$;

-- Deletes every row of the practice of the maintenance context from every tenant table (every
-- table of schema enclave with a tenant_id column, read from the catalog, so that a new table is
-- never forgotten), children before the tables they reference; the audit trail stays (it is kept
-- past offboarding). Returns each table's count. For offboarding, after the keys are destroyed.
create or replace function enclave_private.erase_tenant_rows(practice uuid)
returns table (table_name text, deleted bigint)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    target record;
    n bigint;
begin
    perform enclave_private.require_operator();
    if practice is distinct from enclave_private.maintenance_tenant() then
        raise exception 'operators_only' using errcode = '42501';
    end if;
    for target in
        with recursive tenant_tables as (
            select c.oid, c.relname from pg_class c
            join pg_namespace ns on ns.oid = c.relnamespace
            join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
            where ns.nspname = 'enclave' and c.relkind = 'r' and c.relname <> 'audit_events'
        ),
        depth (oid, level) as (
            select t.oid, 0 from tenant_tables t
            union all
            -- A table that references another is deleted before it (a deeper level first).
            select f.conrelid, d.level + 1 from depth d
            join pg_constraint f on f.confrelid = d.oid and f.contype = 'f' and f.conrelid <> d.oid
            join tenant_tables t on t.oid = f.conrelid
            where d.level < 20
        )
        select t.relname, max(d.level) as level from tenant_tables t join depth d on d.oid = t.oid
        group by t.relname order by 2 desc, 1
    loop
        -- The table name comes from the catalog, quoted by format's %I.
        execute format('delete from enclave.%I where tenant_id = $1', target.relname) using practice;
        get diagnostics n = row_count;
        table_name := target.relname;
        deleted := n;
        return next;
    end loop;
end
$$;
revoke all on function enclave_private.erase_tenant_rows(uuid) from public;
grant execute on function enclave_private.erase_tenant_rows(uuid) to enclave_maint;
revoke all on function enclave_private.finish_offboarding(uuid) from public;
grant execute on function enclave_private.finish_offboarding(uuid) to enclave_maint;

-- Per-migration counts for `enclave tenants status`, without visiting every tenant. The table
-- holds ids and states only; the owner's functions may read it across tenants.
create or replace function enclave_private.tenant_migration_summary()
returns table (migration text, status text, tenants bigint)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select m.migration, m.status, count(*) from enclave.tenant_migrations m
    join enclave.practices p on p.id = m.tenant_id and p.status = 'active'
    group by 1, 2 order by 1, 2
$$;
revoke all on function enclave_private.tenant_migration_summary() from public;
grant execute on function enclave_private.tenant_migration_summary() to enclave_maint;

-- Secrets wrapped directly by a master key (TOTP seeds, ingest secrets) live outside the tenant
-- tables. Master key rotation re-wraps them too, and destroy-master counts them as dependents.
-- Operators only; the wrapped bytes open only with the master key file the operator holds.
-- master_key_version reads the version from a wrapped secret's header.
create or replace function enclave_private.master_key_version(wrapped bytea)
returns integer language sql immutable set search_path = pg_catalog
as $$ select (get_byte(wrapped, 1) << 24) | (get_byte(wrapped, 2) << 16) | (get_byte(wrapped, 3) << 8) | get_byte(wrapped, 4) $$;
revoke all on function enclave_private.master_key_version(bytea) from public;

create or replace function enclave_private.master_wrapped_secrets()
returns table (kind text, id uuid, wrapped bytea, master_version integer)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select 'totp', u.id, u.totp_secret, enclave_private.master_key_version(u.totp_secret)
    from enclave.users u where u.totp_secret is not null
    union all
    select 'totp_pending', u.id, u.totp_pending_secret, enclave_private.master_key_version(u.totp_pending_secret)
    from enclave.users u where u.totp_pending_secret is not null
    union all
    select 'ingest', c.source_id, c.wrapped_secret, enclave_private.master_key_version(c.wrapped_secret)
    from enclave_private.ingest_credentials c;
end
$$;
revoke all on function enclave_private.master_wrapped_secrets() from public;
grant execute on function enclave_private.master_wrapped_secrets() to enclave_maint;

-- Replaces one wrapped secret if it is still `old` (compare-and-set).
create or replace function enclave_private.rewrap_master_secret(kind text, id uuid, old bytea, new bytea)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    if kind = 'totp' then
        update enclave.users set totp_secret = new where users.id = rewrap_master_secret.id and totp_secret = old;
    elsif kind = 'totp_pending' then
        update enclave.users set totp_pending_secret = new where users.id = rewrap_master_secret.id and totp_pending_secret = old;
    elsif kind = 'ingest' then
        update enclave_private.ingest_credentials set wrapped_secret = new where source_id = rewrap_master_secret.id and wrapped_secret = old;
    else
        raise exception 'unknown secret kind %', kind using errcode = '22023';
    end if;
    return found;
end
$$;
revoke all on function enclave_private.rewrap_master_secret(text,uuid,bytea,bytea) from public;
grant execute on function enclave_private.rewrap_master_secret(text,uuid,bytea,bytea) to enclave_maint;

-- Readiness: the service compares the newest applied migration with the newest it expects.
create or replace function enclave_private.schema_version()
returns integer
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$ select coalesce(max(version), 0) from enclave_meta.schema_migrations $$;
revoke all on function enclave_private.schema_version() from public;
grant execute on function enclave_private.schema_version() to enclave_app;
