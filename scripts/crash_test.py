"""The load, the kills and the checks of scripts/crash-test (which sets up the cluster and
the demo credentials and runs this with its environment). Standard library only."""

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

from enclavekit import free_port, plain_request, serve, signed_call
import enclavekit

WORK = os.environ["ENCLAVE_CRASH_WORK"]
CLUSTER = os.environ["ENCLAVE_CRASH_CLUSTER"]
BIN = os.environ["ENCLAVE_BIN"]
LEADS = int(os.environ.get("ENCLAVE_CRASH_LEADS", "600"))
CLIENTS = int(os.environ.get("ENCLAVE_CRASH_CLIENTS", "200"))
SUPERUSER = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/enclave_crash"

credentials = json.load(open(os.path.join(WORK, "credentials.json")))
source = next(s for s in credentials["sources"] if s["kind"] == "call")
failures = []


def fail(message):
    failures.append(message)
    print("crash-test: FAIL: " + message, flush=True)


PORT = free_port()
server = None


def start_server():
    global server
    server = serve(
        BIN, ["--insecure-http", "--host", "127.0.0.1", "--port", str(PORT), "--metrics-port", "0"],
        os.path.join(WORK, "serve.log"), lambda: request("GET", "/healthz", timeout=1)[0] == 200, "crash-test")
    open(os.path.join(WORK, "serve.pid"), "w").write(str(server.pid))


def request(method, path, body=None, headers=None, timeout=30):
    return plain_request(PORT, method, path, body, headers, timeout)


def ingest(key):
    """One attempt: (status, headers, json or None)."""
    return signed_call(PORT, source, key, "Crash")


lock = threading.Lock()
acked = {}          # key -> lead id, from the first 2xx
ack_times = []      # time of every first acknowledgement
unavailable = []    # (retry-after present, problem type) of every 503
other = []          # unexpected statuses


def client(keys):
    for key in keys:
        attempts = 0
        while True:
            attempts += 1
            try:
                status, headers, parsed = ingest(key)
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
                continue
            if status in (200, 201):
                with lock:
                    acked[key] = parsed["lead_id"]
                    ack_times.append(time.time())
                break
            if status == 503:
                with lock:
                    unavailable.append(("retry-after" in headers, (parsed or {}).get("type", "")))
                time.sleep(min(float(headers.get("retry-after", "1")), 0.25))
                continue
            with lock:
                other.append(status)
            if attempts > 50:
                fail("key %s: gave up after status %d" % (key, status))
                break
            time.sleep(0.1)
        time.sleep(random.random() * 0.02)


def postgres(action):
    # After a SIGKILL a backend forked in the instant before it may still hold the listening
    # socket for a moment (it closes it first thing, but on a loaded machine that instant can
    # be long): a start that finds the port taken is tried again.
    for attempt in range(10):
        done = subprocess.run([os.path.join(os.path.dirname(__file__), "dev-postgres"), action],
                              stdout=subprocess.DEVNULL)
        if done.returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError("dev-postgres %s failed 10 times" % action)


def kill_postgres():
    """SIGKILL the postmaster and every process of the cluster: a crash, not a shutdown."""
    subprocess.run([os.path.join(os.path.dirname(__file__), "kill-postgres"), os.path.join(CLUSTER, "data")], check=True)


def first_ack_after(moment):
    with lock:
        later = [t for t in ack_times if t >= moment]
    return min(later) if later else None


def wait_for_acks(count):
    while True:
        with lock:
            if len(acked) >= count:
                return
        time.sleep(0.01)


def psql(sql):
    return enclavekit.psql(SUPERUSER, sql)


# The audit chainer runs through the load, and `enclave audit verify` runs again and again
# against the live trail: a run that cannot connect (PostgreSQL is down) is counted apart; a run
# that reports a break is a false alarm, and fails the test.
chainer = subprocess.Popen([BIN, "audit", "chain", "--interval", "0.5"], stdout=open(os.path.join(WORK, "chainer.log"), "a"),
                           stderr=subprocess.STDOUT)
verify_stop = threading.Event()
verify_runs = {"passed": 0, "unavailable": 0, "reports": []}


def verify_live():
    while not os.path.exists(os.environ["ENCLAVE_AUDIT_KEY_FILE"] + ".checkpoints") and not verify_stop.is_set():
        time.sleep(0.1)
    while not verify_stop.is_set():
        run = subprocess.run([BIN, "audit", "verify"], capture_output=True, text=True)
        if run.returncode == 0:
            verify_runs["passed"] += 1
        elif "broken:" in run.stderr or "damaged" in run.stderr or "missing or empty" in run.stderr:
            verify_runs["reports"].append(run.stderr.strip().splitlines()[0])
        else:
            verify_runs["unavailable"] += 1
        time.sleep(0.05)


start_server()
verifier = threading.Thread(target=verify_live, daemon=True)
verifier.start()
keys = ["crash-%05d" % i for i in range(LEADS)]
shares = [keys[i::CLIENTS] for i in range(CLIENTS)]
threads = [threading.Thread(target=client, args=(share,), daemon=True) for share in shares]
started = time.time()
for thread in threads:
    thread.start()

