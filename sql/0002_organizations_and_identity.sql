-- Global tables: the tenants (practices), agencies, people, agreements, sessions, the ingest
-- credentials and the audit vocabulary. They hold no PHI. The service role has no privilege on
-- them: it reaches them only through the SECURITY DEFINER functions in sql/functions/, which
-- check the caller's credential themselves (grants: 0005_privileges.sql).

create table enclave.practices (
    id uuid primary key default gen_random_uuid(),
    name text not null check (length(name) between 1 and 200),
    hipaa_mode boolean not null default true,
    status text not null default 'active' check (status in ('active', 'offboarding', 'offboarded')),
    created_at timestamptz not null default now(),
    offboarded_at timestamptz
);

create table enclave.agencies (
    id uuid primary key default gen_random_uuid(),
    name text not null check (length(name) between 1 and 200),
    created_at timestamptz not null default now()
);

-- Passwords: the service derives K = scrypt(password, salt) with the PHC parameters in
-- password_phc; the database keeps only SHA-256(K) and compares it, so reading this table does
-- not let anyone sign in, and the expensive scrypt stays in the service.
create table enclave.users (
    id uuid primary key default gen_random_uuid(),
    email text not null check (email like '_%@_%' and length(email) <= 320),
    display_name text not null check (length(display_name) between 1 and 200),
    password_changed_at timestamptz not null default now(),
    -- TOTP secret wrapped by the master key; the last accepted time step refuses replays
    totp_secret bytea,
    totp_last_step bigint,
    mfa_enrolled_at timestamptz,
    failed_logins integer not null default 0,
    locked_until timestamptz,
    disabled_at timestamptz,
    created_at timestamptz not null default now(),
    -- scrypt, PHC string format, without the hash
    password_phc text,
    password_verifier bytea check (length(password_verifier) = 32),
    -- an enrollment not yet confirmed with a code
    totp_pending_secret bytea
);
create unique index users_email_key on enclave.users (lower(email));

create table enclave.memberships (
    user_id uuid not null references enclave.users (id),
    practice_id uuid references enclave.practices (id),
    agency_id uuid references enclave.agencies (id),
    role text not null check (role in ('agency_admin', 'agency_member', 'practice_owner', 'practice_staff')),
    created_at timestamptz not null default now(),
    check (
        (role in ('practice_owner', 'practice_staff') and practice_id is not null and agency_id is null)
        or (role in ('agency_admin', 'agency_member') and agency_id is not null and practice_id is null)
    )
);
create unique index memberships_practice_key on enclave.memberships (practice_id, user_id) where practice_id is not null;
create unique index memberships_agency_key on enclave.memberships (agency_id, user_id) where agency_id is not null;
create index memberships_user on enclave.memberships (user_id);

create table enclave.baas (
    id uuid primary key default gen_random_uuid(),
    agency_id uuid not null references enclave.agencies (id),
    practice_id uuid not null references enclave.practices (id),
    scopes text[] not null check (
        cardinality(scopes) > 0
        and scopes <@ array['leads.read', 'recordings.listen', 'leads.export', 'tracking.manage']
    ),
    status text not null default 'proposed' check (status in ('proposed', 'active', 'declined', 'revoked')),
    effective_at timestamptz not null,
    expires_at timestamptz check (expires_at is null or expires_at > effective_at),
    document_sha256 bytea not null check (length(document_sha256) = 32),
    proposed_by uuid not null references enclave.users (id),
    decided_by uuid references enclave.users (id),
    decided_at timestamptz,
    revoked_by uuid references enclave.users (id),
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);
create index baas_practice on enclave.baas (practice_id, agency_id);

-- Every state an agreement went through, and who moved it.
create table enclave.baa_events (
    id bigint generated always as identity primary key,
    baa_id uuid not null references enclave.baas (id),
    at timestamptz not null default now(),
    actor_id uuid references enclave.users (id),
    from_status text,
    to_status text not null
);
create index baa_events_by_baa on enclave.baa_events (baa_id, at);

create table enclave.agency_assignments (
    agency_id uuid not null references enclave.agencies (id),
    practice_id uuid not null references enclave.practices (id),
    user_id uuid not null references enclave.users (id),
    assigned_by uuid not null references enclave.users (id),
    assigned_at timestamptz not null default now(),
    primary key (agency_id, practice_id, user_id)
);
create index agency_assignments_user on enclave.agency_assignments (user_id, practice_id);

