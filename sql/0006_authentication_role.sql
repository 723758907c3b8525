-- The authentication role, enclave_auth: the only role that may mark a session MFA-verified or
-- re-authenticated (sql/functions/sessions.sql: mfa_secret, complete_mfa, reauth_parameters,
-- reauthenticate). The service runs those few fixed statements on a small pool of its own, so
-- an SQL injection through the service role (enclave_app) cannot assert a TOTP step it never
-- checked. See docs/threat-model.md.
do $$
begin
    if not exists (select from pg_roles where rolname = 'enclave_auth') then
        create role enclave_auth nologin nosuperuser nobypassrls nocreatedb nocreaterole;
    end if;
    if exists (
        select from pg_roles where rolname = 'enclave_auth'
          and (rolsuper or rolbypassrls or rolcreatedb or rolcreaterole)
    ) then
        raise exception 'enclave_auth must not be superuser, bypass RLS, or create roles or databases';
    end if;
    if pg_has_role('enclave_app', 'enclave_auth', 'member') or pg_has_role('enclave_maint', 'enclave_auth', 'member') then
        raise exception 'enclave_app and enclave_maint must not be members of enclave_auth';
    end if;
    execute format('grant connect on database %I to enclave_auth', current_database());
end
$$;
grant usage on schema enclave_private to enclave_auth;
-- Its functions get their grants in sql/functions/sessions.sql, which applies after this file.

-- Signing in is not a re-authentication: a session starts without one (authenticated_at NULL)
-- and gets one from enclave_private.reauthenticate (password and TOTP).
alter table enclave.sessions alter column authenticated_at drop not null;
alter table enclave.sessions alter column authenticated_at drop default;
