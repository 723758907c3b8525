-- Agency-wide figures: counts and sums over leads, never PHI, for every practice the caller's
-- agency has an agreement in force with, in one query. Owned by enclave_figures
-- (0021_agency_figures.sql), which reads only the columns of leads that are not PHI.

-- The figures of the leads of `practices` in since ..< until, as rows to add up: the rollup's rows
-- (0024_lead_figures.sql) for the whole UTC days inside the period, and for the partial days at
-- its ends the leads themselves, counted per day here. `at` is the start of the UTC day. Called
-- once per statement by the functions below (as enclave_figures) with the practices they have
-- checked.
drop function if exists enclave_private.lead_figures_between(uuid, timestamptz, timestamptz);
create or replace function enclave_private.lead_figures_between(practices uuid[], since timestamptz, until timestamptz)
returns table (tenant_id uuid, at timestamptz, source text, medium text, campaign text, leads bigint, calls bigint,
               forms bigint, answered bigint, missed bigint, call_seconds bigint, spam bigint, qualified bigint,
               qualified_value_cents bigint)
language sql stable set search_path = pg_catalog, pg_temp
as $$
    with days as (
        -- first: the start of the first whole day; last: the start of the day `until` falls in.
        select case when date_trunc('day', since, 'UTC') = since then since
                    else date_trunc('day', since, 'UTC') + interval '1 day' end as first,
               date_trunc('day', until, 'UTC') as last
    )
    select f.tenant_id, (f.day::timestamp at time zone 'UTC'), f.source, f.medium, f.campaign, f.leads, f.calls,
           f.forms, f.answered, f.missed, f.call_seconds, f.spam, f.qualified, f.qualified_value_cents
    from days, enclave.lead_figures f
    where f.tenant_id = any (practices) and days.first < days.last
      and f.day >= (days.first at time zone 'UTC')::date and f.day < (days.last at time zone 'UTC')::date
    union all
    select l.tenant_id, date_trunc('day', l.occurred_at, 'UTC'), l.source, l.medium, l.campaign, count(*),
           count(*) filter (where l.kind = 'call'), count(*) filter (where l.kind = 'form'),
           count(*) filter (where l.kind = 'call' and l.disposition = 'answered'),
           count(*) filter (where l.kind = 'call' and l.disposition <> 'answered'),
           coalesce(sum(l.duration_seconds), 0), count(*) filter (where l.qualification = 'spam'),
           count(*) filter (where l.qualification = 'qualified'),
           coalesce(sum(l.value_cents) filter (where l.qualification = 'qualified'), 0)
    from days, enclave.leads l
    where l.tenant_id = any (practices)
      and ((l.occurred_at >= since and l.occurred_at < least(days.first, until))
           or (l.occurred_at >= greatest(days.first, days.last) and l.occurred_at < until))
    group by 1, 2, 3, 4, 5
$$;
alter function enclave_private.lead_figures_between(uuid[], timestamptz, timestamptz) owner to enclave_figures;
revoke all on function enclave_private.lead_figures_between(uuid[], timestamptz, timestamptz) from public;

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
    select r.practice_id, coalesce(sum(c.leads), 0)::int8, coalesce(sum(c.calls), 0)::int8,
           coalesce(sum(c.forms), 0)::int8, coalesce(sum(c.answered), 0)::int8, coalesce(sum(c.missed), 0)::int8,
           coalesce(sum(c.call_seconds), 0)::int8
    from reach r
    left join enclave_private.lead_figures_between(array(select x.practice_id from reach x), since, until) c
        on c.tenant_id = r.practice_id
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
    select 'leads', c.tenant_id, date_trunc('week', c.at, 'UTC'), c.source, c.medium, c.campaign,
           sum(c.leads - c.spam)::int8, sum(c.qualified)::int8, sum(c.qualified_value_cents)::int8, 0::int8
    from enclave_private.lead_figures_between(array(select x.practice_id from reach x), since, until) c
    group by 2, 3, 4, 5, 6
    having sum(c.leads - c.spam) > 0
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

