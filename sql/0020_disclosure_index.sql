-- The accounting of disclosures reads a page of a long trail through indexes (issue 27).
--
-- Disclosures are exports and disclosures to a recipient (rare), reads by people outside the
-- practice (found per person through audit_events_by_actor) and reads by operators, who have no
-- user id (rare). This partial index holds only the rare kinds, so appends pay for it only when
-- they write one.
create index audit_events_disclosures on enclave.audit_events (tenant_id, seq)
    where action in ('phi.export', 'phi.disclosed')
       or (actor_id is null and action in ('phi.read', 'recording.played'));
