-- Who reaches what. The gate (reachable_tenant) and the small functions it is composed of,
-- and the role checks the definer functions share. See also sessions.sql (current_session).

create or replace function enclave_private.has_role(person uuid, role_name text, agency uuid, practice uuid)
returns boolean
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select exists (
        select from enclave.memberships m
        where m.user_id = person and m.role = role_name
          and (agency is null or m.agency_id = agency) and (practice is null or m.practice_id = practice)
    )
$$;
revoke all on function enclave_private.has_role(uuid,text,uuid,uuid) from public;

-- The helpers below run only inside the gate, with its rights and its pinned search_path; they
-- pin none of their own, because a SET clause costs a GUC save and restore on every call (the
-- gate runs once per statement). Only the owner may execute them.

-- The maintenance context: for a connection that logged in as enclave_maint (session_user
-- cannot be changed without superuser), the tenant named by enclave.maint_tenant. For this role
-- the login is the credential; the setting names one tenant per transaction.
create or replace function enclave_private.maintenance_tenant()
returns uuid
language plpgsql stable
as $$
begin
    if session_user <> 'enclave_maint' then
        return null;
    end if;
    return nullif(current_setting('enclave.maint_tenant', true), '')::uuid;
end
$$;
revoke all on function enclave_private.maintenance_tenant() from public;

-- The tenant the unit of work bound in enclave.tenant_id, or NULL when it is missing or not a
-- uuid. Binding it proves nothing: the credential must still reach it. (A pattern check, not
-- an exception handler: a handler would open a subtransaction on every statement.)
create or replace function enclave_private.bound_tenant()
returns uuid
language plpgsql stable
as $$
declare
    raw text := current_setting('enclave.tenant_id', true);
begin
    if raw is null or raw !~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' then
        return null;
    end if;
    return raw::uuid;
end
$$;
revoke all on function enclave_private.bound_tenant() from public;

-- An ingest credential's reach: the source in enclave.ingest_source, with the secret in
-- enclave.ingest_secret matching the stored hash, enabled, of an active practice. It reaches its
-- practice for the scope 'ingest' only: it inserts its own source's leads and recordings (the
-- insert policies) and reads nothing; what idempotency needs comes through the definer
-- functions of ingest.sql.
create or replace function enclave_private.ingest_reach(tenant uuid, required_scope text)
returns boolean
language plpgsql stable
as $$
declare
    source text := current_setting('enclave.ingest_source', true);
begin
    if required_scope is distinct from 'ingest' and required_scope is not null then
        return false;
    end if;
    -- A pattern check, not an exception handler (a subtransaction on every statement).
    if source is null
        or source !~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' then
        return false;
    end if;
    return exists (
        select from enclave_private.ingest_credentials c join enclave.practices p on p.id = c.practice_id
        where c.source_id = source::uuid
          and c.practice_id = tenant and c.disabled_at is null and p.status = 'active'
          and c.secret_hash = sha256(convert_to(coalesce(current_setting('enclave.ingest_secret', true), ''), 'UTF8'))
    );
end
$$;
revoke all on function enclave_private.ingest_reach(uuid, text) from public;

-- The open break-glass of a responder's session on a practice, or NULL: not ended, not expired
-- by the clock of this statement, and the user still a responder.
create or replace function enclave_private.break_glass_id(session uuid, person uuid, tenant uuid)
returns uuid
language plpgsql stable
as $$
declare
    found_id uuid;
begin
    select g.id into found_id
    from enclave.break_glass g
    where g.session_id = session and g.practice_id = tenant and g.ended_at is null
      and clock_timestamp() < g.expires_at
      and exists (select from enclave.platform_responders r where r.user_id = person);
    return found_id;
end
$$;
revoke all on function enclave_private.break_glass_id(uuid, uuid, uuid) from public;

