-- Compliance operations: break-glass access, retention and legal holds, access alerts, the
-- notifications the mailer sends, and the owner's export. Tables: 0016_compliance_operations.sql.
-- Everything here is PL/pgSQL: on a fresh database the function files are applied before the
-- migrations that create these tables.

-- Queues a PHI-free notification for the practice's mailer. Only the owner's functions call it.
create or replace function enclave_private.notify(practice uuid, payload jsonb)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    insert into enclave.outbox (tenant_id, kind, endpoint_id, payload) values (practice, 'notification', null, payload);
end
$$;
revoke all on function enclave_private.notify(uuid, jsonb) from public;

-- The agency a user works for, if any (alerts about an agency's staff go to its admins too).
create or replace function enclave_private.staff_agency(person uuid)
returns uuid
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    agency uuid;
begin
    select m.agency_id into agency from enclave.memberships m
    where m.user_id = person and m.agency_id is not null order by m.created_at limit 1;
    return agency;
end
$$;
revoke all on function enclave_private.staff_agency(uuid) from public;

-- Records an alert once (by dedup_key) and queues its email. Returns the alert, or NULL when it
-- was already raised.
create or replace function enclave_private.raise_alert(
    practice uuid, agency uuid, alert_kind text, subject uuid, alert_details jsonb, seqs bigint[], dedup text
)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    alert uuid;
begin
    insert into enclave.alerts (practice_id, agency_id, kind, subject_user_id, details, audit_seqs, dedup_key)
    values (practice, coalesce(agency, enclave_private.staff_agency(subject)), alert_kind, subject,
            coalesce(alert_details, '{}'::jsonb), coalesce(seqs[1:50], '{}'), dedup)
    on conflict (dedup_key) do nothing
    returning id into alert;
    if alert is not null then
        perform enclave_private.notify(practice, jsonb_build_object('event', 'alert', 'alert', alert, 'kind', alert_kind));
    end if;
    return alert;
end
$$;
revoke all on function enclave_private.raise_alert(uuid, uuid, text, uuid, jsonb, bigint[], text) from public;

-- The practice's owner, or 'compliance_needs_practice_owner' (42501).
create or replace function enclave_private.require_practice_owner(practice uuid, fresh boolean)
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'practice_owner', null, practice) then
        raise exception 'compliance_needs_practice_owner' using errcode = '42501';
    end if;
    if fresh then
        caller := enclave_private.require_fresh_session();
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.require_practice_owner(uuid, boolean) from public;

-- MARK: responders

-- Operators grant or withdraw the platform responder role (who may open break-glass).
create or replace function enclave_private.set_responder(email text, responder boolean)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    person uuid;
begin
    perform enclave_private.require_operator();
    select u.id into person from enclave.users u where lower(u.email) = lower(set_responder.email) and u.disabled_at is null;
    if person is null then
        raise exception 'breakglass_invalid' using errcode = '22023', detail = 'no such user';
    end if;
    if responder then
        insert into enclave.platform_responders (user_id) values (person) on conflict do nothing;
    else
        delete from enclave.platform_responders where user_id = person;
        update enclave.break_glass set ended_at = now() where responder_id = person and ended_at is null;
    end if;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, null, 'operator', null,
        case when responder then 'responder.granted' else 'responder.revoked' end, 'user', person::text, 'ok', null,
        null, null, null, '{}'::jsonb);
    return person;
end
$$;
revoke all on function enclave_private.set_responder(text, boolean) from public;
grant execute on function enclave_private.set_responder(text, boolean) to enclave_maint;

-- MARK: break-glass

-- A responder opens emergency, read-only access to one practice: MFA, a re-authentication in the
-- last five minutes, a reason, at most an hour. The practice's chain records it; its owners get
-- an alert and an email at once.
create or replace function enclave_private.open_break_glass(practice uuid, reason text, seconds integer)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    glass uuid;
    expires timestamptz;
    event_seq bigint;
