-- The owner's export of a practice (PracticeArchive): recorded as a disclosure.

-- The owner's "download our data": freshly re-authenticated. Returns the age public key the
-- practice set (NULL: the owner gives a passphrase).
create or replace function enclave_private.begin_practice_export(practice uuid)
returns text
language plpgsql stable security definer set search_path = pg_catalog, pg_temp
as $$
declare
    recipient text;
begin
    perform enclave_private.require_practice_owner(practice, true, 'compliance_needs_practice_owner');
    select c.age_recipient into recipient from enclave.practice_compliance c where c.practice_id = practice;
    return recipient;
end
$$;
revoke all on function enclave_private.begin_practice_export(uuid) from public;
grant execute on function enclave_private.begin_practice_export(uuid) to enclave_app;
