-- The chain-position index holds linked events only (issue 16). With every unlinked event in it
-- as (tenant_id, NULL), each insert into a unique index walked right through all of a practice's
-- unlinked entries (a unique index is searched without the heap tiebreaker): 150 pages for one
-- append with 19,000 events waiting. Unlinked events have their own index (0013).
drop index enclave.audit_events_by_chain;
create unique index audit_events_by_chain on enclave.audit_events (tenant_id, chain_seq) where chain_seq is not null;
