create table fixture_ok (id int);
