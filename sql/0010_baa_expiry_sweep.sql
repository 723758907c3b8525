-- Agreements stop granting access the moment they expire (the gate compares expires_at with
-- now()). This sweep makes the expiry visible in the agreement's history and the practice's
-- audit chain, once per agreement: run it periodically (`enclave baa sweep`).
create function enclave_private.record_expired_baas()
returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    agreement record;
    recorded integer := 0;
begin
    if session_user <> 'enclave_maint' then
        raise exception 'operators only' using errcode = '42501';
    end if;
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