wait_for_acks(LEADS // 3)
pg_killed = time.time()
kill_postgres()
time.sleep(1.0)
postgres("start")
pg_back = time.time()
print("crash-test: PostgreSQL killed at %d acknowledged, restarted after %.2f s" % (len(acked), pg_back - pg_killed),
      flush=True)

wait_for_acks(2 * LEADS // 3)
server_killed = time.time()
server.send_signal(signal.SIGKILL)
server.wait()
time.sleep(0.5)
start_server()
server_back = time.time()
print("crash-test: server killed at %d acknowledged, restarted after %.2f s" % (len(acked), server_back - server_killed),
      flush=True)

for thread in threads:
    thread.join()
elapsed = time.time() - started
verify_stop.set()
verifier.join()
chainer.send_signal(signal.SIGTERM)
chainer.wait(timeout=30)
print("crash-test: audit verify during the load: %d runs passed, %d could not reach PostgreSQL, %d reported a break"
      % (verify_runs["passed"], verify_runs["unavailable"], len(verify_runs["reports"])), flush=True)
if verify_runs["reports"]:
    fail("audit verify reported a break on the live trail: %s" % verify_runs["reports"][0])
if verify_runs["passed"] < 5:
    fail("audit verify passed only %d times during the load" % verify_runs["passed"])

# Every acknowledged lead is stored exactly once, with the id it was acknowledged with.
stored, rows, duplicates = enclavekit.stored_leads(SUPERUSER, source["id"])
lost = [k for k, lead in acked.items() if lead not in stored.get(k, set())]
unacknowledged = [k for k in keys if k not in acked]
extra = [k for k in stored if k not in acked]
# Every retry of a key returns the same lead.
mismatched = 0
for key in keys:
    status, _, parsed = ingest(key)
    if status not in (200, 201) or parsed.get("lead_id") != acked.get(key):
        mismatched += 1

recovery_pg = first_ack_after(pg_back)
recovery_server = first_ack_after(server_back)
print("crash-test: N=%d leads from %d concurrent clients in %.1f s; acknowledged %d; stored %d rows"
      % (LEADS, CLIENTS, elapsed, len(acked), rows), flush=True)
print("crash-test: lost %d, duplicates %d, retries answered with another lead %d, unacknowledged %d, unexpected %d"
      % (len(lost), duplicates, mismatched, len(unacknowledged), len(extra)), flush=True)
print("crash-test: 503 answers during the load: %d (all with Retry-After: %s); other non-2xx: %s"
      % (len(unavailable), all(r for r, _ in unavailable), sorted(set(other)) or "none"), flush=True)
print("crash-test: recovery after the PostgreSQL kill: %.2f s from the kill to the next acknowledgement "
      "(%.2f s after it was up again)" % ((recovery_pg or float("nan")) - pg_killed,
                                          (recovery_pg or float("nan")) - pg_back), flush=True)
print("crash-test: recovery after the server kill: %.2f s from the kill to the next acknowledgement "
      "(%.2f s after it listened again)" % ((recovery_server or float("nan")) - server_killed,
                                            (recovery_server or float("nan")) - server_back), flush=True)
if lost or duplicates or mismatched or unacknowledged or extra or rows != LEADS:
    fail("acknowledged leads were lost, duplicated or answered inconsistently")
if not all(r for r, _ in unavailable) or any(not t.endswith("/service-unavailable") for _, t in unavailable):
    fail("a 503 without Retry-After or of another problem type")
if recovery_pg is None or recovery_server is None:
    fail("no acknowledgement after a restart")

# An outage with the server running: 503 with Retry-After, and the first request after wins.
postgres("stop")
status, headers, parsed = ingest("outage-1")
print("crash-test: PostgreSQL stopped: ingest answered %d, Retry-After %s, type %s"
      % (status, headers.get("retry-after"), (parsed or {}).get("type")), flush=True)
if status != 503 or "retry-after" not in headers or not (parsed or {}).get("type", "").endswith("/service-unavailable"):
    fail("ingest during an outage did not answer 503 service-unavailable with Retry-After")
status, headers, _ = request("GET", "/v1/me", headers={"Authorization": "Bearer " + "x" * 43})
if status != 503 or "retry-after" not in headers:
    fail("GET /v1/me during an outage answered %d" % status)
status, _, data = request("GET", "/readyz")
if status != 503:
    fail("/readyz during an outage answered %d" % status)
log = open(os.path.join(WORK, "serve.log")).read()
if " error " not in log or "unreachable" not in log and "connectionFailed" not in log and "could not connect" not in log:
    fail("the outage was not logged at error level with its cause")
postgres("start")
status, _, parsed = ingest("outage-2")
print("crash-test: PostgreSQL started again: the first request answered %d" % status, flush=True)
if status != 201:
    fail("the first request after PostgreSQL came back answered %d" % status)
status, _, _ = request("GET", "/readyz")
if status != 200:
    fail("/readyz after the outage answered %d" % status)

server.send_signal(signal.SIGTERM)
server.wait(timeout=30)
sys.exit(1 if failures else 0)
