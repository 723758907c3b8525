-- Identity, sessions, agreements and the gate that enforces them.
--
-- The service role gets no privilege on these tables: every change that could widen access
-- (a session, a membership, an assignment, an agreement's state) goes through a SECURITY
-- DEFINER function below that checks the caller's credential itself. A bug or an injection in
-- the service can call these functions, but cannot skip their checks.
--
-- Credential protocol: each unit of work starts with
--   select set_config('enclave.session_token', <token>, true), set_config('enclave.tenant_id', <id>, true)
-- The raw token is hashed here; the database never stores it and never accepts a hash in its place,
-- so a leaked sessions table forges nothing.
--
-- Passwords: the service derives K = scrypt(password, salt) (PHC parameters in password_phc);
-- the database keeps only SHA-256(K) and compares it, so reading the users table does not let
-- anyone log in, and the expensive scrypt stays in the service.

alter table enclave.users drop column password_hash;
alter table enclave.users add column password_phc text;
alter table enclave.users add column password_verifier bytea check (length(password_verifier) = 32);
alter table enclave.users add column totp_pending_secret bytea;

create table enclave.baa_events (
    id bigint generated always as identity primary key,
    baa_id uuid not null references enclave.baas (id),
    at timestamptz not null default now(),
    actor_id uuid references enclave.users (id),
    from_status text,
    to_status text not null
);
create index baa_events_by_baa on enclave.baa_events (baa_id, at);

create table enclave.login_failures (
    subject text primary key,
    failures integer not null,
    window_started timestamptz not null
);

create table enclave_private.instance (
    singleton boolean primary key default true check (singleton),
    -- salts fake login parameters for unknown emails, so the answer does not reveal existence
    secret bytea not null
);
insert into enclave_private.instance (secret)
values (sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')));
revoke all on enclave_private.instance from public;

-- The current session, if the context's token is valid now: not revoked, not idle or past its
-- absolute lifetime, user not disabled, not older than the last password change.
create function enclave_private.current_session()
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

-- The gate. Returns the tenant in enclave.tenant_id if the context's credential may reach it
-- for required_scope now, else NULL. Members of the practice reach it; agency users reach it
-- only while assigned to it and while their agency holds an active, unexpired BAA with the scope.
-- HIPAA-mode practices also need MFA done in the session. No cache: a revocation, an expiry or a
-- timeout takes effect on the next statement.
create or replace function enclave_private.reachable_tenant(required_scope text)
returns uuid
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    tenant uuid;
    caller record;
    practice record;
begin
    if session_user = 'enclave_maint' then
        return nullif(current_setting('enclave.maint_tenant', true), '')::uuid;
    end if;
    begin
        tenant := nullif(current_setting('enclave.tenant_id', true), '')::uuid;
    exception when invalid_text_representation then
        return null;
    end;
    if tenant is null then
        return null;
    end if;
    select * into caller from enclave_private.current_session();
    if not found then
        return null;
    end if;
    select p.hipaa_mode, p.status into practice from enclave.practices p where p.id = tenant;
    if not found or practice.status <> 'active' then
        return null;
    end if;
    if practice.hipaa_mode and not caller.mfa_verified then
        return null;
    end if;
    if exists (
        select from enclave.memberships m where m.user_id = caller.user_id and m.practice_id = tenant
    ) then
        return tenant;
    end if;
    if exists (
        select
        from enclave.agency_assignments a
        join enclave.memberships m on m.user_id = a.user_id and m.agency_id = a.agency_id
        join enclave.baas b on b.agency_id = a.agency_id and b.practice_id = a.practice_id
        where a.user_id = caller.user_id
          and a.practice_id = tenant
          and b.status = 'active'
          and b.effective_at <= now()
          and (b.expires_at is null or now() < b.expires_at)
          and required_scope = any (b.scopes)
    ) then
        return tenant;
    end if;
    return null;
end
$$;

-- Parameters for deriving the login key: the user's PHC parameters and salt, or, for an unknown
-- email, the default parameters with a salt derived from the email, indistinguishable.
create function enclave_private.login_parameters(email text, default_parameters text)
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

-- Counts a failed attempt against a subject; returns true when the subject is now locked.
create function enclave_private.record_failure(subject text, attempt_limit integer, window_length interval)
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

-- When `subject` may try again, or NULL if it is not locked.
create function enclave_private.locked_until(subject text, attempt_limit integer, window_length interval)
returns timestamptz
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select f.window_started + window_length from enclave.login_failures f
    where f.subject = locked_until.subject and f.failures >= attempt_limit and f.window_started + window_length > now()
$$;

-- Password login. Throttled per email (5 failures in 15 minutes) and per client address (20),
-- whether or not the email exists; the answer never says which.
create function enclave_private.login(
    email text, derived_key bytea, new_token text, client_ip inet, user_agent text,
    idle_timeout interval, absolute_timeout interval
)
returns table (outcome text, session_id uuid, user_id uuid, mfa_enrolled boolean, retry_after timestamptz)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    account_subject text := 'email:' || lower(login.email);
    address_subject text := 'ip:' || coalesce(host(client_ip), 'unknown');
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
        perform enclave_private.record_failure(address_subject, 20, interval '15 minutes');
        perform enclave_private.append_audit_event(
            '00000000-0000-0000-0000-000000000000'::uuid, person.id, 'user', null, 'auth.login_failed', 'user', person.id::text, 'denied',
            case when person.id is null then 'unknown account' when person.disabled_at is not null then 'disabled' else 'wrong password' end,
            client_ip, login.user_agent, null, '{}');
        return query select 'invalid'::text, null::uuid, null::uuid, null::boolean, null::timestamptz;
        return;
    end if;
    delete from enclave.login_failures where subject = account_subject;
    insert into enclave.sessions (user_id, token_hash, client_ip, user_agent, idle_timeout, absolute_timeout)
    values (person.id, sha256(convert_to(new_token, 'UTF8')), client_ip, left(login.user_agent, 500),
            login.idle_timeout, login.absolute_timeout)
    returning id into new_session;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, person.id, 'user', new_session, 'auth.login', 'session', new_session::text, 'ok', null,
        client_ip, login.user_agent, null, '{}');
    return query select 'ok'::text, new_session, person.id, person.mfa_enrolled_at is not null, null::timestamptz;
end
$$;

-- Marks the current session as seen (resets the idle clock) and returns it; nothing if invalid.
create function enclave_private.touch_session()
returns table (session_id uuid, user_id uuid, mfa_verified boolean, authenticated_at timestamptz)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
begin
    return query
    update enclave.sessions s set last_seen_at = now()
    from enclave_private.current_session() c
    where s.id = c.session_id
    returning s.id, s.user_id, c.mfa_verified, s.authenticated_at;
end
$$;

create function enclave_private.require_session()
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

-- The session must have re-authenticated in the last five minutes (sensitive actions).
create function enclave_private.require_fresh_session()
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
    if caller.authenticated_at < now() - interval '5 minutes' then
        raise exception 're-authentication required' using errcode = '28P01';
    end if;
    return caller;
end
$$;

create function enclave_private.logout()
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

create function enclave_private.list_sessions()
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

create function enclave_private.revoke_session(target uuid)
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

-- Re-authentication with the password (and, for enrolled users, a fresh TOTP step checked by
-- the service): a new token replaces the old and the session counts as fresh for five minutes.
create function enclave_private.reauthenticate(derived_key bytea, totp_step bigint, new_token text)
returns text
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    person record;
begin
    select u.email, u.password_verifier, u.mfa_enrolled_at, u.totp_last_step into person
    from enclave.users u where u.id = caller.user_id;
    if enclave_private.locked_until('email:' || lower(person.email), 5, interval '15 minutes') is not null then
        return 'throttled';
    end if;
    if sha256(derived_key) <> person.password_verifier
        or (person.mfa_enrolled_at is not null and (totp_step is null or totp_step <= coalesce(person.totp_last_step, -1))) then
        perform enclave_private.record_failure('email:' || lower(person.email), 5, interval '15 minutes');
        perform enclave_private.append_audit_event(
            '00000000-0000-0000-0000-000000000000'::uuid, caller.user_id, 'user', caller.session_id, 'auth.reauth', 'session', caller.session_id::text,
            'denied', 'wrong password or code', null, null, null, '{}');
        return 'invalid';
    end if;
    if person.mfa_enrolled_at is not null then
        update enclave.users set totp_last_step = totp_step where id = caller.user_id;
    end if;
    update enclave.sessions
    set token_hash = sha256(convert_to(new_token, 'UTF8')), authenticated_at = now(), last_seen_at = now()
    where id = caller.session_id;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, caller.user_id, 'user', caller.session_id, 'auth.reauth', 'session', caller.session_id::text, 'ok', null,
        null, null, null, '{}');
    return 'ok';
