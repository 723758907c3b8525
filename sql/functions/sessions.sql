-- Identity: sign-in, sessions, MFA, re-authentication and password changes.
--
-- The service role has no privilege on the identity tables: every change that could widen
-- access goes through a SECURITY DEFINER function here that checks the caller's credential
-- itself. A bug or an injection in the service can call these functions, but cannot skip
-- their checks.
--
-- Credential protocol: each unit of work starts with
--   select set_config('enclave.session_token', <token>, true), set_config('enclave.tenant_id', <id>, true)
-- The raw token is hashed here; the database never stores it and never accepts a hash in its
-- place, so a leaked sessions table forges nothing.

-- The current session, if the context's token is valid now: not revoked, not idle or past its
-- absolute lifetime, user not disabled, not older than the last password change.
create or replace function enclave_private.current_session()
returns table (session_id uuid, user_id uuid, mfa_verified boolean, authenticated_at timestamptz)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    token text := nullif(current_setting('enclave.session_token', true), '');
begin
    if token is null then
        return;
    end if;
    return query
    select s.id, s.user_id, s.mfa_verified_at is not null, s.authenticated_at
    from enclave.sessions s
    join enclave.users u on u.id = s.user_id
    where s.token_hash = sha256(convert_to(token, 'UTF8'))
      and s.revoked_at is null
      and u.disabled_at is null
      and s.created_at >= u.password_changed_at
      and now() < s.created_at + s.absolute_timeout
      and now() < s.last_seen_at + s.idle_timeout;
end
$$;
revoke all on function enclave_private.current_session() from public;
grant execute on function enclave_private.current_session() to enclave_app;

-- The current session, MFA done or not, or an error (28000) when there is none. Only the steps
-- of completing MFA use it: a session without MFA may complete MFA or sign out, nothing else.
create or replace function enclave_private.require_any_session()
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
begin
    select * into caller from enclave_private.current_session();
    if not found then
        raise exception 'no valid session' using errcode = '28000';
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.require_any_session() from public;

-- The current session, which must have completed MFA: 'mfa_required' (28000) otherwise.
create or replace function enclave_private.require_session()
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_any_session();
begin
    if not caller.mfa_verified then
        raise exception 'mfa_required' using errcode = '28000';
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.require_session() from public;

-- Sensitive actions: the session completed MFA and re-authenticated with password and TOTP in
-- the last five minutes. Signing in is not a re-authentication (authenticated_at starts NULL).
create or replace function enclave_private.require_fresh_session()
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if caller.authenticated_at is null or caller.authenticated_at < now() - interval '5 minutes' then
        raise exception 're-authentication required' using errcode = '28P01';
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.require_fresh_session() from public;

-- Parameters for deriving the login key: the user's PHC parameters and salt, or, for an unknown
-- email, the default parameters with a salt derived from the email, indistinguishable.
create or replace function enclave_private.login_parameters(email text, default_parameters text)
returns text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    found_phc text;
    fake_salt text;
begin
    select u.password_phc into found_phc from enclave.users u where lower(u.email) = lower(login_parameters.email);
    if found_phc is not null then
        return found_phc;
    end if;
    fake_salt := rtrim(encode(substring(sha256((select secret from enclave_private.instance) || convert_to(lower(email), 'UTF8')) from 1 for 16), 'base64'), '=');
    return default_parameters || '$' || fake_salt;
end
$$;
revoke all on function enclave_private.login_parameters(text,text) from public;
grant execute on function enclave_private.login_parameters(text,text) to enclave_app;

-- Counts a failed attempt against a subject, in a window that restarts once it has passed.
create or replace function enclave_private.record_failure(subject text, attempt_limit integer, window_length interval)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    insert into enclave.login_failures as f (subject, failures, window_started)
    values (record_failure.subject, 1, now())
    on conflict on constraint login_failures_pkey do update
    set failures = case when f.window_started + window_length <= now() then 1 else f.failures + 1 end,
        window_started = case when f.window_started + window_length <= now() then now() else f.window_started end;
