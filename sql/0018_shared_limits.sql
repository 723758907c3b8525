-- Limits that hold for the whole deployment (issue 25).
--
-- The website snippet's rate limits are budgets in the database, so every server process spends
-- the same one: per client address and per web property key, per minute. A bucket is the SHA-256
-- of its key or address; buckets older than a few minutes are deleted as new ones are written.
create table enclave_private.capture_budgets (
    bucket bytea primary key,
    window_start timestamptz not null,
    spent integer not null check (spent >= 0)
);
revoke all on enclave_private.capture_budgets from public;

-- A backstop for connections left idle inside a transaction: PostgreSQL ends the
-- session of a service or authentication connection that sits in an open transaction for a
-- minute, so a stalled request, a bug or a slow client cannot hold locks and a pool slot for
-- long. No request of the service keeps a transaction open while it waits on a client; a
-- recording streams in short transactions per batch of chunks.
--
-- Role settings are cluster-wide and apply to new sessions. Altering another role needs
-- CREATEROLE (and, from PostgreSQL 16, ADMIN OPTION on the role); without it the DBA is told what
-- to run.
--
-- Many databases of one cluster may migrate at once (tests do): ALTER ROLE then fails with
-- "tuple concurrently updated", so a role already set is left alone and a collision is retried.
do $$
declare
    role_name text;
    attempt integer;
begin
    foreach role_name in array array['enclave_app', 'enclave_auth'] loop
        for attempt in 1..20 loop
            exit when exists (
                select from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                where r.rolname = role_name and s.setdatabase = 0
                  and 'idle_in_transaction_session_timeout=60s' = any (s.setconfig));
            begin
                execute format('alter role %I set idle_in_transaction_session_timeout = %L', role_name, '60s');
            exception
                when insufficient_privilege then
                    raise warning 'could not set idle_in_transaction_session_timeout for %: run ALTER ROLE % SET idle_in_transaction_session_timeout = ''60s'' as a superuser', role_name, role_name;
                    exit;
                when internal_error then
                    if attempt = 20 then
                        raise;
                    end if;
                    perform pg_sleep(0.05 * attempt);
            end;
        end loop;
    end loop;
end
$$;
