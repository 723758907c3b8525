-- The chainer signs only what could be new (issue 26).
--
-- Each chain's head also keeps the platform `seq` of its last linked event: link_audit_events
-- refuses an event whose `seq` is not above it, so an event that was linked and set back to
-- unlinked, or one planted below the chain's newest, cannot be linked again. The chainer links
-- in `seq` order only numbers that have settled (no open transaction can still commit one below
-- them), so a legitimate event never arrives below the head.
alter table enclave_private.audit_heads add column event_seq bigint not null default 0 check (event_seq >= 0);

update enclave_private.audit_heads h
set event_seq = coalesce(
    (select max(e.seq) from enclave.audit_events e where e.tenant_id = h.chain_id and e.chain_seq is not null), 0);

comment on column enclave_private.audit_heads.event_seq is
    'The platform seq of the chain''s last linked event: the next linked event''s seq must be above it.';
