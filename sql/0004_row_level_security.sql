-- enclave:after-functions
-- Row-level security: enabled and forced on every tenant table (forced, so that owning a table
-- does not bypass it), with one policy per table that admits a row only when
-- (select enclave_private.reachable_tenant(scope)) returns its tenant (sql/functions/gate.sql).
-- The sub-select makes PostgreSQL evaluate the gate once per statement, not once per row.
-- This file needs the gate and the audit trigger function, hence the marker on its first line:
-- the runner applies the function files before it.
do $$
declare
    spec record;
begin
    for spec in
        select * from (values
            ('tracking_sources', 'leads.read'),
            ('tenant_keys', 'leads.read'),
            ('leads', 'leads.read'),
            ('recordings', 'recordings.listen'),
            ('ingest_replays', 'leads.read'),
            ('audit_events', 'leads.read'),
            ('tenant_migrations', 'leads.read'),
            ('webhook_endpoints', 'leads.read'),
            ('outbox', 'leads.read')
        ) as t (table_name, scope)
    loop
        execute format('alter table enclave.%I enable row level security', spec.table_name);
        execute format('alter table enclave.%I force row level security', spec.table_name);
        execute format(
            'create policy tenant_gate on enclave.%I for all '
            'using (tenant_id = (select enclave_private.reachable_tenant(%L))) '
            'with check (tenant_id = (select enclave_private.reachable_tenant(%L)))',
            spec.table_name, spec.scope, spec.scope
        );
    end loop;
end
$$;

-- The owner's SECURITY DEFINER functions read these across tenants: the audit views and
-- verify, the tenant migration summary, the webhook worker's due deliveries.
create policy owner_functions on enclave.audit_events for all to enclave_owner using (true) with check (true);
create policy owner_functions on enclave.tenant_migrations for all to enclave_owner using (true) with check (true);
create policy owner_functions on enclave.outbox for all to enclave_owner using (true) with check (true);

-- Nobody updates, deletes or truncates audit events, not even the owner, except inside
-- enclave_private.apply_audit_retention, which records what it removed in the chain itself.
create trigger audit_events_immutable before update or delete on enclave.audit_events
    for each row execute function enclave_private.audit_events_immutable();
create trigger audit_events_no_truncate before truncate on enclave.audit_events
    for each statement execute function enclave_private.audit_events_immutable();
