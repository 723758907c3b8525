-- The patient's rights (issue 29): a practice finds one patient's leads by phone number or email
-- address, reports every access to them from the audit trail, gives the patient a copy, erases or
-- restricts them, and logs each request with its HIPAA deadline.

-- A blind index of the email address a lead carries (a form's email field, or one in a call's
-- fields), as caller_index is of its phone number: HMAC under the practice's index key, never the
-- address. Filled by LeadWriter for new leads and by `enclave tenants index-emails` for old ones.
-- restricted_at: the practice agreed to a patient's request to restrict (164.522): webhooks and
-- exports leave the lead out from then on.
alter table enclave.leads
    add column email_index bytea check (length(email_index) = 32),
    add column restricted_at timestamptz;
create index leads_by_email on enclave.leads (tenant_id, email_index) where email_index is not null;

-- A practice's staff hold no scopes of their own today: a member reaches the practice's leads.
-- Answering a patient's request is more (a copy of everything, erasure), so an owner grants it.
alter table enclave.memberships
    add column scopes text[] not null default '{}' check (scopes <@ array['patients.requests']);

-- The access report reads a patient's events through a GIN index on the leads each event is
-- about (sql/functions/patients.sql creates it, after the function it indexes). Every index of a
-- tenant table leads with tenant_id; btree_gin lets a GIN index do that. It is a trusted
-- extension of PostgreSQL's contrib: the database's owner (enclave_owner) may create it.
create extension if not exists btree_gin with schema public;

-- Each request a patient makes, with its deadline. No identifier of the patient is kept: the
-- leads it was found to cover, by id.
create table enclave.patient_requests (
    id uuid primary key default gen_random_uuid(),
    practice_id uuid not null references enclave.practices (id),
    kind text not null check (kind in ('access_report', 'copy', 'erasure', 'restriction')),
    received_on date not null,
    due_on date not null check (due_on >= received_on),
    lead_ids uuid[] not null default '{}' check (cardinality(lead_ids) <= 10000),
    logged_by uuid not null references enclave.users (id),
    logged_at timestamptz not null default now(),
    done_at timestamptz,
    done_by uuid references enclave.users (id),
    -- what was done, PHI-free: counts, a held lead count, whether the copy was encrypted
    outcome jsonb not null default '{}' check (octet_length(outcome::text) <= 2048)
);
create index patient_requests_by_practice on enclave.patient_requests (practice_id, received_on desc);
create index patient_requests_open on enclave.patient_requests (due_on) where done_at is null;

alter table enclave.alerts drop constraint alerts_kind_check;
alter table enclave.alerts add constraint alerts_kind_check check (kind in (
    'reads_volume', 'after_hours', 'failed_signins', 'break_glass', 'webhook_covered', 'agreement_expiry',
    'request_overdue'));

insert into enclave.audit_actions (action, recorded_by) values
    ('patient.looked_up', '{}'),
    ('patient.request_logged', '{}'),
    ('patient.request_done', '{}'),
    ('lead.restricted', '{}'),
    ('staff.scopes_changed', '{}');
