-- Row-level security: enabled and forced on every tenant table (forced, so that owning a table
-- does not bypass it). With FORCE and no policy a table admits no row to anyone; the policies,
-- which call the gate, live in sql/functions/policies.sql and apply after every numbered file.
-- (Rewritten by issue 24, see sql/rewritten: this file once created the first policies and the
-- audit trigger, and so had to run after the function files.)
do $$
declare
    spec record;
begin
    for spec in
        select * from (values
            ('tracking_sources'), ('tenant_keys'), ('leads'), ('recordings'), ('ingest_replays'),
            ('audit_events'), ('tenant_migrations'), ('webhook_endpoints'), ('outbox')
        ) as t (table_name)
    loop
        execute format('alter table enclave.%I enable row level security', spec.table_name);
        execute format('alter table enclave.%I force row level security', spec.table_name);
    end loop;
end
$$;
