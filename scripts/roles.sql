set client_min_messages = warning;
-- The four Enclave roles and the database, with their passwords; safe to repeat. Run as the
-- superuser by scripts/dev-postgres and scripts/ha with psql variables owner_pw, app_pw,
-- maint_pw, auth_pw and db.
select format('create role %I', r) from unnest(array['enclave_owner', 'enclave_app', 'enclave_maint', 'enclave_auth']) r
 where not exists (select from pg_roles where rolname = r) \gexec
alter role enclave_owner login createrole nosuperuser nobypassrls password :'owner_pw';
alter role enclave_app login nosuperuser nobypassrls nocreatedb nocreaterole password :'app_pw';
alter role enclave_maint login nosuperuser nobypassrls nocreatedb nocreaterole password :'maint_pw';
alter role enclave_auth login nosuperuser nobypassrls nocreatedb nocreaterole password :'auth_pw';
select format('create database %I owner enclave_owner', :'db')
 where not exists (select from pg_database where datname = :'db') \gexec
-- scripts/ha's database is created by pg_auto_failover, owned by postgres.
select format('alter database %I owner to enclave_owner', :'db') \gexec
-- The statement statistics scripts/check-distribution reads (the library is preloaded).
create extension if not exists pg_stat_statements;
