-- Business Associate Agreements and agency assignments: an agency admin proposes and assigns,
-- a practice owner (never the proposer) approves or declines, either side revokes; every one of
-- these needs a re-authentication (password and TOTP) in the last five minutes. Every change is kept in enclave.baa_events and the practice's audit chain.

-- Keeps the agreement's history and writes the change to the practice's audit chain.
create or replace function enclave_private.record_baa_event(baa uuid, actor uuid, from_status text, to_status text)
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
revoke all on function enclave_private.record_baa_event(uuid,uuid,text,text) from public;

-- Propose: an admin of the agency, freshly re-authenticated.
create or replace function enclave_private.propose_baa(
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
        raise exception 'propose_needs_agency_admin' using errcode = '42501';
    end if;
    perform enclave_private.require_fresh_session();
    insert into enclave.baas (agency_id, practice_id, scopes, effective_at, expires_at, document_sha256, proposed_by)
    values (agency, practice, scopes, effective_at, expires_at, document_sha256, caller.user_id)
    returning id into new_baa;
    perform enclave_private.record_baa_event(new_baa, caller.user_id, null, 'proposed');
    perform enclave_private.notify(practice, jsonb_build_object('event', 'agreement.proposed', 'agreement', new_baa));
    return new_baa;
end
$$;
revoke all on function enclave_private.propose_baa(uuid,uuid,text[],timestamp with time zone,timestamp with time zone,bytea) from public;
grant execute on function enclave_private.propose_baa(uuid,uuid,text[],timestamp with time zone,timestamp with time zone,bytea) to enclave_app;

-- Approve or decline: the practice's owner, freshly re-authenticated, never the proposer.
create or replace function enclave_private.decide_baa(baa uuid, approve boolean)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid := (select b.practice_id from enclave.baas b where b.id = baa);
    caller record := enclave_private.require_practice_owner(practice, true, 'decide_needs_practice_owner');
    agreement record;
begin
    select * into agreement from enclave.baas b where b.id = baa and b.practice_id = practice for update;
    if not found then
        raise exception 'decide_needs_practice_owner' using errcode = '42501';
    end if;
    if agreement.proposed_by = caller.user_id then
        raise exception 'proposer_cannot_decide' using errcode = '42501';
    end if;
    if agreement.status <> 'proposed' then
        raise exception 'agreement_not_proposed' using errcode = '55000', detail = agreement.status;
    end if;
    update enclave.baas
    set status = case when approve then 'active' else 'declined' end, decided_by = caller.user_id, decided_at = now()
    where id = baa;
    perform enclave_private.record_baa_event(baa, caller.user_id, 'proposed', case when approve then 'active' else 'declined' end);
end
$$;
revoke all on function enclave_private.decide_baa(uuid,boolean) from public;
grant execute on function enclave_private.decide_baa(uuid,boolean) to enclave_app;

-- Revoke: an owner of the practice or an admin of the agency, freshly re-authenticated.
create or replace function enclave_private.revoke_baa(baa uuid)
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
        raise exception 'revoke_needs_owner_or_agency_admin' using errcode = '42501';
    end if;
    if agreement.status not in ('proposed', 'active') then
        raise exception 'agreement_not_revocable' using errcode = '55000', detail = agreement.status;
    end if;
    update enclave.baas set status = 'revoked', revoked_by = caller.user_id, revoked_at = now() where id = baa;
    perform enclave_private.record_baa_event(baa, caller.user_id, agreement.status, 'revoked');
end
$$;
revoke all on function enclave_private.revoke_baa(uuid) from public;
grant execute on function enclave_private.revoke_baa(uuid) to enclave_app;

-- Agreements the caller may see: those of practices they own or staff, or of agencies they belong to.
create or replace function enclave_private.list_agreements()
returns table (
    id uuid, agency_id uuid, practice_id uuid, scopes text[], status text, effective_at timestamptz,
    expires_at timestamptz, in_force boolean, proposed_by uuid, decided_by uuid, revoked_by uuid, created_at timestamptz,
    agency_name text, document_sha256 bytea
)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select b.id, b.agency_id, b.practice_id, b.scopes, b.status, b.effective_at, b.expires_at,
           b.status = 'active' and b.effective_at <= now() and (b.expires_at is null or now() < b.expires_at),
           b.proposed_by, b.decided_by, b.revoked_by, b.created_at, a.name, b.document_sha256
    from enclave.baas b join enclave.agencies a on a.id = b.agency_id
    where exists (select from enclave.memberships m where m.user_id = caller.user_id
                  and (m.practice_id = b.practice_id or m.agency_id = b.agency_id))
    order by b.created_at;
end
$$;
revoke all on function enclave_private.list_agreements() from public;
grant execute on function enclave_private.list_agreements() to enclave_app;

-- Assignments: an agency admin, freshly re-authenticated, assigns members of the same agency to
-- practices, or removes them.
create or replace function enclave_private.assign_member(agency uuid, practice uuid, member uuid, assign boolean)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'agency_admin', agency, null) then
        raise exception 'assign_needs_agency_admin' using errcode = '42501';
    end if;
    perform enclave_private.require_fresh_session();
    if assign then
        if not exists (select from enclave.memberships m where m.user_id = member and m.agency_id = agency) then
            raise exception 'not_agency_member' using errcode = '23503';
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
revoke all on function enclave_private.assign_member(uuid,uuid,uuid,boolean) from public;
grant execute on function enclave_private.assign_member(uuid,uuid,uuid,boolean) to enclave_app;

