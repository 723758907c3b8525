-- enclave:batch 5000
-- Leads ingested without a campaign take their tracking source's default campaign.
-- Keyset batches: $1 is the batch size, $2 the last lead id of the previous batch (NULL first).
with batch as (
    select l.tenant_id, l.id
    from enclave.leads l
    where l.id > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000'::uuid)
    order by l.id
    limit $1
)
update enclave.leads l
set campaign = coalesce(l.campaign, s.default_campaign)
from batch b, enclave.tracking_sources s
where l.tenant_id = b.tenant_id and l.id = b.id and s.tenant_id = l.tenant_id and s.id = l.source_id
returning l.id::text as cursor
