-- Row-level security: every policy of every tenant table, in one place, applied after every
-- numbered migration and every function file (the policies call the gate, gate.sql). The
-- numbered files create tables and ENABLE and FORCE row-level security on them; with FORCE and no
-- policy, nobody reads or writes a row, so a table is closed until this file opens it. This file
-- drops every policy of the application schemas and creates them again, so a fresh database and
-- an upgraded one end with the same set. Least privilege per command:
--
--   enclave_app   SELECT with a read scope, through the gate (reachable_tenant). A session
--                 never writes a tenant table directly: settings (sources, webhooks),
--                 redaction and ingest credentials change only through definer functions
--                 that check the caller. An ingest credential INSERTs its own source's leads
--                 and recordings, and reads nothing (ingest.sql gives it what idempotency needs).
--   enclave_maint every command on the one tenant of its maintenance context.
--   enclave_owner the owner's definer functions: on the caller's practice only (caller_tenant),
--                 except where the table's row below says "every tenant".
--
-- A new tenant table is one row of the table below.
do $$
declare
    spec record;
    policy record;
    command text;
    maintenance constant text := '(tenant_id = (select enclave_private.reachable_tenant(''maintenance'')))';
    caller constant text := '(tenant_id = (select enclave_private.caller_tenant()))';
    grantee record;
begin
    for policy in
        select p.schemaname, p.tablename, p.policyname from pg_policies p
        where p.schemaname in ('enclave', 'enclave_private', 'enclave_meta')
    loop
        execute format('drop policy %I on %I.%I', policy.policyname, policy.schemaname, policy.tablename);
    end loop;
    for spec in
        select * from (values
            -- table               app read scope       the owner's functions reach every tenant to
            ('tracking_sources',  'leads.read',         '{}'::text[]),
            ('tenant_keys',       'leads.read',         '{}'),
            ('leads',             'leads.read',         '{}'),
            ('recordings',        'recordings.listen',  '{}'),
            ('ingest_replays',    null,                 '{}'),
            -- append_audit_event writes every chain; an update or delete reaches the rows so
            -- that the append-only trigger refuses it (outside retention).
            ('audit_events',      null,                 '{select,insert,update,delete}'),
            ('tenant_migrations', 'leads.read',         '{select}'),
            ('webhook_endpoints', 'leads.read',         '{}'),
            ('outbox',            null,                 '{select}'),
            ('recording_fetches', null,                 '{select}'),
            ('visitor_sessions',  null,                 '{}'),
            ('ad_spend',          'leads.read',         '{select,insert,update,delete}'),
            -- Counts only, read through the figures functions; written by the leads' triggers.
            ('lead_figures',      null,                 '{}'),
            -- A practice's keyword sets: changed through save_keyword_set and delete_keyword_set.
            ('keyword_sets',      'leads.read',         '{}')
        ) as t (table_name, read_scope, owner_every_tenant)
    loop
        if spec.read_scope is not null then
            execute format(
                'create policy app_select on enclave.%I for select to enclave_app '
                'using (tenant_id = (select enclave_private.reachable_tenant(%L)))',
                spec.table_name, spec.read_scope);
        end if;
        -- Per command, for the maintenance role and for the owner's definer functions.
        foreach command in array array['select', 'insert', 'update', 'delete'] loop
            for grantee in
                select * from (values
                    ('maint', 'enclave_maint', maintenance),
                    ('owner', 'enclave_owner',
                     case when command = any (spec.owner_every_tenant) then '(true)' else caller end)
                ) as g (prefix, role_name, predicate)
            loop
                execute format(
                    'create policy %s_%s on enclave.%I for %s to %I %s',
                    grantee.prefix, command, spec.table_name, command, grantee.role_name,
                    case command
                        when 'insert' then 'with check ' || grantee.predicate
                        when 'update' then 'using ' || grantee.predicate || ' with check ' || grantee.predicate
                        else 'using ' || grantee.predicate
                    end);
            end loop;
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

-- The definer functions queue PHI-free notifications (alerts, agreement proposals) into the
-- practice's outbox for the mailer, whoever the caller is; webhooks stay as before.
create policy owner_notify on enclave.outbox for insert to enclave_owner
    with check (kind = 'notification' and endpoint_id is null);

-- Agency-wide figures (figures.sql) count the leads of every practice an agency's agreements
-- reach, through the columns of leads that are not PHI (the only ones enclave_figures may read).
create policy figures_select on enclave.leads for select to enclave_figures using (true);
create policy figures_select on enclave.ad_spend for select to enclave_figures using (true);
-- The rollup of those columns (0024_lead_figures.sql), kept by the triggers on leads (figures.sql).
create policy figures_select on enclave.lead_figures for select to enclave_figures using (true);
create policy figures_insert on enclave.lead_figures for insert to enclave_figures with check (true);
create policy figures_update on enclave.lead_figures for update to enclave_figures using (true) with check (true);
