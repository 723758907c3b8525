"""The load, the kills and the checks of scripts/failover-test (which starts a pg_auto_failover
pair with scripts/ha, seeds it and runs this with its environment). Standard library only.

Clients send signed ingests with idempotency keys, each retried until acknowledged, from
start to end. Phases:
  1. node 1 (the primary) dies: SIGKILL of its keeper, postmaster and backends; the monitor
     promotes node 2, which runs alone (wait_primary: commits wait for no standby);
  2. node 1's keeper starts again: it rewinds and rejoins as the standby; the writes acknowledged
     while it was down reach it;
  3. node 2 dies the same way and node 1 is promoted: every write acknowledged on node 2 alone
     must be there;
  4. node 2 rejoins.

The service's workers run throughout: the audit chainer, the webhook deliverer, the compliance
worker, the recording fetcher and the transcriber. Each must come through both failovers: still
running, with a "passes resume" line after each. The chainer must link every event, and the
deliverer must deliver every lead of a second practice, which gets a steady trickle of calls
(one client) and a webhook endpoint here.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time

from enclavekit import PlainClient, WebhookReceiver, free_port, plain_request, serve, sign_in, signed_call
import enclavekit

WORK = os.environ["ENCLAVE_FAILOVER_WORK"]
BIN = os.environ["ENCLAVE_BIN"]
CLIENTS = int(os.environ.get("ENCLAVE_FAILOVER_CLIENTS", "200"))
# Acknowledgements to wait for between one event and the next.
STEP = int(os.environ.get("ENCLAVE_FAILOVER_STEP", "300"))
HA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ha")
SUPERUSER = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].replace("/postgres?", "/enclave?")

credentials = __import__("json").load(open(os.path.join(WORK, "credentials.json")))
source = next(s for s in credentials["sources"] if s["kind"] == "call")
# The second practice, whose leads go to a webhook endpoint.
hooked = next(s for s in credentials["sources"] if s["kind"] == "call" and s["practice"] != source["practice"])
failures = []


def fail(message):
    failures.append(message)
    print("failover-test: FAIL: " + message, flush=True)


def say(message):
    print("failover-test: " + message, flush=True)


PORT = free_port()


def request(method, path, body=None, headers=None, timeout=30):
    return plain_request(PORT, method, path, body, headers, timeout)


lock = threading.Lock()
acked = {}          # key -> lead id, from the first 2xx
ack_log = []        # (time, key, time the acknowledged try was sent) of every first acknowledgement
unavailable = []    # (time, retry-after present, problem type) of every 503
other = []          # (time, status) of every other non-2xx answer
transport = []      # time of every request that got no HTTP answer
stop = threading.Event()
counter = iter(range(10 ** 9))


def client():
    while not stop.is_set():
        with lock:
            key = "failover-%06d" % next(counter)
        while True:
            sent = time.time()
            try:
                status, headers, parsed = signed_call(PORT, source, key, "Failover")
            except (OSError, ValueError):
                with lock:
                    transport.append(time.time())
                time.sleep(0.1)
                continue
            now = time.time()
            if status in (200, 201):
                with lock:
                    acked[key] = parsed["lead_id"]
                    ack_log.append((now, key, sent))
                break
            if status == 503:
                with lock:
                    unavailable.append((now, "retry-after" in headers, (parsed or {}).get("type", "")))
                time.sleep(min(float(headers.get("retry-after", "1")), 0.25))
                continue
            with lock:
                other.append((now, status))
            time.sleep(0.1)
        time.sleep(random.random() * 0.02)


hooked_acked = {}   # key -> lead id, of the second practice's calls


def trickle():
    """One client, for the second practice: a call every 0.1 s, each retried until acknowledged."""
    for number in range(10 ** 9):
        key = "failover-hooked-%06d" % number
        while True:
            try:
                status, _, parsed = signed_call(PORT, hooked, key, "Hooked")
            except (OSError, ValueError):
                status, parsed = None, None
            if status in (200, 201):
                with lock:
                    hooked_acked[key] = parsed["lead_id"]
                break
            time.sleep(0.25)
        if stop.is_set():
            return
        time.sleep(0.1)


def acks():
    with lock:
        return len(acked)


def wait_for_acks(count, timeout=300):
    deadline = time.time() + timeout
    while acks() < count:
        if time.time() > deadline:
            raise SystemExit("failover-test: FAIL: stuck at %d acknowledgements" % acks())
        time.sleep(0.01)


def first_ack_sent_after(moment):
    """When the first try sent after `moment` was acknowledged (a try sent before a kill may
    still be acknowledged after it, from the old primary)."""
    with lock:
        return min((t for t, _, sent in ack_log if sent >= moment), default=None)


def keys_between(start, end):
    with lock:
        return [k for t, k, _ in ack_log if start <= t < end]


def ha(*arguments):
    subprocess.run([HA] + list(arguments), check=True, stdout=subprocess.DEVNULL)


def psql(sql):
    return enclavekit.psql(SUPERUSER, sql)


def primary_port():
    for _ in range(600):
        try:
            return psql("select inet_server_port()").strip()
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    raise SystemExit("failover-test: FAIL: no primary answered for a minute")


def fail_over(dead, survivor):
    """Kills node `dead` and returns (kill time, first acknowledgement after it)."""
    before = primary_port()
    killed = time.time()
    ha("kill", str(dead))
    count = acks()
    say("node %d (primary, port %s) killed at %d acknowledged" % (dead, before, count))
    while first_ack_sent_after(killed) is None:
        if time.time() - killed > 300:
            raise SystemExit("failover-test: FAIL: nothing acknowledged for 5 minutes after the kill")
        time.sleep(0.01)
    recovered = first_ack_sent_after(killed)
    say("node %d took over: next acknowledgement %.2f s after the kill (port %s)"
        % (survivor, recovered - killed, primary_port()))
    return killed, recovered


def rejoin(node, states):
    """Starts node `node` again and waits for `states`. It must rejoin by pg_rewind: a copy of the
    whole primary (pg_basebackup, the keeper's fallback) takes hours on a large database."""
    log = os.path.join(os.environ["ENCLAVE_HA_DATA"], "node%d.log" % node)
    copies = open(log).read().count("trying pg_basebackup instead")
    started = time.time()
    ha("run", str(node))
    ha("wait", *states)
    copied = open(log).read().count("trying pg_basebackup instead") > copies
    say("node %d rejoined as the standby in %.1f s (%s)"
        % (node, time.time() - started, "copied whole by pg_basebackup" if copied else "rewound"))
    if copied:
        fail("node %d could not be rewound and was copied whole (see %s)" % (node, log))
    return time.time()


def add_webhook(receiver_port):
    """The second practice's owner signs in and adds the receiver as a webhook endpoint."""
    practice = next(p for p in credentials["practices"] if p["id"].lower() == hooked["practice"].lower())
    client = PlainClient(PORT)
    token = sign_in(client, credentials, practice["owner"])
    status, _, _ = client.json("POST", "/v1/practices/%s/webhooks" % practice["id"],
                               {"url": "https://127.0.0.1:%d/hook" % receiver_port}, token=token)
    assert status == 201, "the webhook endpoint got %d" % status


def start_workers():
    """Every worker of the service, as production runs them, with passes close together."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("ENCLAVE_ADMIN_DATABASE_URL", "ENCLAVE_SUPERUSER_DATABASE_URL")}
    environment["ENCLAVE_EGRESS_ALLOW"] = "127.0.0.1"
    cafile = os.path.join(WORK, "cert.pem")
    workers = {}
    for name, arguments in (
            ("audit", ["audit", "chain", "--interval", "0.5"]),
            ("webhooks", ["webhooks", "deliver", "--ca-file", cafile, "--interval", "0.5", "--first-retry", "1"]),
            ("compliance", ["compliance", "work", "--interval", "1", "--mail-interval", "1"]),
            ("recordings", ["recordings", "fetch", "--interval", "1", "--first-retry", "1"]),
            ("transcripts", ["transcripts", "run", "--interval", "1"])):
        log = os.path.join(WORK, name + ".log")
        workers[name] = (subprocess.Popen([BIN] + arguments, env=environment, stdout=open(log, "a"),
                                          stderr=subprocess.STDOUT), log)
    return workers


def through_failovers(workers):
    """Each worker's passes failed at each failover and resumed after it; it is still running,
    stops cleanly, and wrote one line per event. Returns a line per worker."""
    lines = []
    for name, (process, log) in sorted(workers.items()):
        alive = process.poll() is None
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        text = open(log).read()
        failed = sum(text.count(": %s" % s) for s in ("cannot connect to the database", "pass failed"))
        resumed = text.count("passes resume after")
        lines.append("%s %d failed passes, resumed %d times%s" % (
            name, failed, resumed, "" if alive and code == 0 else " (%s, exit %s)" % (
                "running" if alive else "had exited", code)))
        if not alive or code != 0:
            fail("the %s worker %s (exit %s; see %s)" % (name, "stopped badly" if alive else "exited", code, log))
        if resumed < 2:
            fail("the %s worker did not resume after each failover (%d resumed; see %s)" % (name, resumed, log))
        # libpq's messages span lines: a log line must stay one line.
        if any(line[:1].isspace() for line in text.splitlines()):
            fail("the %s worker's log has a line split in two (see %s)" % (name, log))
    return lines


serve_log = os.path.join(WORK, "serve.log")
server = serve(BIN, ["--insecure-http", "--host", "127.0.0.1", "--port", str(PORT), "--metrics-port", "0"],
               serve_log, lambda: request("GET", "/healthz", timeout=1)[0] == 200, "failover-test")
receiver = WebhookReceiver(WORK)
add_webhook(receiver.port)
workers = start_workers()
threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
threads.append(threading.Thread(target=trickle, daemon=True))
started = time.time()
for thread in threads:
    thread.start()

wait_for_acks(STEP)
kill1, recovered1 = fail_over(1, 2)
wait_for_acks(acks() + STEP)
rejoined1 = rejoin(1, ["secondary", "primary"])
alone_on_node2 = keys_between(kill1, rejoined1)
wait_for_acks(acks() + STEP)
kill2, recovered2 = fail_over(2, 1)
wait_for_acks(acks() + STEP)
rejoined2 = rejoin(2, ["primary", "secondary"])
alone_on_node1 = keys_between(kill2, rejoined2)
wait_for_acks(acks() + STEP)
stop.set()
for thread in threads:
    thread.join(timeout=120)
elapsed = time.time() - started
# The chainer started before both failovers; it resumes from the heads in the database each time
# and links every event written since.
deadline = time.time() + 60
while psql("select count(*) from enclave.audit_events where chain_seq is null").strip() != "0":
    if time.time() > deadline:
        fail("the audit chainer did not link the events written after the failovers")
        break
    time.sleep(0.5)
else:
    say("the audit chainer, running through both failovers, linked every event within %.1f s of the end"
        % (time.time() - started - elapsed))
# The deliverer too: every acknowledged lead of the second practice reaches its endpoint (at
# least once: a delivery whose record was lost with a node is sent again), stored once.
deadline = time.time() + 60
while True:
    delivered = receiver.delivered()
    deliveries = len(delivered)
    with lock:
        missing = set(hooked_acked.values()) - set(delivered)
    if not missing or time.time() > deadline:
        break
    time.sleep(0.5)
hooked_stored, _, hooked_duplicates = enclavekit.stored_leads(SUPERUSER, hooked["id"])
hooked_lost = [k for k, lead in hooked_acked.items() if lead not in hooked_stored.get(k, set())]
if missing:
    fail("%d acknowledged leads were never delivered to the webhook endpoint" % len(missing))
elif not hooked_acked:
    fail("the second practice got no lead: the webhook deliverer went untested")
else:
    say("the webhook deliverer, running through both failovers, delivered every acknowledged lead of the second "
        "practice within %.1f s of the end: %d deliveries for %d leads (lost %d, duplicates %d)"
        % (time.time() - started - elapsed, deliveries, len(hooked_acked), len(hooked_lost), hooked_duplicates))
if hooked_lost or hooked_duplicates:
    fail("the second practice's acknowledged leads were lost or stored twice")
say("workers through both failovers: " + "; ".join(through_failovers(workers)))

# Every acknowledged lead is stored exactly once, with the id it was acknowledged with, on the
# primary of the end (node 1, which was down when a share of them was acknowledged).
stored, rows, duplicates = enclavekit.stored_leads(SUPERUSER, source["id"])
lost = [k for k, lead in acked.items() if lead not in stored.get(k, set())]
lost_alone = [k for k in alone_on_node2 if k in lost]
# A lead stored but never acknowledged is the retry the client never finished: it stopped.
unacknowledged = [k for k in stored if k not in acked]

times = sorted(t for t, _, _ in ack_log)
gaps = [(b - a, a) for a, b in zip(times, times[1:])]
longest, longest_at = max(gaps) if gaps else (float("nan"), 0)
say("N=%d leads from %d concurrent clients in %.1f s; %d rows stored" % (len(acked), CLIENTS, elapsed, rows))
say("lost %d, duplicates %d (stored but never acknowledged: %d, the clients' last tries)"
    % (len(lost), duplicates, len(unacknowledged)))
say("recovery: %.2f s and %.2f s from each kill to the next acknowledgement (goal under 30 s)"
    % (recovered1 - kill1, recovered2 - kill2))
say("longest gap without an acknowledgement: %.2f s (at %.1f s into the run)" % (longest, longest_at - started))
say("acknowledged while the standby was down (wait_primary): %d on node 2, %d on node 1; "
    "of node 2's, present on node 1 after the second failover: %d"
    % (len(alone_on_node2), len(alone_on_node1), len(alone_on_node2) - len(lost_alone)))
with lock:
    statuses = sorted(set(s for _, s in other))
say("answers during the run: %d 503 (with Retry-After: %s), other non-2xx: %s, no answer: %d"
    % (len(unavailable), all(r for _, r, _ in unavailable), statuses or "none", len(transport)))
if lost or duplicates:
    fail("acknowledged leads were lost or stored twice")
if not alone_on_node2 or not alone_on_node1:
    fail("no lead was acknowledged while a standby was down: the wait_primary case went untested")
if max(recovered1 - kill1, recovered2 - kill2) >= 30:
    fail("a failover took 30 s or more from the kill to the next acknowledgement")
if not unavailable:
    fail("no 503 during two failovers: the kills did not reach the service")
if not all(r for _, r, _ in unavailable) or any(not t.endswith("/service-unavailable") for _, _, t in unavailable):
    fail("a 503 without Retry-After or of another problem type")
if other:
    fail("answers other than 2xx and 503 during the failovers: %s" % statuses)
if transport:
    fail("%d requests got no HTTP answer" % len(transport))

# Every retry of a key returns the same lead.
sample = random.sample(sorted(acked), min(300, len(acked)))
mismatched = [k for k in sample if (lambda r: r[0] not in (200, 201) or r[2].get("lead_id") != acked[k])(
    signed_call(PORT, source, k, "Failover"))]
say("retries of %d acknowledged keys answered with another lead: %d" % (len(sample), len(mismatched)))
if mismatched:
    fail("a retry answered with another lead")



def cancelled_wait_for_the_standby():
    """A commit whose wait for the standby is cancelled (the standby's WAL receiver stopped, the
    waiting backend cancelled) is committed on the primary alone: PostgreSQL reports it done, with
    a warning. The first try must not be acknowledged (503), and its retry, which finds the lead,
    must not be answered before the standby has it."""
    standby = SUPERUSER.replace("read-write", "standby").replace("/enclave?", "/postgres?")
    receiver = int(subprocess.run(["psql", "-X", "-At", standby, "-c", "select pid from pg_stat_wal_receiver"],
                                  check=True, capture_output=True, text=True).stdout)
    answers = {}
    key = "failover-cancelled-wait"

    def send(name):
        answers[name] = signed_call(PORT, source, key, "Failover")

    os.kill(receiver, signal.SIGSTOP)
    try:
        first = threading.Thread(target=send, args=("first",))
        first.start()
        deadline = time.time() + 10
        while not psql("select pg_cancel_backend(pid) from pg_stat_activity where wait_event = 'SyncRep'").strip():
            if time.time() > deadline:
                fail("no commit waited for the stopped standby")
                return None
            time.sleep(0.05)
        first.join(10)
        if psql("select count(*) from enclave.leads where idempotency_key = '%s'" % key).strip() != "1":
            fail("the cancelled commit's lead is not on the primary")
        retry = threading.Thread(target=send, args=("retry",))
        retry.start()
        retry.join(3.0)
        if not retry.is_alive():
            fail("a retry was answered (%d) while the lead was not yet on the standby" % answers["retry"][0])
        resumed = time.time()
    finally:
        os.kill(receiver, signal.SIGCONT)
    retry.join(30)
    answered = time.time()
    stored = psql("select id from enclave.leads where idempotency_key = '%s'" % key).strip()
    status1, status2 = answers["first"][0], answers["retry"][0]
    say("a commit whose wait for the standby was cancelled: the first try answered %d, its retry %d "
        "%.2f s after the standby resumed" % (status1, status2, answered - resumed))
    if status1 != 503:
        fail("the first try was answered %d although its commit was on the primary alone" % status1)
    if status2 != 200 or answers["retry"][2].get("lead_id") != stored:
        fail("the retry answered %d, not the stored lead" % status2)


cancelled_wait_for_the_standby()

server.send_signal(signal.SIGTERM)
server.wait(timeout=30)
sys.exit(1 if failures else 0)
