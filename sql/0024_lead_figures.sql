-- Agency-wide figures from a rollup (issue 27).
--
-- The agency overview and the cross-practice ROI report counted every lead of the period: at
-- 1,000 practices × 1,000 leads the report took 1.6 s, and the overview's count of the week grew
-- with each practice's leads. enclave.lead_figures keeps, per practice, UTC day, source, medium
-- and campaign, the counts and sums those pages are made of (never PHI), maintained in the same
-- statement as every insert, update and delete of leads by triggers that run as
-- enclave_figures (sql/functions/figures.sql). The figures functions read whole days from it and only the partial days at
-- the ends of the period from leads.
--
-- Concurrent inserts into one practice on one day would all update one row and wait on each
-- other's commit; each row is split over eight shards (the inserting backend's pid modulo 8),
-- which the readers add up.
create table enclave.lead_figures (
    tenant_id uuid not null references enclave.practices (id),
    day date not null,
    source text,
    medium text,
    campaign text,
    shard smallint not null check (shard between 0 and 7),
    leads bigint not null default 0,
    calls bigint not null default 0,
    forms bigint not null default 0,
    answered bigint not null default 0,
    missed bigint not null default 0,
    call_seconds bigint not null default 0,
    spam bigint not null default 0,
    qualified bigint not null default 0,
    qualified_value_cents bigint not null default 0,
    constraint lead_figures_key unique nulls not distinct (tenant_id, day, source, medium, campaign, shard)
);
alter table enclave.lead_figures enable row level security;
alter table enclave.lead_figures force row level security;
grant select, insert, update on enclave.lead_figures to enclave_figures;
grant select, delete on enclave.lead_figures to enclave_maint;
-- The triggers that keep it and the backfill of what is already there are in figures.sql, in one
-- transaction, so no insert falls between the two.
