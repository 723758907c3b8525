-- What leads are worth: qualification and value, ad spend. Reports read them through the gate
-- (LeadValue in Swift); these functions are the only writers.

-- Marks a lead qualified, unqualified or spam, with its sales value in cents: the practice's
-- owners, or agency staff whose agreement in force grants leads.qualify (the gate decides).
create or replace function enclave_private.qualify_lead(lead uuid, qualification text, value_cents bigint)
returns boolean
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
    practice uuid := enclave_private.reachable_tenant('leads.qualify');
begin
    if practice is null then
        raise exception 'qualify_needs_scope' using errcode = '42501';
    end if;
    if qualification not in ('qualified', 'unqualified', 'spam')
        or value_cents < 0 or value_cents > 100000000000 then
        raise exception 'qualification_invalid' using errcode = '22023';
    end if;
    update enclave.leads l
    set qualification = qualify_lead.qualification, value_cents = qualify_lead.value_cents, qualified_at = now(),
        qualified_by = caller.user_id
    where l.tenant_id = practice and l.id = lead;
    if not found then
        return false;
    end if;
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'lead.qualified', 'lead', lead::text, 'ok', null, null,
        null, null, jsonb_strip_nulls(jsonb_build_object('qualification', qualification, 'value_cents', value_cents)));
    return true;
end
$$;
revoke all on function enclave_private.qualify_lead(uuid,text,bigint) from public;
grant execute on function enclave_private.qualify_lead(uuid,text,bigint) to enclave_app;

-- Records (or replaces) a practice's ad spend for a month and a source: an admin of an agency
-- whose agreement with the practice is in force, or the practice's owner.
create or replace function enclave_private.record_ad_spend(practice uuid, month date, source text, amount_cents bigint)
returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record := enclave_private.require_session();
begin
    if not enclave_private.has_role(caller.user_id, 'practice_owner', null, practice) and not exists (
        select from enclave.baas b
        where b.practice_id = practice and b.status = 'active' and b.effective_at <= now()
          and (b.expires_at is null or now() < b.expires_at)
          and enclave_private.has_role(caller.user_id, 'agency_admin', b.agency_id, null)) then
        raise exception 'spend_needs_agency_admin' using errcode = '42501';
    end if;
    insert into enclave.ad_spend (tenant_id, month, source, amount_cents, recorded_by)
    values (practice, month, source, amount_cents, caller.user_id)
    on conflict on constraint ad_spend_pkey do update
    set amount_cents = excluded.amount_cents, recorded_by = excluded.recorded_by, recorded_at = now();
    perform enclave_private.append_audit_event(
        practice, caller.user_id, 'user', caller.session_id, 'spend.recorded', 'ad_spend', source, 'ok', null, null,
        null, null, jsonb_build_object('month', month, 'amount_cents', amount_cents));
end
$$;
revoke all on function enclave_private.record_ad_spend(uuid,date,text,bigint) from public;
grant execute on function enclave_private.record_ad_spend(uuid,date,text,bigint) to enclave_app;