begin
    if not exists (select from enclave.platform_responders r where r.user_id = caller.user_id) then
        raise exception 'breakglass_needs_responder' using errcode = '42501';
    end if;
    caller := enclave_private.require_fresh_session();
    if seconds is null or seconds not between 1 and 3600
        or reason is null or length(btrim(reason)) not between 10 and 500
        or not exists (select from enclave.practices p where p.id = practice and p.status = 'active') then
        raise exception 'breakglass_invalid' using errcode = '22023';
    end if;
    expires := now() + make_interval(secs => seconds);
    insert into enclave.break_glass (practice_id, responder_id, session_id, reason, expires_at)
    values (practice, caller.user_id, caller.session_id, btrim(reason), expires)
    returning id into glass;
    event_seq := enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'breakglass.opened', 'break_glass', glass::text, 'ok', null,
        null, null, null, jsonb_build_object('break_glass', glass, 'expires_at', expires));
    perform enclave_private.raise_alert(
        practice, null, 'break_glass', caller.user_id, jsonb_build_object('break_glass', glass, 'expires_at', expires),
        array[event_seq], 'breakglass:' || glass);
    return glass;
end
$$;
revoke all on function enclave_private.open_break_glass(uuid, text, integer) from public;
grant execute on function enclave_private.open_break_glass(uuid, text, integer) to enclave_app;

-- The responder ends a break-glass early.
create or replace function enclave_private.end_break_glass(glass uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    practice uuid;
begin
    update enclave.break_glass g set ended_at = now()
    where g.id = glass and g.responder_id = caller.user_id and g.ended_at is null and now() < g.expires_at
    returning g.practice_id into practice;
    if practice is null then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'breakglass.ended', 'break_glass', glass::text, 'ok', null,
        null, null, null, jsonb_build_object('break_glass', glass));
    return true;
end
$$;
revoke all on function enclave_private.end_break_glass(uuid) from public;
grant execute on function enclave_private.end_break_glass(uuid) to enclave_app;

-- The break-glass accesses of a practice (NULL: of every practice the caller owns), newest
-- first, for its owners: the Compliance page, and the banner of those not yet acknowledged.
-- The same columns as list_break_glass.
drop function if exists enclave_private.practice_break_glass(uuid);
create or replace function enclave_private.owner_break_glass(practice uuid)
returns table (id uuid, practice_id uuid, practice_name text, responder_email text, reason text, opened_at timestamptz,
               expires_at timestamptz, ended_at timestamptz, acknowledged_at timestamptz, active boolean)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if practice is not null then
        perform enclave_private.require_practice_owner(practice, false);
    end if;
    return query
    select g.id, g.practice_id, p.name, u.email, g.reason, g.opened_at, g.expires_at, g.ended_at, g.acknowledged_at,
           g.ended_at is null and clock_timestamp() < g.expires_at
    from enclave.break_glass g
    join enclave.practices p on p.id = g.practice_id
    join enclave.users u on u.id = g.responder_id
    where (practice is not null and g.practice_id = practice)
       or (practice is null and exists (
           select from enclave.memberships m
           where m.user_id = caller.user_id and m.practice_id = g.practice_id and m.role = 'practice_owner'))
    order by g.opened_at desc limit 100;
end
$$;
revoke all on function enclave_private.owner_break_glass(uuid) from public;
grant execute on function enclave_private.owner_break_glass(uuid) to enclave_app;

-- An owner acknowledges a break-glass of the practice.
create or replace function enclave_private.acknowledge_break_glass(glass uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid;
    caller record;
begin
    select g.practice_id into practice from enclave.break_glass g where g.id = glass;
    if practice is null then
        raise exception 'compliance_needs_practice_owner' using errcode = '42501';
    end if;
    caller := enclave_private.require_practice_owner(practice, false);
    update enclave.break_glass set acknowledged_at = now(), acknowledged_by = caller.user_id
    where id = glass and acknowledged_at is null;
    if not found then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'breakglass.acknowledged', 'break_glass', glass::text, 'ok',
        null, null, null, null, jsonb_build_object('break_glass', glass));
    return true;
end
$$;
revoke all on function enclave_private.acknowledge_break_glass(uuid) from public;
grant execute on function enclave_private.acknowledge_break_glass(uuid) to enclave_app;

