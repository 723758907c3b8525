-- Recordings a provider hosts (issue 15). The provider's recording callback queues a fetch in
-- the call's practice; the recording worker (enclave recordings fetch, as the maintenance role)
-- downloads the media from an allowlisted host with the account's credentials, seals it as the
-- call's recording, then deletes it at the provider. Each row goes fetch -> delete -> done, or
-- failed after its attempts; a crash between the steps resumes at the step that did not commit.
create table enclave.recording_fetches (
    tenant_id uuid not null references enclave.practices (id),
    id uuid not null default gen_random_uuid(),
    source_id uuid not null,
    lead_id uuid not null,
    recording_sid text not null check (recording_sid ~ '^RE[0-9a-f]{32}$'),
    media_url text not null check (media_url ~ '^https://' and octet_length(media_url) <= 500),
    step text not null default 'fetch' check (step in ('fetch', 'delete', 'done', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_status integer,
    last_error text check (octet_length(last_error) <= 200),
    created_at timestamptz not null default now(),
    fetched_at timestamptz,
    deleted_at timestamptz,
    primary key (tenant_id, id),
    unique (tenant_id, source_id, recording_sid),
    foreign key (tenant_id, lead_id) references enclave.leads (tenant_id, id)
);
create index recording_fetches_due on enclave.recording_fetches (tenant_id, step, next_attempt_at);

alter table enclave.recording_fetches enable row level security;
alter table enclave.recording_fetches force row level security;
-- The maintenance role works one practice at a time; the owner's definer functions queue a
-- fetch for the caller's practice (an ingest credential) and list the due ones across practices
-- for the worker (the policies: sql/functions/policies.sql). The service role has no access at all.
grant select, insert, update, delete on enclave.recording_fetches to enclave_maint;

insert into enclave.audit_actions (action, recorded_by) values
    ('recording.fetched', '{maintenance}'),
    ('recording.provider_deleted', '{maintenance}');
