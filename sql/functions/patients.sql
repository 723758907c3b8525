-- The patient's rights (issue 29): finding one patient's leads by blind index, the access report
-- and accounting of disclosures over them, the request log with HIPAA deadlines, erasure and
-- restriction. Owners, and staff an owner granted `patients.requests`; agencies never (they hold
-- no membership of the practice). Each function checks the caller itself: the service asserts
-- nothing here that the database does not verify.

-- Every lead an audit event is about: the lead it names, and the leads a list read returned
-- (details.leads); NULL for an event about none. Immutable, for the index below: it reads only its
-- arguments. (Changing what it returns needs the index rebuilt: a new name and a new index, not an
-- edit.)
--
-- Every append computes it (twice: the index's predicate and its key), so it must stay cheap:
-- PL/pgSQL, whose plans a session keeps (a SQL function with a subquery is not inlined and was
-- planned again at every append: a third of the audit append rate, measured), and one regular
-- expression over a whole list rather than one per element (about 20 us for 25 leads). A list
-- with an element that is not a lowercase uuid is left out rather than failing the access the
-- event records. Its cost is declared as what it is, so that the planner reaches a practice's
-- events through the index rather than by computing this for each of them.
create or replace function enclave_private.audit_event_leads(object_type text, object_id text, details jsonb)
returns uuid[]
language plpgsql immutable parallel safe cost 5000 set search_path = pg_catalog, pg_temp
as $$
declare
    ids uuid[];
begin
    if object_type = 'lead' and object_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        ids := array[object_id::uuid];
    end if;
    if jsonb_typeof(details -> 'leads') = 'array'
        and (details -> 'leads')::text
            ~ '^\[("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"(, )?)+\]$' then
        ids := coalesce(ids, '{}') || array(select e::uuid from jsonb_array_elements_text(details -> 'leads') as e);
    end if;
    return ids;
end
$$;
revoke all on function enclave_private.audit_event_leads(text, text, jsonb) from public;

-- The access report finds a patient's events through this index, however long the trail: the
-- practice, then each lead an event is about. Only events about leads are in it.
create index if not exists audit_events_by_lead on enclave.audit_events
    using gin (tenant_id, enclave_private.audit_event_leads(object_type, object_id, details))
    where enclave_private.audit_event_leads(object_type, object_id, details) is not null;

-- The caller's session (fresh: re-authenticated in the last five minutes) when it may answer
-- patients' requests for `practice`; otherwise 'patient_requests_need_scope' (42501).
create or replace function enclave_private.require_patient_requests(practice uuid, fresh boolean)
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
begin
    if fresh then
        caller := enclave_private.require_fresh_session();
    else
        caller := enclave_private.require_session();
    end if;
    if practice is null or not exists (
        select from enclave.memberships m
        where m.user_id = caller.user_id and m.practice_id = practice
          and (m.role = 'practice_owner' or 'patients.requests' = any (m.scopes))
    ) then
        raise exception 'patient_requests_need_scope' using errcode = '42501';
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.require_patient_requests(uuid, boolean) from public;

-- The same check for the service, before it computes anything for the caller (the blind
-- indexes of a lookup): raises as require_patient_requests does.
create or replace function enclave_private.check_patient_requests(practice uuid)
returns void
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_patient_requests(practice, false);
end
$$;
revoke all on function enclave_private.check_patient_requests(uuid) from public;
grant execute on function enclave_private.check_patient_requests(uuid) to enclave_app;

-- Grants or withdraws `patients.requests` for a member of the practice's staff, named by email
-- address: owners only. False when no staff member of the practice has that address.
create or replace function enclave_private.set_staff_scopes(practice uuid, staff_email text, scopes text[])
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_practice_owner(practice, false, 'compliance_needs_practice_owner');
    person uuid;
begin
    if scopes is null or not scopes <@ array['patients.requests'] then
        raise exception 'staff_scopes_invalid' using errcode = '22023';
    end if;
    update enclave.memberships m set scopes = array(select distinct s from unnest(set_staff_scopes.scopes) s order by s)
    from enclave.users u
    where u.id = m.user_id and lower(u.email) = lower(btrim(staff_email))
      and m.practice_id = practice and m.role = 'practice_staff'
    returning m.user_id into person;
    if person is null then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'staff.scopes_changed', 'user', person::text, 'ok', null,
        null, null, null, jsonb_build_object('scopes', array_to_string(scopes, ',')));
    return true;