end
$$;
revoke all on function enclave_private.record_failure(text,integer,interval) from public;

-- When `subject` may try again, or NULL if it is not locked.
create or replace function enclave_private.locked_until(subject text, attempt_limit integer, window_length interval)
returns timestamptz
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select f.window_started + window_length from enclave.login_failures f
    where f.subject = locked_until.subject and f.failures >= attempt_limit and f.window_started + window_length > now()
$$;
revoke all on function enclave_private.locked_until(text,integer,interval) from public;

-- When a sign-in for `email` from `client_ip` may be tried again, or NULL if neither is throttled:
-- the service asks before it hashes the password, so a throttled flood costs no scrypt. (The
-- login function checks again, in its own transaction.)
create or replace function enclave_private.login_throttled(email text, client_ip inet)
returns timestamptz
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select greatest(
        enclave_private.locked_until('email:' || lower(login_throttled.email), 5, interval '15 minutes'),
        enclave_private.locked_until('ip:' || host(login_throttled.client_ip), 20, interval '15 minutes'))
$$;
revoke all on function enclave_private.login_throttled(text, inet) from public;
grant execute on function enclave_private.login_throttled(text, inet) to enclave_app;

-- Password login. Throttled per email (5 failures in 15 minutes) and per client address (20),
-- whether or not the email exists; the answer never says which. A request without an address
-- is throttled per email only.
create or replace function enclave_private.login(
    email text, derived_key bytea, new_token text, client_ip inet, user_agent text,
    idle_timeout interval, absolute_timeout interval
)
returns table (outcome text, session_id uuid, user_id uuid, mfa_enrolled boolean, retry_after timestamptz)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    account_subject text := 'email:' || lower(login.email);
    -- No address, no address bucket: a shared 'unknown' bucket would let one stranger lock everyone
    -- out whose address the service did not know (the console once sent none).
    address_subject text := 'ip:' || host(client_ip);
    locked timestamptz;
    person record;
    new_session uuid;
begin
    if length(new_token) < 40 or idle_timeout not between interval '1 minute' and interval '1 hour'
        or absolute_timeout not between interval '5 minutes' and interval '24 hours' then
        raise exception 'invalid login request' using errcode = '22023';
    end if;
    locked := greatest(
        enclave_private.locked_until(account_subject, 5, interval '15 minutes'),
        enclave_private.locked_until(address_subject, 20, interval '15 minutes'));
    select u.id, u.password_verifier, u.disabled_at, u.mfa_enrolled_at into person
    from enclave.users u where lower(u.email) = lower(login.email);
    if locked is not null then
        perform enclave_private.append_audit_event(
            '00000000-0000-0000-0000-000000000000'::uuid, person.id, 'user', null, 'auth.login_failed', 'user', person.id::text, 'denied', 'throttled',
            client_ip, login.user_agent, null, '{}');
        return query select 'throttled'::text, null::uuid, null::uuid, null::boolean, locked;
        return;
    end if;
    if not found or person.password_verifier is null or person.disabled_at is not null
        or sha256(derived_key) <> person.password_verifier then
        perform enclave_private.record_failure(account_subject, 5, interval '15 minutes');
        if address_subject is not null then
            perform enclave_private.record_failure(address_subject, 20, interval '15 minutes');
        end if;
        perform enclave_private.append_audit_event(
            '00000000-0000-0000-0000-000000000000'::uuid, person.id, 'user', null, 'auth.login_failed', 'user', person.id::text, 'denied',
            case when person.id is null then 'unknown account' when person.disabled_at is not null then 'disabled' else 'wrong password' end,
            client_ip, login.user_agent, null, '{}');
        return query select 'invalid'::text, null::uuid, null::uuid, null::boolean, null::timestamptz;
        return;
    end if;
    delete from enclave.login_failures where subject = account_subject;
    insert into enclave.sessions (user_id, token_hash, client_ip, user_agent, idle_timeout, absolute_timeout, authenticated_at)
    values (person.id, sha256(convert_to(new_token, 'UTF8')), client_ip, left(login.user_agent, 500),
            login.idle_timeout, login.absolute_timeout, null)
    returning id into new_session;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, person.id, 'user', new_session, 'auth.login', 'session', new_session::text, 'ok', null,
        client_ip, login.user_agent, null, '{}');
    return query select 'ok'::text, new_session, person.id, person.mfa_enrolled_at is not null, null::timestamptz;
