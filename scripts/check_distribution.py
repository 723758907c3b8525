"""Whether the schema is ready to distribute by tenant (issue 28), read from a freshly migrated
database's catalog and from the statements the suite ran (pg_stat_statements). Run by
scripts/check-distribution; docs/scale.md says what each rule buys on a Citus cluster.

  1. Every table in Enclave's schemas either has tenant_id (distributed by it) or is on one of
     the named lists below: reference tables (copied to every node) and coordinator tables
     (control-plane state that stays on one node).
  2. On every tenant table, the primary key and every unique index include tenant_id, and every
     foreign key to another tenant table includes tenant_id on both sides. Foreign keys from a
     tenant table go only to tenant tables and reference tables; none point at a tenant table
     from elsewhere, nor from a reference table at a coordinator table.
  3. Every row-level security policy on a tenant table compares tenant_id, except the named
     policies of roles that only run inside the schema's own functions (their statements are
     checked by rule 4).
  4. Every data statement the service ran on a tenant table, top-level or inside a function,
     names tenant_id, except the named statements below.
  5. The Citus commands in docs/scale.md name every reference table and every tenant table, and
     no other, and add to the metadata every coordinator table with a foreign key to a
     reference table (and only coordinator tables).

Prints what it checked and every violation; exits non-zero on any.
"""

import json
import os
import re
import subprocess
import sys

SCHEMA = os.environ["ENCLAVE_ADMIN_DATABASE_URL"]
STATISTICS = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"]

# Replicated to every node: small, read by the gate and the policies on every shard.
REFERENCE = {
    "enclave.practices": "the tenants themselves; every tenant table's tenant_id refers to it",
    "enclave.agencies": "agencies, read by the gate",
    "enclave.users": "people, read by the gate and the sessions",
    "enclave.memberships": "who belongs to which practice or agency: the gate",
    "enclave.agency_assignments": "which agency staff reach which practice: the gate",
    "enclave.baas": "agreements: the gate, in every policy through reachable_tenant",
    "enclave.baa_events": "the agreements' history",
    "enclave.break_glass": "emergency access grants: the gate",
    "enclave.platform_responders": "who may break glass: the gate",
    "enclave.sessions": "the caller's session: the gate starts from it (written at sign-in, sign-out "
                        "and at most every 10 s of use)",
    "enclave.legal_holds": "holds that stop retention, read where rows are purged",
    "enclave.practice_compliance": "per-practice settings read where rows are purged",
    "enclave.audit_actions": "the audit vocabulary; audit_events refers to it",
    "enclave.master_keys": "master-key versions, read wherever keys are unwrapped",
    "enclave_private.ingest_credentials": "source to practice: answers which tenant before there is one",
    "enclave_private.number_directory": "tracking number to practice: the same, for calls",
    "enclave_private.web_properties": "snippet key to practice: the same, for the website snippet",
}
# Control-plane state kept on the coordinator: not per tenant, written by every server process.
COORDINATOR = {
    "enclave.login_failures": "sign-in and code throttles, by account and address",
    "enclave.alerts": "security alerts, by agency or platform",
    "enclave.patient_requests": "patients' requests and their deadlines: a few a year per practice, listed "
                                "with the alerts",
    "enclave_private.capture_budgets": "the snippet's per-minute budgets, by address and key",
    "enclave_private.stranger_denials": "the per-minute count of refused strangers, by address",
    "enclave_private.audit_heads": "the platform audit chain's head (one row per chain)",
    "enclave_private.instance": "this installation's secret (one row)",
    "enclave_meta.schema_migrations": "the migration ledger",
    "enclave_meta.function_migrations": "the function-file ledger",
}
# Policies that do not compare tenant_id, and why that is safe on a distributed table.
POLICIES = {
    **{("audit_events", p): "the owner runs the audit chain's functions, which name tenant_id"
       for p in ("owner_select", "owner_insert", "owner_update", "owner_delete")},
    **{("ad_spend", p): "the owner runs the spend functions, which name tenant_id"
       for p in ("owner_select", "owner_insert", "owner_update", "owner_delete")},
    ("tenant_migrations", "owner_select"): "the tenant migrator (owner) lists every practice's progress",
    ("outbox", "owner_select"): "the owner's webhook functions, which name tenant_id",
    ("outbox", "owner_notify"): "the owner's notification functions, which name tenant_id",
    ("recording_fetches", "owner_select"): "the owner's recording functions, which name tenant_id",
    ("leads", "figures_select"): "enclave_figures runs only the rollup's functions, which name tenant_id",
    ("ad_spend", "figures_select"): "the same",
    ("lead_figures", "figures_select"): "the same",
    ("lead_figures", "figures_insert"): "the same",
    ("lead_figures", "figures_update"): "the same",
}
# Statements on a tenant table that do not name tenant_id (normalized text), and why. The tests'
# own statements (isolation and attack probes, per-tenant migration fixtures) carry the marker
# "/* test: ... */" and are not the service's; the marker must not appear in Sources/ or sql/.
STATEMENTS = {
    "select setval($1, coalesce((select max(seq) from enclave.audit_events), $2) + $3, $4)":
        "a migration moves the platform-number sequence past every event, once",
    "update enclave.audit_events set chain_seq = seq, link = $1":
        "migration 0013 links the events written before the chainer existed, once",
}
TEST_MARKER = "/* test:"
DDL = re.compile(r"(?is)^\s*(create|alter|drop|comment|grant|revoke|do|set|reset|begin|commit|rollback|"
                 r"savepoint|release|lock|notify|listen|deallocate|analyze|vacuum|truncate|explain|prepare|"
                 r"select\s+set_config|select\s+pg_advisory)")
