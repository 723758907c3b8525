"""Two `enclave serve` processes as one (issue 28), run by scripts/multi-server-test: both on
the same database through PgBouncer, each on its own port. Each check does something on one
server and looks for its effect on the other; any difference fails the test.

  - a session made on one works on the other, and a sign-out on one ends it on both;
  - an agreement revoked on one ends the agency's access on the other at the next request;
  - failed sign-ins alternating between the two spend one throttle budget;
  - page views from one address alternating between the two spend one per-minute budget;
  - an idempotent ingest sent to both at once, again and again, is stored once.
"""

import concurrent.futures
import json
import os
import sys
import time

from enclavekit import TLSClient, demo_call_source, demo_practice, free_port, sign_in, signed_call_request, totp
import enclavekit

WORK = os.environ["ENCLAVE_MULTI_WORK"]
SUPERUSER = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/enclave_multi"
CAFILE = os.path.join(WORK, "cert.pem")
credentials = json.load(open(os.path.join(WORK, "credentials.json")))
failures = []


def check(what, figure, held):
    print("multi-server-test: %s: %s%s" % (what, figure, "" if held else "  FAILED"), flush=True)
    if not held:
        failures.append(what)


def psql(sql):
    return enclavekit.psql(SUPERUSER, sql)


def start(port):
    return enclavekit.serve_tls(os.environ["ENCLAVE_BIN"], port, WORK, "multi-server-test")


def sessions(a, b):
    # An owner of a practice other than the one the revocation check uses (a user's codes are
    # accepted once per time step: each check signs in a user of its own).
    practice = next(p for p in credentials["practices"] if p["id"] != demo_practice(credentials)["id"])
    token = sign_in(a, credentials, practice["owner"])
    leads = "/v1/practices/%s/leads" % practice["id"]
    status_b, _, _ = b.request("GET", leads, token=token)
    check("a session made on A reads leads on B", "B answered %d" % status_b, status_b == 200)
    status, _, _ = a.request("POST", "/v1/auth/logout", token=token)
    after, _, _ = b.request("GET", "/v1/me", token=token)
    check("a sign-out on A ends the session on B", "B %d before, A %d, then B %d" % (status_b, status, after),
          status_b == 200 and status == 204 and after == 401)


def agreement_revocation(a, b):
    member = next(u for u in credentials["users"] if u["role"] == "agency_member")
    practice = demo_practice(credentials)
    owner = next(u for u in credentials["users"] if u["email"] == practice["owner"])
    member_token = sign_in(b, credentials, member["email"])
    leads = "/v1/practices/%s/leads" % practice["id"]
    before, _, _ = b.request("GET", leads, token=member_token)
    owner_token = sign_in(a, credentials, owner["email"])
    # Re-authentication wants a code of a newer time step than the sign-in's.
    status, _, fresh = a.json("POST", "/v1/auth/reauth",
                              {"password": owner["password"], "code": totp(owner["totpSecret"], time.time() + 30)},
                              token=owner_token)
    assert status == 200, "re-authentication got %d" % status
    _, _, agreements = a.json("GET", "/v1/agreements", token=fresh["token"])
    agreement = next(x for x in agreements if x["practice_id"].lower() == practice["id"].lower()
                     and x["status"] == "active")
    revoked, _, _ = a.request("POST", "/v1/agreements/%s/revoke" % agreement["id"], token=fresh["token"])
    after, _, _ = b.request("GET", leads, token=member_token)
    check("an agreement revoked on A ends access on B at once",
          "B %d before, A revoked %d, B %d at the next request" % (before, revoked, after),
          before == 200 and revoked == 204 and after == 403)


def login_throttle(a, b):
    """Failed sign-ins for one account alternating between the servers: the fifth failure locks
    the account on both (5 per 15 minutes), counted in PostgreSQL."""
    victim = next(u for u in credentials["users"] if u["role"] == "practice_owner"
                  and u["email"] not in [p["owner"] for p in credentials["practices"][:2]])
    statuses = []
    for n in range(8):
        client = (a, b)[n % 2]
        status, _, _ = client.request("POST", "/v1/auth/login", {"email": victim["email"], "password": "wrong %d" % n})
        statuses.append(status)
    right, _, _ = a.request("POST", "/v1/auth/login", {"email": victim["email"], "password": victim["password"]})
    check("failed sign-ins alternating A, B spend one budget",
          "answers %s; the right password on A then %d" % (statuses, right),
          statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3 and right == 429)


def snippet_budget(ports):
    """130 page views from one address, alternating between the servers: 120 a minute for both."""
    site = credentials["sites"][-1]
    second = time.gmtime().tm_sec
    if second > 45:
        time.sleep(61 - second)
    clients = [TLSClient(p, CAFILE, "198.51.100.88") for p in ports]
    admitted, refused = 0, 0
    for n in range(130):
        status, _, _ = clients[n % 2].request(
            "POST", "/v1/capture/web/%s/views" % site["publicKey"], json.dumps({"path": "/"}).encode(),
            {"Origin": site["origins"][0], "Content-Type": "text/plain"})
        admitted += status == 200
        refused += status == 429
    check("page views from one address alternating A, B spend one budget",
          "%d of 130 admitted, %d refused with 429" % (admitted, refused), admitted == 120 and refused == 10)


def idempotent_ingest(ports):
    """Each of 50 keys sent to both servers at once, three times over: one lead per key. Each
    send is signed at another second, as a provider's retries are, so that the signed-request
    replay marker cannot be what keeps them apart: the idempotency key has to."""
    practice = demo_practice(credentials)
    source = demo_call_source(credentials, practice["id"])
    keys = ["multi-%03d" % n for n in range(50)]
    now = time.time()
    jobs = [(port, key, now - 2 * n - side) for key in keys for n in range(3) for side, port in enumerate(ports)]

    def send(job):
        port, key, signed_at = job
        body, headers = signed_call_request(source, key, "Multi", signed_at)
        return key, TLSClient(port, CAFILE).json("POST", "/v1/ingest/calls", body, headers)

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(send, jobs))
    leads = {}
    for key, (status, _, body) in answers:
        if status in (200, 201):
            leads.setdefault(key, set()).add(body["lead_id"])
    created = sum(1 for _, (status, _, _) in answers if status == 201)
    stored = int(psql("select count(*) from enclave.leads where idempotency_key like 'multi-%'"))
    check("one ingest key sent to A and B at once, 3 times each, stored once",
          "%d keys: %d rows, %d answered 201, %d keys with more than one lead id"
          % (len(keys), stored, created, sum(1 for ids in leads.values() if len(ids) > 1)),
          stored == len(keys) and created == len(keys) and all(len(ids) == 1 for ids in leads.values())
          and len(leads) == len(keys))


ports = [free_port(), free_port()]
servers = [start(p) for p in ports]
a, b = (TLSClient(p, CAFILE, "198.51.100.%d" % (90 + n)) for n, p in enumerate(ports))
try:
    sessions(a, b)
    agreement_revocation(a, b)
    login_throttle(TLSClient(ports[0], CAFILE, "198.51.100.95"), TLSClient(ports[1], CAFILE, "198.51.100.96"))
    snippet_budget(ports)
    idempotent_ingest(ports)
finally:
    for server in servers:
        server.terminate()
        server.wait(timeout=30)
sys.exit(1 if failures else 0)
