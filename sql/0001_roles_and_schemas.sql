-- Roles, schemas and database privileges.
--
-- Roles are cluster-wide: a DBA usually creates them (with LOGIN and passwords) before the
-- first migration, as scripts/dev-postgres does. Create them here when missing (NOLOGIN), and
-- refuse to go on if any is more powerful than Enclave's promises allow.
do $$
begin
    if (select rolsuper or rolbypassrls from pg_roles where rolname = current_user) then
        raise exception 'run migrations as enclave_owner: % is a superuser or bypasses row-level security', current_user
            using hint = 'Owners of FORCE ROW LEVEL SECURITY tables must not bypass it.';
    end if;
    if not exists (select from pg_roles where rolname = 'enclave_app') then
        create role enclave_app nologin nosuperuser nobypassrls nocreatedb nocreaterole;
    end if;
    if not exists (select from pg_roles where rolname = 'enclave_maint') then
        create role enclave_maint nologin nosuperuser nobypassrls nocreatedb nocreaterole;
    end if;
    if exists (
        select from pg_roles
        where rolname in ('enclave_app', 'enclave_maint')
          and (rolsuper or rolbypassrls or rolcreatedb or rolcreaterole)
    ) then
        raise exception 'enclave_app and enclave_maint must not be superuser, bypass RLS, or create roles or databases';
    end if;
    execute format('revoke all on database %I from public', current_database());
    execute format('grant connect on database %I to enclave_app, enclave_maint', current_database());
end
$$;

revoke all on schema public from public;

-- Tables live in `enclave`; the functions that decide access live in `enclave_private`, which
-- the service and maintenance roles may use but never write.
create schema enclave;
create schema enclave_private;
revoke all on schema enclave, enclave_private from public;
grant usage on schema enclave, enclave_private to enclave_app, enclave_maint;
-- Functions are not executable by PUBLIC unless granted. (A per-schema default privilege can
-- only add to the global defaults, so the revoke must be global, for the owner's functions.)
alter default privileges revoke execute on functions from public;