violations = []
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def query(url, sql):
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c",
                          "select coalesce(json_agg(q), '[]') from (%s) q" % sql],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def violation(text):
    violations.append(text)
    print("check-distribution: VIOLATION: " + text, flush=True)


tables = query(SCHEMA, """
    select n.nspname || '.' || c.relname as name, c.oid::int8 as oid,
           exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id'
                   and not a.attisdropped) as tenant
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('enclave', 'enclave_private', 'enclave_meta') and c.relkind in ('r', 'p')
      and not c.relispartition""")
tenant = {t["name"] for t in tables if t["tenant"]}
others = {t["name"] for t in tables if not t["tenant"]}

# 1. Every table is a tenant table or named.
for name in sorted(others - set(REFERENCE) - set(COORDINATOR)):
    violation("%s has no tenant_id and is on neither the reference nor the coordinator list" % name)
for name in sorted((set(REFERENCE) | set(COORDINATOR)) - others):
    violation("%s is listed as %s but %s" % (
        name, "a reference table" if name in REFERENCE else "a coordinator table",
        "has tenant_id" if name in tenant else "does not exist"))

# 2. Keys and foreign keys.
keys = query(SCHEMA, """
    select n.nspname || '.' || c.relname as table, i.indexrelid::regclass::text as index, i.indisprimary as primary,
           exists (select from unnest(i.indkey) k join pg_attribute a on a.attrelid = c.oid and a.attnum = k
                   where a.attname = 'tenant_id') as has_tenant
    from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('enclave', 'enclave_private', 'enclave_meta') and (i.indisunique or i.indisprimary)""")
primary = {k["table"] for k in keys if k["primary"]}
for name in sorted(tenant - primary):
    violation("tenant table %s has no primary key" % name)
for key in keys:
    if key["table"] in tenant and not key["has_tenant"]:
        violation("%s on tenant table %s does not include tenant_id" % (
            "the primary key" if key["primary"] else "unique index " + key["index"], key["table"]))
foreign = query(SCHEMA, """
    select con.conname as name, n.nspname || '.' || c.relname as table, fn.nspname || '.' || f.relname as target,
           coalesce((select bool_or(a.attname = 'tenant_id' and b.attname = 'tenant_id')
                     from unnest(con.conkey, con.confkey) as k(own, other)
                     join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.own
                     join pg_attribute b on b.attrelid = con.confrelid and b.attnum = k.other), false) as tenant_pair
    from pg_constraint con
    join pg_class c on c.oid = con.conrelid join pg_namespace n on n.oid = c.relnamespace
    join pg_class f on f.oid = con.confrelid join pg_namespace fn on fn.oid = f.relnamespace
    where con.contype = 'f' and n.nspname in ('enclave', 'enclave_private', 'enclave_meta')""")
for key in foreign:
    if key["table"] in tenant and key["target"] in tenant and not key["tenant_pair"]:
        violation("foreign key %s (%s to %s) does not pair tenant_id with tenant_id" % (
            key["name"], key["table"], key["target"]))
    elif key["table"] in tenant and key["target"] not in tenant and key["target"] not in REFERENCE:
        violation("foreign key %s goes from tenant table %s to %s, which is not a reference table" % (
            key["name"], key["table"], key["target"]))
    elif key["table"] not in tenant and key["target"] in tenant:
        violation("foreign key %s goes from %s to tenant table %s" % (key["name"], key["table"], key["target"]))
    elif key["table"] in REFERENCE and key["target"] in COORDINATOR:
        violation("foreign key %s goes from reference table %s to coordinator table %s" % (
            key["name"], key["table"], key["target"]))

