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

-- The ROI report's figures for every practice the caller reaches for figures now: those of each
-- agency the caller belongs to whose agreement is in force and grants leads.read (an admin's
-- every one, a member's those assigned), and the caller's own practices. For the days
-- since ..< until, by week from Monday: 'leads' rows (per source, medium and campaign: leads,
-- qualified ones, their value; spam left out) and 'spend' rows (per source: each month's spend
-- spread evenly over its days). One statement: an agreement ended a statement ago counts nothing.
create or replace function enclave_private.reachable_value(since timestamptz, until timestamptz)
returns table (row_kind text, practice_id uuid, week timestamptz, source text, medium text, campaign text,
               leads bigint, qualified bigint, value_cents bigint, spend_cents bigint)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if since is null or until is null or until <= since or until - since > interval '400 days' then
        raise exception 'figures_period_invalid' using errcode = '22023';
    end if;
    return query
    with reach as (
        select b.practice_id
        from enclave.baas b
        join enclave.practices p on p.id = b.practice_id and p.status = 'active'
        join enclave.memberships m on m.agency_id = b.agency_id and m.user_id = caller.user_id
        where b.status = 'active' and b.effective_at <= statement_timestamp()
          and (b.expires_at is null or statement_timestamp() < b.expires_at) and 'leads.read' = any (b.scopes)
          and (m.role = 'agency_admin' or exists (
              select from enclave.agency_assignments a
              where a.agency_id = b.agency_id and a.practice_id = b.practice_id and a.user_id = caller.user_id))
        union
        select m.practice_id
        from enclave.memberships m join enclave.practices p on p.id = m.practice_id and p.status = 'active'
        where m.user_id = caller.user_id
    )
    select 'leads', l.tenant_id, date_trunc('week', l.occurred_at, 'UTC'), l.source, l.medium, l.campaign,
           count(*)::int8, count(*) filter (where l.qualification = 'qualified')::int8,
           coalesce(sum(l.value_cents) filter (where l.qualification = 'qualified'), 0)::int8, 0::int8
    from reach r
    join enclave.leads l on l.tenant_id = r.practice_id and l.occurred_at >= since and l.occurred_at < until
    where l.qualification is distinct from 'spam'
    group by 2, 3, 4, 5, 6
    union all
    select 'spend', s.tenant_id, date_trunc('week', d, 'UTC'), s.source, null, null, 0::int8, 0::int8, 0::int8,
           round(sum(s.amount_cents::numeric
                     / extract(day from (s.month + interval '1 month' - interval '1 day'))))::int8
    from reach r
    join enclave.ad_spend s on s.tenant_id = r.practice_id
         and s.month >= date_trunc('month', since at time zone 'UTC')::date and s.month < (until at time zone 'UTC')::date
    cross join lateral generate_series(
        greatest(s.month::timestamp at time zone 'UTC', since),
        least((s.month + interval '1 month')::timestamp at time zone 'UTC', until) - interval '1 day',
        interval '1 day') d
    group by 2, 3, 4;
end
$$;
alter function enclave_private.reachable_value(timestamptz, timestamptz) owner to enclave_figures;
revoke all on function enclave_private.reachable_value(timestamptz, timestamptz) from public;
grant execute on function enclave_private.reachable_value(timestamptz, timestamptz) to enclave_app;
