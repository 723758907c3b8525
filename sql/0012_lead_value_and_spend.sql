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
-- the caller's agency and agreement itself (an admin need not be assigned to the practice).
create policy app_select on enclave.ad_spend for select to enclave_app
    using (tenant_id = (select enclave_private.reachable_tenant('leads.read')));
grant select on enclave.ad_spend to enclave_app;
create policy maint_select on enclave.ad_spend for select to enclave_maint
    using (tenant_id = (select enclave_private.reachable_tenant('maintenance')));
create policy maint_insert on enclave.ad_spend for insert to enclave_maint
    with check (tenant_id = (select enclave_private.reachable_tenant('maintenance')));
create policy maint_update on enclave.ad_spend for update to enclave_maint
    using (tenant_id = (select enclave_private.reachable_tenant('maintenance')))
    with check (tenant_id = (select enclave_private.reachable_tenant('maintenance')));
create policy maint_delete on enclave.ad_spend for delete to enclave_maint
    using (tenant_id = (select enclave_private.reachable_tenant('maintenance')));
create policy owner_select on enclave.ad_spend for select to enclave_owner using (true);
create policy owner_insert on enclave.ad_spend for insert to enclave_owner with check (true);
create policy owner_update on enclave.ad_spend for update to enclave_owner using (true) with check (true);
create policy owner_delete on enclave.ad_spend for delete to enclave_owner using (true);
grant select, insert, update, delete on enclave.ad_spend to enclave_maint;

insert into enclave.audit_actions (action, recorded_by) values
    ('lead.qualified', '{}'),
    ('spend.recorded', '{}'),
    ('conversions.exported', '{session}');
