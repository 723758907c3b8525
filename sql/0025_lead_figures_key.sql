-- A primary key for the rollup (issue 28). Every tenant table's primary key includes tenant_id,
-- so that a distributed cluster can place it by tenant and move its shards online (logical
-- replication needs a replica identity). lead_figures had only its unique key, whose source,
-- medium and campaign may be NULL and so cannot be a primary key: it gets a surrogate id,
-- keyed with tenant_id. The rollup's functions name their columns and never this one.
alter table enclave.lead_figures
    add column id bigint generated always as identity,
    add constraint lead_figures_pkey primary key (tenant_id, id);
