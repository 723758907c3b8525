-- Ingest credentials and what an ingest credential may do. The secret a provider signs requests
-- with is kept per tracking source: the gate checks its hash (gate.sql, ingest_reach), the
-- service checks signatures with the wrapped copy.
--
-- An ingest credential inserts its own source's leads and recordings (the insert policies of
-- 0007_per_command_policies.sql) and reads no table. What it needs to know comes through the
-- functions below, each confined to its own source: the lead an idempotency key already made,
-- the replay marker of a signature, the practice's active keys, the source's defaults.

-- A source and its credential in one read, for the service to check a request's signature before
-- it binds the credential: the practice, the wrapped secret (it opens only with the master key),
-- whether it is disabled, and the provider's settings (a Twilio line's account, the number it
-- forwards to). Every ingest format starts here.
drop function if exists enclave_private.capture_source(uuid);
drop function if exists enclave_private.ingest_source(uuid);
create function enclave_private.ingest_source(source uuid)
returns table (practice_id uuid, wrapped_secret bytea, disabled boolean, provider text, provider_account text,
               forward_to text, announce_recording boolean)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select c.practice_id, c.wrapped_secret, c.disabled_at is not null, c.provider, c.provider_account, c.forward_to,
           c.announce_recording
    from enclave_private.ingest_credentials c where c.source_id = source
$$;
revoke all on function enclave_private.ingest_source(uuid) from public;
grant execute on function enclave_private.ingest_source(uuid) to enclave_app;

-- The validated credential, or 'ingest_credential_required' (42501).
create or replace function enclave_private.require_ingest_credential()
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record;
begin
    select * into credential from enclave_private.ingest_credential();
    if not found then
        raise exception 'ingest_credential_required' using errcode = '42501';
    end if;
    return credential;
end
$$;
revoke all on function enclave_private.require_ingest_credential() from public;

-- The lead this source already stored under an idempotency key, if any.
create or replace function enclave_private.ingest_existing_lead(idempotency_key text)
returns uuid
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
begin
    return (select l.id from enclave.leads l
            where l.tenant_id = credential.tenant_id and l.source_id = credential.source_id
              and l.idempotency_key = ingest_existing_lead.idempotency_key);
end
$$;
revoke all on function enclave_private.ingest_existing_lead(text) from public;
grant execute on function enclave_private.ingest_existing_lead(text) to enclave_app;

-- Records a signature as used by this source; false if it was used before. Prunes up to 100
-- markers older than the 15-minute window of signature freshness.
create or replace function enclave_private.ingest_mark_signature(replay_hash bytea)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
begin
    if octet_length(replay_hash) <> 32 then
        raise exception 'invalid signature hash' using errcode = '22023';
    end if;
    insert into enclave.ingest_replays (tenant_id, source_id, signature_hash)
    values (credential.tenant_id, credential.source_id, replay_hash)
    on conflict do nothing;
    if not found then
        return false;
    end if;
    delete from enclave.ingest_replays where tenant_id = credential.tenant_id and (tenant_id, source_id, signature_hash) in (
        select r.tenant_id, r.source_id, r.signature_hash from enclave.ingest_replays r
        where r.tenant_id = credential.tenant_id and r.seen_at < now() - interval '15 minutes' limit 100);
    return true;
end
$$;
revoke all on function enclave_private.ingest_mark_signature(bytea) from public;
grant execute on function enclave_private.ingest_mark_signature(bytea) to enclave_app;

-- The practice's active keys, wrapped by the master key, to seal what this request stores.
create or replace function enclave_private.ingest_keys()
returns table (purpose text, version integer, kek_version integer, state text, wrapped bytea)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
begin
    return query
    select k.purpose, k.version, k.kek_version, k.state, k.wrapped from enclave.tenant_keys k
    where k.tenant_id = credential.tenant_id and k.state = 'active';
end
$$;
revoke all on function enclave_private.ingest_keys() from public;
grant execute on function enclave_private.ingest_keys() to enclave_app;

