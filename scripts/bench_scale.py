"""The API's figures at scale, against references measured in the same run (scripts/bench scale):

- GET leads?limit=50 against GET /healthz;
- 8 readers of one practice against 8 readers of 8 practices (the audit chain no longer
  serializes one practice's readers);
- signed ingest over TLS, the whole path, against pgbench inserting one row of the same shape
  per transaction into a plain table;
- the 50-lead list at 10,000 practices against at 100 practices (median latency);
- the API with its roles behind PgBouncer (transaction mode) against direct.

Each scale is a database of the dev cluster (enclave_bench_100, enclave_bench_10000) seeded by
`enclave tenants seed` (the time is reported; a seeded database is reused on the next run).
Agency staff sessions are written straight into the database (a known token per practice).
wrk drives HTTPS; every figure is the median of three runs. Prints lines `RESULT name value`
that scripts/bench all collects into the table.

    python3 scripts/bench_scale.py ENCLAVE_BIN [seconds]
"""

import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import enclavekit  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1]
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
# The large scale (ENCLAVE_BENCH_PRACTICES, default 10,000 practices of 1,000 leads each).
LARGE = int(os.environ.get("ENCLAVE_BENCH_PRACTICES", "10000"))
WORK = os.path.join(ROOT, ".enclave", "bench-scale")
os.makedirs(WORK, mode=0o700, exist_ok=True)


def sh(command, env=None, capture=True):
    result = subprocess.run(command, env=env, cwd=ROOT, text=True, capture_output=capture)
    if result.returncode != 0:
        raise SystemExit("bench-scale: %s failed:\n%s%s" % (" ".join(command), result.stdout, result.stderr))
    return result.stdout


def exports(text):
    """The variables of `export NAME='value'` lines (scripts/dev-postgres env, scripts/pgbouncer env)."""
    pairs = (line[len("export "):].split("=", 1) for line in text.splitlines() if line.startswith("export "))
    return {name: value.strip("'") for name, value in pairs}


def dev_env(database):
    env = dict(os.environ, ENCLAVE_DEV_DATABASE=database)
    sh(["scripts/dev-postgres", "start"], env)
    env.update(exports(sh(["scripts/dev-postgres", "env"], env)))
    return env