end
$$;
revoke all on function enclave_private.login(text,bytea,text,inet,text,interval,interval) from public;
grant execute on function enclave_private.login(text,bytea,text,inet,text,interval,interval) to enclave_app;

-- Marks the current session as seen (resets the idle clock) and returns it; nothing if invalid.
-- A session without MFA is returned too (with mfa_verified false), so that the service can say
-- "verify a code" rather than "sign in"; it reaches nothing through it.
-- It writes last_seen_at only when the stored time is more than ten seconds old: writing on
-- every request queued one token's concurrent requests on one row lock (scripts/bench-api:
-- GET /v1/me at 0.07x of /healthz), and the idle timeout is minutes, so the resolution loses
-- nothing that matters.
create or replace function enclave_private.touch_session()
returns table (session_id uuid, user_id uuid, mfa_verified boolean, authenticated_at timestamptz)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
begin
    select * into caller from enclave_private.current_session();
    if not found then
        return;
    end if;
    update enclave.sessions s set last_seen_at = now()
    where s.id = caller.session_id and s.last_seen_at < now() - interval '10 seconds';
    return query select caller.session_id, caller.user_id, caller.mfa_verified, caller.authenticated_at;
end
$$;
revoke all on function enclave_private.touch_session() from public;
grant execute on function enclave_private.touch_session() to enclave_app;

create or replace function enclave_private.logout()
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    update enclave.sessions set revoked_at = now()
    where id = (select session_id from enclave_private.current_session()) and revoked_at is null;
    if found then
        perform enclave_private.append_audit_event(
            '00000000-0000-0000-0000-000000000000'::uuid, s.user_id, 'user', s.id, 'auth.logout', 'session', s.id::text, 'ok', null, null, null, null, '{}')
        from enclave.sessions s where s.token_hash = sha256(convert_to(current_setting('enclave.session_token', true), 'UTF8'));
    end if;
end
$$;
revoke all on function enclave_private.logout() from public;
grant execute on function enclave_private.logout() to enclave_app;

create or replace function enclave_private.list_sessions()
returns table (session_id uuid, created_at timestamptz, last_seen_at timestamptz, client_ip inet, user_agent text, current boolean)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select s.id, s.created_at, s.last_seen_at, s.client_ip, s.user_agent, s.id = caller.session_id
    from enclave.sessions s
    join enclave.users u on u.id = s.user_id
    where s.user_id = caller.user_id and s.revoked_at is null and s.created_at >= u.password_changed_at
      and now() < s.created_at + s.absolute_timeout and now() < s.last_seen_at + s.idle_timeout
    order by s.created_at;
end
$$;
revoke all on function enclave_private.list_sessions() from public;
grant execute on function enclave_private.list_sessions() to enclave_app;

create or replace function enclave_private.revoke_session(target uuid)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    update enclave.sessions set revoked_at = now()
    where id = target and user_id = caller.user_id and revoked_at is null;
    if not found then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, caller.user_id, 'user', caller.session_id, 'session.revoked', 'session', target::text, 'ok', null,
        null, null, null, '{}');
    return true;
end
$$;
revoke all on function enclave_private.revoke_session(uuid) from public;
grant execute on function enclave_private.revoke_session(uuid) to enclave_app;

-- The caller's password parameters (PHC string), for the service to derive the key that
-- reauthenticate checks. The authentication role's.
create or replace function enclave_private.reauth_parameters()
returns text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return (select u.password_phc from enclave.users u where u.id = caller.user_id);
end
$$;
revoke all on function enclave_private.reauth_parameters() from public;