create table enclave.sessions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references enclave.users (id),
    -- SHA-256 of the 256-bit bearer token; the token itself is never stored
    token_hash bytea not null unique check (length(token_hash) = 32),
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    authenticated_at timestamptz not null default now(),
    mfa_verified_at timestamptz,
    idle_timeout interval not null default interval '15 minutes',
    absolute_timeout interval not null default interval '12 hours',
    revoked_at timestamptz,
    client_ip inet,
    user_agent text
);
create index sessions_user on enclave.sessions (user_id);

-- Failed sign-ins per subject ('email:…' or 'ip:…'), for throttling.
create table enclave.login_failures (
    subject text primary key,
    failures integer not null,
    window_started timestamptz not null
);

-- Master key (KEK) versions: identifiers and states only, never key material.
create table enclave.master_keys (
    version integer primary key check (version > 0),
    provider text not null,
    key_id text not null,
    state text not null check (state in ('active', 'retired', 'destroyed')),
    created_at timestamptz not null default now(),
    destroyed_at timestamptz
);
create unique index master_keys_one_active on enclave.master_keys (state) where state = 'active';

create table enclave_private.instance (
    singleton boolean primary key default true check (singleton),
    -- salts fake login parameters for unknown emails, so the answer does not reveal existence
    secret bytea not null
);
insert into enclave_private.instance (secret)
values (sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')));
revoke all on enclave_private.instance from public;

-- A tracking source's ingest credential: the secret a provider signs requests with. It lives
-- outside the tenant tables, like sessions, because the gate reads it and the gate must not
-- read row-level-secured tables. The database keeps SHA-256 of the secret, to check the
-- credential a unit of work binds, and the secret wrapped by the master key, for the service to
-- check request signatures; never the secret in clear.
create table enclave_private.ingest_credentials (
    source_id uuid primary key,
    practice_id uuid not null references enclave.practices (id),
    secret_hash bytea not null check (length(secret_hash) = 32),
    wrapped_secret bytea not null,
    created_at timestamptz not null default now(),
    rotated_at timestamptz,
    disabled_at timestamptz
);
revoke all on enclave_private.ingest_credentials from public;

-- The head of each audit chain (a practice's id, or the all-zero id for the platform):
-- appending an event locks it (sql/functions/audit.sql).
create table enclave_private.audit_heads (
    chain_id uuid primary key,
    seq bigint not null,
    hash bytea not null
);
revoke all on enclave_private.audit_heads from public;

-- The audit vocabulary: every action an event may record, and who may record it through
-- enclave_private.record_audit. An empty list means only the database's own functions record
-- it (sign-ins, agreements, assignments). A new action is one insert; the Swift enum
-- AuditAction is tested against this table.
create table enclave.audit_actions (
    action text primary key check (action ~ '^[a-z_]+\.[a-z_]+$'),
    recorded_by text[] not null default '{}' check (recorded_by <@ array['session', 'ingest', 'maintenance'])
);
insert into enclave.audit_actions (action, recorded_by) values
    ('auth.login', '{}'),
    ('auth.login_failed', '{}'),
    ('auth.logout', '{}'),
    ('auth.mfa_enrolled', '{}'),
    ('auth.mfa_verified', '{}'),
    ('auth.reauth', '{}'),
    ('auth.password_changed', '{}'),
    ('session.expired', '{}'),
    ('session.revoked', '{}'),
    ('baa.proposed', '{}'),
    ('baa.approved', '{}'),
    ('baa.declined', '{}'),
    ('baa.revoked', '{}'),
    ('baa.expired', '{}'),
    ('assignment.granted', '{}'),
    ('assignment.removed', '{}'),
    ('phi.read', '{session}'),
    ('phi.export', '{session,maintenance}'),
    ('phi.disclosed', '{session,maintenance}'),
    ('recording.played', '{session}'),
    ('lead.created', '{session,ingest}'),
    ('lead.redacted', '{session}'),
    ('key.rotated', '{maintenance}'),
    ('key.master_rotated', '{maintenance}'),
    ('key.destroyed', '{maintenance}'),
    ('tenant.created', '{maintenance}'),
    ('tenant.offboarded', '{maintenance}'),
    ('tenant_migration.applied', '{maintenance}'),
    ('access.denied', '{session,ingest}'),
    ('audit.retention', '{}'),
    ('user.created', '{maintenance}'),
    ('user.disabled', '{maintenance}'),
    ('agency.created', '{maintenance}'),
    ('webhook.created', '{}'),
    ('webhook.removed', '{}');