end
$$;

-- TOTP: the secret is stored wrapped by the master key (the service seals and checks codes);
-- the database keeps the last accepted time step so that no code is accepted twice.
create function enclave_private.begin_mfa_enrollment(wrapped_secret bytea)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    update enclave.users set totp_pending_secret = wrapped_secret where id = caller.user_id;
end
$$;

create function enclave_private.mfa_secret(pending boolean)
returns table (user_id uuid, secret bytea)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select u.id, case when pending then u.totp_pending_secret else u.totp_secret end
    from enclave.users u where u.id = caller.user_id;
end
$$;

create function enclave_private.complete_mfa(totp_step bigint, enrolling boolean)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    update enclave.users u
    set totp_last_step = totp_step,
        totp_secret = case when enrolling then u.totp_pending_secret else u.totp_secret end,
        totp_pending_secret = case when enrolling then null else u.totp_pending_secret end,
        mfa_enrolled_at = case when enrolling then now() else u.mfa_enrolled_at end
    where u.id = caller.user_id
      and totp_step > coalesce(u.totp_last_step, -1)
      and (case when enrolling then u.totp_pending_secret else u.totp_secret end) is not null;
    if not found then
        return false;
    end if;
    update enclave.sessions set mfa_verified_at = now() where id = caller.session_id;
    perform enclave_private.append_audit_event(
        '00000000-0000-0000-0000-000000000000'::uuid, caller.user_id, 'user', caller.session_id,
        case when enrolling then 'auth.mfa_enrolled' else 'auth.mfa_verified' end, 'session', caller.session_id::text,
        'ok', null, null, null, null, '{}');
    return true;
