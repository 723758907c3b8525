-- Leads, ingest credentials and recordings.
--
-- A tracking source's ingest credential is a secret the provider signs requests with. It lives
-- outside the tenant tables, in enclave_private.ingest_credentials (like sessions): the gate
-- reads it, and the gate must not read row-level-secured tables. The database keeps SHA-256 of
-- the secret, to check the credential a unit of work binds, and the secret wrapped by the master
-- key, for the service to check request signatures; never the secret in clear.

alter table enclave.tracking_sources drop column secret_hash;
alter table enclave.tracking_sources drop column secret_rotated_at;

create table enclave_private.ingest_credentials (
    source_id uuid primary key,
    practice_id uuid not null references enclave.practices (id),
    secret_hash bytea not null check (length(secret_hash) = 32),
    wrapped_secret bytea not null,
    created_at timestamptz not null default now(),
    rotated_at timestamptz,
    disabled_at timestamptz
);
revoke all on enclave_private.ingest_credentials from public;

-- Signatures already used, so a captured request cannot be replayed within the tolerance window.
create table enclave.ingest_replays (
    tenant_id uuid not null references enclave.practices (id),
    source_id uuid not null,
    signature_hash bytea not null,
    seen_at timestamptz not null default now(),
    primary key (tenant_id, source_id, signature_hash)
);
create index ingest_replays_by_age on enclave.ingest_replays (tenant_id, seen_at);
alter table enclave.ingest_replays enable row level security;
alter table enclave.ingest_replays force row level security;
create policy tenant_gate on enclave.ingest_replays for all
    using (tenant_id = (select enclave_private.reachable_tenant('leads.read')))
    with check (tenant_id = (select enclave_private.reachable_tenant('leads.read')));
grant select, insert, delete on enclave.ingest_replays to enclave_app, enclave_maint;

-- Recordings: the stream header and size live on the lead, chunks in enclave.recordings.
alter table enclave.leads add column recording_header bytea;
alter table enclave.leads add column recording_bytes bigint;
alter table enclave.leads add column recording_chunks integer;
alter table enclave.leads add column recording_content_type text;

-- The gate, now also admitting an ingest credential: enclave.ingest_source and
-- enclave.ingest_secret bound by the unit of work, checked against the stored hash. It reaches
-- only its own practice's lead and recording tables.
create or replace function enclave_private.reachable_tenant(required_scope text)
returns uuid
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    tenant uuid;
    caller record;
    practice record;
    source_text text;
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
    source_text := nullif(current_setting('enclave.ingest_source', true), '');
    if source_text is not null then
        if required_scope not in ('leads.read', 'recordings.listen') then
            return null;
        end if;
        begin
            if exists (
                select from enclave_private.ingest_credentials c join enclave.practices p on p.id = c.practice_id
                where c.source_id = source_text::uuid and c.practice_id = tenant and c.disabled_at is null
                  and p.status = 'active'
                  and c.secret_hash = sha256(convert_to(coalesce(current_setting('enclave.ingest_secret', true), ''), 'UTF8'))
            ) then
                return tenant;
            end if;
        exception when invalid_text_representation then
            return null;
        end;
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

-- A source's practice and wrapped secret, for the service to check a request's signature
-- before it binds the credential. The wrapped secret opens only with the master key.
create function enclave_private.ingest_source(source uuid)
returns table (practice_id uuid, wrapped_secret bytea, disabled boolean)
language sql stable security definer set search_path = pg_catalog, pg_temp
as $$
    select c.practice_id, c.wrapped_secret, c.disabled_at is not null
    from enclave_private.ingest_credentials c where c.source_id = source
$$;

-- Sets (or rotates) a source's credential. The caller must reach the source's practice for
-- tracking.manage: the row of tracking_sources is visible only then.
create function enclave_private.set_ingest_credential(source uuid, secret_hash bytea, wrapped_secret bytea)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid;
begin
    select s.tenant_id into practice from enclave.tracking_sources s where s.id = source;
    if practice is null or practice is distinct from enclave_private.reachable_tenant('tracking.manage') then
        raise exception 'no such tracking source for this practice' using errcode = '42501';
    end if;
    insert into enclave_private.ingest_credentials (source_id, practice_id, secret_hash, wrapped_secret)
    values (source, practice, secret_hash, wrapped_secret)
    on conflict (source_id) do update
    set secret_hash = excluded.secret_hash, wrapped_secret = excluded.wrapped_secret, rotated_at = now();
end
$$;

-- Whether the caller holds `role` in the practice bound to this unit of work.
create function enclave_private.caller_has_practice_role(role_name text)
returns boolean
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
begin
    select * into caller from enclave_private.current_session();
    if not found then
        return false;
    end if;
    return enclave_private.has_role(
        caller.user_id, role_name, null, nullif(current_setting('enclave.tenant_id', true), '')::uuid);
end
$$;

-- record_audit, now with ingest credentials as actors (actor = the source, kind = ingest).
create or replace function enclave_private.record_audit(
    tenant uuid, action text, object_type text, object_id text, outcome text, reason text, details jsonb,
    request_id text, client_ip inet, user_agent text
)
returns bigint
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
    source uuid;
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
    if nullif(current_setting('enclave.ingest_source', true), '') is not null then
        if action not in ('lead.created', 'access.denied') then
            raise exception 'an ingest credential may not record %', action using errcode = '42501';
        end if;
        if outcome = 'ok' and not enclave_private.caller_reaches(tenant) then
            raise exception 'an access can only be recorded by a caller who may perform it' using errcode = '42501';
        end if;
        begin
            source := current_setting('enclave.ingest_source', true)::uuid;
        exception when invalid_text_representation then
            source := null;
        end;
        return enclave_private.append_audit_event(
            tenant, source, 'ingest', null, action, object_type, object_id, outcome, reason, client_ip, user_agent,
            request_id, details);
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

revoke all on function enclave_private.ingest_source(uuid) from public;
revoke all on function enclave_private.set_ingest_credential(uuid,bytea,bytea) from public;
revoke all on function enclave_private.caller_has_practice_role(text) from public;
grant execute on function enclave_private.ingest_source(uuid) to enclave_app;
grant execute on function enclave_private.set_ingest_credential(uuid,bytea,bytea) to enclave_app;
grant execute on function enclave_private.caller_has_practice_role(text) to enclave_app;
