-- MFA and re-authentication codes cannot be guessed (issue 25). Wrong codes are counted in the
-- database, per session and per user: five end a session that has not completed MFA, and twenty
-- in a day lock the user's codes until an operator lifts the lock. Each failure is audited.
alter table enclave.users add column mfa_locked_at timestamptz;
comment on column enclave.users.mfa_locked_at is
    'Set after too many wrong one-time codes: no code is accepted until an operator clears it.';

alter table enclave.sessions add column mfa_failures integer not null default 0 check (mfa_failures >= 0);

insert into enclave.audit_actions (action, recorded_by) values
    ('auth.mfa_failed', '{}'),
    ('auth.mfa_unlocked', '{}');
