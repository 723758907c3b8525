-- The maintenance context. enclave_maint (operators' key commands, tenant migrations) works on
-- one tenant per transaction, named by the transaction-local setting enclave.maint_tenant.
-- Only a session that logged in as enclave_maint gets it (session_user cannot be changed
-- without superuser); for enclave_app the setting means nothing and the gate still admits
-- nothing until credentials are validated.
create or replace function enclave_private.reachable_tenant(required_scope text)
returns uuid
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user = 'enclave_maint' then
        return nullif(current_setting('enclave.maint_tenant', true), '')::uuid;
    end if;
    return null;
end
$$;

-- Operators create practices and keep the master key registry (ids and states, never keys).
grant select, insert on enclave.practices to enclave_maint;
grant select, insert, update on enclave.master_keys to enclave_maint;
grant select on enclave.master_keys to enclave_app;