-- A source's default attribution, for the fields a new lead leaves out (LeadWriter): to an ingest
-- credential for its own source, to the maintenance role for a source of its tenant (the seeder).
drop function if exists enclave_private.ingest_defaults();
create or replace function enclave_private.source_defaults(source uuid)
returns table (default_source text, default_medium text, default_campaign text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint'
        and not exists (select 1 from enclave_private.ingest_credential() c where c.source_id = source) then
        return;
    end if;
    return query
    select s.default_source, s.default_medium, s.default_campaign from enclave.tracking_sources s
    where s.tenant_id = enclave_private.caller_tenant() and s.id = source;
end
$$;
revoke all on function enclave_private.source_defaults(uuid) from public;
grant execute on function enclave_private.source_defaults(uuid) to enclave_app, enclave_maint;

-- Queues a `lead.created` webhook for each active endpoint of the practice and one notification
-- (for a mailer), for a lead this source stored. Payloads carry no PHI: the lead's id, kind,
-- time and marketing attribution, and a link.
create or replace function enclave_private.enqueue_new_lead(lead uuid)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
    notice jsonb;
begin
    select jsonb_build_object(
        'event', 'lead.created', 'lead_id', l.id, 'practice_id', l.tenant_id, 'kind', l.kind,
        'occurred_at', l.occurred_at,
        'attribution', jsonb_strip_nulls(jsonb_build_object(
            'source', l.source, 'medium', l.medium, 'campaign', l.campaign, 'keyword', l.keyword)),
        'link', '/v1/practices/' || l.tenant_id || '/leads/' || l.id)
    into notice
    from enclave.leads l
    -- By the primary key alone: with the source in the condition too, a generic plan may walk
    -- the source's (tenant, source, idempotency key) index through every lead it ever stored.
    where l.tenant_id = credential.tenant_id and l.id = lead
      and l.source_id is not distinct from credential.source_id;
    if notice is null then
        raise exception 'unknown lead' using errcode = '42501';
    end if;
    insert into enclave.outbox (tenant_id, kind, endpoint_id, payload)
    select credential.tenant_id, 'webhook', e.id, notice
    from enclave.webhook_endpoints e where e.tenant_id = credential.tenant_id and e.active
    union all
    select credential.tenant_id, 'notification', null, notice;
end
$$;
revoke all on function enclave_private.enqueue_new_lead(uuid) from public;
grant execute on function enclave_private.enqueue_new_lead(uuid) to enclave_app;

-- A provider's later word on a call this source stored (by its idempotency key, the provider's
-- call id): its duration and disposition. `authoritative` (the outcome of the forwarded leg)
-- replaces what is there; otherwise only what is missing is filled. Returns the lead, or null
-- for an unknown call.
create or replace function enclave_private.ingest_update_call(
    idempotency_key text, duration integer, disposition text, authoritative boolean
)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
    lead uuid;
begin
    if disposition is not null
        and disposition not in ('answered', 'missed', 'voicemail', 'busy', 'failed', 'abandoned') then
        raise exception 'unknown disposition' using errcode = '22023';
    end if;
    if duration is not null and (duration < 0 or duration > 604800) then
        raise exception 'duration out of range' using errcode = '22023';
    end if;
    update enclave.leads l
    set duration_seconds = case when authoritative then coalesce(ingest_update_call.duration, l.duration_seconds)
                                else coalesce(l.duration_seconds, ingest_update_call.duration) end,
        disposition = case when authoritative then coalesce(ingest_update_call.disposition, l.disposition)
                           else coalesce(l.disposition, ingest_update_call.disposition) end
    where l.tenant_id = credential.tenant_id and l.source_id = credential.source_id and l.kind = 'call'
      and l.idempotency_key = ingest_update_call.idempotency_key
    returning l.id into lead;
    return lead;
end
$$;
revoke all on function enclave_private.ingest_update_call(text,integer,text,boolean) from public;
grant execute on function enclave_private.ingest_update_call(text,integer,text,boolean) to enclave_app;

-- Queues the fetch of a recording the provider hosts, for a call this source stored (by its
-- idempotency key). Once per recording: a repeated callback changes nothing. Returns whether
-- the call is known.
create or replace function enclave_private.ingest_queue_recording(idempotency_key text, recording_sid text, media_url text)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
    lead uuid;
