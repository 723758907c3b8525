"""The load and the samples of scripts/soak (which builds, sets up the cluster and the demo data,
and runs this with its environment).

Mixed traffic for MINUTES against release builds of `enclave serve` and its workers (the webhook
deliverer, the audit chainer, the compliance worker): signed ingest of calls and forms, Twilio
voice webhooks signed by the `twilio` package, website page views and forms, lead lists and reads,
recording uploads and playback with Range, console pages, and webhook deliveries to a receiver on
loopback. Every 10 s it samples each process's RSS, p50/p99 per route, errors, PostgreSQL
connections and unlinked audit events. At the end it prints the server's RSS slope after the
warm-up, p99 of the last window over the first, and the error count, with `RESULT name value`
lines. Exits non-zero on any error or when the chainer has fallen behind.

    scripts/python scripts/soak.py MINUTES
"""

import collections
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

from twilio.request_validator import RequestValidator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from enclavekit import WebhookReceiver, free_port, serve, totp  # noqa: E402

MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
WORK = os.environ["ENCLAVE_SOAK_WORK"]
BIN = os.environ["ENCLAVE_BIN"]
DATABASE = os.environ["ENCLAVE_SOAK_DATABASE"]
SUPERUSER = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/" + DATABASE
CLIENTS = int(os.environ.get("ENCLAVE_SOAK_CLIENTS", "6"))
# Each client pauses this long between operations: a steady load, not a saturating one.
PAUSE = float(os.environ.get("ENCLAVE_SOAK_PAUSE", "0.02"))
SAMPLE = 10.0
# The warm-up and the windows compared: 5 minutes, or a third of a shorter run.
WINDOW = min(300.0, MINUTES * 60 / 3)

credentials = json.load(open(os.path.join(WORK, "credentials.json")))
CA = os.path.join(WORK, "cert.pem")
tls = ssl.create_default_context(cafile=CA)
PORT = free_port()
ORIGIN = "https://localhost:%d" % PORT
active = next(p for p in credentials["practices"] if p["agreement"] == "active")
PRACTICE = active["id"].lower()
call_source = next(s for s in credentials["sources"] if s["practice"] == active["id"] and s["kind"] == "call"
                   and not s.get("provider"))
form_source = next((s for s in credentials["sources"] if s["practice"] == active["id"] and s["kind"] == "form"
                    and not s.get("provider")), None)
twilio_source = next(s for s in credentials["sources"] if s["practice"] == active["id"] and s.get("provider") == "twilio")
site = next(s for s in credentials["sites"] if s["practice"] == active["id"])
member = next(u for u in credentials["users"] if u["role"] == "agency_member")
admin = next(u for u in credentials["users"] if u["role"] == "agency_admin")
owner = next(u for u in credentials["users"] if u["email"] == active["owner"])

lock = threading.Lock()
latencies = collections.defaultdict(list)   # route -> [seconds], this sample
errors = []                                 # (time, route, what)
samples = []
stopping = threading.Event()
processes = {}


