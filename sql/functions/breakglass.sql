-- Break-glass (45 CFR 164.312(a)(2)(ii)): platform responders, and the emergency, read-only,
-- time-limited access they open to one practice, which its owners see and acknowledge. The gate
-- (gate.sql, session_reach) grants the read scopes through an open break-glass.

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
        perform enclave_private.require_practice_owner(practice, false, 'compliance_needs_practice_owner');
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
    caller := enclave_private.require_practice_owner(practice, false, 'compliance_needs_practice_owner');
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