-- Break-glass accesses for the responder who opened them ('breakglass_needs_responder' for
-- anyone else), or all of them for operators (`enclave breakglass list`).
create or replace function enclave_private.list_break_glass(max_rows integer)
returns table (id uuid, practice_id uuid, practice_name text, responder_email text, reason text, opened_at timestamptz,
               expires_at timestamptz, ended_at timestamptz, acknowledged_at timestamptz, active boolean)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    person uuid;
begin
    if session_user <> 'enclave_maint' then
        caller := enclave_private.require_session();
        person := caller.user_id;
        if not exists (select from enclave.platform_responders r where r.user_id = person) then
            raise exception 'breakglass_needs_responder' using errcode = '42501';
        end if;
    end if;
    return query
    select g.id, g.practice_id, p.name, u.email, g.reason, g.opened_at, g.expires_at, g.ended_at, g.acknowledged_at,
           g.ended_at is null and clock_timestamp() < g.expires_at
    from enclave.break_glass g
    join enclave.practices p on p.id = g.practice_id
    join enclave.users u on u.id = g.responder_id
    where person is null or g.responder_id = person
    order by g.opened_at desc limit max_rows;
end
$$;
revoke all on function enclave_private.list_break_glass(integer) from public;
grant execute on function enclave_private.list_break_glass(integer) to enclave_app, enclave_maint;

-- MARK: settings, legal holds, retention

-- A practice's compliance settings (defaults when never set), for its owners.
create or replace function enclave_private.compliance_settings(practice uuid)
returns table (recordings_days integer, transcripts_days integer, form_fields_days integer, leads_days integer,
               reads_per_hour integer, hours_start smallint, hours_end smallint, time_zone text, age_recipient text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        perform enclave_private.require_practice_owner(practice, false);
    end if;
    return query
    select c.recordings_days, c.transcripts_days, c.form_fields_days, c.leads_days,
           coalesce(c.reads_per_hour, 200), coalesce(c.hours_start, 0::smallint), coalesce(c.hours_end, 24::smallint),
           coalesce(c.time_zone, 'UTC'), c.age_recipient
    from (select practice as id) p left join enclave.practice_compliance c on c.practice_id = p.id;
end
$$;
revoke all on function enclave_private.compliance_settings(uuid) from public;
grant execute on function enclave_private.compliance_settings(uuid) to enclave_app, enclave_maint;

-- An owner, freshly re-authenticated (a shorter retention deletes PHI), sets them.
create or replace function enclave_private.set_compliance_settings(
    practice uuid, recordings_days integer, transcripts_days integer, form_fields_days integer, leads_days integer,
    reads_per_hour integer, hours_start integer, hours_end integer, time_zone text, age_recipient text
)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_practice_owner(practice, true);
begin
    if not exists (select from pg_timezone_names z where z.name = time_zone) then
        raise exception 'compliance_settings_invalid' using errcode = '22023', detail = 'time zone';
    end if;
    begin
        insert into enclave.practice_compliance as c (
            practice_id, recordings_days, transcripts_days, form_fields_days, leads_days, reads_per_hour, hours_start,
            hours_end, time_zone, age_recipient, updated_at)
        values (practice, recordings_days, transcripts_days, form_fields_days, leads_days, reads_per_hour,
                hours_start, hours_end, time_zone, age_recipient, now())
        on conflict (practice_id) do update set
            recordings_days = excluded.recordings_days, transcripts_days = excluded.transcripts_days,
            form_fields_days = excluded.form_fields_days, leads_days = excluded.leads_days,
            reads_per_hour = excluded.reads_per_hour, hours_start = excluded.hours_start,
            hours_end = excluded.hours_end, time_zone = excluded.time_zone, age_recipient = excluded.age_recipient,
            updated_at = now();
    exception when check_violation or not_null_violation or numeric_value_out_of_range then
        raise exception 'compliance_settings_invalid' using errcode = '22023', detail = 'a value out of range';
    end;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'compliance.settings_changed', 'practice', practice::text,
        'ok', null, null, null, null,
        jsonb_strip_nulls(jsonb_build_object(
            'recordings_days', recordings_days, 'transcripts_days', transcripts_days,
            'form_fields_days', form_fields_days, 'leads_days', leads_days, 'reads_per_hour', reads_per_hour,
            'hours', hours_start || '-' || hours_end, 'time_zone', time_zone,
            'age_recipient', age_recipient is not null)));
