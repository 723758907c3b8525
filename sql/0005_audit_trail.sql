-- The audit trail: append-only, hash-chained per tenant, written in the same transaction as
-- the access it records.
--
-- Each chain (a practice's id, or the all-zero id for the platform) has a head row in
-- enclave_private.audit_heads. Appending locks the head, so events of one chain get gapless,
-- ordered sequence numbers and each event's hash covers the one before:
--     hash = SHA-256(prev_hash || canonical(event))
-- canonical() is length-prefixed text of every field, reproduced by `enclave audit verify`.
-- Nobody updates or deletes events: the service and maintenance roles have no such privilege,
-- and a trigger refuses it even for the owner, except inside the retention procedure, which
-- records what it removed in the chain itself.

alter table enclave.audit_events add constraint audit_events_action_check check (action in (
    'auth.login', 'auth.login_failed', 'auth.logout', 'auth.mfa_enrolled', 'auth.mfa_verified', 'auth.reauth',
    'auth.password_changed', 'session.expired', 'session.revoked',
    'baa.proposed', 'baa.approved', 'baa.declined', 'baa.revoked', 'baa.expired',
    'assignment.granted', 'assignment.removed',
    'phi.read', 'phi.export', 'phi.disclosed', 'recording.played', 'lead.created', 'lead.redacted',
    'key.rotated', 'key.master_rotated', 'key.destroyed',
    'tenant.created', 'tenant.offboarded', 'tenant_migration.applied',
    'access.denied', 'audit.retention', 'user.created', 'user.disabled', 'agency.created'
));
alter table enclave.audit_events add constraint audit_events_details_size check (octet_length(details::text) <= 4096);

create table enclave_private.audit_heads (
    chain_id uuid primary key,
    seq bigint not null,
    hash bytea not null
);
revoke all on enclave_private.audit_heads from public;

-- Length-prefixed text of every field: no two different events encode the same.
create function enclave_private.audit_field(value text)
returns text language sql immutable set search_path = pg_catalog
as $$ select case when value is null then '-1:' else octet_length(value)::text || ':' || value end $$;

create function enclave_private.audit_canonical(
    tenant_id uuid, seq bigint, at_micros bigint, actor_id uuid, actor_kind text, session_id uuid,
    action text, object_type text, object_id text, outcome text, reason text, client_ip text,
    user_agent text, request_id text, details text
)
returns bytea language sql immutable set search_path = pg_catalog
as $$
    select convert_to(
        'enclave.audit.v1'
        || enclave_private.audit_field(tenant_id::text) || enclave_private.audit_field(seq::text)
        || enclave_private.audit_field(at_micros::text) || enclave_private.audit_field(actor_id::text)
        || enclave_private.audit_field(actor_kind) || enclave_private.audit_field(session_id::text)
        || enclave_private.audit_field(action) || enclave_private.audit_field(object_type)
        || enclave_private.audit_field(object_id) || enclave_private.audit_field(outcome)
        || enclave_private.audit_field(reason) || enclave_private.audit_field(client_ip)
        || enclave_private.audit_field(user_agent) || enclave_private.audit_field(request_id)
        || enclave_private.audit_field(details),
        'UTF8')
$$;

-- Appends one event to `chain`; returns its sequence number. Internal: callers are the
-- functions that perform or validate the access.
create function enclave_private.append_audit_event(
    chain uuid, actor uuid, actor_kind text, session uuid, action text, object_type text, object_id text,
    outcome text, reason text, client_ip inet, user_agent text, request_id text, details jsonb
)
returns bigint
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    head record;
    at timestamptz := clock_timestamp();
    next_seq bigint;
    next_hash bytea;
    canonical_details jsonb := coalesce(details, '{}'::jsonb);
begin
    insert into enclave_private.audit_heads (chain_id, seq, hash)
    values (chain, 0, decode(repeat('00', 32), 'hex'))
    on conflict (chain_id) do nothing;
    select h.seq, h.hash into head from enclave_private.audit_heads h where h.chain_id = chain for update;
    -- The stored value is what verify reads back: truncate to microseconds first.
    at := date_trunc('microseconds', at);
    next_seq := head.seq + 1;
    next_hash := sha256(head.hash || enclave_private.audit_canonical(
        chain, next_seq, (extract(epoch from at) * 1000000)::bigint, actor, actor_kind, session, action,
        object_type, object_id, outcome, reason, host(client_ip), left(user_agent, 300), left(request_id, 100),
        canonical_details::text));
    insert into enclave.audit_events (
        tenant_id, seq, at, actor_id, actor_kind, session_id, action, object_type, object_id, outcome, reason,
        client_ip, user_agent, request_id, details, prev_hash, hash)
    values (
        chain, next_seq, at, actor, actor_kind, session, action, object_type, object_id, outcome, reason,
        client_ip, left(user_agent, 300), left(request_id, 100), canonical_details, head.hash, next_hash);
    update enclave_private.audit_heads set seq = next_seq, hash = next_hash where chain_id = chain;
    return next_seq;
end
$$;

-- The chain heads, for `enclave audit verify` and `checkpoint`.
create function enclave_private.audit_chain_heads()
returns table (chain_id uuid, seq bigint, hash bytea)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$ select h.chain_id, h.seq, h.hash from enclave_private.audit_heads h order by h.chain_id $$;

-- Refuses UPDATE and DELETE of events, even for the owner, outside the retention procedure.
create function enclave_private.audit_events_immutable()
returns trigger language plpgsql set search_path = pg_catalog
as $$
begin
    if tg_op = 'DELETE' and current_setting('enclave.audit_retention', true) = 'on'
        and current_user = 'enclave_owner' then
        return old;
    end if;
    raise exception 'audit events are append-only' using errcode = '42501';
end
$$;
create trigger audit_events_immutable before update or delete on enclave.audit_events
    for each row execute function enclave_private.audit_events_immutable();
create trigger audit_events_no_truncate before truncate on enclave.audit_events
    for each statement execute function enclave_private.audit_events_immutable();

-- Retention: removes the oldest events of a chain up to `through_seq` and records, in the same
-- chain, how many and the hash the next remaining event links to, so that verify still holds.
create function enclave_private.apply_audit_retention(chain uuid, through_seq bigint)
returns bigint
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    removed bigint;
    last_hash bytea;
    first_seq bigint;
begin
    select e.hash into last_hash from enclave.audit_events e where e.tenant_id = chain and e.seq = through_seq;
    if last_hash is null then
        raise exception 'no event % in that chain', through_seq using errcode = '22023';
    end if;
    select min(e.seq) into first_seq from enclave.audit_events e where e.tenant_id = chain;
    perform set_config('enclave.audit_retention', 'on', true);
    delete from enclave.audit_events e where e.tenant_id = chain and e.seq <= through_seq;
    get diagnostics removed = row_count;
    perform set_config('enclave.audit_retention', 'off', true);
    perform enclave_private.append_audit_event(
        chain, null, 'operator', null, 'audit.retention', 'audit_chain', chain::text, 'ok', 'retention policy',
        null, null, null,
        jsonb_build_object('removed_from_seq', first_seq, 'removed_through_seq', through_seq, 'removed', removed,
                           'last_removed_hash', encode(last_hash, 'hex')));
    return removed;
end
$$;

-- The events table: read by the maintenance role (verify) through its tenant context, and by
-- the owner's SECURITY DEFINER functions; written only through append_audit_event.
create policy owner_functions on enclave.audit_events for all to enclave_owner using (true) with check (true);
revoke insert, select on enclave.audit_events from enclave_app;
revoke insert on enclave.audit_events from enclave_maint;
grant select on enclave.audit_events to enclave_maint;

do $$
declare
    f text;
begin
    foreach f in array array[
        'audit_field(text)',
        'audit_canonical(uuid,bigint,bigint,uuid,text,uuid,text,text,text,text,text,text,text,text,text)',
        'append_audit_event(uuid,uuid,text,uuid,text,text,text,text,text,inet,text,text,jsonb)',
        'audit_chain_heads()', 'apply_audit_retention(uuid,bigint)'
    ] loop
        execute format('revoke all on function enclave_private.%s from public', f);
    end loop;
end
$$;
grant execute on function enclave_private.audit_chain_heads() to enclave_maint;
