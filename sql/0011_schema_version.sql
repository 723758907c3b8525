-- Readiness: the service compares the newest applied migration with the newest file it ships.
create function enclave_private.schema_version()
returns integer
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$ select coalesce(max(version), 0) from enclave_meta.schema_migrations $$;
revoke all on function enclave_private.schema_version() from public;
grant execute on function enclave_private.schema_version() to enclave_app;
