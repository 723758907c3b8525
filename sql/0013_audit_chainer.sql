-- Audit events leave the read path's lock (issue 16).
--
-- Until now each append locked its chain's head to take the next sequence number and hash,
-- so every read of a practice waited for the one before it. Now an access writes its event in
-- its own transaction as before (fail-closed), with no lock: `seq` comes from one platform-wide
-- sequence (unique, increasing, not gapless per chain). The chainer (`enclave audit chain`, the
-- maintenance role with the audit key) links events into their chain within seconds, in
-- batches: `chain_seq` (gapless per chain), `prev_hash` and
--     hash = HMAC-SHA-256(audit key, prev_hash || canonical v2 event)
-- (`link` 2). The key never enters the database, so nobody who can write to it can forge,
-- extend or rewrite a linked chain; events linked before this migration keep their SHA-256
-- links (`link` 1, chain_seq = seq). The chainer also appends signed chain heads to a
-- checkpoint log outside PostgreSQL, which `enclave audit verify` checks against.
create sequence enclave_private.audit_event_seq as bigint;
revoke all on sequence enclave_private.audit_event_seq from public;

alter table enclave.audit_events
    add column chain_seq bigint check (chain_seq > 0),
    add column link smallint check (link in (1, 2));

-- Existing events are already linked: their position is their sequence number. The trigger
-- refuses every update, so it is off for this one statement, inside this transaction. A fresh
-- database has no events and no trigger yet (audit.sql creates it after the numbered files).
-- (Rewritten by issue 24, see sql/rewritten: the trigger was once there on every database.)
do $$
begin
    if exists (select from pg_trigger where tgname = 'audit_events_immutable'
               and tgrelid = 'enclave.audit_events'::regclass) then
        alter table enclave.audit_events disable trigger audit_events_immutable;
        update enclave.audit_events set chain_seq = seq, link = 1;
        alter table enclave.audit_events enable trigger audit_events_immutable;
    end if;
end
$$;

select setval('enclave_private.audit_event_seq', coalesce((select max(seq) from enclave.audit_events), 0) + 1, false);
alter table enclave.audit_events
    alter column seq set default nextval('enclave_private.audit_event_seq'),
    alter column prev_hash drop not null,
    alter column hash drop not null,
    add constraint audit_events_linked_together check (
        (chain_seq is null) = (link is null) and (chain_seq is null) = (hash is null)
        and (chain_seq is null) = (prev_hash is null));

create unique index audit_events_by_chain on enclave.audit_events (tenant_id, chain_seq);
-- The chainer's work list: only events waiting for their link, a few seconds' worth.
create index audit_events_unlinked on enclave.audit_events (tenant_id, seq) where chain_seq is null;

comment on column enclave.audit_events.seq is
    'The event''s number: unique, increasing with time across the platform, assigned at insert.';
comment on column enclave.audit_events.chain_seq is
    'Position in the tenant''s chain (gapless from 1, or from the last retention); NULL until linked.';
comment on column enclave.audit_events.link is
    '1: hash = SHA-256(prev_hash || canonical v1), before 0013. 2: hash = HMAC-SHA-256(audit key, prev_hash || canonical v2).';