end
$$;
revoke all on function enclave_private.set_staff_scopes(uuid, text, text[]) from public;
grant execute on function enclave_private.set_staff_scopes(uuid, text, text[]) to enclave_app;

-- The leads of one patient: those whose caller number or email address has the blind index
-- given (HMAC under the practice's index key, computed by the service; the identifier itself
-- never reaches the database). Recorded as patient.looked_up with the count, never the index.
create or replace function enclave_private.find_patient(
    practice uuid, phone_index bytea, email_index bytea, request_id text, client_ip inet, user_agent text
)
returns table (id uuid, kind text, occurred_at timestamptz, created_at timestamptz, redacted_at timestamptz,
               restricted_at timestamptz, held boolean, has_recording boolean)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_patient_requests(practice, false);
    found_count integer;
begin
    if (phone_index is null and email_index is null)
        or length(phone_index) <> 32 or length(email_index) <> 32 then
        raise exception 'patient_identifier_invalid' using errcode = '22023';
    end if;
    return query
    select l.id, l.kind, l.occurred_at, l.created_at, l.redacted_at, l.restricted_at,
           exists (select from enclave.legal_holds h where h.practice_id = practice and h.released_at is null
                   and (h.lead_ids is null or l.id = any (h.lead_ids))),
           l.recording_chunks is not null
    from enclave.leads l
    where l.tenant_id = practice
      and ((phone_index is not null and l.caller_index = phone_index)
           or (find_patient.email_index is not null and l.email_index = find_patient.email_index))
    order by l.occurred_at, l.id
    limit 10000;
    get diagnostics found_count = row_count;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'patient.looked_up', 'practice', practice::text, 'ok',
        null, client_ip, user_agent, request_id,
        jsonb_build_object('found', found_count, 'by',
            case when phone_index is not null and find_patient.email_index is not null then 'phone,email'
                 when phone_index is not null then 'phone' else 'email' end));
end
$$;
revoke all on function enclave_private.find_patient(uuid, bytea, bytea, text, inet, text) from public;
grant execute on function enclave_private.find_patient(uuid, bytea, bytea, text, inet, text) to enclave_app;

-- The access report and accounting of disclosures for `leads` of the practice (HITECH's access
-- report; 45 CFR 164.528): every event of the practice's trail about one of them, through the
-- index audit_events_by_lead, and every export of the whole practice since the first of them was
-- received. Who (person, their role here or their agency, the agreement in force at the time, a
-- break-glass grant), when, what, and whether it was a disclosure outside the practice. Each
-- event also says whether it is linked into the chain and to the event before it there
-- (`enclave audit verify`, with the audit key, proves the hashes). Oldest first.
-- (Its rows lost the details column during issue 29: a database that applied the first version
-- needs it dropped to change the return type.)
drop function if exists enclave_private.patient_report(uuid, uuid[], timestamptz, timestamptz);
create or replace function enclave_private.patient_report(practice uuid, leads uuid[], since timestamptz, until timestamptz)
returns table (seq bigint, at timestamptz, action text, lead_id uuid, reason text, actor_kind text, actor_id uuid,
               actor_email text, actor_role text, agency_name text, agreement_id uuid, break_glass_id uuid,
               disclosure boolean, chain_seq bigint, linked boolean, link_intact boolean)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_custom_plan