-- Re-authentication with the password and a TOTP step newer than any accepted before: a new
-- token replaces the old and the session counts as fresh for five minutes. Only the
-- authentication role (enclave_auth) may call it: the step is asserted by the process that
-- checked the code, and the service role, which an injection could drive, cannot assert one.
create or replace function enclave_private.reauthenticate(derived_key bytea, totp_step bigint, new_token text)
returns text
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    person record;
    refusal text;
begin
    if length(new_token) < 40 then
        raise exception 'invalid re-authentication request' using errcode = '22023';
    end if;
    select u.email, u.password_verifier, u.mfa_enrolled_at, u.totp_last_step into person
    from enclave.users u where u.id = caller.user_id for update;
    if enclave_private.locked_until('email:' || lower(person.email), 5, interval '15 minutes') is not null then
        return 'throttled';
    end if;
    refusal := enclave_private.code_refusal(caller.user_id);
    if refusal is not null then
        return refusal;
    end if;
    -- A NULL step is a code that matched none: counted like a wrong password.
    if sha256(derived_key) is distinct from person.password_verifier or person.mfa_enrolled_at is null
        or totp_step is null or totp_step <= coalesce(person.totp_last_step, -1) then
        perform enclave_private.record_failure('email:' || lower(person.email), 5, interval '15 minutes');
        return enclave_private.record_code_failure(caller.user_id, caller.session_id, 'auth.reauth');
    end if;
    update enclave.users set totp_last_step = totp_step where id = caller.user_id;
    update enclave.sessions
    set token_hash = sha256(convert_to(new_token, 'UTF8')), authenticated_at = now(), last_seen_at = now()
    where id = caller.session_id;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, caller.user_id, 'user', caller.session_id, 'auth.reauth', 'session', caller.session_id::text, 'ok', null,
        null, null, null, '{}');
    return 'ok';
end
$$;
revoke all on function enclave_private.reauthenticate(bytea,bigint,text) from public;

-- TOTP: the secret is stored wrapped by the master key (the service seals and checks codes);
-- the database keeps the last accepted time step so that no code is accepted twice.
--
-- Starting an enrollment needs only a session; replacing the TOTP of a user who already has
-- one needs a fresh re-authentication, or a password alone would enroll a new authenticator.
create or replace function enclave_private.begin_mfa_enrollment(wrapped_secret bytea)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_any_session();
begin
    if exists (select from enclave.users u where u.id = caller.user_id and u.mfa_enrolled_at is not null) then
        perform enclave_private.require_fresh_session();
    end if;
    update enclave.users set totp_pending_secret = wrapped_secret where id = caller.user_id;
end
$$;
revoke all on function enclave_private.begin_mfa_enrollment(bytea) from public;
grant execute on function enclave_private.begin_mfa_enrollment(bytea) to enclave_app;

-- The wrapped TOTP secret (or the pending one), for the authentication role to check a code.
create or replace function enclave_private.mfa_secret(pending boolean)
returns table (user_id uuid, secret bytea)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_any_session();
begin
    return query
    select u.id, case when pending then u.totp_pending_secret else u.totp_secret end
    from enclave.users u where u.id = caller.user_id;
end
$$;
revoke all on function enclave_private.mfa_secret(boolean) from public;

-- A wrong one-time code (or password at re-authentication), counted in the database whatever the
-- service does: per session, five end a session (it must sign in with its password again); per
-- user, ten in fifteen minutes make it wait, and twenty in a day lock its codes until an operator
-- clears the lock (unlock_mfa). Each failure is audited in the platform chain as `audited_action`
-- (auth.mfa_failed, or auth.reauth for a re-authentication) and counts towards the failed sign-in
-- alert. Returns 'invalid', 'ended', 'throttled' or 'locked'.
create or replace function enclave_private.record_code_failure(person uuid, session uuid, audited_action text)
returns text
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    session_failures integer;
    day_failures integer;
    outcome text := 'invalid';
