-- Outbound webhooks (HIPAA mode). An endpoint can receive PHI, so only a practice owner adds
-- or removes one, through these functions; marking one covered by a BAA also needs a fresh
-- re-authentication, and a plain-HTTP endpoint is refused outright in HIPAA mode. The delivery
-- worker (maintenance role) finds due deliveries across tenants here, then opens each in its
-- own tenant context and records phi.disclosed in the transaction that marks it delivered.

create or replace function enclave_private.create_webhook_endpoint(endpoint uuid, url text, covered boolean, sealed_secret bytea)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    tenant uuid := nullif(current_setting('enclave.tenant_id', true), '')::uuid;
    hipaa boolean;
    event_seq bigint;
begin
    caller := enclave_private.require_practice_owner(tenant, covered, 'webhooks_need_practice_owner');
    if url !~ '^https?://[^/?#@[:space:]]+' or octet_length(url) > 2000 then
        raise exception 'webhook_url_invalid' using errcode = '22023';
    end if;
    select p.hipaa_mode into hipaa from enclave.practices p where p.id = tenant;
    if url !~ '^https://' and (hipaa or covered) then
        raise exception 'webhook_plain_http_refused' using errcode = '22023';
    end if;
    insert into enclave.webhook_endpoints (tenant_id, id, url, baa_covered, signing_secret)
    values (tenant, endpoint, url, covered, sealed_secret);
    event_seq := enclave_private.append_audit_event(
        tenant, caller.user_id, 'user', caller.session_id, 'webhook.created', 'webhook_endpoint',
        endpoint::text, 'ok', null, null, null, null,
        jsonb_build_object('baa_covered', covered, 'host', substring(url from '^https?://([^/?#:]+)')));
    if covered then
        perform enclave_private.raise_alert(
            tenant, null, 'webhook_covered', caller.user_id, jsonb_build_object('endpoint', endpoint),
            array[event_seq], 'webhook:' || endpoint);
    end if;
end
$$;
revoke all on function enclave_private.create_webhook_endpoint(uuid,text,boolean,bytea) from public;
grant execute on function enclave_private.create_webhook_endpoint(uuid,text,boolean,bytea) to enclave_app;

create or replace function enclave_private.remove_webhook_endpoint(endpoint uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    tenant uuid := nullif(current_setting('enclave.tenant_id', true), '')::uuid;
    caller record := enclave_private.require_practice_owner(tenant, false, 'webhooks_need_practice_owner');
begin
    update enclave.webhook_endpoints set active = false where tenant_id = tenant and id = endpoint and active;
    if not found then
        return false;
    end if;
    -- Pending deliveries to it will never go out.
    update enclave.outbox set status = 'failed', last_error = 'endpoint removed'
    where tenant_id = tenant and endpoint_id = endpoint and status = 'pending';
    perform enclave_private.append_audit_event(
        tenant, caller.user_id, 'user', caller.session_id, 'webhook.removed', 'webhook_endpoint',
        endpoint::text, 'ok', null, null, null, null, '{}'::jsonb);
    return true;
end
$$;
revoke all on function enclave_private.remove_webhook_endpoint(uuid) from public;
grant execute on function enclave_private.remove_webhook_endpoint(uuid) to enclave_app;

-- Deliveries that are due, across tenants: ids only, for the worker, which then opens each in
-- its own tenant context.
create or replace function enclave_private.due_deliveries(at timestamptz, max_rows integer)
returns table (tenant_id uuid, id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select o.tenant_id, o.id from enclave.outbox o
    where o.kind = 'webhook' and o.status = 'pending' and o.next_attempt_at <= at
    order by o.next_attempt_at limit max_rows;
end
$$;
revoke all on function enclave_private.due_deliveries(timestamp with time zone,integer) from public;
grant execute on function enclave_private.due_deliveries(timestamp with time zone,integer) to enclave_maint;
