-- Per-tenant tables. `tenant_id` leads every primary key, unique constraint, foreign key between
-- tenant tables and index, so each table can be distributed by tenant (Citus) and no constraint
-- spans tenants. Row-level security is in 0004_row_level_security.sql, grants in
-- 0005_privileges.sql.

create table enclave.tracking_sources (
    tenant_id uuid not null references enclave.practices (id),
    id uuid not null default gen_random_uuid(),
    kind text not null check (kind in ('call', 'form')),
    label text not null check (length(label) between 1 and 200),
    tracking_number text,
    default_source text,
    default_medium text,
    default_campaign text,
    created_at timestamptz not null default now(),
    disabled_at timestamptz,
    primary key (tenant_id, id)
);

create table enclave.tenant_keys (
    tenant_id uuid not null references enclave.practices (id),
    purpose text not null default 'data' check (purpose in ('data', 'index')),
    version integer not null check (version > 0),
    -- the master key version that wraps this key (enclave.master_keys.version)
    kek_version integer not null,
    -- NULL once destroyed
    wrapped bytea,
    state text not null check (state in ('active', 'retired', 'destroyed')),
    created_at timestamptz not null default now(),
    retired_at timestamptz,
    destroyed_at timestamptz,
    primary key (tenant_id, purpose, version),
    check ((state = 'destroyed') = (wrapped is null))
);
create unique index tenant_keys_one_active on enclave.tenant_keys (tenant_id, purpose) where state = 'active';

create table enclave.leads (
    tenant_id uuid not null references enclave.practices (id),
    id uuid not null default gen_random_uuid(),
    source_id uuid not null,
    kind text not null check (kind in ('call', 'form')),
    occurred_at timestamptz not null,
    -- attribution, in clear for reports (not PHI)
    source text,
    medium text,
    campaign text,
    keyword text,
    landing_page text,
    gclid text,
    called_number text,
    duration_seconds integer check (duration_seconds >= 0),
    disposition text,
    -- PHI, sealed per field with the tenant's data key (see Sealing)
    caller_number bytea,
    caller_name bytea,
    transcript bytea,
    form_fields bytea,
    page_url bytea,
    -- blind index of the normalized caller number
    caller_index bytea,
    -- the data key version that sealed this row's fields
    dek_version integer,
    idempotency_key text,
    created_at timestamptz not null default now(),
    redacted_at timestamptz,
    -- the recording's stream header and size; its chunks are in enclave.recordings
    recording_header bytea,
    recording_bytes bigint,
    recording_chunks integer,
    recording_content_type text,
    primary key (tenant_id, id),
    foreign key (tenant_id, source_id) references enclave.tracking_sources (tenant_id, id),
    unique (tenant_id, source_id, idempotency_key)
);
create index leads_by_time on enclave.leads (tenant_id, occurred_at desc, id);
create index leads_by_caller on enclave.leads (tenant_id, caller_index) where caller_index is not null;
create index leads_by_campaign on enclave.leads (tenant_id, source, medium, campaign, occurred_at);

create table enclave.recordings (
    tenant_id uuid not null,
    lead_id uuid not null,
    chunk_index integer not null check (chunk_index >= 0),
    dek_version integer not null,
    ciphertext bytea not null,
    primary key (tenant_id, lead_id, chunk_index),
    foreign key (tenant_id, lead_id) references enclave.leads (tenant_id, id) on delete cascade
);

-- Signatures already used, so a captured ingest request cannot be replayed within the
-- tolerance window.
create table enclave.ingest_replays (
    tenant_id uuid not null references enclave.practices (id),
    source_id uuid not null,
    signature_hash bytea not null,
    seen_at timestamptz not null default now(),
    primary key (tenant_id, source_id, signature_hash)
);
create index ingest_replays_by_age on enclave.ingest_replays (tenant_id, seen_at);

-- The audit trail: append-only, hash-chained per tenant (sql/functions/audit.sql). The all-zero
-- tenant id is the platform chain. No foreign key to practices: the trail outlives an
-- offboarded practice. Events carry ids, never PHI.
create table enclave.audit_events (
    tenant_id uuid not null,
    seq bigint not null check (seq > 0),
    at timestamptz not null default now(),
    actor_id uuid,
    actor_kind text not null check (actor_kind in ('user', 'ingest', 'operator', 'system')),
    session_id uuid,
    action text not null references enclave.audit_actions (action),
    object_type text,
    object_id text,
    outcome text not null check (outcome in ('ok', 'denied', 'error')),
    reason text,
    client_ip inet,
    user_agent text,
    request_id text,
    details jsonb not null default '{}' constraint audit_events_details_size check (octet_length(details::text) <= 4096),
    prev_hash bytea not null check (length(prev_hash) = 32),
    hash bytea not null check (length(hash) = 32),
    primary key (tenant_id, seq)
);
create index audit_events_by_time on enclave.audit_events (tenant_id, at);
create index audit_events_by_actor on enclave.audit_events (tenant_id, actor_id, at);

-- Tenant migrations: progress per (tenant, migration), including the keyset cursor of a
-- batched backfill, written in the same transaction as each batch so that an interrupted run
-- resumes exactly where it stopped.
create table enclave.tenant_migrations (
    tenant_id uuid not null references enclave.practices (id),
    migration text not null,
    status text not null check (status in ('pending', 'running', 'done', 'failed')),
    started_at timestamptz,
    finished_at timestamptz,
    rows_affected bigint not null default 0,
    attempts integer not null default 0,
    error text,
    checksum text,
    batch_cursor text,
    batches integer not null default 0,
    primary key (tenant_id, migration)
);
create index tenant_migrations_by_status on enclave.tenant_migrations (tenant_id, status);

-- Outbound webhooks (HIPAA mode): PHI goes only to active HTTPS endpoints marked covered by a
-- BAA. Endpoints change only through sql/functions/webhooks.sql.
create table enclave.webhook_endpoints (
    tenant_id uuid not null references enclave.practices (id),
    id uuid not null default gen_random_uuid(),
    url text not null,
    baa_covered boolean not null default false,
    -- HMAC signing secret, sealed with the tenant's data key
    signing_secret bytea not null,
    active boolean not null default true,
    created_at timestamptz not null default now(),
    primary key (tenant_id, id)
);

-- PHI-free payloads, written in the transaction that stores the lead; the delivery worker adds
-- PHI at delivery time, only for a covered endpoint.
create table enclave.outbox (
    tenant_id uuid not null references enclave.practices (id),
    id uuid not null default gen_random_uuid(),
    kind text not null check (kind in ('webhook', 'notification')),
    endpoint_id uuid,
    payload jsonb not null,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    created_at timestamptz not null default now(),
    delivered_at timestamptz,
    last_status integer,
    last_error text check (octet_length(last_error) <= 200),
    primary key (tenant_id, id),
    foreign key (tenant_id, endpoint_id) references enclave.webhook_endpoints (tenant_id, id)
);
create index outbox_due on enclave.outbox (tenant_id, status, next_attempt_at);