begin
    perform enclave_private.record_failure('mfa-day:' || person, 20, interval '24 hours');
    perform enclave_private.record_failure('mfa-backoff:' || person, 10, interval '15 minutes');
    select f.failures into day_failures from enclave.login_failures f where f.subject = 'mfa-day:' || person;
    update enclave.sessions s set mfa_failures = s.mfa_failures + 1 where s.id = session
    returning s.mfa_failures into session_failures;
    if day_failures >= 20 then
        update enclave.users set mfa_locked_at = now() where id = person and mfa_locked_at is null;
        outcome := 'locked';
    elsif session_failures >= 5 then
        update enclave.sessions set revoked_at = now() where id = session and revoked_at is null;
        outcome := 'ended';
    elsif enclave_private.locked_until('mfa-backoff:' || person, 10, interval '15 minutes') is not null then
        outcome := 'throttled';
    end if;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, person, 'user', session, audited_action, 'session', session::text,
        'denied', 'wrong password or code', null, null, null,
        jsonb_build_object('session_failures', session_failures, 'day_failures', day_failures, 'outcome', outcome));
    return outcome;
end
$$;
revoke all on function enclave_private.record_code_failure(uuid, uuid, text) from public;

-- Whether the user's codes are refused now: 'locked' (until an operator clears it), 'throttled'
-- (for a few minutes), or NULL.
create or replace function enclave_private.code_refusal(person uuid)
returns text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if exists (select from enclave.users u where u.id = person and u.mfa_locked_at is not null) then
        return 'locked';
    end if;
    if enclave_private.locked_until('mfa-backoff:' || person, 10, interval '15 minutes') is not null then
        return 'throttled';
    end if;
    return null;
end
$$;
revoke all on function enclave_private.code_refusal(uuid) from public;

-- Marks the session MFA-verified for a TOTP step the authentication role checked, newer than
-- any accepted before (the replay guard); a NULL step is a code that matched no step, counted as
-- a failure (record_code_failure). Returns 'ok', or why not: 'invalid', 'ended', 'throttled',
-- 'locked'. Only enclave_auth may call it (see reauthenticate).
drop function if exists enclave_private.complete_mfa(bigint, boolean);
create function enclave_private.complete_mfa(totp_step bigint, enrolling boolean)
returns text
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_any_session();
    refusal text;
begin
    if enrolling and exists (select from enclave.users u where u.id = caller.user_id and u.mfa_enrolled_at is not null) then
        perform enclave_private.require_fresh_session();
    end if;
    -- One attempt at a time per user, so that concurrent guesses are all counted.
    perform from enclave.users u where u.id = caller.user_id for update;
    refusal := enclave_private.code_refusal(caller.user_id);
    if refusal is not null then
        return refusal;
    end if;
    if totp_step is null then
        return enclave_private.record_code_failure(caller.user_id, caller.session_id, 'auth.mfa_failed');
    end if;
    update enclave.users u
    set totp_last_step = totp_step,
        totp_secret = case when enrolling then u.totp_pending_secret else u.totp_secret end,
        totp_pending_secret = case when enrolling then null else u.totp_pending_secret end,
        mfa_enrolled_at = case when enrolling then now() else u.mfa_enrolled_at end
    where u.id = caller.user_id
      and totp_step > coalesce(u.totp_last_step, -1)
      and (case when enrolling then u.totp_pending_secret else u.totp_secret end) is not null;
    if not found then
        return enclave_private.record_code_failure(caller.user_id, caller.session_id, 'auth.mfa_failed');
    end if;
    update enclave.sessions set mfa_verified_at = now(), mfa_failures = 0 where id = caller.session_id;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, caller.user_id, 'user', caller.session_id,
        case when enrolling then 'auth.mfa_enrolled' else 'auth.mfa_verified' end, 'session', caller.session_id::text,
        'ok', null, null, null, null, '{}');
    return 'ok';
