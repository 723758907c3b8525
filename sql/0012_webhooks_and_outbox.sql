-- Outbound webhooks and the outbox (HIPAA mode).
--
-- A webhook endpoint can receive PHI, so only a practice owner may add one, through a function;
-- the service role keeps read access only (an agency user or an ingest credential reaches the
-- practice's rows for leads.read, and must not be able to point its leads somewhere new).
-- Marking an endpoint as covered by a BAA also needs a fresh re-authentication. In HIPAA mode a
-- plain-HTTP endpoint is refused outright.
--
-- The outbox holds PHI-free payloads only, written in the transaction that stores the lead. The
-- delivery worker (`enclave webhooks deliver`, maintenance role) adds PHI at delivery time, and
-- only for an active HTTPS endpoint that is covered, recording phi.disclosed in the transaction
-- that marks the delivery done.

revoke insert, update, delete on enclave.webhook_endpoints from enclave_app;
revoke update, delete on enclave.outbox from enclave_app;

alter table enclave.outbox add column last_status integer;
alter table enclave.outbox add column last_error text check (octet_length(last_error) <= 200);

alter table enclave.audit_events drop constraint audit_events_action_check;
alter table enclave.audit_events add constraint audit_events_action_check check (action in (
    'auth.login', 'auth.login_failed', 'auth.logout', 'auth.mfa_enrolled', 'auth.mfa_verified', 'auth.reauth',
    'auth.password_changed', 'session.expired', 'session.revoked',
    'baa.proposed', 'baa.approved', 'baa.declined', 'baa.revoked', 'baa.expired',
    'assignment.granted', 'assignment.removed',
    'phi.read', 'phi.export', 'phi.disclosed', 'recording.played', 'lead.created', 'lead.redacted',
    'key.rotated', 'key.master_rotated', 'key.destroyed',
    'tenant.created', 'tenant.offboarded', 'tenant_migration.applied',
    'access.denied', 'audit.retention', 'user.created', 'user.disabled', 'agency.created',
    'webhook.created', 'webhook.removed'
));

create function enclave_private.create_webhook_endpoint(endpoint uuid, url text, covered boolean, sealed_secret bytea)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    tenant uuid := nullif(current_setting('enclave.tenant_id', true), '')::uuid;
    hipaa boolean;
begin
    if covered then
        caller := enclave_private.require_fresh_session();
    else
        caller := enclave_private.require_session();
    end if;
    if tenant is null or not enclave_private.has_role(caller.user_id, 'practice_owner', null, tenant) then
        raise exception 'only an owner of the practice may add webhook endpoints' using errcode = '42501';
    end if;
    if url !~ '^https?://[^/?#@[:space:]]+' or octet_length(url) > 2000 then
        raise exception 'the endpoint must be an absolute http(s) URL' using errcode = '22023';
    end if;
    select p.hipaa_mode into hipaa from enclave.practices p where p.id = tenant;
    if url !~ '^https://' and (hipaa or covered) then
        raise exception 'plain-HTTP endpoints are refused in HIPAA mode' using errcode = '22023';
    end if;
    insert into enclave.webhook_endpoints (tenant_id, id, url, baa_covered, signing_secret)
    values (tenant, endpoint, url, covered, sealed_secret);
    perform enclave_private.append_audit_event(
        tenant, caller.user_id, 'user', caller.session_id, 'webhook.created', 'webhook_endpoint',
        endpoint::text, 'ok', null, null, null, null,
        jsonb_build_object('baa_covered', covered, 'host', substring(url from '^https?://([^/?#:]+)')));
end
$$;

create function enclave_private.remove_webhook_endpoint(endpoint uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    tenant uuid := nullif(current_setting('enclave.tenant_id', true), '')::uuid;
begin
    if tenant is null or not enclave_private.has_role(caller.user_id, 'practice_owner', null, tenant) then
        raise exception 'only an owner of the practice may remove webhook endpoints' using errcode = '42501';
    end if;
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

-- Deliveries that are due, across tenants: ids only, for the worker, which then opens each in
-- its own tenant context.
create policy owner_functions on enclave.outbox for all to enclave_owner using (true) with check (true);

create function enclave_private.due_deliveries(at timestamptz, max_rows integer)
returns table (tenant_id uuid, id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        raise exception 'operators only' using errcode = '42501';
    end if;
    return query
    select o.tenant_id, o.id from enclave.outbox o
    where o.kind = 'webhook' and o.status = 'pending' and o.next_attempt_at <= at
    order by o.next_attempt_at limit max_rows;
end
$$;

-- record_audit: the maintenance role (the delivery worker) may now record phi.disclosed.
create or replace function enclave_private.record_audit(
    tenant uuid, action text, object_type text, object_id text, outcome text, reason text, details jsonb,
    request_id text, client_ip inet, user_agent text
)
returns bigint
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
    source uuid;
begin
    if session_user = 'enclave_maint' then
        if action not in ('key.rotated', 'key.master_rotated', 'key.destroyed', 'tenant.created', 'tenant.offboarded',
                          'tenant_migration.applied', 'phi.export', 'phi.disclosed', 'user.created', 'user.disabled',
                          'agency.created') then
            raise exception 'the maintenance role may not record %', action using errcode = '42501';
        end if;
        if tenant <> platform and tenant is distinct from nullif(current_setting('enclave.maint_tenant', true), '')::uuid then
            raise exception 'record events only for the tenant in context' using errcode = '42501';
        end if;
        return enclave_private.append_audit_event(
            tenant, null, 'operator', null, action, object_type, object_id, outcome, reason, client_ip, user_agent,
            request_id, details);
    end if;
    if action not in ('phi.read', 'phi.export', 'phi.disclosed', 'recording.played', 'lead.created', 'lead.redacted',
                      'access.denied') then
        raise exception 'the service may not record %', action using errcode = '42501';
    end if;
    if nullif(current_setting('enclave.ingest_source', true), '') is not null then
        if action not in ('lead.created', 'access.denied') then
            raise exception 'an ingest credential may not record %', action using errcode = '42501';
        end if;
        if outcome = 'ok' and not enclave_private.caller_reaches(tenant) then
            raise exception 'an access can only be recorded by a caller who may perform it' using errcode = '42501';
        end if;
        begin
            source := current_setting('enclave.ingest_source', true)::uuid;
        exception when invalid_text_representation then
            source := null;
        end;
        return enclave_private.append_audit_event(
            tenant, source, 'ingest', null, action, object_type, object_id, outcome, reason, client_ip, user_agent,
            request_id, details);
    end if;
    select * into caller from enclave_private.current_session();
    if outcome = 'ok' and (tenant = platform or not enclave_private.caller_reaches(tenant)) then
        raise exception 'an access can only be recorded by a caller who may perform it' using errcode = '42501';
    end if;
    return enclave_private.append_audit_event(
        tenant, caller.user_id, 'user', caller.session_id, action, object_type, object_id, outcome, reason, client_ip,
        user_agent, request_id, details);
end
$$;

revoke all on function enclave_private.create_webhook_endpoint(uuid, text, boolean, bytea) from public;
revoke all on function enclave_private.remove_webhook_endpoint(uuid) from public;
revoke all on function enclave_private.due_deliveries(timestamptz, integer) from public;
grant execute on function enclave_private.create_webhook_endpoint(uuid, text, boolean, bytea) to enclave_app;
grant execute on function enclave_private.remove_webhook_endpoint(uuid) to enclave_app;
grant execute on function enclave_private.due_deliveries(timestamptz, integer) to enclave_maint;
