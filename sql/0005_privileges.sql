-- Table privileges, in one place. Function privileges stand next to each function in
-- sql/functions/.
--
-- enclave_app, the service: DML on the tenant tables it works (row-level security confines
-- every row to the tenant its credential reaches), no privilege on identity tables, and no
-- direct access to the audit trail (it appends through enclave_private.record_audit).
grant select, insert, update, delete on enclave.tracking_sources, enclave.leads, enclave.recordings
    to enclave_app;
grant select, insert, update on enclave.tenant_keys to enclave_app;
grant select, insert, delete on enclave.ingest_replays to enclave_app;
-- Endpoints can receive PHI: only a practice owner adds or removes them, through functions.
grant select on enclave.webhook_endpoints to enclave_app;
grant select, insert on enclave.outbox to enclave_app;
grant select on enclave.tenant_migrations to enclave_app;
grant select on enclave.master_keys to enclave_app;

-- enclave_maint, the operators' tools (keys, tenant migrations, offboarding, webhook delivery):
-- one tenant per transaction through its maintenance context, plus the organizations it manages.
grant select, insert, update, delete on
    enclave.tracking_sources, enclave.leads, enclave.recordings, enclave.webhook_endpoints, enclave.outbox
    to enclave_maint;
grant select, insert, update on enclave.tenant_keys to enclave_maint;
grant select, insert, delete on enclave.ingest_replays to enclave_maint;
grant select on enclave.audit_events to enclave_maint;
grant select, insert, update on enclave.tenant_migrations to enclave_maint;
grant select, insert on enclave.practices to enclave_maint;
grant select, insert, update on enclave.master_keys to enclave_maint;
grant select, insert on enclave.agencies to enclave_maint;
grant select, insert, update (display_name, password_phc, password_verifier, password_changed_at, disabled_at, totp_secret)
    on enclave.users to enclave_maint;
grant select, insert, delete on enclave.memberships to enclave_maint;
grant select on enclave.baas, enclave.baa_events, enclave.agency_assignments to enclave_maint;
grant select, update (revoked_at) on enclave.sessions to enclave_maint;