-- Agreements stop granting access the moment they expire (the gate compares expires_at with
-- now()). This sweep makes the expiry visible in the agreement's history and the practice's
-- audit chain, once per agreement: run it periodically (`enclave baa sweep`).
create or replace function enclave_private.record_expired_baas()
returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    agreement record;
    recorded integer := 0;
begin
    perform enclave_private.require_operator();
    for agreement in
        select b.id, b.practice_id, b.agency_id, b.expires_at from enclave.baas b
        where b.status = 'active' and b.expires_at is not null and b.expires_at <= now()
          and not exists (select from enclave.baa_events e where e.baa_id = b.id and e.to_status = 'expired')
        for update of b skip locked
    loop
        insert into enclave.baa_events (baa_id, actor_id, from_status, to_status) values (agreement.id, null, 'active', 'expired');
        perform enclave_private.append_audit_event(
            agreement.practice_id, null, 'system', null, 'baa.expired', 'baa', agreement.id::text, 'ok', null, null, null, null,
            jsonb_build_object('agency', agreement.agency_id, 'expired_at', agreement.expires_at));
        recorded := recorded + 1;
    end loop;
    return recorded;
end
$$;
revoke all on function enclave_private.record_expired_baas() from public;
grant execute on function enclave_private.record_expired_baas() to enclave_maint;

-- The names of the practices of the agreements the caller may see (list_agreements), for the agency
-- overview: a practice's name is not PHI, and reaching its data still takes the gate.
create or replace function enclave_private.agreement_practices()
returns table (practice_id uuid, name text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    return query
    select distinct p.id, p.name
    from enclave.baas b join enclave.practices p on p.id = b.practice_id
    where exists (select from enclave.memberships m where m.user_id = caller.user_id
                  and (m.practice_id = b.practice_id or m.agency_id = b.agency_id));
end
$$;
revoke all on function enclave_private.agreement_practices() from public;
grant execute on function enclave_private.agreement_practices() to enclave_app;

-- The members of an agency and the practices each is assigned to, for its admins.
create or replace function enclave_private.agency_members(agency uuid)
returns table (user_id uuid, email text, display_name text, practices uuid[])
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'agency_admin', agency, null) then
        raise exception 'agency_members_need_agency_admin' using errcode = '42501';
    end if;
    return query
    select u.id, u.email, u.display_name,
           array(select a.practice_id from enclave.agency_assignments a where a.agency_id = agency and a.user_id = u.id)
    from enclave.memberships m join enclave.users u on u.id = m.user_id
    where m.agency_id = agency
    order by u.email;
end
$$;
revoke all on function enclave_private.agency_members(uuid) from public;
grant execute on function enclave_private.agency_members(uuid) to enclave_app;

-- Who can reach a practice through agreements, for its owners: each agreement in force, its
-- agency and scopes and expiry, each member the agency assigned, and when that member last
-- touched the practice (its audit chain).
create or replace function enclave_private.practice_reach(practice uuid)
returns table (agreement_id uuid, agency_name text, scopes text[], expires_at timestamptz, member_email text,
               last_access timestamptz)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_practice_owner(practice, false, 'reach_needs_practice_owner');
begin
    return query
    select b.id, g.name, b.scopes, b.expires_at, u.email,
           (select max(e.at) from enclave.audit_events e where e.tenant_id = practice and e.actor_id = u.id)
    from enclave.baas b
    join enclave.agencies g on g.id = b.agency_id
    left join enclave.agency_assignments a on a.agency_id = b.agency_id and a.practice_id = b.practice_id
    left join enclave.users u on u.id = a.user_id
    where b.practice_id = practice and b.status = 'active' and b.effective_at <= now()
      and (b.expires_at is null or now() < b.expires_at)
    order by g.name, u.email;
end
$$;
revoke all on function enclave_private.practice_reach(uuid) from public;
grant execute on function enclave_private.practice_reach(uuid) to enclave_app;