begin
    select l.id into lead from enclave.leads l
    where l.tenant_id = credential.tenant_id and l.source_id = credential.source_id and l.kind = 'call'
      and l.idempotency_key = ingest_queue_recording.idempotency_key;
    if lead is null then
        return false;
    end if;
    insert into enclave.recording_fetches (tenant_id, source_id, lead_id, recording_sid, media_url)
    values (credential.tenant_id, credential.source_id, lead, recording_sid, media_url)
    on conflict do nothing;
    return true;
end
$$;
revoke all on function enclave_private.ingest_queue_recording(text,text,text) from public;
grant execute on function enclave_private.ingest_queue_recording(text,text,text) to enclave_app;

-- The recording fetches due now, across practices, for the recording worker (operators only).
create or replace function enclave_private.due_recording_fetches(at timestamptz, max_rows integer)
returns table (tenant_id uuid, id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select f.tenant_id, f.id from enclave.recording_fetches f
    where f.step in ('fetch', 'delete') and f.next_attempt_at <= at
    order by f.next_attempt_at limit max_rows;
end
$$;
revoke all on function enclave_private.due_recording_fetches(timestamp with time zone,integer) from public;
grant execute on function enclave_private.due_recording_fetches(timestamp with time zone,integer) to enclave_maint;

-- A source's provider account and wrapped auth token, for the recording worker: the source must
-- belong to the practice of the caller's maintenance context.
create or replace function enclave_private.provider_credential(source uuid)
returns table (provider text, provider_account text, wrapped_secret bytea)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select c.provider, c.provider_account, c.wrapped_secret from enclave_private.ingest_credentials c
    where c.source_id = source and c.practice_id = enclave_private.maintenance_tenant() and c.disabled_at is null;
end
$$;
revoke all on function enclave_private.provider_credential(uuid) from public;
grant execute on function enclave_private.provider_credential(uuid) to enclave_maint;

-- Whether `lead` is a call this source stored (the recordings insert policy).
create or replace function enclave_private.ingest_owns_call(tenant uuid, lead uuid)
returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select exists (
        select from enclave.leads l join enclave_private.ingest_credential() c
            on c.tenant_id = l.tenant_id and c.source_id = l.source_id
        where l.tenant_id = tenant and l.id = lead and l.kind = 'call')
$$;
revoke all on function enclave_private.ingest_owns_call(uuid,uuid) from public;
grant execute on function enclave_private.ingest_owns_call(uuid,uuid) to enclave_app;

-- Starts a recording upload: locks the call (one upload at a time) and says whether it already
-- has a recording. No row: not a call of this source.
create or replace function enclave_private.ingest_begin_recording(lead uuid)
returns table (has_recording boolean)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
begin
    return query
    select l.recording_chunks is not null from enclave.leads l
    -- By the primary key (the source is a filter, not an index condition: see enqueue_new_lead).
    where l.tenant_id = credential.tenant_id and l.id = lead and l.source_id is not distinct from credential.source_id
      and l.kind = 'call'
    for update;
end
$$;
revoke all on function enclave_private.ingest_begin_recording(uuid) from public;
grant execute on function enclave_private.ingest_begin_recording(uuid) to enclave_app;

-- Completes a recording upload: its stream header, size and chunk count go on the call.
create or replace function enclave_private.ingest_finish_recording(
    lead uuid, header bytea, total_bytes bigint, chunks integer, content_type text
)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    credential record := enclave_private.require_ingest_credential();
begin
    if chunks <> (select count(*) from enclave.recordings r where r.tenant_id = credential.tenant_id and r.lead_id = lead) then
        raise exception 'recording chunks missing' using errcode = '22023';
    end if;
    update enclave.leads l
    set recording_header = header, recording_bytes = total_bytes, recording_chunks = chunks,
        recording_content_type = content_type
    where l.tenant_id = credential.tenant_id and l.id = lead and l.source_id is not distinct from credential.source_id
      and l.kind = 'call' and l.recording_chunks is null;
    return found;
end
$$;
revoke all on function enclave_private.ingest_finish_recording(uuid,bytea,bigint,integer,text) from public;
grant execute on function enclave_private.ingest_finish_recording(uuid,bytea,bigint,integer,text) to enclave_app;

-- Creates a tracking source with its ingest credential: a practice's setting, so through this
-- function only. The caller reaches the practice for tracking.manage and re-authenticated in
-- the last five minutes.
create or replace function enclave_private.create_tracking_source(
    source uuid, kind text, label text, tracking_number text, default_source text, default_medium text,
    default_campaign text, provider text, provider_account text, forward_to text, announce_recording boolean,
    secret_hash bytea, wrapped_secret bytea
)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_fresh_session();
    practice uuid := enclave_private.reachable_tenant('tracking.manage');
begin
    if practice is null then
        raise exception 'sources_need_tracking_manage' using errcode = '42501';
    end if;
    if coalesce(provider, 'enclave') <> 'enclave' and kind <> 'call' then
        raise exception 'a telephony provider captures calls' using errcode = '22023';
    end if;
    insert into enclave.tracking_sources
        (tenant_id, id, kind, label, tracking_number, default_source, default_medium, default_campaign, provider)
    values (practice, source, kind, label, tracking_number, default_source, default_medium, default_campaign,
            coalesce(provider, 'enclave'));
    insert into enclave_private.ingest_credentials
        (source_id, practice_id, secret_hash, wrapped_secret, provider, provider_account, forward_to, announce_recording)
    values (source, practice, secret_hash, wrapped_secret, coalesce(provider, 'enclave'), provider_account, forward_to,
            coalesce(announce_recording, false));
end
$$;
revoke all on function enclave_private.create_tracking_source(uuid,text,text,text,text,text,text,text,text,text,boolean,bytea,bytea) from public;
grant execute on function enclave_private.create_tracking_source(uuid,text,text,text,text,text,text,text,text,text,boolean,bytea,bytea) to enclave_app;

-- Rotates a source's credential. The caller reaches the source's practice for tracking.manage
-- and re-authenticated in the last five minutes.
create or replace function enclave_private.set_ingest_credential(source uuid, secret_hash bytea, wrapped_secret bytea)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_fresh_session();
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

-- A practice owner replaces a lead's PHI with nothing; attribution stays; the act is audited in
-- the same transaction. Redaction changes PHI rows, so through this function only.
create or replace function enclave_private.redact_lead(lead uuid, fields text[], request_id text, client_ip inet, user_agent text)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid := enclave_private.reachable_tenant('leads.read');
    caller record := enclave_private.require_practice_owner(practice, false, 'redact_needs_practice_owner');
begin
    if cardinality(fields) = 0 or not fields <@ array['caller_number', 'caller_name', 'transcript', 'form_fields', 'page_url', 'recording'] then
        raise exception 'invalid redaction fields' using errcode = '22023';
    end if;
    -- A held lead keeps its PHI until the hold is released.
    if enclave_private.lead_held(practice, lead) then
        raise exception 'lead_under_legal_hold' using errcode = '55000';
    end if;
    update enclave.leads set
        caller_number = case when 'caller_number' = any (fields) then null else caller_number end,
        caller_index = case when 'caller_number' = any (fields) then null else caller_index end,
        caller_name = case when 'caller_name' = any (fields) then null else caller_name end,
        transcript = case when 'transcript' = any (fields) then null else transcript end,
        form_fields = case when 'form_fields' = any (fields) then null else form_fields end,
        email_index = case when 'form_fields' = any (fields) then null else email_index end,
        page_url = case when 'page_url' = any (fields) then null else page_url end,
        recording_header = case when 'recording' = any (fields) then null else recording_header end,
        recording_bytes = case when 'recording' = any (fields) then null else recording_bytes end,
        recording_chunks = case when 'recording' = any (fields) then null else recording_chunks end,
        redacted_at = now()
    where tenant_id = practice and id = lead;
    if not found then
        return false;
    end if;
    if 'recording' = any (fields) then
        delete from enclave.recordings where tenant_id = practice and lead_id = lead;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'lead.redacted', 'lead', lead::text, 'ok', null,
        client_ip, user_agent, request_id,
        jsonb_build_object('fields', array_to_string(array(select f from unnest(fields) f order by f), ',')));
    return true;
