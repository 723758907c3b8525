-- Agency-wide figures: counts and sums over leads, never PHI, for every practice the caller's
-- agency has an agreement in force with, in one query. Owned by enclave_figures
-- (0021_agency_figures.sql), which reads only the columns of leads that are not PHI.

-- Leads per practice in since ..< until for `agency`: an agency admin gets every practice whose
-- agreement with the agency is in force and grants leads.read, assigned or not; a member those of
-- them they are assigned to. The agreement is checked in this statement: one revoked or expired
-- a statement ago is not counted.
create or replace function enclave_private.agency_figures(agency uuid, since timestamptz, until timestamptz)
returns table (practice_id uuid, leads bigint, calls bigint, forms bigint, answered bigint, missed bigint,
               call_seconds bigint)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    admin boolean;
begin
    if since is null or until is null or until <= since or until - since > interval '400 days' then
        raise exception 'figures_period_invalid' using errcode = '22023';
    end if;
    select bool_or(m.role = 'agency_admin') into admin
    from enclave.memberships m where m.user_id = caller.user_id and m.agency_id = agency;
    if admin is null then
        raise exception 'figures_need_agency_member' using errcode = '42501';
    end if;
    return query
    with reach as (
        select b.practice_id
        from enclave.baas b join enclave.practices p on p.id = b.practice_id and p.status = 'active'
        where b.agency_id = agency and b.status = 'active' and b.effective_at <= statement_timestamp()
          and (b.expires_at is null or statement_timestamp() < b.expires_at) and 'leads.read' = any (b.scopes)
          and (admin or exists (
              select from enclave.agency_assignments a
              where a.agency_id = agency and a.practice_id = b.practice_id and a.user_id = caller.user_id))
        group by b.practice_id
    )
    select r.practice_id, count(l.tenant_id), count(l.tenant_id) filter (where l.kind = 'call'),
           count(l.tenant_id) filter (where l.kind = 'form'),
           count(l.tenant_id) filter (where l.kind = 'call' and l.disposition = 'answered'),
           count(l.tenant_id) filter (where l.kind = 'call' and l.disposition <> 'answered'),
           coalesce(sum(l.duration_seconds), 0)::int8
    from reach r
    left join enclave.leads l on l.tenant_id = r.practice_id and l.occurred_at >= since and l.occurred_at < until
    group by r.practice_id;
end
$$;
alter function enclave_private.agency_figures(uuid, timestamptz, timestamptz) owner to enclave_figures;
grant execute on function enclave_private.require_session() to enclave_figures;
revoke all on function enclave_private.agency_figures(uuid, timestamptz, timestamptz) from public;
grant execute on function enclave_private.agency_figures(uuid, timestamptz, timestamptz) to enclave_app;
