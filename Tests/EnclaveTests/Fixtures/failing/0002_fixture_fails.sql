-- Fails on line 6 (SQLSTATE 42P01); the table made on line 2 must not survive.
create table fixture_partial (id int);
insert into fixture_partial values (1);

insert into fixture_partial
    select id from fixture_missing_table;