end
$$;
revoke all on function enclave_private.set_compliance_settings(uuid,integer,integer,integer,integer,integer,integer,integer,text,text) from public;
grant execute on function enclave_private.set_compliance_settings(uuid,integer,integer,integer,integer,integer,integer,integer,text,text) to enclave_app;

-- A legal hold, placed by an owner (session) or an operator (maintenance role): the whole
-- practice (lead_ids NULL) or chosen leads of it.
create or replace function enclave_private.place_legal_hold(practice uuid, lead_ids uuid[], reason text)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    person uuid;
    sess uuid;
    hold uuid;
begin
    if session_user <> 'enclave_maint' then
        caller := enclave_private.require_practice_owner(practice, false);
        person := caller.user_id;
        sess := caller.session_id;
    end if;
    if reason is null or length(btrim(reason)) not between 3 and 500
        or (lead_ids is not null and cardinality(lead_ids) not between 1 and 10000)
        or not exists (select from enclave.practices p where p.id = practice and p.status <> 'offboarded') then
        raise exception 'legal_hold_invalid' using errcode = '22023';
    end if;
    insert into enclave.legal_holds (practice_id, lead_ids, reason, placed_by)
    values (practice, lead_ids, btrim(reason), person) returning id into hold;
    perform enclave_private.append_audit_event(
        practice, person, case when person is null then 'operator' else 'user' end, sess,
        'legal_hold.placed', 'legal_hold', hold::text, 'ok', null, null, null, null,
        jsonb_build_object('leads', coalesce(cardinality(lead_ids), 0), 'whole_practice', lead_ids is null));
    return hold;
end
$$;
revoke all on function enclave_private.place_legal_hold(uuid, uuid[], text) from public;
grant execute on function enclave_private.place_legal_hold(uuid, uuid[], text) to enclave_app, enclave_maint;

create or replace function enclave_private.release_legal_hold(hold uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    person uuid;
    sess uuid;
    practice uuid;
begin
    select h.practice_id into practice from enclave.legal_holds h where h.id = hold;
    if practice is null then
        raise exception 'legal_hold_invalid' using errcode = '22023';
    end if;
    if session_user <> 'enclave_maint' then
        caller := enclave_private.require_practice_owner(practice, false);
        person := caller.user_id;
        sess := caller.session_id;
    end if;
    update enclave.legal_holds set released_at = now(), released_by = person
    where id = hold and released_at is null;
    if not found then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, person, case when person is null then 'operator' else 'user' end, sess,
        'legal_hold.released', 'legal_hold', hold::text, 'ok', null, null, null, null, '{}'::jsonb);
    return true;
end
$$;
revoke all on function enclave_private.release_legal_hold(uuid) from public;
grant execute on function enclave_private.release_legal_hold(uuid) to enclave_app, enclave_maint;

create or replace function enclave_private.legal_holds(practice uuid)
returns table (id uuid, leads integer, whole_practice boolean, reason text, placed_by text, placed_at timestamptz,
               released_at timestamptz)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        perform enclave_private.require_practice_owner(practice, false);
    end if;
    return query
    select h.id, coalesce(cardinality(h.lead_ids), 0), h.lead_ids is null, h.reason, coalesce(u.email, 'operator'),
           h.placed_at, h.released_at
    from enclave.legal_holds h left join enclave.users u on u.id = h.placed_by
    where h.practice_id = practice order by h.placed_at desc;
end
$$;
revoke all on function enclave_private.legal_holds(uuid) from public;
grant execute on function enclave_private.legal_holds(uuid) to enclave_app, enclave_maint;

