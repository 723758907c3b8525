-- Agency-wide figures in one query (issue 27).
--
-- An agency page counts leads across every practice the agency has an agreement in force with.
-- The owner's definer functions reach one practice per transaction (caller_tenant), and widening
-- that would let every one of them read any practice's leads. Instead a role of its own,
-- enclave_figures, owns the one function that counts: it may read the columns of leads that are
-- not PHI and nothing else, so even a bug in that function cannot reach a sealed field.
do $$
begin
    if not exists (select from pg_roles where rolname = 'enclave_figures') then
        create role enclave_figures nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
    end if;
end
$$;
-- The owner creates and replaces the function the role owns.
grant enclave_figures to enclave_owner;
grant usage on schema enclave, enclave_private to enclave_figures;
-- PostgreSQL lets a role own a function only in a schema where it may create; it logs in never,
-- and nothing runs as it but agency_figures.
grant create on schema enclave_private to enclave_figures;
grant select (tenant_id, occurred_at, kind, disposition, duration_seconds) on enclave.leads to enclave_figures;
grant select on enclave.baas, enclave.memberships, enclave.agency_assignments, enclave.practices to enclave_figures;
