-- Ingest credentials: the secret a provider signs requests with, per tracking source. The gate
-- checks the hash (gate.sql, ingest_reach); the service checks signatures with the wrapped copy.

-- A source's practice and wrapped secret, for the service to check a request's signature
-- before it binds the credential. The wrapped secret opens only with the master key.
create or replace function enclave_private.ingest_source(source uuid)
returns table (practice_id uuid, wrapped_secret bytea, disabled boolean)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select c.practice_id, c.wrapped_secret, c.disabled_at is not null
    from enclave_private.ingest_credentials c where c.source_id = source
$$;
revoke all on function enclave_private.ingest_source(uuid) from public;
grant execute on function enclave_private.ingest_source(uuid) to enclave_app;

-- Sets (or rotates) a source's credential. The caller must reach the source's practice for
-- tracking.manage: the row of tracking_sources is visible only then.
create or replace function enclave_private.set_ingest_credential(source uuid, secret_hash bytea, wrapped_secret bytea)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid;
begin
    select s.tenant_id into practice from enclave.tracking_sources s where s.id = source;
    if practice is null or practice is distinct from enclave_private.reachable_tenant('tracking.manage') then
        raise exception 'unknown_tracking_source' using errcode = '42501';
    end if;
    insert into enclave_private.ingest_credentials (source_id, practice_id, secret_hash, wrapped_secret)
    values (source, practice, secret_hash, wrapped_secret)
    on conflict (source_id) do update
    set secret_hash = excluded.secret_hash, wrapped_secret = excluded.wrapped_secret, rotated_at = now();
end
$$;
revoke all on function enclave_private.set_ingest_credential(uuid,bytea,bytea) from public;
grant execute on function enclave_private.set_ingest_credential(uuid,bytea,bytea) to enclave_app;