-- Practices with a retention set, for the purge worker.
create or replace function enclave_private.retention_practices()
returns table (practice_id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select c.practice_id from enclave.practice_compliance c join enclave.practices p on p.id = c.practice_id
    where p.status = 'active'
      and coalesce(c.recordings_days, c.transcripts_days, c.form_fields_days, c.leads_days) is not null
    order by c.practice_id;
end
$$;
revoke all on function enclave_private.retention_practices() from public;
grant execute on function enclave_private.retention_practices() to enclave_maint;

-- One batch of the retention purge for the practice of the maintenance context, as of `as_of`
-- (the worker's clock; never later than the database's, so no clock can purge early): at most
-- max_rows leads per kind lose their recording, transcript or form fields, or go whole. Nothing
-- under an active legal hold is touched; a hold on the whole practice stops it all (held).
create or replace function enclave_private.purge_expired(as_of timestamptz, max_rows integer)
returns table (recordings integer, transcripts integer, form_fields integer, leads integer, held boolean)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid := enclave_private.maintenance_tenant();
    policy record;
    held_leads uuid[];
    n_recordings integer := 0;
    n_transcripts integer := 0;
    n_form_fields integer := 0;
    n_leads integer := 0;
    batch uuid[];
begin
    perform enclave_private.require_operator();
    if practice is null or max_rows not between 1 and 100000 then
        raise exception 'retention_invalid' using errcode = '22023';
    end if;
    if as_of > now() then
        raise exception 'retention_invalid' using errcode = '22023', detail = 'the clock is ahead of the database';
    end if;
    if exists (select from enclave.legal_holds h where h.practice_id = practice and h.released_at is null
               and h.lead_ids is null) then
        return query select 0, 0, 0, 0, true;
        return;
    end if;
    select * into policy from enclave.practice_compliance c where c.practice_id = practice;
    if not found then
        return query select 0, 0, 0, 0, false;
        return;
    end if;
    held_leads := array(select distinct unnest(h.lead_ids) from enclave.legal_holds h
                        where h.practice_id = practice and h.released_at is null);
    if policy.leads_days is not null then
        batch := array(select l.id from enclave.leads l
                       where l.tenant_id = practice and l.occurred_at < as_of - make_interval(days => policy.leads_days)
                         and not l.id = any (held_leads) order by l.occurred_at limit max_rows);
        delete from enclave.recording_fetches f where f.tenant_id = practice and f.lead_id = any (batch);
        delete from enclave.leads l where l.tenant_id = practice and l.id = any (batch);
        get diagnostics n_leads = row_count;
    end if;
    if policy.recordings_days is not null then
        batch := array(select l.id from enclave.leads l
                       where l.tenant_id = practice and l.recording_header is not null
                         and l.occurred_at < as_of - make_interval(days => policy.recordings_days)
                         and not l.id = any (held_leads) order by l.occurred_at limit max_rows);
        delete from enclave.recordings r where r.tenant_id = practice and r.lead_id = any (batch);
        update enclave.leads l set recording_header = null, recording_bytes = null, recording_chunks = null,
                                   recording_content_type = null
        where l.tenant_id = practice and l.id = any (batch);
        get diagnostics n_recordings = row_count;
    end if;
    if policy.transcripts_days is not null then
        update enclave.leads l set transcript = null
        where l.tenant_id = practice and l.id = any (array(
            select x.id from enclave.leads x
            where x.tenant_id = practice and x.transcript is not null
              and x.occurred_at < as_of - make_interval(days => policy.transcripts_days)
              and not x.id = any (held_leads) order by x.occurred_at limit max_rows));
        get diagnostics n_transcripts = row_count;
    end if;
    if policy.form_fields_days is not null then
        update enclave.leads l set form_fields = null
        where l.tenant_id = practice and l.id = any (array(
            select x.id from enclave.leads x
            where x.tenant_id = practice and x.form_fields is not null
              and x.occurred_at < as_of - make_interval(days => policy.form_fields_days)
              and not x.id = any (held_leads) order by x.occurred_at limit max_rows));
        get diagnostics n_form_fields = row_count;
    end if;
    return query select n_recordings, n_transcripts, n_form_fields, n_leads, false;
end
$$;
revoke all on function enclave_private.purge_expired(timestamp with time zone, integer) from public;
grant execute on function enclave_private.purge_expired(timestamp with time zone, integer) to enclave_maint;

-- MARK: alerts

-- Raises the alerts due as of `as_of` (the worker's clock, at most the database's): per
-- practice, a user who read more leads in the past hour than the practice's threshold, a read
-- outside the practice's hours (once per user and local day), five or more failed sign-ins in
-- the past hour by a user who can reach the practice, and agreements 30, 7 or 1 day from
-- expiry. Break-glass and covered webhooks raise theirs as they happen. Returns how many.
create or replace function enclave_private.scan_access_alerts(as_of timestamptz)
returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    raised integer := 0;
    found_alert record;
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
    hour_key text := to_char(date_trunc('hour', as_of at time zone 'UTC'), 'YYYYMMDDHH24');
begin
    perform enclave_private.require_operator();
    if as_of > now() + interval '1 minute' then
        raise exception 'retention_invalid' using errcode = '22023', detail = 'the clock is ahead of the database';
    end if;
    -- Reads in the past hour, per practice and user.
    for found_alert in
        select p.id as practice, r.actor_id, r.leads, r.seqs, coalesce(c.reads_per_hour, 200) as threshold
        from enclave.practices p
        left join enclave.practice_compliance c on c.practice_id = p.id
        cross join lateral (
            select e.actor_id, sum(coalesce(jsonb_array_length(e.details -> 'leads'), 1))::bigint as leads,
                   array_agg(e.seq order by e.seq) as seqs
            from enclave.audit_events e
            where e.tenant_id = p.id and e.at > as_of - interval '1 hour' and e.at <= as_of
              and e.action in ('phi.read', 'recording.played', 'phi.export') and e.actor_kind = 'user'
              and e.outcome = 'ok' and e.actor_id is not null
            group by e.actor_id
        ) r
        where p.status = 'active' and r.leads > coalesce(c.reads_per_hour, 200)
    loop
        if enclave_private.raise_alert(
            found_alert.practice, null, 'reads_volume', found_alert.actor_id,
            jsonb_build_object('leads_read', found_alert.leads, 'threshold', found_alert.threshold, 'window', '1 hour'),
            found_alert.seqs, 'reads:' || found_alert.practice || ':' || found_alert.actor_id || ':' || hour_key) is not null then
            raised := raised + 1;
        end if;
    end loop;
    -- Reads outside the practice's hours, in its time zone.
    for found_alert in
        select p.id as practice, e.actor_id, array_agg(e.seq order by e.seq) as seqs,
               min(to_char(e.at at time zone c.time_zone, 'YYYY-MM-DD')) as local_day
        from enclave.practices p
        join enclave.practice_compliance c on c.practice_id = p.id
        join enclave.audit_events e on e.tenant_id = p.id
        where p.status = 'active' and not (c.hours_start = 0 and c.hours_end = 24)
          and e.at > as_of - interval '1 hour' and e.at <= as_of
          and e.action in ('phi.read', 'recording.played', 'phi.export') and e.actor_kind = 'user'
          and e.outcome = 'ok' and e.actor_id is not null
          and not case
              when c.hours_start < c.hours_end then
                  extract(hour from e.at at time zone c.time_zone) >= c.hours_start
                  and extract(hour from e.at at time zone c.time_zone) < c.hours_end
              else
                  extract(hour from e.at at time zone c.time_zone) >= c.hours_start
                  or extract(hour from e.at at time zone c.time_zone) < c.hours_end
          end
        group by p.id, e.actor_id
    loop
        if enclave_private.raise_alert(
            found_alert.practice, null, 'after_hours', found_alert.actor_id,
            jsonb_build_object('reads', cardinality(found_alert.seqs), 'local_day', found_alert.local_day),
            found_alert.seqs,
            'hours:' || found_alert.practice || ':' || found_alert.actor_id || ':' || found_alert.local_day) is not null then
            raised := raised + 1;
        end if;
    end loop;
    -- Failed sign-ins (the platform chain) of users who can reach a practice.
    for found_alert in
        select f.actor_id, f.failures, f.seqs, reach.practice
        from (
            select e.actor_id, count(*) as failures, array_agg(e.seq order by e.seq) as seqs
            from enclave.audit_events e
            where e.tenant_id = platform and e.action = 'auth.login_failed' and e.actor_id is not null
              and e.at > as_of - interval '1 hour' and e.at <= as_of
            group by e.actor_id having count(*) >= 5
        ) f
        cross join lateral (
            select m.practice_id as practice from enclave.memberships m
            where m.user_id = f.actor_id and m.practice_id is not null
            union
            select a.practice_id from enclave.agency_assignments a where a.user_id = f.actor_id
        ) reach
    loop
        if enclave_private.raise_alert(
            found_alert.practice, null, 'failed_signins', found_alert.actor_id,
            jsonb_build_object('failures', found_alert.failures, 'window', '1 hour'), found_alert.seqs,
            'signins:' || found_alert.practice || ':' || found_alert.actor_id || ':' || hour_key) is not null then
            raised := raised + 1;
        end if;
    end loop;
    -- Agreements close to expiry: one alert per threshold crossed.
    for found_alert in
        select b.id, b.practice_id, b.agency_id, b.expires_at,
               case when b.expires_at - as_of <= interval '1 day' then 1
                    when b.expires_at - as_of <= interval '7 days' then 7 else 30 end as days
        from enclave.baas b
        where b.status = 'active' and b.expires_at > as_of and b.expires_at <= as_of + interval '30 days'
    loop
        if enclave_private.raise_alert(
            found_alert.practice_id, found_alert.agency_id, 'agreement_expiry', null,
            jsonb_build_object('agreement', found_alert.id, 'days', found_alert.days, 'expires_at', found_alert.expires_at),
            '{}', 'agreement:' || found_alert.id || ':' || found_alert.days) is not null then
            raised := raised + 1;
        end if;
    end loop;
    return raised;
end
$$;
revoke all on function enclave_private.scan_access_alerts(timestamp with time zone) from public;
grant execute on function enclave_private.scan_access_alerts(timestamp with time zone) to enclave_maint;

-- Alerts the caller may see: a practice's for its owners (practice given), an agency's about its
-- staff for its admins (agency given). Newest first.
create or replace function enclave_private.list_alerts(practice uuid, agency uuid, max_rows integer)
returns table (id uuid, practice_id uuid, practice_name text, kind text, subject_email text, details jsonb,
               audit_seqs bigint[], created_at timestamptz, acknowledged_at timestamptz)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if practice is not null then
        perform enclave_private.require_practice_owner(practice, false);
    elsif agency is null or not enclave_private.has_role(caller.user_id, 'agency_admin', agency, null) then
        raise exception 'alerts_need_owner_or_admin' using errcode = '42501';
    end if;
    return query
    select a.id, a.practice_id, p.name, a.kind, u.email, a.details, a.audit_seqs, a.created_at, a.acknowledged_at
    from enclave.alerts a
    join enclave.practices p on p.id = a.practice_id
    left join enclave.users u on u.id = a.subject_user_id
    where (practice is not null and a.practice_id = practice) or (practice is null and a.agency_id = agency)
    order by a.created_at desc limit max_rows;
end
$$;
revoke all on function enclave_private.list_alerts(uuid, uuid, integer) from public;
grant execute on function enclave_private.list_alerts(uuid, uuid, integer) to enclave_app;

-- The caller may act on an alert: an owner of its practice, or an admin of its agency.
create or replace function enclave_private.alert_viewer(alert uuid)
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    found_alert record;
begin
    select a.practice_id, a.agency_id into found_alert from enclave.alerts a where a.id = alert;
    if not found or not (
        enclave_private.has_role(caller.user_id, 'practice_owner', null, found_alert.practice_id)
        or (found_alert.agency_id is not null
            and enclave_private.has_role(caller.user_id, 'agency_admin', found_alert.agency_id, null))) then
        raise exception 'alerts_need_owner_or_admin' using errcode = '42501';
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.alert_viewer(uuid) from public;

create or replace function enclave_private.acknowledge_alert(alert uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.alert_viewer(alert);
begin
    update enclave.alerts set acknowledged_at = now(), acknowledged_by = caller.user_id
    where id = alert and acknowledged_at is null;
    return found;
end
$$;
revoke all on function enclave_private.acknowledge_alert(uuid) from public;
grant execute on function enclave_private.acknowledge_alert(uuid) to enclave_app;

-- The audit events behind an alert (ids and actions, never PHI).
create or replace function enclave_private.alert_events(alert uuid)
returns table (seq bigint, at timestamptz, actor_email text, action text, object_type text, object_id text,
               outcome text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.alert_viewer(alert);
    return query
    select e.seq, e.at, u.email, e.action, e.object_type, e.object_id, e.outcome
    from enclave.alerts a
    join enclave.audit_events e on e.tenant_id in (a.practice_id, '00000000-0000-0000-0000-000000000000'::uuid)
                               and e.seq = any (a.audit_seqs)
    left join enclave.users u on u.id = e.actor_id
    where a.id = alert order by e.seq;
end
$$;
revoke all on function enclave_private.alert_events(uuid) from public;
grant execute on function enclave_private.alert_events(uuid) to enclave_app;

-- MARK: mail

-- Notifications due, across tenants: ids only, for the mailer.
create or replace function enclave_private.due_notifications(at timestamptz, max_rows integer)
returns table (tenant_id uuid, id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select o.tenant_id, o.id from enclave.outbox o
    where o.kind = 'notification' and o.status = 'pending' and o.next_attempt_at <= at
    order by o.next_attempt_at limit max_rows;
end
$$;
revoke all on function enclave_private.due_notifications(timestamp with time zone, integer) from public;
grant execute on function enclave_private.due_notifications(timestamp with time zone, integer) to enclave_maint;

-- Who a notification of the maintenance context's practice goes to, and the names the
-- template may use: the practice's owners, and for an alert about agency staff, an agreement
-- proposal or an expiry, the agency's admins. Names of practices and agencies are not PHI.
create or replace function enclave_private.notification_envelope(payload jsonb)
returns table (recipients text[], practice_name text, agency_name text, alert_kind text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid := enclave_private.maintenance_tenant();
    agency uuid;
    kind text;
begin
    perform enclave_private.require_operator();
    if practice is null then
        raise exception 'retention_invalid' using errcode = '22023';
    end if;
    if payload ->> 'event' = 'alert' then
        select a.agency_id, a.kind into agency, kind from enclave.alerts a
        where a.id = (payload ->> 'alert')::uuid and a.practice_id = practice;
    elsif payload ->> 'event' = 'agreement.proposed' then
        select b.agency_id into agency from enclave.baas b
        where b.id = (payload ->> 'agreement')::uuid and b.practice_id = practice;
    end if;
    return query
    select array(
               select distinct u.email from enclave.memberships m join enclave.users u on u.id = m.user_id
               where u.disabled_at is null and (
                   (m.practice_id = practice and m.role = 'practice_owner')
                   or (agency is not null and payload ->> 'event' = 'alert'
                       and m.agency_id = agency and m.role = 'agency_admin'))
               order by 1),
           p.name, (select g.name from enclave.agencies g where g.id = agency), kind
    from enclave.practices p where p.id = practice;
end
$$;
revoke all on function enclave_private.notification_envelope(jsonb) from public;
grant execute on function enclave_private.notification_envelope(jsonb) to enclave_maint;

-- MARK: export

-- The owner's "download our data": freshly re-authenticated. Returns the age public key the
-- practice set (NULL: the owner gives a passphrase).
create or replace function enclave_private.begin_practice_export(practice uuid)
returns text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    recipient text;
begin
    perform enclave_private.require_practice_owner(practice, true);
    select c.age_recipient into recipient from enclave.practice_compliance c where c.practice_id = practice;
    return recipient;
end
$$;
revoke all on function enclave_private.begin_practice_export(uuid) from public;
grant execute on function enclave_private.begin_practice_export(uuid) to enclave_app;
