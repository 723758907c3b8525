-- The audit trail: append-only, chained per tenant, written in the same transaction as the
-- access it records.
--
-- An access inserts its event (append_audit_event) with no lock: the event's `seq` comes from
-- a platform-wide sequence. The chainer (`enclave audit chain`, the maintenance role, holding
-- the audit key outside the database) reads unlinked events (unlinked_audit_events) and links
-- them in batches (link_audit_events): each event gets the next `chain_seq` of its chain (a
-- practice's id, or the all-zero id for the platform), the hash of the event before it, and
--     hash = HMAC-SHA-256(audit key, prev_hash || canonical v2 event)
-- computed by the chainer; enclave_private.audit_heads holds each chain's last link. Events
-- linked before migration 0013 carry SHA-256(prev_hash || canonical v1) links. `enclave audit
-- verify` recomputes both. Nobody updates or deletes events: the service and maintenance
-- roles have no such privilege, and a trigger (0004_row_level_security.sql) refuses it even
-- for the owner, except inside link_audit_events (which only fills an unlinked event's link)
-- and the retention procedure, which records what it removed in the chain itself.

-- Length-prefixed text of every field: no two different events encode the same.
create or replace function enclave_private.audit_field(value text)
returns text language sql immutable set search_path = pg_catalog
as $$ select case when value is null then '-1:' else octet_length(value)::text || ':' || value end $$;
revoke all on function enclave_private.audit_field(text) from public;

create or replace function enclave_private.audit_canonical(
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
revoke all on function enclave_private.audit_canonical(uuid,bigint,bigint,uuid,text,uuid,text,text,text,text,text,text,text,text,text) from public;

-- Appends one event to `chain`, unlinked; returns its sequence number. No lock: concurrent
-- accesses of one practice do not wait for each other. Internal: callers are the functions that
-- perform or validate the access.
create or replace function enclave_private.append_audit_event(
    chain uuid, actor uuid, actor_kind text, session uuid, action text, object_type text, object_id text,
    outcome text, reason text, client_ip inet, user_agent text, request_id text, details jsonb
)
returns bigint
-- PL/pgSQL, which keeps its plan: a SQL function with a SET clause is planned afresh at every
-- call, and every audited request makes this call.
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    appended bigint;
begin
    -- `at` is stored to the microsecond, as the canonical form reads it back.
    insert into enclave.audit_events (
        tenant_id, at, actor_id, actor_kind, session_id, action, object_type, object_id, outcome, reason,
        client_ip, user_agent, request_id, details)
    values (
        chain, date_trunc('microseconds', clock_timestamp()), actor, actor_kind, session, action, object_type,
        object_id, outcome, reason, client_ip, left(user_agent, 300), left(request_id, 100),
        coalesce(details, '{}'::jsonb))
    returning seq into appended;
    return appended;
end
$$;
revoke all on function enclave_private.append_audit_event(uuid,uuid,text,uuid,text,text,text,text,text,inet,text,text,jsonb) from public;

-- The chainer's horizon: the platform sequence's last value, the highest `seq` linked in any
-- chain, and the transactions that may still commit a number at or below that last value.
-- An event's INSERT takes its RowExclusiveLock on audit_events before it draws its number and
-- keeps it until the transaction ends, so once every transaction listed here has ended, each
-- number up to last_seq is final: committed (and visible) or never to appear. Operators only.
create or replace function enclave_private.audit_horizon()
returns table (last_seq bigint, linked_through bigint, open_transactions text[])
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    last_seq := coalesce(pg_sequence_last_value('enclave_private.audit_event_seq'), 0);
    linked_through := (select coalesce(max(h.event_seq), 0) from enclave_private.audit_heads h);
    open_transactions := array(
        select distinct l.virtualtransaction from pg_locks l
        where l.locktype = 'relation' and l.relation = 'enclave.audit_events'::regclass
          and l.database = (select d.oid from pg_database d where d.datname = current_database())
          and l.mode = 'RowExclusiveLock' and l.granted and l.pid is distinct from pg_backend_pid());
    return next;
end
$$;
revoke all on function enclave_private.audit_horizon() from public;
grant execute on function enclave_private.audit_horizon() to enclave_maint;

-- Whether any of `transactions` (virtual transaction ids from audit_horizon) is still open.
create or replace function enclave_private.audit_transactions_open(transactions text[])
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return exists (
        select from pg_locks l
        where l.locktype = 'relation' and l.relation = 'enclave.audit_events'::regclass
          and l.database = (select d.oid from pg_database d where d.datname = current_database())
          and l.virtualtransaction = any (transactions));
end
$$;
revoke all on function enclave_private.audit_transactions_open(text[]) from public;
grant execute on function enclave_private.audit_transactions_open(text[]) to enclave_maint;

-- The chainer's work list: up to max_events unlinked events numbered above after_seq and up to
-- through_seq, oldest first, in the form the canonical encoding needs, with their chain's
-- current head (position 0, the zero hash and event seq 0 for a chain that has none yet).
-- Operators only.
drop function if exists enclave_private.unlinked_audit_events(integer);
create or replace function enclave_private.unlinked_audit_events(max_events integer, after_seq bigint, through_seq bigint)
returns table (tenant_id uuid, seq bigint, at_micros bigint, actor text, actor_kind text, session text,
               action text, object_type text, object_id text, outcome text, reason text, ip text,
               user_agent text, request_id text, details text, head_seq bigint, head_hash bytea,
               head_event_seq bigint)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select e.tenant_id, e.seq, (extract(epoch from e.at) * 1000000)::int8, e.actor_id::text, e.actor_kind,
           e.session_id::text, e.action, e.object_type, e.object_id, e.outcome, e.reason, host(e.client_ip),
           e.user_agent, e.request_id, e.details::text,
           coalesce(h.seq, 0), coalesce(h.hash, decode(repeat('00', 32), 'hex')), coalesce(h.event_seq, 0)
    from (select u.tenant_id, u.seq from enclave.audit_events u
          where u.chain_seq is null and u.seq > after_seq and u.seq <= through_seq
          order by u.seq limit least(greatest(max_events, 1), 50000)) pending
    join enclave.audit_events e on e.tenant_id = pending.tenant_id and e.seq = pending.seq
    left join enclave_private.audit_heads h on h.chain_id = e.tenant_id
    order by e.seq;
end
$$;
revoke all on function enclave_private.unlinked_audit_events(integer, bigint, bigint) from public;
grant execute on function enclave_private.unlinked_audit_events(integer, bigint, bigint) to enclave_maint;

-- The links at the given positions (chains[i], positions[i]) that exist: the chainer compares
-- them with the heads its checkpoint log holds before it links after them. Operators only.
create or replace function enclave_private.audit_links_at(chains uuid[], positions bigint[])
returns table (chain_id uuid, chain_seq bigint, hash bytea)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select e.tenant_id, e.chain_seq, e.hash
    from unnest(chains, positions) as p(chain, position)
    join enclave.audit_events e on e.tenant_id = p.chain and e.chain_seq = p.position;
end
$$;
revoke all on function enclave_private.audit_links_at(uuid[], bigint[]) from public;
grant execute on function enclave_private.audit_links_at(uuid[], bigint[]) to enclave_maint;

-- Links events into their chains: event (chains[i], seqs[i]) gets chain_seqs[i], prev_hashes[i]
-- and hashes[i] (the chainer's HMAC; both hashes as hex). The database cannot check an HMAC, but it keeps the
-- chain's shape: per chain the positions continue the head without a gap, each prev_hash is
-- the hash before it, and only unlinked events are linked. A batch built on a head that moved
-- meanwhile is refused whole ('audit_head_moved'), and so is one that links an event whose
-- number is not above the chain's last linked one ('audit_link_not_new'). Returns the number linked. Operators only.
create or replace function enclave_private.link_audit_events(
    chains uuid[], seqs bigint[], chain_seqs bigint[], prev_hex text[], hash_hex text[]
)
returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    linked integer;
    n integer := coalesce(cardinality(chains), 0);
    prev_hashes bytea[];
    hashes bytea[];
    moved boolean;
    not_new boolean;
begin
    perform enclave_private.require_operator();
    if n = 0 then
        return 0;
    end if;
    if cardinality(seqs) is distinct from n or cardinality(chain_seqs) is distinct from n
        or cardinality(prev_hex) is distinct from n or cardinality(hash_hex) is distinct from n or n > 50000
        or exists (select from unnest(prev_hex || hash_hex) x where x is null or x !~ '^[0-9a-f]{64}$') then
        raise exception 'audit_links_invalid' using errcode = '22023';
    end if;
    prev_hashes := array(select decode(x, 'hex') from unnest(prev_hex) with ordinality as t(x, i) order by i);
    hashes := array(select decode(x, 'hex') from unnest(hash_hex) with ordinality as t(x, i) order by i);
    insert into enclave_private.audit_heads (chain_id, seq, hash)
    select distinct b.chain, 0::bigint, decode(repeat('00', 32), 'hex')
    from unnest(chains) as b(chain)
    on conflict (chain_id) do nothing;
    perform from enclave_private.audit_heads h where h.chain_id = any (chains)
    order by h.chain_id for update;
    -- One pass over the batch, in each chain's order: the positions continue the head without a
    -- gap, each prev_hash is the hash before it, and (only what could be new) the events'
    -- numbers rise with their positions, above the number of the chain's last linked event.
    select coalesce(bool_or(l.chain_seq <> coalesce(l.before_seq, h.seq) + 1
                            or l.prev_hash <> coalesce(l.before_hash, h.hash)), false),
           coalesce(bool_or(l.seq <= coalesce(l.before_event, h.event_seq)), false)
    into moved, not_new
    from (
        select b.chain, b.chain_seq, b.prev_hash, b.seq,
               lag(b.chain_seq) over w as before_seq, lag(b.hash) over w as before_hash,
               lag(b.seq) over w as before_event
        from unnest(chains, chain_seqs, prev_hashes, hashes, seqs) as b(chain, chain_seq, prev_hash, hash, seq)
        window w as (partition by b.chain order by b.chain_seq)
    ) l join enclave_private.audit_heads h on h.chain_id = l.chain;
    if moved then
        raise exception 'audit_head_moved' using errcode = '40001';
    end if;
    if not_new then
        raise exception 'audit_link_not_new' using errcode = '22023';
    end if;
    perform set_config('enclave.audit_linking', 'on', true);
    update enclave.audit_events e
    set chain_seq = b.chain_seq, prev_hash = b.prev_hash, hash = b.hash, link = 2
    from unnest(chains, seqs, chain_seqs, prev_hashes, hashes) as b(chain, seq, chain_seq, prev_hash, hash)
    where e.tenant_id = b.chain and e.seq = b.seq and e.chain_seq is null;
    get diagnostics linked = row_count;
    perform set_config('enclave.audit_linking', 'off', true);
    if linked <> n then
        raise exception 'audit_links_invalid' using errcode = '22023',
            detail = format('%s of %s events were unlinked events', linked, n);
    end if;
    update enclave_private.audit_heads h set seq = last.chain_seq, hash = last.hash, event_seq = last.seq
    from (select distinct on (b.chain) b.chain, b.chain_seq, b.hash, b.seq
          from unnest(chains, chain_seqs, hashes, seqs) as b(chain, chain_seq, hash, seq)
          order by b.chain, b.chain_seq desc) last
    where h.chain_id = last.chain;
    return linked;
end
$$;
revoke all on function enclave_private.link_audit_events(uuid[],bigint[],bigint[],text[],text[]) from public;
grant execute on function enclave_private.link_audit_events(uuid[],bigint[],bigint[],text[],text[]) to enclave_maint;

-- The chain heads, for `enclave audit verify` and `checkpoint`.
create or replace function enclave_private.audit_chain_heads()
returns table (chain_id uuid, seq bigint, hash bytea)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$ select h.chain_id, h.seq, h.hash from enclave_private.audit_heads h order by h.chain_id $$;
revoke all on function enclave_private.audit_chain_heads() from public;
grant execute on function enclave_private.audit_chain_heads() to enclave_maint;

-- Refuses UPDATE and DELETE of events, even for the owner, outside the retention procedure and
-- the chainer's linking, which may only give an unlinked event its link, changing nothing else.
create or replace function enclave_private.audit_events_immutable()
returns trigger language plpgsql set search_path = pg_catalog
as $$
begin
    if tg_op = 'DELETE' and current_setting('enclave.audit_retention', true) = 'on'
        and current_user = 'enclave_owner' then
        return old;
    end if;
    if tg_op = 'UPDATE' and current_setting('enclave.audit_linking', true) = 'on'
        and current_user = 'enclave_owner' and old.chain_seq is null and new.chain_seq is not null
        and (new.tenant_id, new.seq, new.at, new.actor_id, new.actor_kind, new.session_id, new.action,
             new.object_type, new.object_id, new.outcome, new.reason, new.client_ip, new.user_agent,
             new.request_id, new.details)
            is not distinct from
            (old.tenant_id, old.seq, old.at, old.actor_id, old.actor_kind, old.session_id, old.action,
             old.object_type, old.object_id, old.outcome, old.reason, old.client_ip, old.user_agent,
             old.request_id, old.details) then
        return new;
    end if;
    raise exception 'audit events are append-only' using errcode = '42501';
end
$$;
revoke all on function enclave_private.audit_events_immutable() from public;
-- Nobody updates, deletes or truncates audit events, not even the owner, except inside
-- apply_audit_retention (which records what it removed in the chain itself) and the chainer's link.
drop trigger if exists audit_events_immutable on enclave.audit_events;
create trigger audit_events_immutable before update or delete on enclave.audit_events
    for each row execute function enclave_private.audit_events_immutable();
drop trigger if exists audit_events_no_truncate on enclave.audit_events;
create trigger audit_events_no_truncate before truncate on enclave.audit_events
    for each statement execute function enclave_private.audit_events_immutable();

-- Retention: removes the oldest linked events of a chain up to position `through_seq` and
-- records, in the same chain, how many and the hash the next remaining event links to, so
-- that verify still holds. `key_mac` (kept as details.authorization) is the HMAC under the audit key of
-- "enclave.audit.retention.v1\n<chain>\n<through_seq>\n<hex hash at through_seq>\n": verify
-- accepts a chain that starts after position 1 only with such a record, so a retention event
-- written by anyone without the key is caught.
drop function if exists enclave_private.apply_audit_retention(uuid, bigint);
create or replace function enclave_private.apply_audit_retention(chain uuid, through_seq bigint, key_mac text)
returns bigint
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    removed bigint;
    last_hash bytea;
    first_seq bigint;
begin
    select e.hash into last_hash from enclave.audit_events e where e.tenant_id = chain and e.chain_seq = through_seq;
    if last_hash is null then
        raise exception 'no linked event % in that chain', through_seq using errcode = '22023';
    end if;
    if key_mac is null or key_mac !~ '^[0-9a-f]{64}$' then
        raise exception 'retention needs the audit key''s authorization' using errcode = '22023';
    end if;
    -- HIPAA keeps documentation six years (45 CFR 164.316(b)(2)): nothing younger goes.
    if exists (select from enclave.audit_events e
               where e.tenant_id = chain and e.chain_seq <= through_seq and e.at > now() - interval '6 years') then
        raise exception 'audit_retention_too_young' using errcode = '22023';
    end if;
    select min(e.chain_seq) into first_seq from enclave.audit_events e where e.tenant_id = chain;
    perform set_config('enclave.audit_retention', 'on', true);
    delete from enclave.audit_events e where e.tenant_id = chain and e.chain_seq <= through_seq;
    get diagnostics removed = row_count;
    perform set_config('enclave.audit_retention', 'off', true);
    perform enclave_private.append_audit_event(
        chain, null, 'operator', null, 'audit.retention', 'audit_chain', chain::text, 'ok', 'retention policy',
        null, null, null,
        jsonb_build_object('removed_from_seq', first_seq, 'removed_through_seq', through_seq, 'removed', removed,
                           'last_removed_hash', encode(last_hash, 'hex'), 'authorization', key_mac));
    return removed;
end
$$;
revoke all on function enclave_private.apply_audit_retention(uuid,bigint,text) from public;

-- A refusal of a stranger: no valid session, or a practice that does not exist. Counted per
-- client address and minute in enclave_private.stranger_denials; only the first of each address
-- and minute is an event, in the platform chain, so that guesses cannot grow practices' trails or
-- start chains for practices that do not exist. Counts older than a week are dropped.
create or replace function enclave_private.record_stranger_denial(client_ip inet, reason text, user_agent text)
returns bigint
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    client text := coalesce(host(client_ip), 'unknown');
    counted integer;
begin
    insert into enclave_private.stranger_denials as d (minute, address, denials)
    values (date_trunc('minute', now()), client, 1)
    on conflict on constraint stranger_denials_pkey do update set denials = d.denials + 1
    returning d.denials into counted;
    if counted > 1 then
        return null;
    end if;
    delete from enclave_private.stranger_denials d where d.minute < now() - interval '7 days';
    return enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, null, 'user', null, 'access.denied', 'address', client,
        'denied', reason, client_ip, left(user_agent, 300), null, jsonb_build_object('counted_per', 'address and minute'));
end
$$;
revoke all on function enclave_private.record_stranger_denial(inet, text, text) from public;

-- The service's way to write the trail, inside the unit of work that performs the access. The
-- actor comes from the bound credential, never from the caller. Each kind of caller may record
-- only the actions enclave.audit_actions lists for it: 'maintenance' (the enclave_maint login),
-- 'ingest' (an ingest credential) or 'session'. An `ok` event about a practice needs the caller
-- to reach it now; a refusal (access.denied, a fixed reason code and at most a scope) may be
-- recorded for any practice.
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
    recorder text;
    glass uuid;
begin
    recorder := case
        when session_user = 'enclave_maint' then 'maintenance'
        when nullif(current_setting('enclave.ingest_source', true), '') is not null then 'ingest'
        else 'session'
    end;
    if not exists (
        select from enclave.audit_actions a where a.action = record_audit.action and recorder = any (a.recorded_by)
    ) then
        raise exception 'the % role may not record %', recorder, action using errcode = '42501';
    end if;
    -- A refusal is recorded as a fixed reason code with bounded, typed details: the caller may
    -- write into any practice's chain that it was turned away, and nothing else.
    if action = 'access.denied' then
        if outcome is distinct from 'denied'
            or reason is null or reason not in ('unauthenticated', 'mfaRequired', 'forbidden', 'reauthenticationRequired')
            or object_type is distinct from 'practice' or object_id is distinct from tenant::text
            or tenant = platform
            or coalesce(details, '{}'::jsonb) not in (
                '{}'::jsonb, jsonb_build_object('scope', details ->> 'scope'))
            or coalesce(details ->> 'scope', 'leads.read') not in ('leads.read', 'recordings.listen', 'leads.export', 'tracking.manage', 'leads.qualify', 'ingest')
            or octet_length(coalesce(request_id, '')) > 100 or octet_length(coalesce(user_agent, '')) > 300 then
            raise exception 'access_denied_event_invalid' using errcode = '22023';
        end if;
        -- A stranger's refusal is counted, not chained into the practice's trail.
        if recorder = 'session' and (
            not exists (select from enclave_private.current_session())
            or not exists (select from enclave.practices p where p.id = tenant)) then
            return enclave_private.record_stranger_denial(client_ip, reason, user_agent);
        end if;
    elsif outcome is distinct from 'ok' and recorder <> 'maintenance' then
        raise exception 'only access.denied records a refusal' using errcode = '22023';
    end if;
    if recorder = 'maintenance' then
        if tenant <> platform and tenant is distinct from enclave_private.maintenance_tenant() then
            raise exception 'record events only for the tenant in context' using errcode = '42501';
        end if;
        return enclave_private.append_audit_event(
            tenant, null, 'operator', null, action, object_type, object_id, outcome, reason, client_ip, user_agent,
            request_id, details);
    end if;
    if recorder = 'ingest' then
        if outcome = 'ok' and not enclave_private.caller_reaches(tenant) then
            raise exception 'an access can only be recorded by a caller who may perform it' using errcode = '42501';
        end if;
        -- The source id when the setting is one (a refusal may come with any text there).
        source := case
            when current_setting('enclave.ingest_source', true)
                ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$'
            then current_setting('enclave.ingest_source', true)::uuid
        end;
        return enclave_private.append_audit_event(
            tenant, source, 'ingest', null, action, object_type, object_id, outcome, reason, client_ip, user_agent,
            request_id, details);
    end if;
    select * into caller from enclave_private.current_session();
    -- A read that only break-glass allows carries the break-glass id, whatever the caller
    -- claimed (looked up only when nothing else reaches the practice: no cost on other reads).
    if outcome = 'ok' and (tenant = platform or not enclave_private.caller_reaches(tenant)) then
        if tenant <> platform and coalesce(caller.mfa_verified, false)
            and action in ('phi.read', 'recording.played') then
            glass := enclave_private.break_glass_id(caller.session_id, caller.user_id, tenant);
        end if;
        if glass is null then
            raise exception 'an access can only be recorded by a caller who may perform it' using errcode = '42501';
        end if;
    end if;
    if glass is not null then
        details := coalesce(details, '{}'::jsonb) || jsonb_build_object('break_glass', glass);
    end if;
    -- An export is a sensitive action: password and TOTP in the last five minutes.
    if action in ('phi.export', 'audit.exported') then
        perform enclave_private.require_fresh_session();
    end if;
    return enclave_private.append_audit_event(
        tenant, caller.user_id, 'user', caller.session_id, action, object_type, object_id, outcome, reason, client_ip,
        user_agent, request_id, details);
end
$$;
revoke all on function enclave_private.record_audit(uuid,text,text,text,text,text,jsonb,text,inet,text) from public;
grant execute on function enclave_private.record_audit(uuid,text,text,text,text,text,jsonb,text,inet,text) to enclave_app, enclave_maint;

-- A practice owner's view of the practice's trail, newest first, with filters.
create or replace function enclave_private.practice_audit(
    practice uuid, since timestamptz, until timestamptz, actor uuid, action_filter text, before_seq bigint, max_rows integer
)
returns table (seq bigint, at timestamptz, actor_id uuid, actor_email text, actor_kind text, action text,
               object_type text, object_id text, outcome text, reason text, request_id text, details jsonb)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_custom_plan
as $$
declare
    caller record := enclave_private.require_practice_owner(practice, false, 'audit_needs_practice_owner');
begin
    return query
    select e.seq, e.at, e.actor_id, u.email, e.actor_kind, e.action, e.object_type, e.object_id, e.outcome, e.reason,
           e.request_id, e.details
    from enclave.audit_events e left join enclave.users u on u.id = e.actor_id
    where e.tenant_id = practice
      and (since is null or e.at >= since) and (until is null or e.at < until)
      and (actor is null or e.actor_id = actor) and (action_filter is null or e.action = action_filter)
      and (before_seq is null or e.seq < before_seq)
    order by e.seq desc
    limit least(greatest(coalesce(max_rows, 100), 1), 1000);
end
$$;
revoke all on function enclave_private.practice_audit(uuid,timestamp with time zone,timestamp with time zone,uuid,text,bigint,integer) from public;
grant execute on function enclave_private.practice_audit(uuid,timestamp with time zone,timestamp with time zone,uuid,text,bigint,integer) to enclave_app;

-- Accounting of disclosures: who outside the practice received its PHI, when and why, newest
-- first, a page at a time (before_seq, max_rows): exports and disclosures to a recipient, and
-- reads and playbacks by anyone who is not a member of the practice (agency people, responders
-- under break-glass, operators). Each kind is read through an index, one person at a time, so a
-- page costs the same at a thousand events or a million.
drop function if exists enclave_private.practice_disclosures(uuid, timestamptz, timestamptz);
create or replace function enclave_private.practice_disclosures(
    practice uuid, since timestamptz, until timestamptz, before_seq bigint, max_rows integer
)
returns table (seq bigint, at timestamptz, recipient_id uuid, recipient_email text, agency_name text, action text,
               object_type text, object_id text, reason text, details jsonb)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
-- Planned for each call's own arguments: a plan cached for "any dates, any page" reads the chain.
set plan_cache_mode = force_custom_plan
as $$
declare
    caller record := enclave_private.require_practice_owner(practice, false, 'disclosures_need_practice_owner');
    wanted integer := least(greatest(coalesce(max_rows, 200), 1), 1000);
begin
    return query
    with outsiders as (
        select distinct m.user_id
        from enclave.baas b join enclave.memberships m on m.agency_id = b.agency_id
        where b.practice_id = practice
        union
        select g.responder_id from enclave.break_glass g where g.practice_id = practice
    ),
    candidates as (
        select d.seq from (
            select e.seq from enclave.audit_events e
            where e.tenant_id = practice
              and (e.action in ('phi.export', 'phi.disclosed')
                   or (e.actor_id is null and e.action in ('phi.read', 'recording.played')))
              and e.outcome = 'ok' and (before_seq is null or e.seq < before_seq)
              and (since is null or e.at >= since) and (until is null or e.at < until)
            order by e.seq desc limit wanted
        ) d
        union all
        select r.seq
        from outsiders o
        cross join lateral (
            select e.seq from enclave.audit_events e
            where e.tenant_id = practice and e.actor_id = o.user_id and e.action in ('phi.read', 'recording.played')
              and e.outcome = 'ok' and (before_seq is null or e.seq < before_seq)
              and (since is null or e.at >= since) and (until is null or e.at < until)
              and not exists (select from enclave.memberships m where m.user_id = o.user_id and m.practice_id = practice)
            order by e.at desc limit wanted
        ) r
    )
    select e.seq, e.at, e.actor_id, u.email,
           (select string_agg(a.name, ', ') from enclave.memberships m join enclave.agencies a on a.id = m.agency_id
            where m.user_id = e.actor_id),
           e.action, e.object_type, e.object_id, e.reason, e.details
    from candidates c
    join enclave.audit_events e on e.tenant_id = practice and e.seq = c.seq
    left join enclave.users u on u.id = e.actor_id
    order by e.seq desc
    limit wanted;
end
$$;
revoke all on function enclave_private.practice_disclosures(uuid,timestamp with time zone,timestamp with time zone,bigint,integer) from public;
grant execute on function enclave_private.practice_disclosures(uuid,timestamp with time zone,timestamp with time zone,bigint,integer) to enclave_app;

-- An agency admin's view: events of the agency's own people, in every chain.
create or replace function enclave_private.agency_audit(agency uuid, since timestamptz, until timestamptz, max_rows integer)
returns table (tenant_id uuid, seq bigint, at timestamptz, actor_id uuid, actor_email text, action text,
               object_type text, object_id text, outcome text, reason text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'agency_admin', agency, null) then
        raise exception 'agency_audit_needs_agency_admin' using errcode = '42501';
    end if;
    return query
    select e.tenant_id, e.seq, e.at, e.actor_id, u.email, e.action, e.object_type, e.object_id, e.outcome, e.reason
    from enclave.audit_events e join enclave.users u on u.id = e.actor_id
    where e.actor_id in (select m.user_id from enclave.memberships m where m.agency_id = agency)
      and (since is null or e.at >= since) and (until is null or e.at < until)
    order by e.at desc
    limit least(greatest(coalesce(max_rows, 100), 1), 1000);
end
$$;
revoke all on function enclave_private.agency_audit(uuid,timestamp with time zone,timestamp with time zone,integer) from public;
grant execute on function enclave_private.agency_audit(uuid,timestamp with time zone,timestamp with time zone,integer) to enclave_app;