end
$$;
revoke all on function enclave_private.complete_mfa(bigint,boolean) from public;

-- An operator clears a user's code lock (after checking with the person): the failures are
-- forgotten and the clearing is audited.
create or replace function enclave_private.unlock_mfa(email text)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    person uuid;
begin
    perform enclave_private.require_operator();
    select u.id into person from enclave.users u where lower(u.email) = lower(unlock_mfa.email);
    if person is null then
        raise exception 'unknown_user' using errcode = '22023';
    end if;
    update enclave.users set mfa_locked_at = null where id = person;
    delete from enclave.login_failures where subject in ('mfa-day:' || person, 'mfa-backoff:' || person);
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, null, 'operator', null, 'auth.mfa_unlocked', 'user', person::text,
        'ok', null, null, null, null, '{}'::jsonb);
    return person;
end
$$;
revoke all on function enclave_private.unlock_mfa(text) from public;
grant execute on function enclave_private.unlock_mfa(text) to enclave_maint;

-- A password change ends every session of the user (the service logs in again afterwards).
create or replace function enclave_private.change_password(derived_key bytea, new_phc text, new_verifier bytea)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_fresh_session();
begin
    update enclave.users
    set password_phc = new_phc, password_verifier = new_verifier, password_changed_at = now()
    where id = caller.user_id and password_verifier = sha256(derived_key);
    if not found then
        return false;
    end if;
    update enclave.sessions set revoked_at = now() where user_id = caller.user_id and revoked_at is null;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, caller.user_id, 'user', caller.session_id, 'auth.password_changed', 'user', caller.user_id::text, 'ok',
        'every session ended', null, null, null, '{}');
    return true;
end
$$;
revoke all on function enclave_private.change_password(bytea,text,bytea) from public;
grant execute on function enclave_private.change_password(bytea,text,bytea) to enclave_app;

-- When a presented token belongs to a session that timed out, mark it ended and record
-- session.expired once. Called by the service after a refusal, in its own transaction.
create or replace function enclave_private.note_session_end()
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    ended record;
begin
    update enclave.sessions s set revoked_at = now()
    where s.token_hash = sha256(convert_to(coalesce(current_setting('enclave.session_token', true), ''), 'UTF8'))
      and s.revoked_at is null
      and (now() >= s.created_at + s.absolute_timeout or now() >= s.last_seen_at + s.idle_timeout)
    returning s.id, s.user_id, case when now() >= s.created_at + s.absolute_timeout then 'absolute timeout' else 'idle timeout' end as why
    into ended;
    if found then
        perform enclave_private.append_audit_event(
            '00000000-0000-0000-0000-000000000000', ended.user_id, 'user', ended.id, 'session.expired', 'session',
            ended.id::text, 'ok', ended.why, null, null, null, '{}');
    end if;
end
$$;
revoke all on function enclave_private.note_session_end() from public;
grant execute on function enclave_private.note_session_end() to enclave_app;

-- The caller's identity and organizations.
create or replace function enclave_private.whoami()
returns table (user_id uuid, email text, display_name text, mfa_enrolled boolean, mfa_verified boolean,
               role text, agency_id uuid, practice_id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select u.id, u.email, u.display_name, u.mfa_enrolled_at is not null, caller.mfa_verified, m.role, m.agency_id, m.practice_id
    from enclave.users u left join enclave.memberships m on m.user_id = u.id
    where u.id = caller.user_id;
end
$$;
revoke all on function enclave_private.whoami() from public;
grant execute on function enclave_private.whoami() to enclave_app;

-- The authentication role's functions (0006_authentication_role.sql creates the role; the function
-- files apply after every numbered file).
grant execute on function enclave_private.mfa_secret(boolean), enclave_private.complete_mfa(bigint,boolean),
    enclave_private.reauth_parameters(), enclave_private.reauthenticate(bytea,bigint,text)
    to enclave_auth;
