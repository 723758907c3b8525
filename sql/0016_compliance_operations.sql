-- Compliance operations (issue 17): break-glass access, retention and legal holds, access
-- alerts. The tables are global, hold ids and settings only (never PHI), and the service role
-- has no privilege on them: it reaches them through the definer functions of
-- sql/functions/compliance.sql, which check the caller themselves.

-- Platform responders: the people an operator lets open emergency access (break-glass).
create table enclave.platform_responders (
    user_id uuid primary key references enclave.users (id),
    granted_at timestamptz not null default now()
);

-- Emergency, read-only access of one responder session to one practice, at most an hour.
-- The gate honours it until expires_at by the statement's clock (sql/functions/gate.sql).
-- The reason is shown to the practice's owner; it stays out of the audit trail and of email.
create table enclave.break_glass (
    id uuid primary key default gen_random_uuid(),
    practice_id uuid not null references enclave.practices (id),
    responder_id uuid not null references enclave.users (id),
    session_id uuid not null references enclave.sessions (id),
    reason text not null check (length(reason) between 10 and 500),
    opened_at timestamptz not null default now(),
    expires_at timestamptz not null,
    ended_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by uuid references enclave.users (id),
    check (expires_at > opened_at and expires_at <= opened_at + interval '1 hour')
);
create index break_glass_reach on enclave.break_glass (session_id, practice_id) include (expires_at, ended_at);
create index break_glass_by_practice on enclave.break_glass (practice_id, opened_at desc);

-- A practice's retention (days per kind of data; NULL keeps it), its alert thresholds, its
-- business hours (local hours [hours_start, hours_end); start > end spans midnight) and the age
-- public key exports are encrypted to.
create table enclave.practice_compliance (
    practice_id uuid primary key references enclave.practices (id),
    recordings_days integer check (recordings_days between 1 and 36500),
    transcripts_days integer check (transcripts_days between 1 and 36500),
    form_fields_days integer check (form_fields_days between 1 and 36500),
    leads_days integer check (leads_days between 1 and 36500),
    reads_per_hour integer not null default 200 check (reads_per_hour between 1 and 1000000),
    hours_start smallint not null default 0 check (hours_start between 0 and 23),
    hours_end smallint not null default 24 check (hours_end between 1 and 24),
    time_zone text not null default 'UTC' check (length(time_zone) between 1 and 64),
    age_recipient text check (age_recipient ~ '^age1[02-9ac-hj-np-z]{58}$'),
    updated_at timestamptz not null default now()
);

-- Legal holds: while one is active, nothing it covers is purged and the practice cannot be
-- offboarded. lead_ids NULL holds the whole practice. placed_by NULL: an operator placed it.
create table enclave.legal_holds (
    id uuid primary key default gen_random_uuid(),
    practice_id uuid not null references enclave.practices (id),
    lead_ids uuid[] check (lead_ids is null or cardinality(lead_ids) between 1 and 10000),
    reason text not null check (length(reason) between 3 and 500),
    placed_by uuid references enclave.users (id),
    placed_at timestamptz not null default now(),
    released_at timestamptz,
    released_by uuid references enclave.users (id)
);
create index legal_holds_active on enclave.legal_holds (practice_id) where released_at is null;

-- Access alerts: PHI-free (kinds, counts, ids), each linked to the audit events behind it. A
-- practice's owners see its alerts; an agency's admins see those about the agency's staff.
-- dedup_key makes each alert once (per user and hour, per day, per agreement and threshold).
create table enclave.alerts (
    id uuid primary key default gen_random_uuid(),
    practice_id uuid not null references enclave.practices (id),
    agency_id uuid references enclave.agencies (id),
    kind text not null check (kind in (
        'reads_volume', 'after_hours', 'failed_signins', 'break_glass', 'webhook_covered', 'agreement_expiry')),
    subject_user_id uuid references enclave.users (id),
    details jsonb not null default '{}' check (octet_length(details::text) <= 2048),
    audit_seqs bigint[] not null default '{}',
    dedup_key text not null unique,
    created_at timestamptz not null default now(),
    acknowledged_at timestamptz,
    acknowledged_by uuid references enclave.users (id)
);
create index alerts_by_practice on enclave.alerts (practice_id, created_at desc);
create index alerts_by_agency on enclave.alerts (agency_id, created_at desc) where agency_id is not null;

-- The definer functions queue PHI-free notifications (alerts, agreement proposals) into the
-- practice's outbox for the mailer: the policy owner_notify, in sql/functions/policies.sql.
-- (Rewritten by issue 24, see sql/rewritten: the policy was once created here.)

insert into enclave.audit_actions (action, recorded_by) values
    ('breakglass.opened', '{}'),
    ('breakglass.ended', '{}'),
    ('breakglass.acknowledged', '{}'),
    ('responder.granted', '{}'),
    ('responder.revoked', '{}'),
    ('compliance.settings_changed', '{}'),
    ('legal_hold.placed', '{}'),
    ('legal_hold.released', '{}'),
    ('retention.purged', '{maintenance}');