end
$$;

-- A password change ends every session of the user (the service logs in again afterwards).
create function enclave_private.change_password(derived_key bytea, new_phc text, new_verifier bytea)
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

-- Keeps the agreement's history and writes the change to the practice's audit chain.
create function enclave_private.record_baa_event(baa uuid, actor uuid, from_status text, to_status text)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    agreement record;
begin
    insert into enclave.baa_events (baa_id, actor_id, from_status, to_status) values (baa, actor, from_status, to_status);
    select b.practice_id, b.agency_id, b.scopes into agreement from enclave.baas b where b.id = baa;
    perform enclave_private.append_audit_event(
        agreement.practice_id, actor, 'user', (select session_id from enclave_private.current_session()),
        case to_status when 'proposed' then 'baa.proposed' when 'active' then 'baa.approved'
                       when 'declined' then 'baa.declined' else 'baa.revoked' end,
        'baa', baa::text, 'ok', null, null, null, null,
        jsonb_build_object('agency', agreement.agency_id, 'scopes', agreement.scopes, 'from', from_status));
end
$$;

create function enclave_private.has_role(person uuid, role_name text, agency uuid, practice uuid)
returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select exists (
        select from enclave.memberships m
        where m.user_id = person and m.role = role_name
          and (agency is null or m.agency_id = agency) and (practice is null or m.practice_id = practice)
    )
$$;

create function enclave_private.propose_baa(
    agency uuid, practice uuid, scopes text[], effective_at timestamptz, expires_at timestamptz, document_sha256 bytea
)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    new_baa uuid;
begin
    if not enclave_private.has_role(caller.user_id, 'agency_admin', agency, null) then
        raise exception 'only an admin of the agency may propose an agreement' using errcode = '42501';
    end if;
    insert into enclave.baas (agency_id, practice_id, scopes, effective_at, expires_at, document_sha256, proposed_by)
    values (agency, practice, scopes, effective_at, expires_at, document_sha256, caller.user_id)
    returning id into new_baa;
    perform enclave_private.record_baa_event(new_baa, caller.user_id, null, 'proposed');
    return new_baa;
end
$$;

-- Approve or decline: the practice's owner, freshly re-authenticated, never the proposer.
create function enclave_private.decide_baa(baa uuid, approve boolean)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_fresh_session();
    agreement record;
