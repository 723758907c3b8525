"""The attacks of issue 25 played against real servers (run by scripts/abuse-test).

Each attack prints one figure and its goal. Both servers trust 127.0.0.1 as a proxy, so each
attack comes from addresses of its own through X-Forwarded-For, as it would through a load
balancer, and one attack's throttling does not spill into the next.
"""

import concurrent.futures
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import struct
import threading
import time
import uuid

from enclavekit import TLSClient, free_port, stalled_get, wrong_code
import enclavekit
from enclavekit import sign_in as sign_in_as

WORK = os.environ["ENCLAVE_ABUSE_WORK"]
SUPERUSER = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/enclave_abuse"
CAFILE = os.path.join(WORK, "cert.pem")
credentials = json.load(open(os.path.join(WORK, "credentials.json")))
missed = []


def sign_in(client, email):
    return sign_in_as(client, credentials, email)


def report(attack, figure, goal, met):
    print("abuse-test: %-24s %s  [goal: %s]%s" % (attack, figure, goal, "" if met else "  MISSED"), flush=True)
    if not met:
        missed.append(attack)


def psql(sql):
    return enclavekit.psql(SUPERUSER, sql)


def guess_codes(port):
    """A leaked password: sign in, then guess codes until the database stops checking them."""
    active = next(p for p in credentials["practices"] if p["agreement"] == "active")
    victim = next(u for u in credentials["users"] if u["email"] != active["owner"] and u.get("totpSecret"))
    client = TLSClient(port, CAFILE, "198.51.100.11")
    checked, ended, refusal = 0, 0, None
    while refusal is None and checked < 100:
        status, _, body = client.json("POST", "/v1/auth/login",
                                      {"email": victim["email"], "password": victim["password"]})
        if status != 200:
            refusal = "sign-in %d" % status
            break
        while True:
            status, headers, problem = client.json("POST", "/v1/auth/mfa", {"code": wrong_code(victim["totpSecret"])},
                                                   token=body["token"])
            kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
            if status == 401 and kind == "invalid-credentials":
                checked += 1
                continue
            if status == 401:
                ended += 1
            else:
                refusal = "%d %s (Retry-After %s)" % (status, kind, headers.get("Retry-After"))
            break
    audited = int(psql("select count(*) from enclave.audit_events where action = 'auth.mfa_failed'"))
    guesses = checked + ended
    report("MFA guessing", "%d wrong codes before the limit (%d sessions ended by their 5th), then %s; "
           "%d auth.mfa_failed events" % (guesses, ended, refusal, audited), "a handful, then refused",
           guesses <= 20 and refusal is not None and audited == guesses)


