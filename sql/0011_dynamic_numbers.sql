-- Dynamic number insertion and website capture (issue 15).
--
-- Tracking numbers: an inbound call arrives by the number dialled, so a number belongs to one
-- source of one practice across the whole platform (the directory's primary key).
create table enclave_private.number_directory (
    number text primary key check (number ~ '^\+[1-9][0-9]{6,14}$'),
    practice_id uuid not null references enclave.practices (id),
    source_id uuid not null,
    added_at timestamptz not null default now()
);
revoke all on enclave_private.number_directory from public;

-- A practice's website: the public key the snippet names (no secret: it only identifies), the
-- origins that may use it, the call source whose pool numbers it shows, the form source its
-- forms post to, and the practice's own number that the snippet replaces on the page. Looked
-- up by key before anything is bound, so it lives with the other directories.
create table enclave_private.web_properties (
    public_key text primary key check (public_key ~ '^pk_[A-Za-z0-9_-]{20,64}$'),
    id uuid not null unique default gen_random_uuid(),
    practice_id uuid not null references enclave.practices (id),
    name text not null check (length(name) between 1 and 200),
    origins text[] not null check (cardinality(origins) between 1 and 20),
    call_source_id uuid,
    form_source_id uuid,
    main_number text check (main_number is null or main_number ~ '^\+[1-9][0-9]{6,14}$'),
    created_at timestamptz not null default now(),
    disabled_at timestamptz
);
revoke all on enclave_private.web_properties from public;

-- A website visitor: where they landed and the allowlisted campaign parameters of that URL
-- (nothing else of it), and the pool number they were shown. A number stays theirs for a
-- sliding 30 minutes from their last page view; a call to it in that window is theirs.
create table enclave.visitor_sessions (
    tenant_id uuid not null references enclave.practices (id),
    id uuid not null default gen_random_uuid(),
    property_id uuid not null,
    token_hash bytea not null check (length(token_hash) = 32),
    landing_path text check (octet_length(landing_path) <= 500),
    utm_source text check (octet_length(utm_source) <= 200),
    utm_medium text check (octet_length(utm_medium) <= 200),
    utm_campaign text check (octet_length(utm_campaign) <= 200),
    utm_term text check (octet_length(utm_term) <= 200),
    utm_content text check (octet_length(utm_content) <= 200),
    gclid text check (octet_length(gclid) <= 200),
    gbraid text check (octet_length(gbraid) <= 200),
    wbraid text check (octet_length(wbraid) <= 200),
    msclkid text check (octet_length(msclkid) <= 200),
    fbclid text check (octet_length(fbclid) <= 200),
    number text,
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    primary key (tenant_id, id),
    unique (tenant_id, token_hash)
);
create index visitor_sessions_number on enclave.visitor_sessions (tenant_id, number, last_seen_at);
alter table enclave.visitor_sessions enable row level security;
alter table enclave.visitor_sessions force row level security;
-- The maintenance role and the owner's definer functions only (sql/functions/policies.sql).
grant select, insert, update, delete on enclave.visitor_sessions to enclave_maint;
