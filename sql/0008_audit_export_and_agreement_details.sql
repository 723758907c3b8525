-- A practice owner downloads the practice's trail as CSV. The download is recorded in the
-- practice's chain, in the transaction that reads the rows, and it needs a fresh session
-- (record_audit checks both).
insert into enclave.audit_actions (action, recorded_by) values ('audit.exported', '{session}');

-- list_baas() became list_agreements(), which also returns the agency's name and the signed
-- document's hash (what a practice owner reads before approving). A new name rather than a new
-- return type: the function files apply before this file on a fresh database, so a drop here
-- must never remove what they create.
drop function if exists enclave_private.list_baas();