-- The planner's estimate for a long trail crosses the JIT threshold; compiling costs more than the
-- query (measured: 100 ms of 150).
set jit = off
as $$
declare
    caller record := enclave_private.require_patient_requests(practice, false);
    wanted uuid[];
    first_received timestamptz;
begin
    if leads is null or cardinality(leads) not between 1 and 10000 then
        raise exception 'patient_leads_invalid' using errcode = '22023';
    end if;
    -- Only the practice's own leads: ids of another practice's leads find nothing.
    select array_agg(l.id), min(l.created_at) into wanted, first_received
    from enclave.leads l where l.tenant_id = practice and l.id = any (leads);
    if wanted is null then
        return;
    end if;
    -- The events, then who acted in them (a handful of people: looked up once each), then the
    -- agreements of those people's agencies with the practice, matched to each event's time.
    return query
    with events as materialized (
        select e.seq as event_seq, e.at as event_at, e.action as event_action, w.lead as event_lead,
               e.reason as event_reason, e.actor_kind as event_actor_kind, e.actor_id as event_actor,
               e.outcome as event_outcome, e.details ->> 'break_glass' as glass, e.chain_seq as event_chain_seq,
               e.prev_hash as event_prev_hash
        -- One index search per lead (exact: no row is rechecked), not one search for all of them:
        -- which lead an event is about is then known without reading its list again.
        from unnest(wanted) as w(lead)
        cross join lateral (
            select e.* from enclave.audit_events e
            where e.tenant_id = practice
              and enclave_private.audit_event_leads(e.object_type, e.object_id, e.details) @> array[w.lead]
              and (since is null or e.at >= since) and (until is null or e.at < until)
        ) as e
        union all
        select e.seq, e.at, e.action, null::uuid, e.reason, e.actor_kind, e.actor_id, e.outcome, null, e.chain_seq,
               e.prev_hash
        from enclave.audit_events e
        where e.tenant_id = practice and e.action in ('phi.export', 'phi.disclosed') and e.object_type = 'practice'
          and e.at >= first_received
          and (since is null or e.at >= since) and (until is null or e.at < until)
    ),
    actors as materialized (
        select a.actor, u.email,
               (select m.role from enclave.memberships m where m.user_id = a.actor and m.practice_id = practice
                limit 1) as role,
               (select string_agg(g.name, ', ') from enclave.memberships m join enclave.agencies g on g.id = m.agency_id
                where m.user_id = a.actor) as agency
        from (select distinct v.event_actor as actor from events v where v.event_actor is not null) a
        left join enclave.users u on u.id = a.actor
    ),
    agreements as materialized (
        select m.user_id, b.id, b.effective_at, coalesce(b.decided_at, b.effective_at) as decided_at, b.revoked_at,
               b.expires_at
        from enclave.baas b join enclave.memberships m on m.agency_id = b.agency_id
        where b.practice_id = practice and b.status in ('active', 'revoked')
          and m.user_id in (select a.actor from actors a where a.agency is not null)
    )
    select v.event_seq, v.event_at, v.event_action, v.event_lead, v.event_reason, v.event_actor_kind, v.event_actor,
           a.email, a.role, a.agency,
           (select g.id from agreements g
            where g.user_id = v.event_actor and g.effective_at <= v.event_at and g.decided_at <= v.event_at
              and (g.revoked_at is null or g.revoked_at > v.event_at)
              and (g.expires_at is null or g.expires_at > v.event_at)
            order by g.effective_at desc limit 1),
           case when v.glass ~ '^[0-9a-f-]{36}$' then v.glass::uuid end,
           v.event_outcome = 'ok' and (v.event_action in ('phi.disclosed', 'phi.export')
               or (v.event_action in ('phi.read', 'recording.played') and a.role is null)),
           v.event_chain_seq, v.event_chain_seq is not null,
           v.event_chain_seq is not null and (p.hash is null or p.hash = v.event_prev_hash)
    from events v
    left join actors a on a.actor = v.event_actor
    left join enclave.audit_events p on p.tenant_id = practice and p.chain_seq = v.event_chain_seq - 1
    order by v.event_seq, v.event_lead
    limit 100000;
