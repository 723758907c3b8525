-- Access alerts: raised as things happen (break-glass, covered webhooks) or by the worker's scan
-- of the audit trail, each once (dedup_key), with a PHI-free email queued for the mailer.

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


-- Raises the alerts due as of `as_of` (the worker's clock, at most the database's): per
-- practice, a user who read more leads in the past hour than the practice's threshold, a read
-- outside the practice's hours (once per user and local day), five or more failed sign-ins in
-- the past hour by a user who can reach the practice, and agreements 30, 7 or 1 day from
-- expiry, and patients' requests past their due day. Break-glass and covered webhooks raise theirs
-- as they happen. Returns how many.
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
    -- Failed sign-ins and wrong one-time codes (the platform chain) of users who can reach a practice.
    for found_alert in
        select f.actor_id, f.failures, f.seqs, reach.practice
        from (
            select e.actor_id, count(*) as failures, array_agg(e.seq order by e.seq) as seqs
            from enclave.audit_events e
            where e.tenant_id = platform and e.action in ('auth.login_failed', 'auth.mfa_failed') and e.actor_id is not null
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
    -- Patients' requests past their due day and not done (issue 29): one alert per request.
    for found_alert in
        select r.id, r.practice_id, r.kind, r.due_on from enclave.patient_requests r
        where r.done_at is null and r.due_on < (as_of at time zone 'UTC')::date
    loop
        if enclave_private.raise_alert(
            found_alert.practice_id, null, 'request_overdue', null,
            jsonb_build_object('request', found_alert.id, 'kind', found_alert.kind, 'due_on', found_alert.due_on),
            '{}', 'request_overdue:' || found_alert.id) is not null then
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
        perform enclave_private.require_practice_owner(practice, false, 'compliance_needs_practice_owner');
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
