-- Covering indexes for the gate's lookups (issue 16; sql/functions/gate.sql, session_reach):
-- the agreement and the assignment are read from the index alone.
create index baas_reach on enclave.baas (practice_id, agency_id) include (status, effective_at, expires_at, scopes);
drop index enclave.baas_practice;
create index agency_assignments_reach on enclave.agency_assignments (user_id, practice_id) include (agency_id);
drop index enclave.agency_assignments_user;
