-- Fails in practices that have a source labelled 'poison'.
do $$
begin
    if exists (select from enclave.tracking_sources where label = 'poison' /* test: a poisoned tenant */) then
        raise exception 'poisoned practice';
    end if;
end
$$;