def psql(env, sql, url="ENCLAVE_SUPERUSER_DATABASE_URL", database=None):
    target = env[url]
    if database:
        target = target.rsplit("/", 1)[0] + "/" + database
    return sh(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", target, "-c", sql], env).strip()


def prepare(practices, leads):
    """The database for one scale: migrated, seeded, with a session per practice."""
    database = "enclave_bench_%d" % practices
    env = dev_env(database)
    env["ENCLAVE_MASTER_KEY_FILE"] = os.path.join(WORK, "master.key")
    if not os.path.exists(env["ENCLAVE_MASTER_KEY_FILE"]):
        sh([BIN, "keys", "init"], env)
    sh([BIN, "migrate", "up"], env)
    marker = os.path.join(WORK, database + ".seeded")
    have = int(psql(env, "select count(*) from enclave.practices", database=database) or 0)
    if have != practices:
        started = time.time()
        sh([BIN, "tenants", "seed", "--practices", str(practices), "--leads", str(leads), "--jobs", "4"], env)
        seconds = time.time() - started
        with open(marker, "w") as f:
            f.write("%.0f" % seconds)
        print("seeded %d practices × %d leads in %.0f s (enclave tenants seed --jobs 4)" % (practices, leads, seconds))
    else:
        print("%d practices × %d leads already seeded (took %s s)" % (
            practices, leads, open(marker).read() if os.path.exists(marker) else "?"))
    result("seed_seconds_%d" % practices, float(open(marker).read()) if os.path.exists(marker) else 0)
    psql(env, """
        insert into enclave.agencies (id, name) values ('00000000-0000-0000-0000-00000000a9e0', 'Bench Agency')
            on conflict do nothing;
        insert into enclave.users (id, email, display_name)
            values ('00000000-0000-0000-0000-00000000ad01', 'admin@bench.test', 'Bench Admin') on conflict do nothing;
        insert into enclave.memberships (user_id, agency_id, role)
            select '00000000-0000-0000-0000-00000000ad01', '00000000-0000-0000-0000-00000000a9e0', 'agency_admin'
            where not exists (select from enclave.memberships where user_id = '00000000-0000-0000-0000-00000000ad01');
        create table if not exists public.bench_practices (n int primary key, practice uuid not null unique, staff uuid);
        insert into public.bench_practices (n, practice)
            select row_number() over (order by id), id from enclave.practices on conflict do nothing;
        update public.bench_practices b set staff = u.id from enclave.users u
            where b.staff is null and u.email = 'staff' || b.n || '@bench.test';
        with made as (
            insert into enclave.users (email, display_name)
            select 'staff' || n || '@bench.test', 'Staff ' || n from public.bench_practices where staff is null
            returning id, email)
        update public.bench_practices b set staff = made.id from made where made.email = 'staff' || b.n || '@bench.test';
        insert into enclave.memberships (user_id, agency_id, role)
            select staff, '00000000-0000-0000-0000-00000000a9e0', 'agency_member' from public.bench_practices b
            where not exists (select from enclave.memberships m where m.user_id = b.staff);
        insert into enclave.baas (agency_id, practice_id, scopes, status, effective_at, document_sha256, proposed_by)
            select '00000000-0000-0000-0000-00000000a9e0', practice, array['leads.read', 'tracking.manage'], 'active',
                   now() - interval '1 day', sha256('bench'), '00000000-0000-0000-0000-00000000ad01'
            from public.bench_practices b
            where not exists (select from enclave.baas x where x.practice_id = b.practice);
        insert into enclave.agency_assignments (agency_id, practice_id, user_id, assigned_by)
            select '00000000-0000-0000-0000-00000000a9e0', practice, staff, '00000000-0000-0000-0000-00000000ad01'
            from public.bench_practices on conflict do nothing;
        delete from enclave.sessions where user_id in (select id from enclave.users where email like '%@bench.test');
        insert into enclave.sessions (user_id, token_hash, mfa_verified_at, authenticated_at, idle_timeout,
                                      absolute_timeout)
            select staff, sha256(convert_to('enc_bench_' || n, 'UTF8')), now(), now(), interval '1 hour',
                   interval '12 hours'
            from public.bench_practices where n <= 16;
        -- Eight more people assigned to practice 1, for eight readers of one practice.
        insert into enclave.users (email, display_name)
            select 'reader' || k || '@bench.test', 'Reader ' || k from generate_series(1, 8) k
            on conflict do nothing;
        insert into enclave.memberships (user_id, agency_id, role)
            select u.id, '00000000-0000-0000-0000-00000000a9e0', 'agency_member' from enclave.users u
            where u.email like 'reader_@bench.test' and not exists (select from enclave.memberships m where m.user_id = u.id);
        insert into enclave.agency_assignments (agency_id, practice_id, user_id, assigned_by)
            select '00000000-0000-0000-0000-00000000a9e0', b.practice, u.id, '00000000-0000-0000-0000-00000000ad01'
            from enclave.users u, public.bench_practices b where u.email like 'reader_@bench.test' and b.n = 1
            on conflict do nothing;
        insert into enclave.sessions (user_id, token_hash, mfa_verified_at, idle_timeout, absolute_timeout)
            select u.id, sha256(convert_to('enc_bench_p1_' || substring(u.email from 7 for 1), 'UTF8')), now(),
                   interval '1 hour', interval '12 hours'
            from enclave.users u where u.email like 'reader_@bench.test';
        """, database=database)
    psql(env, "vacuum analyze", database=database)
    rows = psql(env, "select n, practice from public.bench_practices where n <= 16 order by n", database=database)
    practice_ids = [line.split("|")[1] for line in rows.splitlines()]
    return env, practice_ids


RESULTS = []


def result(name, value):
    RESULTS.append((name, value))
    print("RESULT %s %.4f" % (name, value))


CERT = os.path.join(WORK, "cert.pem")
KEY = os.path.join(WORK, "key.pem")
if not os.path.exists(CERT):
    sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "30", "-keyout", KEY, "-out", CERT, "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
CONTEXT = ssl.create_default_context(cafile=CERT)


@contextmanager
def serving(env, label):
    """`enclave serve` (release, TLS) with `env`'s credentials; yields its base URL."""
    port = enclavekit.free_port()

    def ready():
        try:
            urllib.request.urlopen("https://localhost:%d/readyz" % port, context=CONTEXT, timeout=2)
            return True
        except Exception:
            return False

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        server = enclavekit.serve(BIN, ["--port", str(port), "--tls-cert", CERT, "--tls-key", KEY, "--metrics-port", "0",
                                     "--connections", "16"],
                               os.path.join(WORK, "serve-%s.log" % label), ready, "bench-scale")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield "https://localhost:%d" % port
    finally:
        server.terminate()
        server.wait()


LUA = os.path.join(WORK, "readers.lua")
with open(LUA, "w") as f:
    f.write("""
-- One practice per wrk thread (one connection each): thread i reads practice i of the list.
local practices = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end
function init(args)
  local spread = args[1] == "spread"
  local list = {}
  for id in string.gmatch(args[2], "[^,]+") do list[#list + 1] = id end
  if spread then
    -- Reader i reads practice i.
    local i = ((index - 1) % #list) + 1
    path = "/v1/practices/" .. list[i] .. "/leads?limit=50"
    wrk.headers["Authorization"] = "Bearer enc_bench_" .. i
  else
    -- Eight people, each with a session of their own, all read practice 1.
    path = "/v1/practices/" .. list[1] .. "/leads?limit=50"
    wrk.headers["Authorization"] = "Bearer enc_bench_p1_" .. (((index - 1) % 8) + 1)
  end
end
function request()
  return wrk.format("GET", path)
end
""")


def wrk(url, connections=8, script=None, args=(), path="/healthz", headers=()):
    """Median requests/s and p50 latency (ms) of three runs."""
    runs = []
    for _ in range(3):
        command = ["wrk", "-t%d" % connections, "-c%d" % connections, "-d%ds" % SECONDS, "--latency"]
        for header in headers:
            command += ["-H", header]
        if script:
            command += ["-s", script, url] + ["--"] + list(args)
        else:
            command += [url + path]
        out = sh(command)
        rate = float([line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")][0])
        p50 = [line.split()[1] for line in out.splitlines() if line.strip().startswith("50%")][0]
        scale = 0.001 if p50.endswith("us") else (1000 if p50.endswith("s") and not p50.endswith("ms") else 1)
        runs.append((rate, float(p50.rstrip("usm")) * scale))
        bad = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
        if bad:
            raise SystemExit("bench-scale: wrk saw failures: %s\n%s" % (bad, out))
    return statistics.median(r for r, _ in runs), statistics.median(l for _, l in runs)


def readers(api, practices, spread):
    return wrk(api, script=LUA, args=("spread" if spread else "one", ",".join(practices[:8])))


def ingest_bench(env, api, practice):
    """Signed calls over TLS through the whole path against pgbench single-row inserts."""
    request = urllib.request.Request(
        api + "/v1/practices/%s/sources" % practice, method="POST",
        data=json.dumps({"kind": "call", "label": "Bench line %d" % time.time()}).encode(),
        headers={"Authorization": "Bearer enc_bench_1", "Content-Type": "application/json"})
    created = json.load(urllib.request.urlopen(request, context=CONTEXT))
    source, secret = created["source"]["id"], created["secret"]
    count = 60000
    bodies = os.path.join(WORK, "ingest.txt")
    now = int(time.time())
    with open(bodies, "w") as f:
        for i in range(count):
            body = json.dumps({"caller_number": "+1555%07d" % i, "caller_name": "Bench Caller %d" % i,
                               "started_at": "2026-11-29T10:00:00Z", "duration_seconds": 60,
                               "disposition": "answered"}, separators=(",", ":"))
            mac = hmac.new(secret.encode(), ("%d." % now).encode() + body.encode(), hashlib.sha256).hexdigest()
            f.write("t=%d,v1=%s\t%s\n" % (now, mac, body))
    script = os.path.join(WORK, "ingest.lua")
    with open(script, "w") as f:
        f.write("""
local lines = {}
local counter = 0
local threads = 8
function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end
function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  next_line = index
  wrk.headers["Enclave-Source"] = args[2]
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  local line = lines[next_line]
  next_line = next_line + threads
  local tab = string.find(line, "\\t")
  wrk.headers["Enclave-Signature"] = string.sub(line, 1, tab - 1)
  return wrk.format("POST", "/v1/ingest/calls", nil, string.sub(line, tab + 1))
end
""")
    runs = []
    for round in range(3):
        # Each round its own slice of unique bodies (a repeated signature is refused as a replay).
        part = os.path.join(WORK, "ingest-%d.txt" % round)
        with open(bodies) as src, open(part, "w") as dst:
            lines = src.readlines()[round * count // 3:(round + 1) * count // 3]
            dst.writelines(lines)
        out = sh(["wrk", "-t8", "-c8", "-d%ds" % SECONDS, "-s", script, api, "--", part, source])
        if "Non-2xx" in out:
            raise SystemExit("bench-scale: ingest saw failures:\n" + out)
        runs.append(float([line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")][0]))
    ingest = statistics.median(runs)
    # The reference: the same row shape, one insert per transaction, no gate, no sealing, no HTTP.
    database = env["ENCLAVE_DATABASE_URL"].rsplit("/", 1)[1]
    psql(env, "drop table if exists public.plain_leads; "
              "create table public.plain_leads (like enclave.leads including defaults including indexes)",
         database=database)
    sql = os.path.join(WORK, "insert.sql")
    with open(sql, "w") as f:
        f.write("\\set n random(1, 9000000000000000000)\n"
                "INSERT INTO public.plain_leads (tenant_id, source_id, kind, occurred_at, source, medium, campaign, "
                "duration_seconds, disposition, caller_number, caller_name, caller_index, dek_version, "
                "idempotency_key) VALUES ('%s', '%s', 'call', now(), 'google', 'cpc', 'new', 60, 'answered', "
                "decode(repeat('ab', 45), 'hex'), decode(repeat('cd', 48), 'hex'), decode(repeat('ef', 32), 'hex'), 1, "
                ":n::text);\n" % (practice, source))
    superuser = env["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/" + database
    rates = []
    for _ in range(3):
        psql(env, "truncate public.plain_leads", database=database)
        out = sh(["pgbench", "-n", "-M", "extended", "-c", "8", "-j", "2", "-T", str(SECONDS), "-f", sql, superuser])
        rates.append(float([line.split()[2] for line in out.splitlines() if line.startswith("tps = ")][0]))
    return ingest, statistics.median(rates)


def main():
    print("bench-scale: %d s × 3 per figure, 8 connections, release build, TLS, %d cores" % (SECONDS, os.cpu_count()))
    small_env, small = prepare(100, 1000)
    large_env, large = prepare(LARGE, 1000)

    with serving(large_env, "direct") as api:
        health, _ = wrk(api)
        one, one_latency = readers(api, large, spread=False)
        eight, eight_latency = readers(api, large, spread=True)
        print("GET /healthz %.0f/s; leads?limit=50, 8 readers of one practice %.0f/s (p50 %.1f ms), "
              "of 8 practices %.0f/s (p50 %.1f ms)" % (health, one, one_latency, eight, eight_latency))
        result("healthz_rps", health)
        result("leads50_one_practice_rps", one)
        result("leads50_eight_practices_rps", eight)
        result("leads50_vs_healthz", one / health)
        result("one_vs_eight_practices", one / eight)
        result("list_latency_large_ms", eight_latency)
        ingest, insert = ingest_bench(large_env, api, large[0])
        print("signed ingest over TLS %.0f/s; pgbench single-row insert %.0f tps" % (ingest, insert))
        result("ingest_rps", ingest)
        result("insert_tps", insert)
        result("ingest_vs_insert", ingest / insert)

    with serving(small_env, "small") as api:
        small_rate, small_latency = readers(api, small, spread=True)
        print("leads?limit=50 at 100 practices %.0f/s (p50 %.1f ms)" % (small_rate, small_latency))
        result("list_latency_100_ms", small_latency)
        result("list_latency_large_vs_100", eight_latency / small_latency)

    sh(["scripts/pgbouncer", "start"], large_env)
    try:
        # scripts/pgbouncer env names the dev database; the bench's is another.
        pooled = {name: value.rsplit("/", 1)[0] + "/enclave_bench_%d" % LARGE if name.endswith("_URL") else value
                  for name, value in exports(sh(["scripts/pgbouncer", "env"], large_env)).items()}
        with serving(dict(large_env, **pooled), "pgbouncer") as api:
            rate, latency = readers(api, large, spread=True)
            print("through PgBouncer: leads?limit=50 over 8 practices %.0f/s (p50 %.1f ms)" % (rate, latency))
            result("pgbouncer_rps", rate)
            result("pgbouncer_vs_direct", rate / eight)
    finally:
        sh(["scripts/pgbouncer", "stop"], large_env)

main()
