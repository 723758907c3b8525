"""The API's figures at scale, against references measured in the same run (scripts/bench scale):

- GET leads?limit=50 against GET /healthz;
- 8 readers of one practice against 8 readers of 8 practices (the audit chain no longer
  serializes one practice's readers);
- signed ingest and Twilio's voice webhook over TLS, the whole path, against pgbench inserting
  one row of the same shape per transaction into a plain table;
- the cross-practice ROI report of an agency admin who reaches 1,000 practices (p50);
- the 50-lead list at 10,000 practices against at 100 practices (median latency);
- the API with its roles behind PgBouncer (transaction mode) against direct.

Each scale is a database of the dev cluster (enclave_bench_100, enclave_bench_10000) seeded by
`enclave tenants seed` (the time is reported; a seeded database is reused on the next run).
Agency staff sessions are written straight into the database (a known token per practice).
wrk drives HTTPS; every figure is the median of three rounds, and each ratio the median of
three alternating rounds (reference, subject, reference, ...). Prints lines `RESULT name value`
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
import urllib.parse
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
        -- A second agency whose admin reaches the first 1,000 practices: the cross-practice ROI report.
        insert into enclave.agencies (id, name) values ('00000000-0000-0000-0000-00000000a9e1', 'Bench ROI Agency')
            on conflict do nothing;
        insert into enclave.users (id, email, display_name)
            values ('00000000-0000-0000-0000-00000000ad02', 'roi@bench.test', 'Bench ROI Admin') on conflict do nothing;
        insert into enclave.memberships (user_id, agency_id, role)
            select '00000000-0000-0000-0000-00000000ad02', '00000000-0000-0000-0000-00000000a9e1', 'agency_admin'
            where not exists (select from enclave.memberships where user_id = '00000000-0000-0000-0000-00000000ad02');
        insert into enclave.baas (agency_id, practice_id, scopes, status, effective_at, document_sha256, proposed_by)
            select '00000000-0000-0000-0000-00000000a9e1', practice, array['leads.read'], 'active',
                   now() - interval '1 day', sha256('bench'), '00000000-0000-0000-0000-00000000ad02'
            from public.bench_practices b
            where n <= 1000 and not exists (select from enclave.baas x where x.practice_id = b.practice
                                                 and x.agency_id = '00000000-0000-0000-0000-00000000a9e1');
        delete from enclave.sessions where user_id in (select id from enclave.users where email like '%@bench.test');
        insert into enclave.sessions (user_id, token_hash, mfa_verified_at, authenticated_at, idle_timeout,
                                      absolute_timeout)
            values ('00000000-0000-0000-0000-00000000ad02', sha256(convert_to('enc_bench_roi', 'UTF8')), now(), now(),
                    interval '1 hour', interval '12 hours');
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
    """Requests/s and p50 latency (ms) of one run of SECONDS."""
    command = ["wrk", "-t%d" % connections, "-c%d" % connections, "-d%ds" % SECONDS, "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", script, url] + ["--"] + list(args)
    else:
        command += [url + path]
    out = sh(command)
    bad = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if bad:
        raise SystemExit("bench-scale: wrk saw failures: %s\n%s" % (bad, out))
    rate = float([line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")][0])
    p50 = [line.split()[1] for line in out.splitlines() if line.strip().startswith("50%")][0]
    scale = 0.001 if p50.endswith("us") else (1000 if p50.endswith("s") and not p50.endswith("ms") else 1)
    return rate, float(p50.rstrip("usm")) * scale


def alternating(**measures):
    """Three rounds; each round runs every measure once, in turn, so a reference and what it is
    compared with share the machine's drift. {name: [value of round 1, 2, 3]}."""
    rounds = {name: [] for name in measures}
    for _ in range(3):
        for name, measure in measures.items():
            rounds[name].append(measure())
    return rounds


def median_of(values, pick=lambda value: value):
    return statistics.median(pick(value) for value in values)


def median_ratio(over, under, pick=lambda value: value):
    """The median over rounds of each round's ratio."""
    return statistics.median(pick(a) / pick(b) for a, b in zip(over, under))


def rate(value):
    return value[0]


def latency(value):
    return value[1]


def readers(api, practices, spread):
    return wrk(api, script=LUA, args=("spread" if spread else "one", ",".join(practices[:8])))


