-- enclave:after-functions
-- Least privilege per command. Each FOR ALL policy of 0004 becomes policies per command and
-- per role, and the service role keeps only the table privileges its reads and ingest need:
--
--   enclave_app   SELECT with a read scope, through the gate (reachable_tenant). A session
--                 never writes a tenant table directly: settings (sources, webhooks),
--                 redaction and ingest credentials change only through definer functions
--                 that check the caller. An ingest credential INSERTs its own source's leads
--                 and recordings, and reads nothing (sql/functions/ingest.sql gives it what
--                 idempotency needs).
--   enclave_maint every command on the one tenant of its maintenance context.
--   enclave_owner the owner's definer functions: on the caller's practice only
--                 (caller_tenant), except the cross-tenant reads of the audit trail, the
--                 tenant migration summary and the due deliveries.
--
-- This file needs the functions (caller_tenant, ingest_credential), hence the marker.
do $$
declare
    spec record;
    command text;
begin
    for spec in
        select * from (values
            ('tracking_sources', 'leads.read'),
            ('tenant_keys', 'leads.read'),
            ('leads', 'leads.read'),
            ('recordings', 'recordings.listen'),
            ('ingest_replays', null),
            ('audit_events', null),
            ('tenant_migrations', 'leads.read'),
            ('webhook_endpoints', 'leads.read'),
            ('outbox', null)
        ) as t (table_name, read_scope)
    loop
        execute format('drop policy if exists tenant_gate on enclave.%I', spec.table_name);
        execute format('drop policy if exists owner_functions on enclave.%I', spec.table_name);
        execute format('revoke all on enclave.%I from enclave_app', spec.table_name);
        if spec.read_scope is not null then
            execute format(
                'create policy app_select on enclave.%I for select to enclave_app '
                'using (tenant_id = (select enclave_private.reachable_tenant(%L)))',
                spec.table_name, spec.read_scope);
            execute format('grant select on enclave.%I to enclave_app', spec.table_name);
        end if;
        foreach command in array array['select', 'insert', 'update', 'delete'] loop
            execute format(
                'create policy maint_%s on enclave.%I for %s to enclave_maint %s',
                command, spec.table_name, command,
                case command
                    when 'insert' then 'with check (tenant_id = (select enclave_private.reachable_tenant(''maintenance'')))'
                    when 'update' then 'using (tenant_id = (select enclave_private.reachable_tenant(''maintenance''))) '
                                       'with check (tenant_id = (select enclave_private.reachable_tenant(''maintenance'')))'
                    else 'using (tenant_id = (select enclave_private.reachable_tenant(''maintenance'')))'
                end);
            execute format(
                'create policy owner_%s on enclave.%I for %s to enclave_owner %s',
                command, spec.table_name, command,
                case
                    when command = 'select' and spec.table_name in ('audit_events', 'tenant_migrations', 'outbox')
                        then 'using (true)'
                    -- Every chain, for append_audit_event; an update or delete reaches the rows
                    -- so that the append-only trigger refuses it (outside retention).
                    when spec.table_name = 'audit_events' then
                        case command when 'insert' then 'with check (true)'
                                     when 'update' then 'using (true) with check (true)' else 'using (true)' end
                    when command = 'insert' then 'with check (tenant_id = (select enclave_private.caller_tenant()))'
                    when command = 'update' then 'using (tenant_id = (select enclave_private.caller_tenant())) '
                                                 'with check (tenant_id = (select enclave_private.caller_tenant()))'
                    else 'using (tenant_id = (select enclave_private.caller_tenant()))'
                end);
        end loop;
    end loop;
end
$$;

-- An ingest credential inserts its own source's leads, and recordings of its own source's calls.
create policy ingest_insert on enclave.leads for insert to enclave_app
    with check ((tenant_id, source_id) = (select c.tenant_id, c.source_id from enclave_private.ingest_credential() c));
create policy ingest_insert on enclave.recordings for insert to enclave_app
    with check (tenant_id = (select c.tenant_id from enclave_private.ingest_credential() c)
                and enclave_private.ingest_owns_call(tenant_id, lead_id));
grant insert on enclave.leads, enclave.recordings to enclave_app;

-- The audit vocabulary: redaction is recorded by its definer function, new leads only by an
-- ingest credential.
update enclave.audit_actions set recorded_by = '{}' where action = 'lead.redacted';
update enclave.audit_actions set recorded_by = '{ingest}' where action = 'lead.created';

-- Redaction checks the owner role itself (redact_lead); the service no longer asks.
drop function if exists enclave_private.caller_has_practice_role(text);