begin
    select * into agreement from enclave.baas b where b.id = baa for update;
    if not found or not enclave_private.has_role(caller.user_id, 'practice_owner', null, agreement.practice_id) then
        raise exception 'only an owner of the practice may decide on this agreement' using errcode = '42501';
    end if;
    if agreement.proposed_by = caller.user_id then
        raise exception 'the proposer of an agreement cannot approve or decline it' using errcode = '42501';
    end if;
    if agreement.status <> 'proposed' then
        raise exception 'the agreement is % and can no longer be decided', agreement.status using errcode = '55000';
    end if;
    update enclave.baas
    set status = case when approve then 'active' else 'declined' end, decided_by = caller.user_id, decided_at = now()
    where id = baa;
    perform enclave_private.record_baa_event(baa, caller.user_id, 'proposed', case when approve then 'active' else 'declined' end);
end
$$;

-- Revoke: an owner of the practice or an admin of the agency, freshly re-authenticated.
create function enclave_private.revoke_baa(baa uuid)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_fresh_session();
    agreement record;
begin
    select * into agreement from enclave.baas b where b.id = baa for update;
    if not found or not (
        enclave_private.has_role(caller.user_id, 'practice_owner', null, agreement.practice_id)
        or enclave_private.has_role(caller.user_id, 'agency_admin', agreement.agency_id, null)
    ) then
        raise exception 'only an owner of the practice or an admin of the agency may revoke this agreement' using errcode = '42501';
    end if;
    if agreement.status not in ('proposed', 'active') then
        raise exception 'the agreement is % and cannot be revoked', agreement.status using errcode = '55000';
    end if;
    update enclave.baas set status = 'revoked', revoked_by = caller.user_id, revoked_at = now() where id = baa;
    perform enclave_private.record_baa_event(baa, caller.user_id, agreement.status, 'revoked');
end
$$;

-- Agreements the caller may see: those of practices they own or staff, or of agencies they belong to.
create function enclave_private.list_baas()
returns table (
    id uuid, agency_id uuid, practice_id uuid, scopes text[], status text, effective_at timestamptz,
    expires_at timestamptz, in_force boolean, proposed_by uuid, decided_by uuid, revoked_by uuid, created_at timestamptz
)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select b.id, b.agency_id, b.practice_id, b.scopes, b.status, b.effective_at, b.expires_at,
           b.status = 'active' and b.effective_at <= now() and (b.expires_at is null or now() < b.expires_at),
           b.proposed_by, b.decided_by, b.revoked_by, b.created_at
    from enclave.baas b
    where exists (select from enclave.memberships m where m.user_id = caller.user_id
                  and (m.practice_id = b.practice_id or m.agency_id = b.agency_id))
    order by b.created_at;
end
$$;

-- Assignments: an agency admin assigns members of the same agency to practices.
create function enclave_private.assign_member(agency uuid, practice uuid, member uuid, assign boolean)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'agency_admin', agency, null) then
        raise exception 'only an admin of the agency may assign its members' using errcode = '42501';
    end if;
    if assign then
        if not exists (select from enclave.memberships m where m.user_id = member and m.agency_id = agency) then
            raise exception 'the user is not a member of the agency' using errcode = '23503';
        end if;
        insert into enclave.agency_assignments (agency_id, practice_id, user_id, assigned_by)
        values (agency, practice, member, caller.user_id)
        on conflict do nothing;
        if not found then
            return false;
        end if;
        perform enclave_private.append_audit_event(
            practice, caller.user_id, 'user', caller.session_id, 'assignment.granted', 'user', member::text, 'ok', null,
            null, null, null, jsonb_build_object('agency', agency));
        return true;
    end if;
    delete from enclave.agency_assignments a where a.agency_id = agency and a.practice_id = practice and a.user_id = member;
    if not found then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'assignment.removed', 'user', member::text, 'ok', null,
        null, null, null, jsonb_build_object('agency', agency));
    return true;
end
$$;

