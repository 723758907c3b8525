-- Secrets wrapped directly by a master key (TOTP seeds, ingest secrets) live outside the tenant
-- tables. Master key rotation re-wraps them too, and destroy-master counts them as dependents.
-- Operators only; the wrapped bytes open only with the master key file the operator holds.

create function enclave_private.master_key_version(wrapped bytea)
returns integer language sql immutable set search_path = pg_catalog
as $$ select (get_byte(wrapped, 1) << 24) | (get_byte(wrapped, 2) << 16) | (get_byte(wrapped, 3) << 8) | get_byte(wrapped, 4) $$;

create function enclave_private.master_wrapped_secrets()
returns table (kind text, id uuid, wrapped bytea, master_version integer)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        raise exception 'operators only' using errcode = '42501';
    end if;
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

-- Replaces one wrapped secret if it is still `old` (compare-and-set).
create function enclave_private.rewrap_master_secret(kind text, id uuid, old bytea, new bytea)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        raise exception 'operators only' using errcode = '42501';
    end if;
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

revoke all on function enclave_private.master_key_version(bytea) from public;
revoke all on function enclave_private.master_wrapped_secrets() from public;
revoke all on function enclave_private.rewrap_master_secret(text,uuid,bytea,bytea) from public;
grant execute on function enclave_private.master_wrapped_secrets() to enclave_maint;
grant execute on function enclave_private.rewrap_master_secret(text,uuid,bytea,bytea) to enclave_maint;
