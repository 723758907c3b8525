-- Global tables: the tenants (practices), agencies, people, agreements and sessions.
-- These hold no PHI. The service reaches them through functions added by the identity work;
-- until then enclave_app has no privilege on them at all.

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

create table enclave.users (
    id uuid primary key default gen_random_uuid(),
    email text not null check (email like '_%@_%' and length(email) <= 320),
    display_name text not null check (length(display_name) between 1 and 200),
    -- scrypt, PHC string format
    password_hash text,
    password_changed_at timestamptz not null default now(),
    -- TOTP secret sealed with the platform key; the last accepted time step refuses replays
    totp_secret bytea,
    totp_last_step bigint,
    mfa_enrolled_at timestamptz,
    failed_logins integer not null default 0,
    locked_until timestamptz,
    disabled_at timestamptz,
    created_at timestamptz not null default now()
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