-- Practices the caller can reach now for a scope (for agency dashboards).
create function enclave_private.reachable_practices(required_scope text)
returns table (practice_id uuid, name text, via text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select p.id, p.name, 'membership'::text
    from enclave.practices p join enclave.memberships m on m.practice_id = p.id
    where m.user_id = caller.user_id and p.status = 'active' and (caller.mfa_verified or not p.hipaa_mode)
    union
    select p.id, p.name, 'agreement'::text
    from enclave.agency_assignments a
    join enclave.memberships m on m.user_id = a.user_id and m.agency_id = a.agency_id
    join enclave.baas b on b.agency_id = a.agency_id and b.practice_id = a.practice_id
    join enclave.practices p on p.id = a.practice_id
    where a.user_id = caller.user_id and p.status = 'active' and (caller.mfa_verified or not p.hipaa_mode)
      and b.status = 'active' and b.effective_at <= now() and (b.expires_at is null or now() < b.expires_at)
      and required_scope = any (b.scopes);
end
$$;

-- The caller's identity and organizations.
create function enclave_private.whoami()
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

-- True when the caller's credential reaches `tenant` now, for any scope.
create function enclave_private.caller_reaches(tenant uuid)
returns boolean
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    scope text;
begin
    if tenant is distinct from nullif(current_setting('enclave.tenant_id', true), '')::uuid
        and session_user <> 'enclave_maint' then
        return false;
    end if;
    foreach scope in array array['leads.read', 'recordings.listen', 'leads.export', 'tracking.manage'] loop
        if enclave_private.reachable_tenant(scope) = tenant then
            return true;
        end if;
    end loop;
    return false;
end
$$;

-- The service's way to write the trail, inside the unit of work that performs the access. The
-- actor comes from the bound credential, never from the caller. An `ok` event about a practice
-- needs the caller to reach it now; refusals may be recorded for any practice; each role may
-- record only the actions it performs.
create function enclave_private.record_audit(
    tenant uuid, action text, object_type text, object_id text, outcome text, reason text, details jsonb,
    request_id text, client_ip inet, user_agent text
)
returns bigint
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
begin
    if session_user = 'enclave_maint' then
        if action not in ('key.rotated', 'key.master_rotated', 'key.destroyed', 'tenant.created', 'tenant.offboarded',
                          'tenant_migration.applied', 'phi.export', 'user.created', 'user.disabled', 'agency.created') then
            raise exception 'the maintenance role may not record %', action using errcode = '42501';
        end if;
        if tenant <> platform and tenant is distinct from nullif(current_setting('enclave.maint_tenant', true), '')::uuid then
            raise exception 'record events only for the tenant in context' using errcode = '42501';
        end if;
        return enclave_private.append_audit_event(
            tenant, null, 'operator', null, action, object_type, object_id, outcome, reason, client_ip, user_agent,
            request_id, details);
    end if;
    if action not in ('phi.read', 'phi.export', 'phi.disclosed', 'recording.played', 'lead.created', 'lead.redacted',
                      'access.denied') then
        raise exception 'the service may not record %', action using errcode = '42501';
    end if;
    select * into caller from enclave_private.current_session();
    if outcome = 'ok' and (tenant = platform or not enclave_private.caller_reaches(tenant)) then
        raise exception 'an access can only be recorded by a caller who may perform it' using errcode = '42501';
    end if;
    return enclave_private.append_audit_event(
        tenant, caller.user_id, 'user', caller.session_id, action, object_type, object_id, outcome, reason, client_ip,
        user_agent, request_id, details);
end
$$;

-- When a presented token belongs to a session that timed out, mark it ended and record
-- session.expired once. Called by the service after a refusal, in its own transaction.
create function enclave_private.note_session_end()
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

-- A practice owner's view of the practice's trail, newest first, with filters.
create function enclave_private.practice_audit(
    practice uuid, since timestamptz, until timestamptz, actor uuid, action_filter text, before_seq bigint, max_rows integer
)
returns table (seq bigint, at timestamptz, actor_id uuid, actor_email text, actor_kind text, action text,
               object_type text, object_id text, outcome text, reason text, request_id text, details jsonb)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'practice_owner', null, practice) then
        raise exception 'only an owner of the practice may read its audit trail' using errcode = '42501';
    end if;
    return query
    select e.seq, e.at, e.actor_id, u.email, e.actor_kind, e.action, e.object_type, e.object_id, e.outcome, e.reason,
           e.request_id, e.details
    from enclave.audit_events e left join enclave.users u on u.id = e.actor_id
    where e.tenant_id = practice
      and (since is null or e.at >= since) and (until is null or e.at < until)
      and (actor is null or e.actor_id = actor) and (action_filter is null or e.action = action_filter)
      and (before_seq is null or e.seq < before_seq)
    order by e.seq desc
    limit least(greatest(coalesce(max_rows, 100), 1), 1000);
end
$$;