end
$$;
revoke all on function enclave_private.patient_report(uuid, uuid[], timestamptz, timestamptz) from public;
grant execute on function enclave_private.patient_report(uuid, uuid[], timestamptz, timestamptz) to enclave_app;

-- The days a practice has to answer: a copy within 30 days (164.524(b)(2)), an accounting
-- within 60 (164.528(c)(1)); erasure and restriction are answered within 30 by this platform's
-- rule (HIPAA sets none for them; an amendment, 164.526, has 60).
create or replace function enclave_private.patient_request_days(kind text)
returns integer
language sql immutable
as $$
    select case kind when 'access_report' then 60 when 'copy' then 30 when 'erasure' then 30
                     when 'restriction' then 30 end
$$;
revoke all on function enclave_private.patient_request_days(text) from public;

-- Logs a patient's request, received on `received_on`, covering `leads` (found by find_patient).
create or replace function enclave_private.log_patient_request(
    practice uuid, kind text, received_on date, leads uuid[]
)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_patient_requests(practice, false);
    request uuid;
    known uuid[];
begin
    if enclave_private.patient_request_days(kind) is null or received_on is null
        or received_on > current_date + 1 or received_on < current_date - 366
        or leads is null or cardinality(leads) > 10000 then
        raise exception 'patient_request_invalid' using errcode = '22023';
    end if;
    select coalesce(array_agg(l.id order by l.id), '{}') into known
    from enclave.leads l where l.tenant_id = practice and l.id = any (leads);
    if cardinality(known) <> cardinality(array(select distinct x from unnest(leads) x)) then
        raise exception 'patient_request_invalid' using errcode = '22023';
    end if;
    insert into enclave.patient_requests (practice_id, kind, received_on, due_on, lead_ids, logged_by)
    values (practice, kind, received_on, received_on + enclave_private.patient_request_days(kind), known, caller.user_id)
    returning id into request;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'patient.request_logged', 'patient_request',
        request::text, 'ok', kind, null, null, null,
        jsonb_build_object('found', cardinality(known), 'received_on', received_on));
    return request;
end
$$;
revoke all on function enclave_private.log_patient_request(uuid, text, date, uuid[]) from public;
grant execute on function enclave_private.log_patient_request(uuid, text, date, uuid[]) to enclave_app;

-- The practice's requests, newest first, with their deadlines (overdue: open past its due day).
create or replace function enclave_private.patient_requests(practice uuid)
returns table (id uuid, kind text, received_on date, due_on date, leads integer, logged_by text,
               logged_at timestamptz, done_at timestamptz, done_by text, outcome jsonb, overdue boolean)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_patient_requests(practice, false);
    return query
    select r.id, r.kind, r.received_on, r.due_on, cardinality(r.lead_ids), lu.email, r.logged_at, r.done_at, du.email,
           r.outcome, r.done_at is null and r.due_on < current_date
    from enclave.patient_requests r
    join enclave.users lu on lu.id = r.logged_by
    left join enclave.users du on du.id = r.done_by
    where r.practice_id = practice
    order by r.received_on desc, r.logged_at desc
    limit 1000;
end
$$;
revoke all on function enclave_private.patient_requests(uuid) from public;
grant execute on function enclave_private.patient_requests(uuid) to enclave_app;

-- One request, for the work on it: its kind, leads and state. Refuses another practice's.
create or replace function enclave_private.patient_request(practice uuid, request uuid)
returns table (kind text, received_on date, due_on date, lead_ids uuid[], done_at timestamptz)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_patient_requests(practice, false);
    return query
    select r.kind, r.received_on, r.due_on, r.lead_ids, r.done_at from enclave.patient_requests r
    where r.practice_id = practice and r.id = request;
