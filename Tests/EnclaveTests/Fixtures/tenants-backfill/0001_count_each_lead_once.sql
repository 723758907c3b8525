-- enclave:batch 20000
-- Adds one to every lead's counter, in keyset batches: a batch applied twice would show as 2.
with batch as (
    select tenant_id, id from enclave.leads
    where id > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000'::uuid)
    order by id limit $1
)
update enclave.leads l set duration_seconds = coalesce(l.duration_seconds, 0) + 1
from batch b where l.tenant_id = b.tenant_id and l.id = b.id
returning l.id::text as cursor
