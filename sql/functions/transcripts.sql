-- Transcripts, their redacted form, keyword sets and tags (issue 30; 0027_transcripts.sql).

-- A transcript's derived forms go with it: whatever clears a lead's transcript (a redaction, an
-- erasure, the retention purge) clears its redacted form, its tags and its search tokens in the
-- same statement. transcribed_at stays, so the worker does not make them again from a recording
-- that is kept.
create or replace function enclave_private.clear_transcript_forms()
returns trigger
language plpgsql
as $$
begin
    new.transcript_redacted := null;
    new.insights := null;
    new.transcript_tokens := null;
    return new;
end
$$;
revoke all on function enclave_private.clear_transcript_forms() from public;
create or replace trigger leads_transcript_cleared before update of transcript on enclave.leads
    for each row when (new.transcript is null and old.transcript is not null)
    execute function enclave_private.clear_transcript_forms();

-- The leads the transcription worker has to do, oldest first, across practices: a recording or a
-- provider's transcript and no transcribed_at. Operators only. The maintenance role reaches one
-- practice at a time, so the function visits each active practice in turn (an index probe each,
-- leads_to_transcribe) and restores the caller's practice after.
create or replace function enclave_private.due_transcriptions(max_rows integer)
returns table (tenant_id uuid, id uuid)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    practice uuid;
    previous text := current_setting('enclave.maint_tenant', true);
    found_rows integer := 0;
    n integer;
begin
    perform enclave_private.require_operator();
    if max_rows is null or max_rows not between 1 and 1000 then
        raise exception 'max_rows must be between 1 and 1000' using errcode = '22023';
    end if;
    for practice in select p.id from enclave.practices p where p.status = 'active' order by p.id loop
        perform set_config('enclave.maint_tenant', practice::text, true);
        return query
        select l.tenant_id, l.id from enclave.leads l
        where l.tenant_id = practice and l.transcribed_at is null
          and (l.recording_chunks is not null or l.transcript is not null)
        order by l.occurred_at limit max_rows - found_rows;
        get diagnostics n = row_count;
        found_rows := found_rows + n;
        exit when found_rows >= max_rows;
    end loop;
    perform set_config('enclave.maint_tenant', coalesce(previous, ''), true);
end
$$;
revoke all on function enclave_private.due_transcriptions(integer) from public;
grant execute on function enclave_private.due_transcriptions(integer) to enclave_maint;

-- Who may change a practice's keyword sets: its owner, or agency staff whose agreement grants
-- tracking.manage (not the practice's other staff). Returns the caller; refuses with
-- 'keywords_need_owner_or_tracking_manage' (42501).
create or replace function enclave_private.require_keyword_editor(practice uuid)
returns record
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if practice is null or practice is distinct from enclave_private.reachable_tenant('tracking.manage')
        or (exists (select from enclave.memberships m where m.practice_id = practice and m.user_id = caller.user_id)
            and not enclave_private.has_role(caller.user_id, 'practice_owner', null, practice)) then
        raise exception 'keywords_need_owner_or_tracking_manage' using errcode = '42501';
    end if;
    return caller;
end
$$;
revoke all on function enclave_private.require_keyword_editor(uuid) from public;

-- Creates or replaces (by name) one of the caller's practice's keyword sets; returns its id.
-- Phrases are normalised here as the worker matches them: lower case, words of letters and digits
-- separated by one space.
create or replace function enclave_private.save_keyword_set(
    practice uuid, set_name text, set_phrases text[], set_weight integer, request_id text, client_ip inet,
    user_agent text
)
returns uuid
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_keyword_editor(practice);
    normalised text[];
    saved uuid;
begin
    -- In the order given, without repeats.
    normalised := array(
        select x.phrase from (
            select btrim(regexp_replace(lower(u.p), '[^a-z0-9]+', ' ', 'g')) as phrase, min(u.o) as o
            from unnest(set_phrases) with ordinality as u (p, o) group by 1) x
        where x.phrase <> '' order by x.o);
    if set_name is null or set_name !~ '^[a-z0-9][a-z0-9 _-]{0,39}$' then
        raise exception 'keyword_set_invalid' using errcode = '22023', detail = 'name';
    end if;
    if cardinality(normalised) not between 1 and 50 or exists (select from unnest(normalised) p where length(p) > 60)
    then
        raise exception 'keyword_set_invalid' using errcode = '22023', detail = 'phrases';
    end if;
    if set_weight is null or set_weight not between -10 and 10 then
        raise exception 'keyword_set_invalid' using errcode = '22023', detail = 'weight';
    end if;
    if (select count(*) from enclave.keyword_sets k where k.tenant_id = practice and k.name <> set_name) >= 50 then
        raise exception 'keyword_set_invalid' using errcode = '22023', detail = 'count';
    end if;
    insert into enclave.keyword_sets as k (tenant_id, name, phrases, weight)
    values (practice, set_name, normalised, set_weight)
    on conflict (tenant_id, name) do update
        set phrases = excluded.phrases, weight = excluded.weight, updated_at = now()
    returning k.id into saved;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'keywords.changed', 'keyword_set', saved::text, 'ok',
        'saved', client_ip, user_agent, request_id,
        jsonb_build_object('name', set_name, 'phrases', cardinality(normalised), 'weight', set_weight));
    return saved;
end
$$;
revoke all on function enclave_private.save_keyword_set(uuid,text,text[],integer,text,inet,text) from public;
grant execute on function enclave_private.save_keyword_set(uuid,text,text[],integer,text,inet,text) to enclave_app;

-- Deletes one of the caller's practice's keyword sets; false when there is none. Tags already on
-- leads stay (they record what matched then).
create or replace function enclave_private.delete_keyword_set(
    practice uuid, keyword_set uuid, request_id text, client_ip inet, user_agent text
)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_keyword_editor(practice);
    deleted text;
begin
    delete from enclave.keyword_sets k where k.tenant_id = practice and k.id = keyword_set returning k.name into deleted;
    if deleted is null then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'keywords.changed', 'keyword_set', keyword_set::text,
        'ok', 'deleted', client_ip, user_agent, request_id, jsonb_build_object('name', deleted));
    return true;
end
$$;
revoke all on function enclave_private.delete_keyword_set(uuid,uuid,text,inet,text) from public;
grant execute on function enclave_private.delete_keyword_set(uuid,uuid,text,inet,text) to enclave_app;

-- The names of the people of the maintenance context's practice (its owner and staff), for the
-- transcription worker's redaction: a transcript that names the receptionist is redacted too.
-- Operators only.
create or replace function enclave_private.practice_people_names()
returns setof text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
begin
    perform enclave_private.require_operator();
    return query
    select u.display_name from enclave.memberships m join enclave.users u on u.id = m.user_id
    where m.practice_id = enclave_private.maintenance_tenant();
end
$$;
revoke all on function enclave_private.practice_people_names() from public;
grant execute on function enclave_private.practice_people_names() to enclave_maint;