end
$$;
revoke all on function enclave_private.patient_request(uuid, uuid) from public;
grant execute on function enclave_private.patient_request(uuid, uuid) to enclave_app;

-- Marks a request done, with a PHI-free outcome (counts; for a copy, the delivery).
create or replace function enclave_private.complete_patient_request(practice uuid, request uuid, outcome jsonb)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_patient_requests(practice, false);
    request_kind text;
begin
    if outcome is null or jsonb_typeof(outcome) <> 'object' or octet_length(outcome::text) > 2048 then
        raise exception 'patient_request_invalid' using errcode = '22023';
    end if;
    update enclave.patient_requests r set done_at = now(), done_by = caller.user_id,
        outcome = complete_patient_request.outcome
    where r.practice_id = practice and r.id = request and r.done_at is null
    returning r.kind into request_kind;
    if request_kind is null then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'patient.request_done', 'patient_request',
        request::text, 'ok', request_kind, null, null, null, complete_patient_request.outcome);
    return true;
end
$$;
revoke all on function enclave_private.complete_patient_request(uuid, uuid, jsonb) from public;
grant execute on function enclave_private.complete_patient_request(uuid, uuid, jsonb) to enclave_app;

-- Erases the leads of an erasure request: every PHI field and the recording of each lead not
-- under a legal hold (one lead.redacted event each, as an owner's redaction records it); held
-- leads keep their PHI and are counted. An owner, re-authenticated: erasure cannot be undone.
-- Returns (erased, held); the request is done.
create or replace function enclave_private.erase_patient_leads(
    practice uuid, request uuid, request_id text, client_ip inet, user_agent text
)
returns table (erased integer, held integer)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_practice_owner(practice, true, 'erasure_needs_practice_owner');
    r record;
    lead uuid;
    erased_count integer := 0;
    held_count integer := 0;
begin
    select p.kind, p.lead_ids, p.done_at into r from enclave.patient_requests p
    where p.practice_id = practice and p.id = request for update;
    if r.kind is distinct from 'erasure' or r.done_at is not null then
        raise exception 'patient_request_invalid' using errcode = '22023';
    end if;
    foreach lead in array r.lead_ids loop
        if enclave_private.lead_held(practice, lead) then
            held_count := held_count + 1;
            continue;
        end if;
        update enclave.leads set caller_number = null, caller_index = null, caller_name = null, transcript = null,
            form_fields = null, email_index = null, page_url = null, recording_header = null, recording_bytes = null,
            recording_chunks = null, redacted_at = now()
        where tenant_id = practice and id = lead;
        delete from enclave.recordings where tenant_id = practice and lead_id = lead;
        perform enclave_private.append_audit_event(
            practice, caller.user_id, 'user', caller.session_id, 'lead.redacted', 'lead', lead::text, 'ok', 'erasure',
            client_ip, user_agent, request_id,
            jsonb_build_object('fields', 'caller_name,caller_number,form_fields,page_url,recording,transcript',
                               'request', request));
        erased_count := erased_count + 1;
    end loop;
    update enclave.patient_requests p set done_at = now(), done_by = caller.user_id,
        outcome = jsonb_build_object('erased', erased_count, 'held', held_count)
    where p.practice_id = practice and p.id = request;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'patient.request_done', 'patient_request',
        request::text, 'ok', 'erasure', client_ip, user_agent, request_id,
        jsonb_build_object('erased', erased_count, 'held', held_count));
    return query select erased_count, held_count;
end
$$;
revoke all on function enclave_private.erase_patient_leads(uuid, uuid, text, inet, text) from public;
grant execute on function enclave_private.erase_patient_leads(uuid, uuid, text, inet, text) to enclave_app;

