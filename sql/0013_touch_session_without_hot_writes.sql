-- touch_session wrote last_seen_at on every request, so concurrent requests with one token
-- queued on one row lock (scripts/bench-api: GET /v1/me at 0.07x of /healthz). It now writes
-- only when the stored time is more than ten seconds old; the idle timeout is minutes, so its
-- resolution loses nothing that matters.
create or replace function enclave_private.touch_session()
returns table (session_id uuid, user_id uuid, mfa_verified boolean, authenticated_at timestamptz)
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
as $$
declare
    caller record;
begin
    select * into caller from enclave_private.current_session();
    if not found then
        return;
    end if;
    update enclave.sessions s set last_seen_at = now()
    where s.id = caller.session_id and s.last_seen_at < now() - interval '10 seconds';
    return query select caller.session_id, caller.user_id, caller.mfa_verified, caller.authenticated_at;
end
$$;