# 3. Policies.
policies = query(SCHEMA, """
    select schemaname || '.' || tablename as table, tablename, policyname as name,
           coalesce(qual, '') || ' ' || coalesce(with_check, '') as expression
    from pg_policies where schemaname in ('enclave', 'enclave_private')""")
checked_policies = 0
for policy in policies:
    if policy["table"] not in tenant:
        continue
    checked_policies += 1
    listed = (policy["tablename"], policy["name"]) in POLICIES
    if "tenant_id" not in policy["expression"] and not listed:
        violation("policy %s on %s does not compare tenant_id: %s" % (
            policy["name"], policy["table"], policy["expression"].strip()))
    elif "tenant_id" in policy["expression"] and listed:
        violation("policy %s on %s compares tenant_id now: take it off the list" % (policy["name"], policy["table"]))
for table, name in POLICIES:
    if not any(p["tablename"] == table and p["name"] == name for p in policies):
        violation("listed policy %s on %s does not exist" % (name, table))

# 4. Statements. The tests' marker must not hide a statement of the service.
marked = subprocess.run(["grep", "-rlF", TEST_MARKER, os.path.join(root, "Sources"), os.path.join(root, "sql")],
                        capture_output=True, text=True).stdout.split()
for path in marked:
    violation("%s holds the tests' statement marker %r" % (os.path.relpath(path, root), TEST_MARKER))
names = sorted({t.split(".", 1)[1] for t in tenant}, key=len, reverse=True)
naming = re.compile(r"(?i)\b(?:from|join|update|into)\s+(?:only\s+)?(?:enclave\.)?(%s)\b" % "|".join(names))
statements = query(STATISTICS, """
    select distinct r.rolname as role, s.query from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where r.rolname like 'enclave%'""")
service = [s for s in statements if s["role"] in ("enclave_app", "enclave_auth")]
if len(service) < 100:
    violation("pg_stat_statements holds %d statements of the service's roles: run this after the suite "
              "(scripts/test does), with the cluster of scripts/dev-postgres" % len(service))
checked, used = 0, set()
for statement in statements:
    text = re.sub(r"\s+", " ", statement["query"]).strip()
    if DDL.match(text) or not naming.search(text) or TEST_MARKER in text:
        continue
    checked += 1
    if "tenant_id" in text:
        continue
    if text in STATEMENTS:
        used.add(text)
        continue
    violation("%s ran a statement on a tenant table that does not name tenant_id: %s" % (
        statement["role"], text[:300]))

# 5. The commands in docs/scale.md, against the catalog.
commands = re.findall(r"(?s)```sql\n(.*?)```", open(os.path.join(root, "docs", "scale.md")).read())
commands = "\n".join(commands)


def named(function):
    """The tables a `select function(...)` statement of the commands names, first argument included."""
    found = set()
    for statement in re.findall(r"(?s)select %s\((.*?);" % function, commands):
        found |= set(re.findall(r"'((?:enclave|enclave_private|enclave_meta)\.[a-z_]+)'", statement))
    return found


documented = {"create_reference_table": (named("create_reference_table"), set(REFERENCE)),
              "create_distributed_table": (named("create_distributed_table"), tenant)}
for function, (listed, actual) in documented.items():
    for name in sorted(actual - listed):
        violation("docs/scale.md does not pass %s to %s" % (name, function))
    for name in sorted(listed - actual):
        violation("docs/scale.md passes %s to %s, which is not a %s table" % (
            name, function, "reference" if function == "create_reference_table" else "tenant"))
local = named("citus_add_local_table_to_metadata")
for name in sorted(local - set(COORDINATOR)):
    violation("docs/scale.md adds %s to the metadata as a local table, but it is not a coordinator table" % name)
pointing = {}
for key in foreign:
    if key["table"] in COORDINATOR and key["target"] in REFERENCE and key["table"] not in local:
        pointing.setdefault(key["table"], set()).add(key["target"])
for name, targets in sorted(pointing.items()):
    violation("docs/scale.md does not add coordinator table %s to the metadata; it has foreign keys to "
              "reference tables %s" % (name, ", ".join(sorted(targets))))

print("check-distribution: %d tenant tables, %d reference tables, %d coordinator tables; %d unique keys "
      "and %d foreign keys; %d policies on tenant tables (%d listed); %d statements on tenant tables "
      "(of %d recorded, %d listed); docs/scale.md's commands name %d tables" % (
          len(tenant), len(REFERENCE), len(COORDINATOR), len(keys), len(foreign), checked_policies, len(POLICIES),
          checked, len(statements), len(used), sum(len(t) for t, _ in documented.values()) + len(local)),
      flush=True)
sys.exit(1 if violations else 0)
