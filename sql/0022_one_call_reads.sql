-- One round trip per request on the hot paths (issue 27).
--
-- A page of leads (or one lead) comes back from one call of enclave_private.read_leads
-- (sql/functions/reads.sql), which binds the session, checks the reach, reads, and records the
-- read in the trail. Its rows are of three kinds, told apart by row_kind: 'key' (a data key of
-- the practice, wrapped by the master key, to open what follows), 'lead', and 'more' (a further
-- page exists). The key columns are null on lead rows and the lead columns on key rows.
create type enclave_private.lead_read as (
    row_kind text,
    id uuid,
    source_id uuid,
    kind text,
    occurred_at timestamptz,
    source text,
    medium text,
    campaign text,
    keyword text,
    landing_page text,
    gclid text,
    called_number text,
    duration_seconds integer,
    disposition text,
    caller_number bytea,
    caller_name bytea,
    transcript bytea,
    form_fields bytea,
    page_url bytea,
    recording_bytes bigint,
    recording_content_type text,
    redacted_at timestamptz,
    qualification text,
    value_cents bigint,
    key_purpose text,
    key_version integer,
    key_state text,
    key_wrapped bytea
);
grant usage on type enclave_private.lead_read to enclave_app;
