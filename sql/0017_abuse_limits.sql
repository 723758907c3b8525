-- Holding under abuse (issue 25). One-time codes cannot be guessed: wrong codes are counted in
-- the database, per session and per user (five end a session that has not completed MFA, twenty
-- in a day lock the user's codes until an operator lifts the lock), each audited. Operators'
-- tools that open PHI record it.
alter table enclave.users add column mfa_locked_at timestamptz;
comment on column enclave.users.mfa_locked_at is
    'Set after too many wrong one-time codes: no code is accepted until an operator clears it.';

alter table enclave.sessions add column mfa_failures integer not null default 0 check (mfa_failures >= 0);

insert into enclave.audit_actions (action, recorded_by) values
    ('auth.mfa_failed', '{}'),
    ('auth.mfa_unlocked', '{}');

-- Operators' tools that open PHI record it as a read too (`enclave tenants readable`).
update enclave.audit_actions set recorded_by = array_append(recorded_by, 'maintenance')
where action = 'phi.read' and not 'maintenance' = any (recorded_by);

-- Pool numbers cannot be cycled: a visitor session remembers a pseudonymous key of the address it
-- came from (SHA-256 of the property and the address), so that one address holds a bounded number
-- of a property's pool numbers.
alter table enclave.visitor_sessions add column client_key bytea check (length(client_key) = 32);

-- Refusals of strangers (no valid session, or a practice that does not exist) are counted per
-- client address and minute, not chained one by one into the practice's trail (issue 25).
create table enclave_private.stranger_denials (
    minute timestamptz not null,
    address text not null check (octet_length(address) <= 64),
    denials integer not null check (denials > 0),
    primary key (minute, address)
);
revoke all on enclave_private.stranger_denials from public;
