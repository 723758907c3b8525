-- Website capture: the snippet's web properties, visitor sessions and their pool numbers
-- (dynamic number insertion), and the attribution a call or a form takes from its visitor.
--
-- The snippet's requests carry a public key, not a secret: the service looks the property up
-- (capture_property), checks the request's origin against it, then binds the ingest credential
-- of the property's own source, so that every function below works inside one practice and one
-- source, as ingest does.

-- The property a public key names (enabled ones only).
create or replace function enclave_private.capture_property(public_key text)
returns table (property_id uuid, practice_id uuid, origins text[], call_source_id uuid, form_source_id uuid,
               main_number text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    return query
    select w.id, w.practice_id, w.origins, w.call_source_id, w.form_source_id, w.main_number
    from enclave_private.web_properties w join enclave.practices p on p.id = w.practice_id
    where w.public_key = capture_property.public_key and w.disabled_at is null and p.status = 'active';
end
$$;
revoke all on function enclave_private.capture_property(text) from public;
grant execute on function enclave_private.capture_property(text) to enclave_app;

-- The property, if the bound ingest credential is one of its sources.
create or replace function enclave_private.credential_property(property uuid)
returns table (id uuid, practice_id uuid, call_source_id uuid, form_source_id uuid, main_number text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    credential record := enclave_private.require_ingest_credential();
begin
    return query
    select w.id, w.practice_id, w.call_source_id, w.form_source_id, w.main_number
    from enclave_private.web_properties w
    where w.id = property and w.practice_id = credential.tenant_id and w.disabled_at is null
      and credential.source_id in (w.call_source_id, w.form_source_id);
    if not found then
        raise exception 'ingest_credential_required' using errcode = '42501';
    end if;
end
$$;
revoke all on function enclave_private.credential_property(uuid) from public;

-- A page view: finds the visitor's session by its token's hash (or starts one under
-- new_token_hash, keeping the landing path and the allowlisted campaign parameters), holds a pool
-- number for it for a sliding 30 minutes, and returns the number and the practice's own number.
-- A number is never taken from a visitor seen in the last 30 minutes, and one address (its
-- client_key) holds at most two numbers of a property: when none is free the visitor gets none and
-- the page keeps the practice's main number, so page views cannot cycle the pool (issue 25).
drop function if exists enclave_private.ingest_visitor_session(uuid, bytea, bytea, text, jsonb);
create or replace function enclave_private.ingest_visitor_session(
    property uuid, token_hash bytea, new_token_hash bytea, landing_path text, params jsonb, client_key bytea
)
returns table (session_id uuid, number text, main_number text, created boolean)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    web record;
    allowed constant text[] := array['utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content', 'gclid',
                                     'gbraid', 'wbraid', 'msclkid', 'fbclid'];
    -- A number shown to a visitor seen this recently stays theirs (and a call to it is theirs).
    window_length constant interval := interval '30 minutes';
    -- Numbers one address may hold at once on one property (an office behind one address).
    per_address constant integer := 2;
    visitor record;
    held text;
begin
    select * into web from enclave_private.credential_property(property);
    if jsonb_typeof(coalesce(params, '{}')) <> 'object'
        or exists (select from jsonb_each(coalesce(params, '{}')) e
                   where e.key <> all (allowed) or jsonb_typeof(e.value) <> 'string' or octet_length(e.value #>> '{}') > 200)
        or octet_length(landing_path) > 500 or length(client_key) <> 32 then
        raise exception 'visitor_session_invalid' using errcode = '22023';
    end if;
    -- One assignment at a time per property.
    perform pg_advisory_xact_lock(hashtextextended(property::text, 7));
    select * into visitor from enclave.visitor_sessions s
    where s.tenant_id = web.practice_id and s.property_id = property and s.token_hash = ingest_visitor_session.token_hash;
    created := not found;
    if created then
        insert into enclave.visitor_sessions (tenant_id, property_id, token_hash, landing_path, utm_source, utm_medium,
            utm_campaign, utm_term, utm_content, gclid, gbraid, wbraid, msclkid, fbclid, client_key)
        values (web.practice_id, property, new_token_hash, landing_path, params ->> 'utm_source', params ->> 'utm_medium',
                params ->> 'utm_campaign', params ->> 'utm_term', params ->> 'utm_content', params ->> 'gclid',
                params ->> 'gbraid', params ->> 'wbraid', params ->> 'msclkid', params ->> 'fbclid', client_key)
        returning * into visitor;
    end if;
    if web.call_source_id is not null then
        held := visitor.number;
        -- A number the visitor no longer holds (another visitor took it after it lapsed) is gone.
        if held is not null and (visitor.last_seen_at < now() - window_length or exists (
            select from enclave.visitor_sessions o
            where o.tenant_id = web.practice_id and o.number = held and o.id <> visitor.id
              and o.last_seen_at > visitor.last_seen_at)) then
            held := null;
        end if;
        -- A new number only from those nobody seen within the window holds, and only while this
        -- address holds fewer than per_address; else none (the page keeps the practice's main
        -- number, and a call to it takes the property's default attribution).
        if held is null and (client_key is null or (
            select count(*) from enclave.visitor_sessions o
            where o.tenant_id = web.practice_id and o.property_id = property and o.client_key = ingest_visitor_session.client_key
              and o.id <> visitor.id and o.number is not null and o.last_seen_at > now() - window_length) < per_address) then
            select d.number into held
            from enclave_private.number_directory d
            left join lateral (
                select max(o.last_seen_at) as last from enclave.visitor_sessions o
                where o.tenant_id = web.practice_id and o.number = d.number) h on true
            where d.practice_id = web.practice_id and d.source_id = web.call_source_id
              and (h.last is null or h.last < now() - window_length)
            order by h.last nulls first, d.number
            limit 1;
            if held is not null then
                update enclave.visitor_sessions o set number = null
                where o.tenant_id = web.practice_id and o.number = held and o.id <> visitor.id;
            end if;
        end if;
    end if;
    update enclave.visitor_sessions s set number = held, last_seen_at = now()
    where s.tenant_id = web.practice_id and s.id = visitor.id;
    return query select visitor.id, held, web.main_number, created;
end
$$;
revoke all on function enclave_private.ingest_visitor_session(uuid,bytea,bytea,text,jsonb,bytea) from public;
grant execute on function enclave_private.ingest_visitor_session(uuid,bytea,bytea,text,jsonb,bytea) to enclave_app;

-- The visitor a call to `called` belongs to: the session holding that pool number of the bound
-- source within the last 30 minutes. No row: no visitor (the source's defaults apply).
create or replace function enclave_private.ingest_number_visitor(called text)
returns table (utm_source text, utm_medium text, utm_campaign text, utm_term text, landing_path text, gclid text,
               gbraid text, wbraid text, msclkid text, fbclid text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    credential record := enclave_private.require_ingest_credential();
begin
    return query
    select s.utm_source, s.utm_medium, s.utm_campaign, s.utm_term, s.landing_path, s.gclid, s.gbraid, s.wbraid,
           s.msclkid, s.fbclid
    from enclave.visitor_sessions s
    join enclave_private.web_properties w on w.id = s.property_id and w.call_source_id = credential.source_id
    join enclave_private.number_directory d on d.number = s.number and d.source_id = credential.source_id
    where s.tenant_id = credential.tenant_id and s.number = called and s.last_seen_at > now() - interval '30 minutes'
    order by s.last_seen_at desc limit 1;
end
$$;
revoke all on function enclave_private.ingest_number_visitor(text) from public;
grant execute on function enclave_private.ingest_number_visitor(text) to enclave_app;

-- The visitor a form belongs to, by the session token's hash, for a property whose form source
-- is the bound source.
create or replace function enclave_private.ingest_form_visitor(property uuid, token_hash bytea)
returns table (utm_source text, utm_medium text, utm_campaign text, utm_term text, landing_path text, gclid text,
               gbraid text, wbraid text, msclkid text, fbclid text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    web record;
begin
    select * into web from enclave_private.credential_property(property);
    return query
    select s.utm_source, s.utm_medium, s.utm_campaign, s.utm_term, s.landing_path, s.gclid, s.gbraid, s.wbraid,
           s.msclkid, s.fbclid
    from enclave.visitor_sessions s
    where s.tenant_id = web.practice_id and s.property_id = property
      and s.token_hash = ingest_form_visitor.token_hash;
end
$$;
revoke all on function enclave_private.ingest_form_visitor(uuid,bytea) from public;
grant execute on function enclave_private.ingest_form_visitor(uuid,bytea) to enclave_app;

-- Adds numbers to a call source's pool (a practice's setting: tracking.manage and a fresh
-- re-authentication). A number another source has is refused: 'number_taken'.
create or replace function enclave_private.add_tracking_numbers(source uuid, numbers text[])
returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_fresh_session();
    practice uuid := enclave_private.reachable_tenant('tracking.manage');
    added integer;
begin
    if practice is null or not exists (
        select from enclave.tracking_sources s where s.tenant_id = practice and s.id = source and s.kind = 'call') then
        raise exception 'unknown_tracking_source' using errcode = '42501';
    end if;
    if exists (select from enclave_private.number_directory d
               where d.number = any (numbers) and d.source_id is distinct from source) then
        raise exception 'number_taken' using errcode = '23505';
    end if;
    insert into enclave_private.number_directory (number, practice_id, source_id)
    select distinct n, practice, source from unnest(numbers) n
    on conflict (number) do nothing;
    get diagnostics added = row_count;
    return added;
end
$$;
revoke all on function enclave_private.add_tracking_numbers(uuid,text[]) from public;
grant execute on function enclave_private.add_tracking_numbers(uuid,text[]) to enclave_app;

-- Creates a web property of the caller's practice (tracking.manage and a fresh re-authentication);
-- its sources must be the practice's, a call source and a form source.
create or replace function enclave_private.create_web_property(
    public_key text, name text, origins text[], call_source uuid, form_source uuid, main_number text
)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_fresh_session();
    practice uuid := enclave_private.reachable_tenant('tracking.manage');
    created uuid;
begin
    if practice is null
        or (call_source is not null and not exists (select from enclave.tracking_sources s
            where s.tenant_id = practice and s.id = call_source and s.kind = 'call'))
        or (form_source is not null and not exists (select from enclave.tracking_sources s
            where s.tenant_id = practice and s.id = form_source and s.kind = 'form')) then
        raise exception 'unknown_tracking_source' using errcode = '42501';
    end if;
    insert into enclave_private.web_properties
        (public_key, practice_id, name, origins, call_source_id, form_source_id, main_number)
    values (public_key, practice, name, origins, call_source, form_source, main_number)
    returning id into created;
    return created;
end
$$;
revoke all on function enclave_private.create_web_property(text,text,text[],uuid,uuid,text) from public;
grant execute on function enclave_private.create_web_property(text,text,text[],uuid,uuid,text) to enclave_app;

-- The caller's practice's web properties and pool numbers (anyone who reads its leads; the
-- public keys are not secrets).
create or replace function enclave_private.practice_web_properties()
returns table (id uuid, name text, public_key text, origins text[], call_source_id uuid, form_source_id uuid,
               main_number text)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    caller record := enclave_private.require_session();
    practice uuid := enclave_private.reachable_tenant('leads.read');
begin
    return query
    select w.id, w.name, w.public_key, w.origins, w.call_source_id, w.form_source_id, w.main_number
    from enclave_private.web_properties w
    where w.practice_id = practice and w.disabled_at is null
    order by w.created_at;
end
$$;
revoke all on function enclave_private.practice_web_properties() from public;
grant execute on function enclave_private.practice_web_properties() to enclave_app;

create or replace function enclave_private.practice_pool_numbers()
returns table (number text, source_id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    caller record := enclave_private.require_session();
    practice uuid := enclave_private.reachable_tenant('leads.read');
begin
    return query
    select d.number, d.source_id from enclave_private.number_directory d
    where d.practice_id = practice order by d.source_id, d.number;
end
$$;
revoke all on function enclave_private.practice_pool_numbers() from public;
grant execute on function enclave_private.practice_pool_numbers() to enclave_app;

-- Spends `cost` (1 for a page view, 10 for a form) from this minute's budgets of the client's
-- address (120) and then of the property's key (6,000); false when either is spent. A request
-- refused for its address does not spend the key's budget, so one address cannot use up a
-- property's. One statement, outside any other transaction: the bucket rows are locked only for
-- the moment of the update.
create or replace function enclave_private.spend_capture_budget(public_key text, client_address inet, cost integer)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    this_minute timestamptz := date_trunc('minute', clock_timestamp());
    spent_now integer;
begin
    if cost is null or cost not in (1, 10) then
        raise exception 'a capture request costs 1 or 10' using errcode = '22023';
    end if;
    if public_key is null or length(public_key) > 80 then
        raise exception 'not a web property key' using errcode = '22023';
    end if;
    if client_address is not null then
        insert into enclave_private.capture_budgets as b (bucket, window_start, spent)
        values (sha256(convert_to('a:' || host(client_address), 'UTF8')), this_minute, cost)
        on conflict (bucket) do update
            set spent = case when b.window_start = excluded.window_start
                             then least(b.spent + excluded.spent, 1000000) else excluded.spent end,
                window_start = excluded.window_start
        returning spent into spent_now;
        if spent_now > 120 then
            return false;
        end if;
    end if;
    insert into enclave_private.capture_budgets as b (bucket, window_start, spent)
    values (sha256(convert_to('k:' || public_key, 'UTF8')), this_minute, cost)
    on conflict (bucket) do update
        set spent = case when b.window_start = excluded.window_start
                         then least(b.spent + excluded.spent, 1000000) else excluded.spent end,
            window_start = excluded.window_start
    returning spent into spent_now;
    if random() < 0.01 then
        delete from enclave_private.capture_budgets where window_start < this_minute - interval '2 minutes';
    end if;
    return spent_now <= 6000;
end
$$;
revoke all on function enclave_private.spend_capture_budget(text, inet, integer) from public;
grant execute on function enclave_private.spend_capture_budget(text, inet, integer) to enclave_app;