end
$$;
revoke all on function enclave_private.redact_lead(uuid,text[],text,inet,text) from public;
grant execute on function enclave_private.redact_lead(uuid,text[],text,inet,text) to enclave_app;

-- Inserts new leads of one source, sealed by the caller (LeadWriter) with data key dek_version:
-- `rows` is a JSON array of leads whose keys are the columns' names (bytea as hex). Attribution
-- a lead leaves out comes from the source's defaults. A lead whose idempotency key its source
-- used before is not stored (on conflict do nothing, without naming the constraint: naming an
-- arbiter would check the new row against the SELECT policies too, and an ingest credential
-- reads nothing). Returns how many were stored. It runs as its caller, through the insert
-- policies: an ingest credential for its own source, the maintenance role for its tenant.
create or replace function enclave_private.insert_leads(practice uuid, source uuid, dek_version integer, rows jsonb)
returns integer
language plpgsql volatile set search_path = pg_catalog, pg_temp
as $$
declare
    stored integer;
begin
    insert into enclave.leads (tenant_id, id, source_id, kind, occurred_at, source, medium, campaign, keyword,
        landing_page, gclid, called_number, duration_seconds, disposition, caller_number, caller_name,
        transcript, form_fields, page_url, caller_index, email_index, dek_version, idempotency_key)
    select practice, r.id, insert_leads.source, r.kind, coalesce(r.occurred_at, now()),
           coalesce(r.source, d.default_source), coalesce(r.medium, d.default_medium),
           coalesce(r.campaign, d.default_campaign), r.keyword, r.landing_page, r.gclid, r.called_number,
           r.duration_seconds, r.disposition, decode(r.caller_number, 'hex'), decode(r.caller_name, 'hex'),
           decode(r.transcript, 'hex'), decode(r.form_fields, 'hex'), decode(r.page_url, 'hex'),
           decode(r.caller_index, 'hex'), decode(r.email_index, 'hex'), insert_leads.dek_version, r.idempotency_key
    from jsonb_to_recordset(rows) as r(id uuid, kind text, occurred_at timestamptz, source text,
        medium text, campaign text, keyword text, landing_page text, gclid text, called_number text,
        duration_seconds int4, disposition text, caller_number text, caller_name text, transcript text,
        form_fields text, page_url text, caller_index text, email_index text, idempotency_key text)
    left join enclave_private.source_defaults(insert_leads.source) d on true
    on conflict do nothing;
    get diagnostics stored = row_count;
    return stored;
