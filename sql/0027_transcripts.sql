-- Conversation intelligence on our own machines (issue 30). The transcription worker (enclave
-- transcripts run, as the maintenance role) turns a call's recording into a transcript sealed
-- under the practice's key, with a redacted form for the minimum necessary, keyword tags, a score
-- and a blind index of the redacted words for search. Nothing here is in clear but the state.
--
-- transcript_redacted: the transcript with numbers, dates, emails, addresses and known names
-- replaced by labels; what agency users see unless their agreement grants transcripts.full.
-- insights: the tags, score and suggested qualification (JSON, sealed).
-- transcript_tokens: HMACs under the practice's index key of the redacted form's words and of the
-- tags, 16 bytes each; "every call that mentions insurance" and "tagged emergency" are lookups.
-- transcribed_at, transcript_status: done (a transcript and its redacted form) or unreadable (the
-- recording is in a format the worker does not decode), so that the worker does not try again.
alter table enclave.leads
    add column transcript_redacted bytea,
    add column insights bytea,
    add column transcript_tokens bytea[] check (cardinality(transcript_tokens) <= 5000),
    add column transcript_engine text check (length(transcript_engine) <= 64),
    add column transcribed_at timestamptz,
    add column transcript_status text check (transcript_status in ('done', 'unreadable'));
create index leads_by_token on enclave.leads using gin (tenant_id, transcript_tokens)
    where transcript_tokens is not null;
-- What the worker has left to do, across practices (a short partial index).
create index leads_to_transcribe on enclave.leads (tenant_id, occurred_at)
    where transcribed_at is null and (recording_chunks is not null or transcript is not null);

-- A practice's keyword sets: phrases a transcript is matched against after normalisation (lower
-- case, words only). Practice configuration, not PHI: in clear. weight feeds the score.
create table enclave.keyword_sets (
    tenant_id uuid not null references enclave.practices (id),
    id uuid not null default gen_random_uuid(),
    name text not null check (name ~ '^[a-z0-9][a-z0-9 _-]{0,39}$'),
    phrases text[] not null check (cardinality(phrases) between 1 and 50),
    weight smallint not null default 1 check (weight between -10 and 10),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id),
    unique (tenant_id, name)
);
alter table enclave.keyword_sets enable row level security;
alter table enclave.keyword_sets force row level security;
grant select on enclave.keyword_sets to enclave_app, enclave_maint;

-- The full transcript is a scope of its own: an agreement that grants leads.read shows agency staff
-- the redacted form only.
alter table enclave.baas drop constraint baas_scopes_check;
alter table enclave.baas add constraint baas_scopes_check check (
    cardinality(scopes) > 0
    and scopes <@ array['leads.read', 'recordings.listen', 'leads.export', 'tracking.manage', 'leads.qualify',
                        'transcripts.full']);

insert into enclave.audit_actions (action, recorded_by) values
    ('transcript.created', '{maintenance}'),
    ('keywords.changed', '{}');

-- read_leads (sql/functions/reads.sql) returns the redacted form, the insights and the state too;
-- the full transcript only to a caller that reaches the practice for transcripts.full.
alter type enclave_private.lead_read
    add attribute transcript_redacted bytea,
    add attribute insights bytea,
    add attribute transcript_status text;
