-- The mailer's side of notifications: what is due, across tenants, and who each goes to with
-- the names its template may use (never PHI).

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