end
$$;
revoke all on function enclave_private.insert_leads(uuid,uuid,integer,jsonb) from public;
grant execute on function enclave_private.insert_leads(uuid,uuid,integer,jsonb) to enclave_app, enclave_maint;

-- One ingest in one call (issue 27): binds the credential (source, secret, practice) for this
-- transaction, then does what the service did statement by statement: the lead an idempotency
-- key already made, the replay marker of a signed request, the check that `lead` was sealed with
-- the practice's active data key, the visitor a pool number was shown to (visitor_number) or a
-- form's session token belongs to (visitor_property, visitor_token), the insert, the
-- lead.created event and the outbox. Runs as its caller, through the gate and the policies like
-- the statements it replaces; alone, it is its own transaction.
--
-- Returns the lead and whether this call created it. Refusals: 'ingest_credential_invalid'
-- (28000) when the credential does not hold now (disabled, rotated, practice closed: the caller
-- looks the source up again), 'ingest_key_changed' (55000) when the data key rotated since the
-- caller read it (it seals again), 'ingest_replayed' (28000) for a signed request seen before
-- without an idempotency key.
create or replace function enclave_private.ingest_lead(
    source uuid, secret text, practice uuid, lead jsonb, dek_version integer, idempotency_key text,
    replay_id bytea, visitor_number text, visitor_property uuid, visitor_token bytea,
    request_id text, client_ip inet, user_agent text
)
returns table (lead_id uuid, created boolean)
language plpgsql volatile set search_path = pg_catalog, pg_temp
as $$
declare
    existing uuid;
    visitor record;
    new_id uuid := (lead ->> 'id')::uuid;
    google text;
