-- The read path in one round trip: a page of a practice's leads, or one lead, from one call.
--
-- read_leads runs as its caller (security invoker): it binds the session token and the
-- practice for this transaction, exactly as the service did with set_config, and every statement
-- in it goes through the row-level security of the tables it reads and the gate, as the
-- statements it replaces did. It grants nothing the caller did not have; it saves the round
-- trips. Called alone, it is its own transaction: the read and its audit event commit together
-- or not at all.

-- A page of the practice's leads, newest first, filtered (lead NULL), or the one lead `lead`:
-- the 'lead' rows, then the practice's live keys as 'key' rows (to open them), then a 'more'
-- row when another page follows. The leads returned, and only those, are recorded as one
-- phi.read event. A caller who does not reach the practice for leads.read gets
-- 'session_invalid' (28000) without a live session, 'mfa_required' before MFA, and
-- 'practice_unreachable' (42501) otherwise.
-- (Before issue 30 it took no tokens.)
drop function if exists enclave_private.read_leads(text,uuid,uuid,timestamptz,timestamptz,text,uuid,text,text,timestamptz,uuid,integer,text,inet,text);
create or replace function enclave_private.read_leads(
    token text, practice uuid, lead uuid, since timestamptz, until timestamptz, kind_filter text,
    source_filter uuid, campaign_filter text, source_name_filter text, after_at timestamptz, after_id uuid,
    max_rows integer, request_id text, client_ip inet, user_agent text, tokens bytea[]
)
returns setof enclave_private.lead_read
language plpgsql volatile set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
    r enclave_private.lead_read;
    k record;
    ids uuid[] := '{}';
    more boolean := false;
    full_transcript boolean;
begin
    if max_rows is null or max_rows not between 1 and 100 then
        raise exception 'read_limit_invalid' using errcode = '22023';
    end if;
    -- Every commit durable, as the service's transactions set it (Transaction.swift).
    perform set_config('synchronous_commit', 'on', true),
            set_config('enclave.session_token', coalesce(token, ''), true),
            set_config('enclave.tenant_id', coalesce(practice::text, ''), true);
    select t.mfa_verified, enclave_private.reachable_tenant('leads.read') as tenant into caller
    from enclave_private.touch_session() t;
    if not found then
        raise exception 'session_invalid' using errcode = '28000';
    end if;
    if caller.tenant is distinct from practice then
        if not caller.mfa_verified then
            raise exception 'mfa_required' using errcode = '28000';
        end if;
        raise exception 'practice_unreachable' using errcode = '42501';
    end if;
    if cardinality(tokens) > 10 then
        raise exception 'read_limit_invalid' using errcode = '22023';
    end if;
    -- Agency staff see the redacted transcript only, unless their agreement grants the full one.
    full_transcript := enclave_private.reachable_tenant('transcripts.full') is not distinct from practice;
    for r in
        select 'lead', l.id, l.source_id, l.kind, l.occurred_at, l.source, l.medium, l.campaign, l.keyword,
               l.landing_page, l.gclid, l.called_number, l.duration_seconds, l.disposition, l.caller_number,
               l.caller_name, case when full_transcript then l.transcript end, l.form_fields, l.page_url,
               l.recording_bytes, l.recording_content_type, l.redacted_at, l.qualification, l.value_cents,
               null, null, null, null, l.transcript_redacted, l.insights, l.transcript_status
        from enclave.leads l
        where l.tenant_id = practice and (lead is null or l.id = lead)
          -- transcript search and tag filters: every token present (leads_by_token)
          and (tokens is null or l.transcript_tokens @> tokens)
          and (since is null or l.occurred_at >= since) and (until is null or l.occurred_at < until)
          and (kind_filter is null or l.kind = kind_filter) and (source_filter is null or l.source_id = source_filter)
          and (campaign_filter is null or l.campaign = campaign_filter)
          and (source_name_filter is null or l.source = source_name_filter)
          and (after_at is null or (l.occurred_at, l.id) < (after_at, after_id))
        order by l.occurred_at desc, l.id desc
        limit max_rows + 1
    loop
        if cardinality(ids) = max_rows then
            more := true;
            exit;
        end if;
        ids := ids || r.id;
        return next r;
    end loop;
    if cardinality(ids) = 0 then
        return;
    end if;
    for k in
        select t.purpose, t.version, t.state, t.wrapped from enclave.tenant_keys t
        where t.tenant_id = practice and t.state <> 'destroyed'
    loop
        r := null;
        r.row_kind := 'key';
        r.key_purpose := k.purpose;
        r.key_version := k.version;
        r.key_state := k.state;
        r.key_wrapped := k.wrapped;
        return next r;
    end loop;
    perform enclave_private.record_audit(
        practice, 'phi.read', 'lead', case when cardinality(ids) = 1 then ids[1]::text end, 'ok',
        case when lead is null then case when tokens is not null then 'search' else 'list' end else 'get' end,
        jsonb_build_object('leads', to_jsonb(ids)),
        request_id, client_ip, user_agent);
    if more then
        r := null;
        r.row_kind := 'more';
        return next r;
    end if;
end
$$;
revoke all on function enclave_private.read_leads(text,uuid,uuid,timestamptz,timestamptz,text,uuid,text,text,timestamptz,uuid,integer,text,inet,text,bytea[]) from public;
grant execute on function enclave_private.read_leads(text,uuid,uuid,timestamptz,timestamptz,text,uuid,text,text,timestamptz,uuid,integer,text,inet,text,bytea[]) to enclave_app;
