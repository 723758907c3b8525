-- Retention and legal holds: each practice's retention settings, the holds that stop a purge,
-- and the purge itself (enclave compliance work). Tables: 0016_compliance_operations.sql.

-- A practice's compliance settings (defaults when never set), for its owners.
create or replace function enclave_private.compliance_settings(practice uuid)
returns table (recordings_days integer, transcripts_days integer, form_fields_days integer, leads_days integer,
               reads_per_hour integer, hours_start smallint, hours_end smallint, time_zone text, age_recipient text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        perform enclave_private.require_practice_owner(practice, false, 'compliance_needs_practice_owner');
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
    caller record := enclave_private.require_practice_owner(practice, true, 'compliance_needs_practice_owner');
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
        caller := enclave_private.require_practice_owner(practice, false, 'compliance_needs_practice_owner');
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

-- Whether a lead of `practice` is under an active legal hold (of the whole practice, or naming it):
-- redaction and offboarding refuse it, the purge skips it.
create or replace function enclave_private.lead_held(practice uuid, lead uuid)
returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select exists (select from enclave.legal_holds h where h.practice_id = practice and h.released_at is null
                   and (h.lead_ids is null or lead = any (h.lead_ids)))
$$;
revoke all on function enclave_private.lead_held(uuid, uuid) from public;

-- Releases a hold: an owner freshly re-authenticated (a release lets PHI be deleted), or an
-- operator; a hold an operator placed only an operator may release.
create or replace function enclave_private.release_legal_hold(hold uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    person uuid;
    sess uuid;
    practice uuid;
    placer uuid;
begin
    select h.practice_id, h.placed_by into practice, placer from enclave.legal_holds h where h.id = hold;
    if practice is null then
        raise exception 'legal_hold_invalid' using errcode = '22023';
    end if;
    if session_user <> 'enclave_maint' then
        caller := enclave_private.require_practice_owner(practice, true, 'compliance_needs_practice_owner');
        if placer is null then
            raise exception 'legal_hold_needs_operator' using errcode = '42501';
        end if;
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
        perform enclave_private.require_practice_owner(practice, false, 'compliance_needs_practice_owner');
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