-- Restricts the leads of a restriction request: from now on no webhook carries them and no
-- export includes them (WebhookDeliverer, PracticeArchive, conversions). One lead.restricted
-- event each. An owner, re-authenticated. Returns how many leads were restricted.
create or replace function enclave_private.restrict_patient_leads(
    practice uuid, request uuid, request_id text, client_ip inet, user_agent text
)
returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_practice_owner(practice, true, 'erasure_needs_practice_owner');
    r record;
    lead uuid;
    restricted integer := 0;
begin
    select p.kind, p.lead_ids, p.done_at into r from enclave.patient_requests p
    where p.practice_id = practice and p.id = request for update;
    if r.kind is distinct from 'restriction' or r.done_at is not null then
        raise exception 'patient_request_invalid' using errcode = '22023';
    end if;
    foreach lead in array r.lead_ids loop
        update enclave.leads set restricted_at = now()
        where tenant_id = practice and id = lead and restricted_at is null;
        if found then
            restricted := restricted + 1;
            perform enclave_private.append_audit_event(
                practice, caller.user_id, 'user', caller.session_id, 'lead.restricted', 'lead', lead::text, 'ok',
                'restriction', client_ip, user_agent, request_id, jsonb_build_object('request', request));
        end if;
    end loop;
    update enclave.patient_requests p set done_at = now(), done_by = caller.user_id,
        outcome = jsonb_build_object('restricted', restricted)
    where p.practice_id = practice and p.id = request;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'patient.request_done', 'patient_request',
        request::text, 'ok', 'restriction', client_ip, user_agent, request_id,
        jsonb_build_object('restricted', restricted));
    return restricted;
end
$$;
revoke all on function enclave_private.restrict_patient_leads(uuid, uuid, text, inet, text) from public;
grant execute on function enclave_private.restrict_patient_leads(uuid, uuid, text, inet, text) to enclave_app;

-- Records the patient's copy of a copy request (164.524) before it is written, in the same
-- transaction: one phi.disclosed event per lead, to the individual, with the day the request was
-- received and the day of delivery (today), so the 30-day clock shows in the trail; the request
-- is done. Behind a re-authentication. Returns the leads to put in the copy and the day received.
create or replace function enclave_private.record_patient_copy(
    practice uuid, request uuid, encrypted boolean, request_id text, client_ip inet, user_agent text
)
returns table (lead_ids uuid[], received_on date)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_patient_requests(practice, true);
    r record;
    lead uuid;
begin
    select p.kind, p.lead_ids, p.received_on, p.done_at into r from enclave.patient_requests p
    where p.practice_id = practice and p.id = request for update;
    if r.kind is distinct from 'copy' or r.done_at is not null or cardinality(r.lead_ids) = 0 then
        raise exception 'patient_request_invalid' using errcode = '22023';
    end if;
    foreach lead in array r.lead_ids loop
        perform enclave_private.append_audit_event(
            practice, caller.user_id, 'user', caller.session_id, 'phi.disclosed', 'lead', lead::text, 'ok',
            'patient copy', client_ip, user_agent, request_id,
            jsonb_build_object('recipient', 'individual', 'request', request, 'received_on', r.received_on,
                               'delivered_on', current_date));
    end loop;
    update enclave.patient_requests p set done_at = now(), done_by = caller.user_id,
        outcome = jsonb_build_object('leads', cardinality(r.lead_ids), 'encrypted', coalesce(encrypted, false),
                                     'delivered_on', current_date)
    where p.practice_id = practice and p.id = request;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'patient.request_done', 'patient_request',
        request::text, 'ok', 'copy', client_ip, user_agent, request_id,
        jsonb_build_object('leads', cardinality(r.lead_ids), 'delivered_on', current_date));
    return query select r.lead_ids, r.received_on;
end
$$;
revoke all on function enclave_private.record_patient_copy(uuid, uuid, boolean, text, inet, text) from public;
grant execute on function enclave_private.record_patient_copy(uuid, uuid, boolean, text, inet, text) to enclave_app;
