-- Telephony providers (issue 15). A call source may be of provider `twilio`. Its account SID is
-- kept in clear (it names the account, it does not open it); its auth token is the source's
-- ingest secret (SHA-256 for the gate, a copy wrapped by the master key to check
-- X-Twilio-Signature and fetch recordings); an incoming call is forwarded to `forward_to`, the
-- practice's own number, with an optional announcement that calls are recorded.
--
-- The provider's settings sit with the credential, which the service reads before a request is
-- authenticated (no practice bound yet, so no tenant table is visible); the source keeps its
-- provider's name for the practice's own lists.
alter table enclave.tracking_sources
    add column provider text not null default 'enclave' check (provider in ('enclave', 'twilio'));
alter table enclave_private.ingest_credentials
    add column provider text not null default 'enclave' check (provider in ('enclave', 'twilio')),
    add column provider_account text check (provider_account is null or provider_account ~ '^AC[0-9a-f]{32}$'),
    add column forward_to text check (forward_to is null or forward_to ~ '^\+[1-9][0-9]{6,14}$'),
    add column announce_recording boolean not null default false,
    add constraint ingest_credentials_provider_complete check (
        provider = 'enclave' or (provider_account is not null and forward_to is not null));

-- create_tracking_source gained the provider's settings (a new signature: the old one goes).
drop function if exists enclave_private.create_tracking_source(uuid,text,text,text,text,text,text,bytea,bytea);
