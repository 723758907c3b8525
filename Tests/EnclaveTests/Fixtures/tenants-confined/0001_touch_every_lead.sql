-- No WHERE tenant_id on purpose: row-level security must confine this to one practice.
update enclave.leads set disposition = 'touched-by-migration' /* test: confined by RLS */;