def post_json(url, body, token):
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, context=CONTEXT))


def replay_script(name, path, content_type, signature_header):
    """A wrk script that posts each line of a file once (`signature TAB body`), thread i taking
    lines i, i + 8, ...: a repeated signature or call would be refused as a replay."""
    script = os.path.join(WORK, name + ".lua")
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
  if args[2] ~= "" then wrk.headers["Enclave-Source"] = args[2] end
  wrk.headers["Content-Type"] = "%s"
end
function request()
  local line = lines[next_line]
  next_line = next_line + threads
  local tab = string.find(line, "\\t")
  wrk.headers["%s"] = string.sub(line, 1, tab - 1)
  return wrk.format("POST", "%s", nil, string.sub(line, tab + 1))
end
""" % (content_type, signature_header, path))
    return script


def replay_rounds(name, lines):
    """The lines split into three files, one per round."""
    parts = []
    for round in range(3):
        part = os.path.join(WORK, "%s-%d.txt" % (name, round))
        with open(part, "w") as f:
            f.writelines(lines[round * len(lines) // 3:(round + 1) * len(lines) // 3])
        parts.append(part)
    return parts


def posting(api, script, part, source=""):
    out = sh(["wrk", "-t8", "-c8", "-d%ds" % SECONDS, "-s", script, api, "--", part, source])
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("bench-scale: posting saw failures:\n" + out)
    return float([line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")][0])


def ingest_bench(env, api, practice):
    """Signed calls and Twilio voice webhooks over TLS through the whole path, against pgbench
    single-row inserts of the same shape, alternating: {name: [per round]}."""
    count = 60000
    created = post_json(api + "/v1/practices/%s/sources" % practice,
                        {"kind": "call", "label": "Bench line %d" % time.time()}, "enc_bench_1")
    source, secret = created["source"]["id"], created["secret"]
    now = int(time.time())
    signed = []
    for i in range(count):
        body = json.dumps({"caller_number": "+1555%07d" % i, "caller_name": "Bench Caller %d" % i,
                           "started_at": "2026-11-29T10:00:00Z", "duration_seconds": 60,
                           "disposition": "answered"}, separators=(",", ":"))
        mac = hmac.new(secret.encode(), ("%d." % now).encode() + body.encode(), hashlib.sha256).hexdigest()
        signed.append("t=%d,v1=%s\t%s\n" % (now, mac, body))
    signed_parts = replay_rounds("ingest", signed)
    signed_script = replay_script("ingest", "/v1/ingest/calls", "application/json", "Enclave-Signature")

    # Twilio's voice webhook, signed by the twilio package's own validator.
    from twilio.request_validator import RequestValidator
    token = "bench-twilio-auth-token-%d" % now
    account = "AC" + "be" * 16
    twilio = post_json(api + "/v1/practices/%s/sources/twilio" % practice,
                       {"label": "Bench Twilio %d" % now, "account_sid": account, "auth_token": token,
                        "forward_to": "+15550009999"}, "enc_bench_1")
    path = "/v1/capture/twilio/%s/voice" % twilio["id"].lower()
    validator = RequestValidator(token)
    calls = []
    for i in range(count):
        params = {"AccountSid": account, "CallSid": "CA%08x%024x" % (now & 0xffffffff, i), "CallStatus": "ringing",
                  "Direction": "inbound", "From": "+1556%07d" % i, "To": "+15550001234",
                  "Called": "+15550001234", "CallerName": "BENCH CALLER %d" % i}
        calls.append("%s\t%s\n" % (validator.compute_signature(api + path, params),
                                    urllib.parse.urlencode(params)))
    twilio_parts = replay_rounds("twilio", calls)
    twilio_script = replay_script("twilio", path, "application/x-www-form-urlencoded", "X-Twilio-Signature")

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

    def insert():
        psql(env, "truncate public.plain_leads", database=database)
        out = sh(["pgbench", "-n", "-M", "extended", "-c", "8", "-j", "2", "-T", str(SECONDS), "-f", sql, superuser])
        return float([line.split()[2] for line in out.splitlines() if line.startswith("tps = ")][0])

    parts = {"signed": iter(signed_parts), "twilio": iter(twilio_parts)}
    return alternating(insert=insert,
                       signed=lambda: posting(api, signed_script, next(parts["signed"]), source),
                       twilio=lambda: posting(api, twilio_script, next(parts["twilio"])))


def main():
    print("bench-scale: %d s per run, three alternating rounds per figure (medians), 8 connections, release build, "
          "TLS, %d cores" % (SECONDS, os.cpu_count()))
    small_env, small = prepare(100, 1000)
    large_env, large = prepare(LARGE, 1000)

    with serving(large_env, "direct") as api:
        runs = alternating(health=lambda: wrk(api), one=lambda: readers(api, large, spread=False),
                           eight=lambda: readers(api, large, spread=True))
        health, one, eight = (median_of(runs[name], rate) for name in ("health", "one", "eight"))
        eight_latency = median_of(runs["eight"], latency)
        print("GET /healthz %.0f/s; leads?limit=50, 8 readers of one practice %.0f/s (p50 %.1f ms), "
              "of 8 practices %.0f/s (p50 %.1f ms)" % (health, one, median_of(runs["one"], latency), eight,
                                                       eight_latency))
        result("healthz_rps", health)
        result("leads50_one_practice_rps", one)
        result("leads50_eight_practices_rps", eight)
        result("leads50_vs_healthz", median_ratio(runs["one"], runs["health"], rate))
        result("one_vs_eight_practices", median_ratio(runs["one"], runs["eight"], rate))
        result("list_latency_large_ms", eight_latency)

        runs = ingest_bench(large_env, api, large[0])
        insert, signed, twilio = (median_of(runs[name]) for name in ("insert", "signed", "twilio"))
        print("signed ingest over TLS %.0f/s; Twilio voice webhook %.0f/s; pgbench single-row insert %.0f tps"
              % (signed, twilio, insert))
        result("ingest_rps", signed)
        result("twilio_rps", twilio)
        result("insert_tps", insert)
        result("ingest_vs_insert", median_ratio(runs["signed"], runs["insert"]))
        result("twilio_vs_insert", median_ratio(runs["twilio"], runs["insert"]))

        # The cross-practice ROI report of an agency admin who reaches 1,000 practices × 1,000 leads.
        roi = [wrk(api, connections=1, path="/v1/reports/roi?since=2026-01-01T00:00:00Z&until=2027-01-01T00:00:00Z",
                   headers=("Authorization: Bearer enc_bench_roi",)) for _ in range(3)]
        print("cross-practice ROI report, %d practices: p50 %.1f ms" % (min(LARGE, 1000), median_of(roi, latency)))
        result("roi_across_practices_p50_ms", median_of(roi, latency))

    with serving(small_env, "small") as api:
        small_runs = [readers(api, small, spread=True) for _ in range(3)]
    small_latency = median_of(small_runs, latency)
    print("leads?limit=50 at 100 practices %.0f/s (p50 %.1f ms)" % (median_of(small_runs, rate), small_latency))
    result("list_latency_100_ms", small_latency)
    result("list_latency_large_vs_100", eight_latency / small_latency)

    sh(["scripts/pgbouncer", "start"], large_env)
    try:
        # scripts/pgbouncer env names the dev database; the bench's is another.
        pooled = {name: value.rsplit("/", 1)[0] + "/enclave_bench_%d" % LARGE if name.endswith("_URL") else value
                  for name, value in exports(sh(["scripts/pgbouncer", "env"], large_env)).items()}
        with serving(large_env, "direct-again") as direct_api, \
                serving(dict(large_env, **pooled), "pgbouncer") as pooled_api:
            runs = alternating(direct=lambda: readers(direct_api, large, spread=True),
                               pooled=lambda: readers(pooled_api, large, spread=True))
            print("leads?limit=50 over 8 practices: direct %.0f/s, through PgBouncer %.0f/s (p50 %.1f ms)"
                  % (median_of(runs["direct"], rate), median_of(runs["pooled"], rate),
                     median_of(runs["pooled"], latency)))
            result("pgbouncer_rps", median_of(runs["pooled"], rate))
            result("pgbouncer_vs_direct", median_ratio(runs["pooled"], runs["direct"], rate))
    finally:
        sh(["scripts/pgbouncer", "stop"], large_env)


main()