def console_sign_ins(port):
    """Bad console sign-ins with made-up emails: they count against the sender's address only."""
    address = "198.51.100.22"
    client = TLSClient(port, CAFILE, address)
    statuses = []
    for n in range(22):
        status, headers, page = client.request("GET", "/sign-in")
        csrf = page.decode().split('name="csrf" value="', 1)[1].split('"', 1)[0]
        cookie = headers.get("Set-Cookie", "").split(";", 1)[0]
        form = "email=nobody%d%%40example.test&password=guess+%d&csrf=%s" % (n, n, csrf)
        status, _, _ = client.request("POST", "/sign-in", form.encode(),
                                      {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        statuses.append(status)
    subjects = psql("select string_agg(subject || '=' || failures, ' ') from enclave.login_failures "
                    "where subject like 'ip:%'")
    # Another console user, at another address, signs in as usual.
    active = next(p for p in credentials["practices"] if p["agreement"] == "active")
    owner = next(u for u in credentials["users"] if u["email"] == active["owner"])
    other = TLSClient(port, CAFILE, "198.51.100.23")
    _, headers, page = other.request("GET", "/sign-in")
    csrf = page.decode().split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = "email=%s&password=%s&csrf=%s" % (owner["email"].replace("@", "%40"), owner["password"].replace(" ", "+"),
                                             csrf)
    status, _, _ = other.request("POST", "/sign-in", form.encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": headers.get("Set-Cookie", "").split(";", 1)[0]})
    report("console sign-in subjects", "%s; the 21st try got %d; another address's user got %d"
           % (subjects, statuses[20], status), "the sender's address, never ip:unknown; others unaffected",
           "ip:unknown" not in subjects and ("ip:" + address) in subjects and statuses[20] == 429 and status == 303)


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def sample_health(port, stop, samples):
    client = TLSClient(port, CAFILE)
    while not stop.is_set():
        started = time.perf_counter()
        client.request("GET", "/healthz")
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    client.close()


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def flood(port, seconds, sign_ins, results):
    """24 threads post to /v1/auth/login as fast as they can, each request from a new address (a
    botnet: no address or account throttle applies): sign-ins with unknown emails, or (the
    control) bodies that are not JSON, refused before any sign-in work. Runs in a process of its
    own, so that its threads do not hold the sampler's interpreter lock, at the lowest priority:
    an attacker's machine is not the server's, so the flood should not take the server's cores."""
    os.nice(19)
    statuses = {}
    lock = threading.Lock()
    stop = time.time() + seconds

    def worker(number):
        client = TLSClient(port, CAFILE)
        n = 0
        while time.time() < stop:
            n += 1
            client.address = "10.%d.%d.%d" % (number, n // 250 % 250, n % 250 + 1)
            body = {"email": "nobody-%d-%d@example.test" % (number, n), "password": "guess"} if sign_ins else b"{"
            status, _, _ = client.request("POST", "/v1/auth/login", body, {"Content-Type": "application/json"})
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
        client.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(statuses)


def health_during(port, sign_ins=None):
    """/healthz p95 (ms) on a connection of its own, alone or during a flood; the flood's answers."""
    results = multiprocessing.Queue()
    flooder = None
    if sign_ins is not None:
        flooder = multiprocessing.Process(target=flood, args=(port, 8, sign_ins, results))
        flooder.start()
        time.sleep(1)
    samples = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_health, args=(port, stop, samples))
    sampler.start()
    time.sleep(6)
    stop.set()
    sampler.join()
    statuses = {}
    if flooder is not None:
        statuses = results.get(timeout=60)
        flooder.join()
    return percentile(samples, 0.95), statuses


def sign_in_flood(port, server):
    """/healthz p95 alone, during a flood of requests that do no work (the control: what any
    flood of this rate costs on this machine, whose cores the flooding client shares), and during
    a flood of sign-ins."""
    alone, _ = health_during(port)
    control, control_answers = health_during(port, sign_ins=False)
    during, answers = health_during(port, sign_ins=True)
    requests = sum(answers.values())
    report("sign-in flood", "/healthz p95 %.1f ms alone, %.1f ms in a flood of %d no-op requests, %.1f ms in a "
           "flood of %d sign-ins (%.1fx alone, %.1fx the no-op flood); %d hashed, %d refused at once (503); "
           "peak RSS %.0f MiB"
           % (alone, control, sum(control_answers.values()), during, requests, during / max(alone, 0.001),
              during / max(control, 0.001), answers.get(401, 0), answers.get(503, 0), peak_rss_mib(server.pid)),
           "<= 3x (of the no-op flood's)", during <= 3 * max(control, alone))


def wave(megabytes):
    """A mono 8 kHz 16-bit WAV whose samples differ (not a compressible constant)."""
    count = megabytes * 1024 * 1024 // 2
    samples = b"".join(struct.pack("<h", (i * 7919) % 65536 - 32768) for i in range(count))
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(samples)) + samples)


def signed(client, method, path, body, content_type, key=None):
    active = next(p for p in credentials["practices"] if p["agreement"] == "active")
    source = next(s for s in credentials["sources"]
                  if s["practice"].lower() == active["id"].lower() and s["kind"] == "call" and not s.get("provider"))
    t = str(int(time.time()))
    mac = hmac.new(source["secret"].encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": content_type, "Enclave-Source": source["id"], "Enclave-Signature": "t=%s,v1=%s" % (t, mac)}
    if key:
        headers["Idempotency-Key"] = key
    return client.json(method, path, body, headers)


def stalled_readers(port):
    """12 clients ask for a 6 MiB recording and read nothing; meanwhile the owner asks who they are."""
    active = next(p for p in credentials["practices"] if p["agreement"] == "active")
    client = TLSClient(port, CAFILE, "198.51.100.44")
    status, _, call = signed(client, "POST", "/v1/ingest/calls", json.dumps({
        "caller_number": "+15550104444", "started_at": "2026-11-29T10:00:00Z"}).encode(), "application/json", "abuse-1")
    assert status == 201, "the call got %d" % status
    status, _, _ = signed(client, "PUT", "/v1/ingest/calls/%s/recording" % call["lead_id"], wave(6), "audio/wav")
    assert status == 201, "the recording got %d" % status
    token = sign_in(client, active["owner"])
    url = "https://localhost:%d/v1/practices/%s/leads/%s/recording" % (port, active["id"].lower(), call["lead_id"])
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        readers = [pool.submit(stalled_get, url, token, CAFILE, 12) for _ in range(12)]
        time.sleep(3)
        started = time.perf_counter()
        status, _, _ = TLSClient(port, CAFILE, "198.51.100.45").request("GET", "/v1/me", token=token)
        took = time.perf_counter() - started
        got = [r.result() for r in readers]
    report("stalled recording readers", "GET /v1/me %d in %.3f s while 12 readers stalled (%d of them streaming)"
           % (status, took, sum(1 for g in got if g > 1000)), "200 in under 1 s", status == 200 and took < 1)


def strangers(port):
    """300 requests with made-up tokens to random practice ids."""
    chains = "select count(distinct tenant_id) from enclave.audit_events"
    events = "select count(*) from enclave.audit_events"
    chains_before, events_before = int(psql(chains)), int(psql(events))
    client = TLSClient(port, CAFILE, "198.51.100.55")
    statuses = {}
    for _ in range(300):
        status, _, _ = client.request("GET", "/v1/practices/%s/leads" % uuid.uuid4(), token="made-up-%032x" % random.getrandbits(128))
        statuses[status] = statuses.get(status, 0) + 1
    new_chains = int(psql(chains)) - chains_before
    counted = psql("select coalesce(sum(denials), 0) from enclave_private.stranger_denials where address = '198.51.100.55'")
    report("strangers", "%d new audit chains, %d new events, %s denials counted; answers %s"
           % (new_chains, int(psql(events)) - events_before, counted, statuses), "0 new chains", new_chains == 0)


def fresh_minute():
    """Waits until at least 15 seconds of this minute remain: a budget is per minute."""
    second = time.gmtime().tm_sec
    if second > 45:
        time.sleep(61 - second)


def snippet_view(client, site):
    return client.json("POST", "/v1/capture/web/%s/views" % site["publicKey"], json.dumps({"path": "/"}).encode(),
                       {"Origin": site["origins"][0], "Content-Type": "text/plain"})


def pool_cycling(port):
    """60 page views from one address, each without a session (a new visitor every time)."""
    site = credentials["sites"][0]
    fresh_minute()
    client = TLSClient(port, CAFILE, "198.51.100.66")
    numbers = set()
    for _ in range(60):
        status, _, view = snippet_view(client, site)
        if status == 200 and view.get("number") and view.get("number") != view.get("main_number"):
            numbers.add(view["number"])
    report("pool cycling", "one address holds %d of the property's %d pool numbers after 60 views"
           % (len(numbers), len(site["numbers"])), "2", len(numbers) <= 2)


def shared_budget(ports):
    """130 page views from one address, alternating between two server processes."""
    site = credentials["sites"][-1]
    fresh_minute()
    clients = [TLSClient(p, CAFILE, "198.51.100.77") for p in ports]
    admitted, retry_after = 0, None
    for n in range(130):
        status, headers, _ = snippet_view(clients[n % 2], site)
        if status == 200:
            admitted += 1
        elif status == 429:
            retry_after = headers.get("Retry-After")
    report("snippet budget, 2 servers", "%d of 130 views admitted from one address; then 429 (Retry-After %s)"
           % (admitted, retry_after), "120: one budget for both", admitted == 120 and retry_after is not None)


def start(port):
    return enclavekit.serve_tls(os.environ["ENCLAVE_BIN"], port, WORK, "abuse-test")


ports = [free_port(), free_port()]
servers = [start(p) for p in ports]
try:
    guess_codes(ports[0])
    console_sign_ins(ports[0])
    strangers(ports[0])
    pool_cycling(ports[0])
    shared_budget(ports)
    stalled_readers(ports[0])
    sign_in_flood(ports[1], servers[1])
finally:
    for server in servers:
        server.terminate()
        server.wait(timeout=30)
if missed:
    raise SystemExit("abuse-test: missed the goal of: " + ", ".join(missed))