-- A session's reach: a live session (as sessions.sql's current_session defines it) that
-- completed MFA, of a user who is a member of the practice, or an agency user assigned to it
-- whose agency holds an active, unexpired BAA with the scope (any scope when required_scope is
-- NULL). A session never reaches for 'ingest'. A session without MFA reaches nothing: it may only
-- complete MFA or sign out. A platform responder's session that opened break-glass on the
-- practice reaches it for the read scopes until the break-glass expires (breakglass.sql).
--
-- This runs on every statement, so it is two index lookups' worth of queries: the live session
-- with its user and the practice's status, then the membership or the assignment, agreement and
-- agency membership (covering indexes, 0014_gate_indexes.sql). Nothing is cached: a revocation,
-- an expiry or a timeout takes effect on the next statement.
create or replace function enclave_private.session_reach(tenant uuid, required_scope text)
returns boolean
language plpgsql stable
as $$
declare
    token text := nullif(current_setting('enclave.session_token', true), '');
    caller uuid;
    session uuid;
begin
    if required_scope = 'ingest' or token is null or tenant is null then
        return false;
    end if;
    select s.user_id, s.id into caller, session
    from enclave.sessions s join enclave.users u on u.id = s.user_id
    where s.token_hash = sha256(convert_to(token, 'UTF8'))
      and s.revoked_at is null and s.mfa_verified_at is not null
      and u.disabled_at is null and s.created_at >= u.password_changed_at
      and now() < s.created_at + s.absolute_timeout and now() < s.last_seen_at + s.idle_timeout
      and exists (select from enclave.practices p where p.id = tenant and p.status = 'active');
    if caller is null then
        return false;
    end if;
    return exists (
        select from enclave.memberships m where m.practice_id = tenant and m.user_id = caller
    ) or exists (
        select
        from enclave.agency_assignments a
        join enclave.baas b on b.practice_id = a.practice_id and b.agency_id = a.agency_id
        where a.user_id = caller and a.practice_id = tenant
          and b.status = 'active' and b.effective_at <= now() and (b.expires_at is null or now() < b.expires_at)
          and (required_scope is null or required_scope = any (b.scopes))
          and exists (select from enclave.memberships m where m.agency_id = a.agency_id and m.user_id = caller)
    ) or (
        -- Break-glass: a responder's session, read scopes only, until expiry by the statement's
        -- clock (now() is the transaction's start; a long transaction must not outlive it).
        required_scope in ('leads.read', 'recordings.listen')
        and enclave_private.break_glass_id(session, caller, tenant) is not null
    );
end
$$;
revoke all on function enclave_private.session_reach(uuid, text) from public;

-- The gate. Returns the tenant the current transaction's credential may reach for
-- required_scope now, or NULL. Every tenant table's policy calls it as (select ...), once per
-- statement. No cache: a revocation, an expiry or a timeout takes effect on the next statement.
-- A tenant id set by hand without a credential that reaches it yields NULL: zero rows, refused
-- writes. The credentials, in order: the maintenance login, an ingest credential, a session.
create or replace function enclave_private.reachable_tenant(required_scope text)
returns uuid
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    tenant uuid;
begin
    if session_user = 'enclave_maint' then
        return enclave_private.maintenance_tenant();
    end if;
    tenant := enclave_private.bound_tenant();
    if tenant is null then
        return null;
    end if;
    if nullif(current_setting('enclave.ingest_source', true), '') is not null then
        return case when enclave_private.ingest_reach(tenant, required_scope) then tenant end;
    end if;
    return case when enclave_private.session_reach(tenant, required_scope) then tenant end;
end
$$;
revoke all on function enclave_private.reachable_tenant(text) from public;
grant execute on function enclave_private.reachable_tenant(text) to enclave_app, enclave_maint;

-- The tenant the caller's credential reaches now for any purpose: the maintenance tenant, an
-- ingest credential's practice, or a practice an MFA-verified session reaches for any scope.
-- The owner's policies use it, so that a definer function working for the caller touches only
-- rows of the caller's practice (0007_per_command_policies.sql). Only the owner executes it.
create or replace function enclave_private.caller_tenant()
returns uuid
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    tenant uuid;
begin
    if session_user = 'enclave_maint' then
        return enclave_private.maintenance_tenant();
    end if;
    tenant := enclave_private.bound_tenant();
    if tenant is null then
        return null;
    end if;
    if nullif(current_setting('enclave.ingest_source', true), '') is not null then
        return case when enclave_private.ingest_reach(tenant, 'ingest') then tenant end;
    end if;
    return case when enclave_private.session_reach(tenant, null) then tenant end;
end
$$;
revoke all on function enclave_private.caller_tenant() from public;

-- Refuses anyone but the maintenance role (the operators' tools): 'operators_only' (42501).
create or replace function enclave_private.require_operator()
returns void
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    if session_user <> 'enclave_maint' then
        raise exception 'operators_only' using errcode = '42501';
    end if;
end
$$;
revoke all on function enclave_private.require_operator() from public;

-- True when the caller's credential reaches `tenant` now, for any purpose.
-- (PL/pgSQL, which keeps its plan: every audited access makes this call.)
create or replace function enclave_private.caller_reaches(tenant uuid)
returns boolean
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$ begin return coalesce(tenant = enclave_private.caller_tenant(), false); end $$;
revoke all on function enclave_private.caller_reaches(uuid) from public;

-- The validated ingest credential of this unit of work: its practice and source, or no row.
-- The insert policies of leads and recordings compare with it.
create or replace function enclave_private.ingest_credential()
returns table (tenant_id uuid, source_id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    tenant uuid := enclave_private.bound_tenant();
begin
    if session_user = 'enclave_maint' or tenant is null
        or nullif(current_setting('enclave.ingest_source', true), '') is null
        or not enclave_private.ingest_reach(tenant, 'ingest') then
        return;
    end if;
    return query select tenant, current_setting('enclave.ingest_source', true)::uuid;
end
$$;
revoke all on function enclave_private.ingest_credential() from public;
grant execute on function enclave_private.ingest_credential() to enclave_app;

-- Practices the caller can reach now for a scope (for agency dashboards). Needs MFA done.
create or replace function enclave_private.reachable_practices(required_scope text)
returns table (practice_id uuid, name text, via text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select p.id, p.name, 'membership'::text
    from enclave.practices p join enclave.memberships m on m.practice_id = p.id
    where m.user_id = caller.user_id and p.status = 'active'
    union
    select p.id, p.name, 'agreement'::text
    from enclave.agency_assignments a
    join enclave.memberships m on m.user_id = a.user_id and m.agency_id = a.agency_id
    join enclave.baas b on b.agency_id = a.agency_id and b.practice_id = a.practice_id
    join enclave.practices p on p.id = a.practice_id
    where a.user_id = caller.user_id and p.status = 'active'
      and b.status = 'active' and b.effective_at <= now() and (b.expires_at is null or now() < b.expires_at)
      and required_scope = any (b.scopes);
end
$$;
revoke all on function enclave_private.reachable_practices(text) from public;
grant execute on function enclave_private.reachable_practices(text) to enclave_app;

-- The one owner guard: the caller's session (re-authenticated in the last five minutes when
-- `fresh`, else 'reauthentication_required' from require_fresh_session) when it belongs to an
-- owner of `practice`; otherwise `refusal`, the caller's stable refusal code (42501).
drop function if exists enclave_private.require_practice_owner(uuid, boolean);
create or replace function enclave_private.require_practice_owner(practice uuid, fresh boolean, refusal text)
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
begin
    if fresh then
        caller := enclave_private.require_fresh_session();
    else
        caller := enclave_private.require_session();
    end if;
    if practice is null or not enclave_private.has_role(caller.user_id, 'practice_owner', null, practice) then
        raise exception using message = refusal, errcode = '42501';
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.require_practice_owner(uuid, boolean, text) from public;
