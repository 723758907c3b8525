-- Least privilege per command: the service role keeps only the table privileges its reads and
-- ingest need (SELECT where it has a read scope; INSERT of leads and recordings for an ingest
-- credential). The per-command policies themselves are in sql/functions/policies.sql.
-- (Rewritten by issue 24, see sql/rewritten: this file once created those policies, and so had to
-- run after the function files.)
do $$
declare
    spec record;
begin
    for spec in
        select * from (values
            ('tracking_sources', true), ('tenant_keys', true), ('leads', true), ('recordings', true),
            ('ingest_replays', false), ('audit_events', false), ('tenant_migrations', true),
            ('webhook_endpoints', true), ('outbox', false)
        ) as t (table_name, readable)
    loop
        execute format('revoke all on enclave.%I from enclave_app', spec.table_name);
        if spec.readable then
            execute format('grant select on enclave.%I to enclave_app', spec.table_name);
        end if;
    end loop;
end
$$;
grant insert on enclave.leads, enclave.recordings to enclave_app;

-- The audit vocabulary: redaction is recorded by its definer function, new leads only by an
-- ingest credential.
update enclave.audit_actions set recorded_by = '{}' where action = 'lead.redacted';
update enclave.audit_actions set recorded_by = '{ingest}' where action = 'lead.created';

-- Redaction checks the owner role itself (redact_lead); the service no longer asks.
drop function if exists enclave_private.caller_has_practice_role(text);