def psql(sql):
    result = subprocess.run(["psql", "-X", "-q", "-t", "-A", SUPERUSER, "-c", sql], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


class Client:
    """One kept-alive HTTPS connection, reopened after an error."""

    def __init__(self):
        self.connection = None

    def request(self, route, method, path, body=None, headers=None, expect=(200,)):
        started = time.perf_counter()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPSConnection("localhost", PORT, context=tls, timeout=60)
            self.connection.request(method, path, body=body, headers=headers or {})
            response = self.connection.getresponse()
            data = response.read()
            status = response.status
            response_headers = dict((k.lower(), v) for k, v in response.getheaders())
            if response_headers.get("connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            record(route, time.perf_counter() - started, "%s: %s" % (type(error).__name__, error))
            return None, b"", {}
        record(route, time.perf_counter() - started,
               None if status in expect else "status %d: %s" % (status, data[:200].decode(errors="replace")))
        return status, data, response_headers

    def close(self):
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def record(route, seconds, error):
    with lock:
        latencies[route].append(seconds)
        if error is not None:
            errors.append((time.time(), route, error))
            if len(errors) <= 20:
                print("soak: error on %s: %s" % (route, error), flush=True)


def signed(secret, body):
    timestamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "t=%s,v1=%s" % (timestamp, mac)


def wave(seconds):
    samples = bytes((i * 7919 >> 3) & 0xFF for i in range(8000 * 2 * seconds))
    header = (b"RIFF" + (36 + len(samples)).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
              + (16000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
              + b"data" + len(samples).to_bytes(4, "little"))
    return header + samples


AUDIO = wave(3)


def audio():
    """The recording with a random tail: a signature covers the body, and two uploads of the
    same bytes in the same second would be one request replayed."""
    return AUDIO[:-16] + os.urandom(16)


def sign_in(email, password, secret):
    client = Client()
    status, data, _ = client.request("sign-in", "POST", "/v1/auth/login",
                                     json.dumps({"email": email, "password": password}).encode(),
                                     {"Content-Type": "application/json"})
    token = json.loads(data)["token"]
    # A code not used by another sign-in of this run: codes work once.
    for step in (0, 1, -1, 2):
        status, _, _ = client.request("sign-in", "POST", "/v1/auth/mfa",
                                      json.dumps({"code": totp(secret, time.time() + 30 * step)}).encode(),
                                      {"Content-Type": "application/json", "Authorization": "Bearer " + token},
                                      expect=(204, 401, 400))
        if status == 204:
            return token
    raise SystemExit("soak: %s could not complete MFA" % email)


class Console:
    """The console as a browser uses it: a cookie session through the sign-in forms."""

    def __init__(self, user):
        self.cookies = {}
        self.client = Client()
        _, html = self.get("console-sign-in", "/sign-in")
        self.post("console-sign-in", "/sign-in",
                  {"email": user["email"], "password": user["password"], "csrf": self.csrf(html)})
        # A code not used by the user's API sign-in: each code works once.
        for step in (1, 2, -1):
            _, html = self.get("console-sign-in", "/sign-in/code")
            status, _ = self.post("console-sign-in", "/sign-in/code",
                                  {"code": totp(user["totpSecret"], time.time() + 30 * step), "csrf": self.csrf(html)})
            if status == 303:
                return
        raise SystemExit("soak: the console sign-in failed")

    @staticmethod
    def csrf(html):
        return re.search(r'name="csrf" value="([^"]+)"', html).group(1)

    def headers(self):
        return {"Cookie": "; ".join("%s=%s" % item for item in self.cookies.items())}

    def remember(self, response_headers):
        for name, value in response_headers.items():
            if name == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";")[0]

    def get(self, route, path):
        status, data, response_headers = self.client.request(route, "GET", path, headers=self.headers())
        self.remember(response_headers)
        return status, data.decode(errors="replace")

    def post(self, route, path, form):
        headers = dict(self.headers(), **{"Content-Type": "application/x-www-form-urlencoded"})
        status, data, response_headers = self.client.request(route, "POST", path, urllib.parse.urlencode(form).encode(),
                                                             headers, expect=(200, 303))
        self.remember(response_headers)
        return status, data.decode(errors="replace")


def healthy():
    connection = http.client.HTTPSConnection("localhost", PORT, context=tls, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    finally:
        connection.close()


def start_workers():
    maintenance_env = {k: v for k, v in os.environ.items()
                       if k not in ("ENCLAVE_DATABASE_URL", "ENCLAVE_ADMIN_DATABASE_URL", "ENCLAVE_SUPERUSER_DATABASE_URL")}
    maintenance_env["ENCLAVE_EGRESS_ALLOW"] = "127.0.0.1"
    for name, arguments in (("webhooks", ["webhooks", "deliver", "--ca-file", CA, "--interval", "1"]),
                            ("chainer", ["audit", "chain"]),
                            ("compliance", ["compliance", "work", "--interval", "30"])):
        processes[name] = subprocess.Popen([BIN] + arguments, env=maintenance_env,
                                           stdout=open(os.path.join(WORK, name + ".log"), "a"), stderr=subprocess.STDOUT)


def rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def traffic(index, token, console, leads):
    """One client's loop: an operation chosen by weight, then a short pause."""
    client = Client()
    validator = RequestValidator(twilio_source["secret"])
    rng = random.Random(index)
    twilio_base = "/v1/capture/twilio/%s" % twilio_source["id"].lower()
    operations = [
        ("ingest-call", 4), ("ingest-form", 2), ("twilio-voice", 2), ("web-view-form", 1), ("leads-list", 6),
        ("lead-read", 6), ("recording", 1), ("console", 2),
    ]
    names = [name for name, weight in operations for _ in range(weight)]
    counter = 0
    while not stopping.is_set():
        counter += 1
        operation = rng.choice(names)
        if operation == "ingest-call":
            body = json.dumps({"caller_number": "+1555%07d" % rng.randrange(10 ** 7), "caller_name": "Soak Caller",
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "duration_seconds": rng.randrange(600)}).encode()
            status, data, _ = client.request(
                "POST /v1/ingest/calls", "POST", "/v1/ingest/calls", body,
                {"Content-Type": "application/json", "Enclave-Source": call_source["id"],
                 "Enclave-Signature": signed(call_source["secret"], body),
                 "Idempotency-Key": "soak-%d-%d" % (index, counter)}, expect=(201, 200))
            if status in (200, 201):
                with lock:
                    leads.append(json.loads(data)["lead_id"])
                    del leads[:-500]
        elif operation == "ingest-form" and form_source:
            body = json.dumps({"fields": {"name": "Soak Form", "phone": "+1555%07d" % rng.randrange(10 ** 7)},
                               "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
            client.request("POST /v1/ingest/forms", "POST", "/v1/ingest/forms", body,
                           {"Content-Type": "application/json", "Enclave-Source": form_source["id"],
                            "Enclave-Signature": signed(form_source["secret"], body)}, expect=(201, 200))
        elif operation == "twilio-voice":
            params = {"AccountSid": twilio_source["account"], "ApiVersion": "2010-04-01",
                      "CallSid": "CA" + uuid.uuid4().hex, "CallStatus": "ringing", "Called": site["numbers"][0],
                      "CallerName": "SOAK CALLER", "Direction": "inbound", "From": "+1555%07d" % rng.randrange(10 ** 7),
                      "To": site["numbers"][0]}
            signature = validator.compute_signature(ORIGIN + twilio_base + "/voice", params)
            client.request("POST twilio voice", "POST", twilio_base + "/voice", urllib.parse.urlencode(params).encode(),
                           {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
        elif operation == "web-view-form":
            headers = {"Origin": site["origins"][0], "Content-Type": "text/plain",
                       "X-Forwarded-For": "203.0.113.%d" % rng.randrange(1, 250)}
            status, data, _ = client.request(
                "POST web view", "POST", "/v1/capture/web/%s/views" % site["publicKey"],
                json.dumps({"path": "/", "params": {"utm_source": "soak"}}).encode(), headers, expect=(200, 429))
            if status == 200:
                session = json.loads(data)["session"]
                client.request("POST web form", "POST", "/v1/capture/web/%s/forms" % site["publicKey"],
                               json.dumps({"session": session, "fields": {"name": "Web Soak"},
                                           "elapsed_ms": 5000}).encode(), headers, expect=(201, 200, 204, 429))
        elif operation == "leads-list":
            client.request("GET leads?limit=50", "GET", "/v1/practices/%s/leads?limit=50" % PRACTICE,
                           headers={"Authorization": "Bearer " + token})
        elif operation == "lead-read":
            with lock:
                lead = rng.choice(leads) if leads else None
            if lead:
                client.request("GET lead", "GET", "/v1/practices/%s/leads/%s" % (PRACTICE, lead),
                               headers={"Authorization": "Bearer " + token})
        elif operation == "recording":
            with lock:
                lead = leads[-1] if leads else None
            if lead:
                body = audio()
                status, _, _ = client.request(
                    "PUT recording", "PUT", "/v1/ingest/calls/%s/recording" % lead, body,
                    {"Content-Type": "audio/wav", "Enclave-Source": call_source["id"],
                     "Enclave-Signature": signed(call_source["secret"], body)}, expect=(201, 409))
            if lead and status == 201:
                client.request("GET recording (Range)", "GET", "/v1/practices/%s/leads/%s/recording" % (PRACTICE, lead),
                               headers={"Authorization": "Bearer " + token, "Range": "bytes=1000-40999"},
                               expect=(206,))
        elif operation == "console" and console is not None:
            # The agency admin's overview and home; the assigned member's lead list.
            admin_console, member_console = console
            path = rng.choice(["/home", "/agency", "/practices/%s/leads" % PRACTICE])
            (member_console if path.startswith("/practices") else admin_console).get(
                "console " + path.split("/")[1], path)
        time.sleep(PAUSE)


def sampler(started):
    while not stopping.wait(SAMPLE):
        with lock:
            taken = dict(latencies)
            latencies.clear()
            error_count = len(errors)
        row = {"t": time.time() - started, "errors": error_count,
               "rss": {name: rss_mib(process.pid) for name, process in processes.items()},
               "routes": {route: (statistics.median(values), percentile(values, 0.99), len(values))
                          for route, values in taken.items()},
               "connections": psql("select count(*) from pg_stat_activity where datname = '%s'" % DATABASE),
               "unlinked": psql("select count(*) from enclave.audit_events where chain_seq is null"),
               "deliveries": receiver.count()}
        samples.append(row)
        all_values = [v for values in taken.values() for v in values]
        print("soak: %5.0fs  rss serve %.0f MiB  chainer %.0f  webhooks %.0f  compliance %.0f  "
              "requests %d  p50 %.1f ms  p99 %.1f ms  errors %d  pg connections %s  unlinked %s  deliveries %d"
              % (row["t"], row["rss"].get("serve") or 0, row["rss"].get("chainer") or 0,
                 row["rss"].get("webhooks") or 0, row["rss"].get("compliance") or 0, len(all_values),
                 1000 * (statistics.median(all_values) if all_values else 0),
                 1000 * (percentile(all_values, 0.99) if all_values else 0), error_count, row["connections"],
                 row["unlinked"], row["deliveries"]), flush=True)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def slope(points):
    """Least-squares slope of (minutes, MiB) points."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.mean(x for x, _ in points)
    mean_y = statistics.mean(y for _, y in points)
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / denominator if denominator else 0.0


def window_p99(rows):
    """p99 per route over sample rows, approximated by the largest of the rows' p99s weighted by count."""
    merged = collections.defaultdict(list)
    for row in rows:
        for route, (p50, p99, count) in row["routes"].items():
            merged[route].append((p99, count))
    return {route: statistics.median([p99 for p99, _ in values]) for route, values in merged.items()}


def main():
    global receiver
    receiver = WebhookReceiver(WORK)
    processes["serve"] = serve(
        BIN, ["--port", str(PORT), "--host", "127.0.0.1", "--tls-cert", CA, "--tls-key", os.path.join(WORK, "key.pem"),
              "--metrics-port", "0", "--trusted-proxy", "127.0.0.1"],
        os.path.join(WORK, "serve.log"), healthy, "soak")
    start_workers()
    token = sign_in(member["email"], member["password"], member["totpSecret"])
    owner_token = sign_in(owner["email"], owner["password"], owner["totpSecret"])
    status, data, _ = Client().request(
        "setup", "POST", "/v1/practices/%s/webhooks" % PRACTICE,
        json.dumps({"url": "https://127.0.0.1:%d/hook" % receiver.port}).encode(),
        {"Content-Type": "application/json", "Authorization": "Bearer " + owner_token}, expect=(201,))
    if status != 201:
        raise SystemExit("soak: the webhook endpoint was not created: %s" % data[:200])
    console = (Console(admin), Console(member))
    leads = []
    started = time.time()
    print("soak: %d clients for %.1f minutes against %s (release builds); samples every %.0f s"
          % (CLIENTS, MINUTES, ORIGIN, SAMPLE), flush=True)
    threads = [threading.Thread(target=traffic, args=(i, token, console if i == 0 else None, leads), daemon=True)
               for i in range(CLIENTS)]
    threading.Thread(target=sampler, args=(started,), daemon=True).start()
    for thread in threads:
        thread.start()
    try:
        time.sleep(MINUTES * 60)
    finally:
        stopping.set()
        for thread in threads:
            thread.join(timeout=90)
    # The chainer catches up with what the load wrote.
    deadline = time.time() + 60
    unlinked = psql("select count(*) from enclave.audit_events where chain_seq is null")
    while unlinked not in ("0", None) and time.time() < deadline:
        time.sleep(2)
        unlinked = psql("select count(*) from enclave.audit_events where chain_seq is null")
    crashed = [name for name, process in processes.items() if process.poll() is not None]
    for process in processes.values():
        process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    warm = [row for row in samples if row["t"] >= WINDOW]
    rss_slope = slope([(row["t"] / 60, row["rss"]["serve"]) for row in warm if row["rss"].get("serve")])
    worker_slopes = {name: slope([(row["t"] / 60, row["rss"][name]) for row in warm if row["rss"].get(name)])
                     for name in ("webhooks", "chainer", "compliance")}
    first = window_p99([row for row in samples if row["t"] <= WINDOW])
    last = window_p99([row for row in samples if row["t"] > MINUTES * 60 - WINDOW])
    total = sum(count for row in samples for _, _, count in row["routes"].values())
    print("\nsoak: %.1f minutes, %d requests, %d errors, %d webhook deliveries; windows of %.0f s"
          % (MINUTES, total, len(errors), receiver.count(), WINDOW))
    print("soak: serve RSS slope after warm-up %.2f MiB/min (goal < 1); workers: %s"
          % (rss_slope, ", ".join("%s %.2f" % item for item in worker_slopes.items())))
    ratios = []
    for route in sorted(first):
        if route in last and first[route] > 0:
            ratios.append(last[route] / first[route])
            print("soak:   %-28s p99 first %7.1f ms  last %7.1f ms  %.2fx"
                  % (route, 1000 * first[route], 1000 * last[route], last[route] / first[route]))
    ratio = statistics.median(ratios) if ratios else 0
    print("soak: p99 last/first window, median over routes %.2fx (goal <= 1.2x)" % ratio)
    print("RESULT soak_rss_slope_mib_per_min %.3f" % rss_slope)
    print("RESULT soak_p99_last_over_first %.3f" % ratio)
    print("RESULT soak_errors %d" % len(errors))
    json.dump(samples, open(os.path.join(WORK, "samples.json"), "w"))
    failed = []
    if errors:
        failed.append("%d errors" % len(errors))
    if crashed:
        failed.append("%s exited during the soak" % ", ".join(crashed))
    if unlinked != "0":
        failed.append("the chainer left %s events unlinked a minute after the load" % unlinked)
    if receiver.count() == 0:
        failed.append("no webhook was delivered")
    if failed:
        raise SystemExit("soak: FAILED: " + "; ".join(failed))
    print("soak: passed")


main()