-- Accounting of disclosures: who outside the practice received its PHI, when and why
-- (agency users' reads, exports and webhook disclosures).
create function enclave_private.practice_disclosures(practice uuid, since timestamptz, until timestamptz)
returns table (seq bigint, at timestamptz, recipient_id uuid, recipient_email text, agency_name text, action text,
               object_type text, object_id text, reason text, details jsonb)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'practice_owner', null, practice) then
        raise exception 'only an owner of the practice may read its disclosures' using errcode = '42501';
    end if;
    return query
    select e.seq, e.at, e.actor_id, u.email,
           (select string_agg(a.name, ', ') from enclave.memberships m join enclave.agencies a on a.id = m.agency_id
            where m.user_id = e.actor_id),
           e.action, e.object_type, e.object_id, e.reason, e.details
    from enclave.audit_events e left join enclave.users u on u.id = e.actor_id
    where e.tenant_id = practice and e.outcome = 'ok'
      and (since is null or e.at >= since) and (until is null or e.at < until)
      and (e.action in ('phi.export', 'phi.disclosed')
           or (e.action in ('phi.read', 'recording.played')
               and not exists (select from enclave.memberships m where m.user_id = e.actor_id and m.practice_id = practice)))
    order by e.seq;
end
$$;

-- An agency admin's view: events of the agency's own people, in every chain.
create function enclave_private.agency_audit(agency uuid, since timestamptz, until timestamptz, max_rows integer)
returns table (tenant_id uuid, seq bigint, at timestamptz, actor_id uuid, actor_email text, action text,
               object_type text, object_id text, outcome text, reason text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'agency_admin', agency, null) then
        raise exception 'only an admin of the agency may read its audit events' using errcode = '42501';
    end if;
    return query
    select e.tenant_id, e.seq, e.at, e.actor_id, u.email, e.action, e.object_type, e.object_id, e.outcome, e.reason
    from enclave.audit_events e join enclave.users u on u.id = e.actor_id
    where e.actor_id in (select m.user_id from enclave.memberships m where m.agency_id = agency)
      and (since is null or e.at >= since) and (until is null or e.at < until)
    order by e.at desc
    limit least(greatest(coalesce(max_rows, 100), 1), 1000);
end
$$;

do $$
declare
    f text;
begin
    foreach f in array array[
        'login_parameters(text,text)', 'login(text,bytea,text,inet,text,interval,interval)', 'touch_session()',
        'current_session()', 'logout()', 'list_sessions()', 'revoke_session(uuid)', 'reauthenticate(bytea,bigint,text)',
        'begin_mfa_enrollment(bytea)', 'mfa_secret(boolean)', 'complete_mfa(bigint,boolean)',
        'change_password(bytea,text,bytea)', 'propose_baa(uuid,uuid,text[],timestamptz,timestamptz,bytea)',
        'decide_baa(uuid,boolean)', 'revoke_baa(uuid)', 'list_baas()', 'assign_member(uuid,uuid,uuid,boolean)',
        'reachable_practices(text)', 'whoami()',
        'record_audit(uuid,text,text,text,text,text,jsonb,text,inet,text)', 'note_session_end()',
        'practice_audit(uuid,timestamptz,timestamptz,uuid,text,bigint,integer)',
        'practice_disclosures(uuid,timestamptz,timestamptz)', 'agency_audit(uuid,timestamptz,timestamptz,integer)'
    ] loop
        execute format('revoke all on function enclave_private.%s from public', f);
        execute format('grant execute on function enclave_private.%s to enclave_app', f);
    end loop;
    foreach f in array array[
        'record_failure(text,integer,interval)', 'locked_until(text,integer,interval)', 'require_session()',
        'require_fresh_session()', 'record_baa_event(uuid,uuid,text,text)', 'has_role(uuid,text,uuid,uuid)',
        'caller_reaches(uuid)'
    ] loop
        execute format('revoke all on function enclave_private.%s from public', f);
    end loop;
end
$$;

-- Operators (enclave_maint) manage organizations and people from the CLI.
grant select, insert on enclave.agencies to enclave_maint;
grant select, insert, update (display_name, password_phc, password_verifier, password_changed_at, disabled_at, totp_secret)
    on enclave.users to enclave_maint;
grant select, insert, delete on enclave.memberships to enclave_maint;
grant select on enclave.baas, enclave.baa_events, enclave.agency_assignments to enclave_maint;
grant select, update (revoked_at) on enclave.sessions to enclave_maint;
grant execute on function enclave_private.record_audit(uuid,text,text,text,text,text,jsonb,text,inet,text) to enclave_maint;
