-- Lead value and ROI (issue 15).
--
-- A lead is marked qualified, unqualified or spam, with a sales value, by the practice's owner
-- or by agency staff whose agreement grants the new scope leads.qualify (qualify_lead records it
-- in the trail). Agency admins record ad spend per practice, month and source.
alter table enclave.baas drop constraint baas_scopes_check;
alter table enclave.baas add constraint baas_scopes_check check (
    cardinality(scopes) > 0
    and scopes <@ array['leads.read', 'recordings.listen', 'leads.export', 'tracking.manage', 'leads.qualify']);

alter table enclave.leads
    add column qualification text check (qualification in ('qualified', 'unqualified', 'spam')),
    add column value_cents bigint check (value_cents between 0 and 100000000000),
    add column qualified_at timestamptz,
    add column qualified_by uuid;

create table enclave.ad_spend (
    tenant_id uuid not null references enclave.practices (id),
    month date not null check (extract(day from month) = 1),
    source text not null check (length(source) between 1 and 200),
    amount_cents bigint not null check (amount_cents between 0 and 100000000000),
    recorded_by uuid not null,
    recorded_at timestamptz not null default now(),
    primary key (tenant_id, month, source)
);
alter table enclave.ad_spend enable row level security;
alter table enclave.ad_spend force row level security;
-- Read with the practice's leads (reports); written only through record_ad_spend, which checks
-- the caller's agency and agreement itself (an admin need not be assigned to the practice). The
-- policies: sql/functions/policies.sql.
grant select on enclave.ad_spend to enclave_app;
grant select, insert, update, delete on enclave.ad_spend to enclave_maint;

insert into enclave.audit_actions (action, recorded_by) values
    ('lead.qualified', '{}'),
    ('spend.recorded', '{}'),
    ('conversions.exported', '{session}');