begin
    perform set_config('synchronous_commit', 'on', true),
            set_config('enclave.ingest_source', coalesce(source::text, ''), true),
            set_config('enclave.ingest_secret', coalesce(secret, ''), true),
            set_config('enclave.tenant_id', coalesce(practice::text, ''), true);
    if not exists (select from enclave_private.ingest_credential()) then
        raise exception 'ingest_credential_invalid' using errcode = '28000';
    end if;
    if idempotency_key is not null then
        existing := enclave_private.ingest_existing_lead(idempotency_key);
        if existing is not null then
            -- The lead another request stored may be committed on this node alone: a commit
            -- whose wait for the synchronous standby was cancelled, or one recovered after a
            -- crash of this node, is visible before the standby has it. A transactional WAL
            -- record makes this statement's commit wait for the standby too (a transaction that
            -- writes no WAL does not wait); WAL reaches the standby in order, so the answer goes
            -- out only once the lead is there as well, and survives a failover.
            perform pg_logical_emit_message(true, 'enclave.ingest_retry', '');
            return query select existing, false;
            return;
        end if;
    end if;
    if replay_id is not null and not enclave_private.ingest_mark_signature(replay_id) then
        -- The same signed request again. With an idempotency key it is a retry: once the request
        -- that got here first has committed (the marker insert waited for it), its lead is the
        -- answer. Without one it is a replay.
        if idempotency_key is not null then
            existing := enclave_private.ingest_existing_lead(idempotency_key);
        end if;
        if existing is null then
            raise exception 'ingest_replayed' using errcode = '28000';
        end if;
        perform pg_logical_emit_message(true, 'enclave.ingest_retry', '');  -- as above
        return query select existing, false;
        return;
    end if;
    if not exists (select from enclave_private.ingest_keys() k where k.purpose = 'data' and k.version = dek_version) then
        raise exception 'ingest_key_changed' using errcode = '55000';
    end if;
    -- A call to a pool number shown to a website visitor in the last 30 minutes, or a form
    -- posted with a visitor's session token, takes that visitor's attribution: its UTM
    -- parameters, else what its click id says.
    if visitor_number is not null then
        select * into visitor from enclave_private.ingest_number_visitor(visitor_number);
    elsif visitor_property is not null then
        select * into visitor from enclave_private.ingest_form_visitor(visitor_property, visitor_token);
    end if;
    if visitor_number is not null or visitor_property is not null then
        google := coalesce(visitor.gclid, visitor.gbraid, visitor.wbraid);
        lead := lead || jsonb_build_object(
            'source', coalesce(visitor.utm_source, case
                when google is not null then 'google' when visitor.msclkid is not null then 'bing'
                when visitor.fbclid is not null then 'facebook' end),
            'medium', coalesce(visitor.utm_medium, case
                when google is not null or visitor.msclkid is not null then 'cpc'
                when visitor.fbclid is not null then 'paid_social' end),
            'campaign', visitor.utm_campaign, 'keyword', visitor.utm_term, 'landing_page', visitor.landing_path,
            'gclid', visitor.gclid);
    end if;
    if enclave_private.insert_leads(practice, source, dek_version,
            jsonb_build_array(lead || jsonb_build_object('idempotency_key', idempotency_key))) = 0 then
        -- A concurrent retry with the same key won the race (the insert waited for it): its lead.
        if idempotency_key is not null then
            existing := enclave_private.ingest_existing_lead(idempotency_key);
        end if;
        if existing is null then
            raise exception 'ingest_conflict' using errcode = '23505';
        end if;
        return query select existing, false;
        return;
    end if;
    perform enclave_private.record_audit(
        practice, 'lead.created', 'lead', new_id::text, 'ok', null, '{}'::jsonb, request_id, client_ip, user_agent);
    -- The outbox, in this transaction: a crash loses neither the lead nor its notices.
    perform enclave_private.enqueue_new_lead(new_id);
    return query select new_id, true;
end
$$;
revoke all on function enclave_private.ingest_lead(uuid,text,uuid,jsonb,integer,text,bytea,text,uuid,bytea,text,inet,text) from public;
grant execute on function enclave_private.ingest_lead(uuid,text,uuid,jsonb,integer,text,bytea,text,uuid,bytea,text,inet,text) to enclave_app;