-- The rollup (0024_lead_figures.sql): each statement that inserts, updates or deletes leads adds
-- what its rows change to enclave.lead_figures, in key order (two statements touching the same
-- rows lock them in one order), leaving out groups whose figures it does not change
-- (re-encryption, redaction). Runs as enclave_figures and reads only the columns that are not PHI.
-- The change goes to this backend's shard, so a shard may go below zero (a lead counted by one
-- backend and deleted by another); the sum of a group's shards is exact.
create or replace function enclave_private.lead_figures_add(added enclave.leads[], removed enclave.leads[])
returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp
as $$
begin
    insert into enclave.lead_figures as f (tenant_id, day, source, medium, campaign, shard, leads, calls, forms,
                                           answered, missed, call_seconds, spam, qualified, qualified_value_cents)
    select g.*
    from (
        select c.tenant_id, c.day, c.source, c.medium, c.campaign, (pg_backend_pid() % 8)::int2,
               coalesce(sum(c.sign), 0), coalesce(sum(c.sign) filter (where c.kind = 'call'), 0),
               coalesce(sum(c.sign) filter (where c.kind = 'form'), 0),
               coalesce(sum(c.sign) filter (where c.kind = 'call' and c.disposition = 'answered'), 0),
               coalesce(sum(c.sign) filter (where c.kind = 'call' and c.disposition <> 'answered'), 0),
               coalesce(sum(c.sign * c.duration_seconds), 0),
               coalesce(sum(c.sign) filter (where c.qualification = 'spam'), 0),
               coalesce(sum(c.sign) filter (where c.qualification = 'qualified'), 0),
               coalesce(sum(c.sign * c.value_cents) filter (where c.qualification = 'qualified'), 0)
        from (
            select 1 as sign, n.tenant_id, (n.occurred_at at time zone 'UTC')::date as day, n.source, n.medium,
                   n.campaign, n.kind, n.disposition, n.duration_seconds, n.qualification, n.value_cents
            from unnest(added) n
            union all
            select -1, o.tenant_id, (o.occurred_at at time zone 'UTC')::date, o.source, o.medium, o.campaign, o.kind,
                   o.disposition, o.duration_seconds, o.qualification, o.value_cents
            from unnest(removed) o
        ) c
        group by c.tenant_id, c.day, c.source, c.medium, c.campaign
    ) g (tenant_id, day, source, medium, campaign, shard, leads, calls, forms, answered, missed, call_seconds, spam,
         qualified, qualified_value_cents)
    where (g.leads, g.calls, g.forms, g.answered, g.missed, g.call_seconds, g.spam, g.qualified,
           g.qualified_value_cents) <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
    order by g.tenant_id, g.day, g.source, g.medium, g.campaign
    on conflict on constraint lead_figures_key do update
    set leads = f.leads + excluded.leads, calls = f.calls + excluded.calls, forms = f.forms + excluded.forms,
        answered = f.answered + excluded.answered, missed = f.missed + excluded.missed,
        call_seconds = f.call_seconds + excluded.call_seconds, spam = f.spam + excluded.spam,
        qualified = f.qualified + excluded.qualified,
        qualified_value_cents = f.qualified_value_cents + excluded.qualified_value_cents;
end
$$;
alter function enclave_private.lead_figures_add(enclave.leads[], enclave.leads[]) owner to enclave_figures;
revoke all on function enclave_private.lead_figures_add(enclave.leads[], enclave.leads[]) from public;

create or replace function enclave_private.lead_figures_apply() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_op = 'INSERT' then
        perform enclave_private.lead_figures_add(array(select n::enclave.leads from added n), '{}');
    elsif tg_op = 'DELETE' then
        perform enclave_private.lead_figures_add('{}', array(select o::enclave.leads from removed o));
    else
        perform enclave_private.lead_figures_add(array(select n::enclave.leads from added n), array(select o::enclave.leads from removed o));
    end if;
    return null;
end
$$;
alter function enclave_private.lead_figures_apply() owner to enclave_figures;
revoke all on function enclave_private.lead_figures_apply() from public;

-- The first time (the triggers do not exist yet), the rollup is built from the leads already
-- there, in this transaction, which also creates the triggers: creating a trigger locks leads
-- against writes until the commit, so no lead is counted twice or missed.
do $$
declare
    first_time boolean := not exists (select from pg_trigger t where t.tgname = 'lead_figures_insert'
                                      and t.tgrelid = 'enclave.leads'::regclass);
begin
    drop trigger if exists lead_figures_insert on enclave.leads;
    drop trigger if exists lead_figures_update on enclave.leads;
    drop trigger if exists lead_figures_delete on enclave.leads;
    create trigger lead_figures_insert after insert on enclave.leads referencing new table as added
        for each statement execute function enclave_private.lead_figures_apply();
    create trigger lead_figures_update after update on enclave.leads referencing new table as added
        old table as removed for each statement execute function enclave_private.lead_figures_apply();
    create trigger lead_figures_delete after delete on enclave.leads referencing old table as removed
        for each statement execute function enclave_private.lead_figures_apply();
    if first_time then
        -- enclave_figures reads these columns of leads and writes the rollup; the policies that
        -- let it are policies.sql's, which runs later, so this transaction opens them for itself.
        create policy lead_figures_backfill on enclave.lead_figures for insert to enclave_figures with check (true);
        create policy lead_figures_backfill on enclave.leads for select to enclave_figures using (true);
        set local role enclave_figures;
        insert into enclave.lead_figures (tenant_id, day, source, medium, campaign, shard, leads, calls, forms,
                                          answered, missed, call_seconds, spam, qualified, qualified_value_cents)
        select l.tenant_id, (l.occurred_at at time zone 'UTC')::date, l.source, l.medium, l.campaign, 0, count(*),
               count(*) filter (where l.kind = 'call'), count(*) filter (where l.kind = 'form'),
               count(*) filter (where l.kind = 'call' and l.disposition = 'answered'),
               count(*) filter (where l.kind = 'call' and l.disposition <> 'answered'),
               coalesce(sum(l.duration_seconds), 0), count(*) filter (where l.qualification = 'spam'),
               count(*) filter (where l.qualification = 'qualified'),
               coalesce(sum(l.value_cents) filter (where l.qualification = 'qualified'), 0)
        from enclave.leads l
        group by 1, 2, 3, 4, 5;
        reset role;
        drop policy lead_figures_backfill on enclave.lead_figures;
        drop policy lead_figures_backfill on enclave.leads;
    end if;
end
$$;
