"""What the Python test and benchmark scripts share: TOTP codes, a free port, an `enclave
serve` started without the privileged database URLs and waited for until it answers, and the
demo's credentials. The shell scripts reach the same helpers through `scripts/python -m
enclavekit` (see __main__.py), so none of them writes its own."""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.parse

PRIVILEGED = ("ENCLAVE_MAINT_DATABASE_URL", "ENCLAVE_ADMIN_DATABASE_URL", "ENCLAVE_SUPERUSER_DATABASE_URL")


def totp(secret, at):
    """The RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at a Unix time."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at // 30)), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000)


def free_port():
    """A port on 127.0.0.1 that nothing has bound, chosen above the kernel's range for the local
    ports of outgoing connections: a port inside it (as the kernel's own choice for port 0 is)
    can be taken by any client's connection, hundreds at once under a load test, between this
    check and the server's bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[1]) + 1
    except (OSError, ValueError, IndexError):
        first = 65536
    for _ in range(200):
        port = random.randrange(first, 65536) if first < 65000 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise SystemExit("free_port: no free port from %d" % first)


def serve(binary, arguments, log_path, ready, what, timeout=60):
    """Starts `enclave serve` with the service's credentials only (as production runs it) and
    returns it once `ready()` is true; exits naming `what` and the log when it never is."""
    environment = {k: v for k, v in os.environ.items() if k not in PRIVILEGED}
    server = subprocess.Popen([binary, "serve"] + arguments, env=environment, stdout=open(log_path, "a"),
                              stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            break
        try:
            if ready():
                return server
        except OSError:
            pass
        time.sleep(0.05)
    server.kill()
    raise SystemExit("%s: the server did not start (see %s)" % (what, log_path))


def plain_request(port, method, path, body=None, headers=None, timeout=30):
    """One request over plain HTTP to 127.0.0.1:`port` (a server run with --insecure-http):
    (status, headers with lowercase names, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict((k.lower(), v) for k, v in response.getheaders()), response.read()
    finally:
        connection.close()


def signed_call_request(source, key, name_prefix="Load", signed_at=None):
    """The body and headers of a signed call ingest (POST /v1/ingest/calls) with idempotency key
    `key`, signed at `signed_at` (a Unix time; now by default). The body is a function of the
    key, so every retry sends the same lead."""
    number = 5550100000 + (int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) % 9999)
    body = json.dumps({"caller_number": "+1%d" % number, "caller_name": "%s %s" % (name_prefix, key),
                       "started_at": "2026-11-29T10:00:00Z"}).encode()
    t = str(int(time.time() if signed_at is None else signed_at))
    mac = hmac.new(source["secret"].encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "Enclave-Source": source["id"],
                  "Enclave-Signature": "t=%s,v1=%s" % (t, mac), "Idempotency-Key": key}


def signed_call(port, source, key, name_prefix="Load"):
    """One attempt at a signed call ingest over plain HTTP (see signed_call_request):
    (status, headers, parsed JSON or None)."""
    body, request_headers = signed_call_request(source, key, name_prefix)
    status, headers, data = plain_request(port, "POST", "/v1/ingest/calls", body, request_headers)
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return status, headers, parsed


class TLSClient:
    """One keep-alive HTTPS connection to a server on localhost (its certificate in `cafile`),
    reopened when the server closes it; `address` goes in X-Forwarded-For (for a server that
    trusts 127.0.0.1 as a proxy)."""

    def __init__(self, port, cafile, address=None):
        self.port = port
        self.address = address
        self.context = ssl.create_default_context(cafile=cafile)
        self.connection = None

    def request(self, method, path, body=None, headers=None, token=None):
        """(status, headers, body bytes); a dict or list `body` is sent as JSON."""
        headers = dict(headers or {})
        if self.address:
            headers["X-Forwarded-For"] = self.address
        if token:
            headers["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        return self.send(method, path, body, headers)

    def send(self, method, path, body, headers):
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPSConnection("localhost", self.port, context=self.context, timeout=60)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, response.headers, data
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 1:
                    raise

    def json(self, *arguments, **keywords):
        status, headers, data = self.request(*arguments, **keywords)
        try:
            return status, headers, json.loads(data) if data else {}
        except ValueError:
            return status, headers, {}

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class PlainClient(TLSClient):
    """TLSClient's interface over plain HTTP, for a server run with --insecure-http on
    127.0.0.1:`port` (so that sign_in serves both): a connection per request."""

    def __init__(self, port):
        self.port = port
        self.address = None
        self.connection = None

    def send(self, method, path, body, headers):
        return plain_request(self.port, method, path, body, headers)


def sign_in(client, credentials, email):
    """Password, then the current code: a session that reaches PHI (a demo user of `credentials`)."""
    user = next(u for u in credentials["users"] if u["email"] == email)
    status, _, body = client.json("POST", "/v1/auth/login", {"email": email, "password": user["password"]})
    assert status == 200, "sign-in of %s got %d" % (email, status)
    status, _, _ = client.json("POST", "/v1/auth/mfa", {"code": totp(user["totpSecret"], time.time())},
                               token=body["token"])
    assert status == 204, "the code of %s got %d" % (email, status)
    return body["token"]


def wrong_code(secret):
    """A six-digit code that is not valid now, nor one step before or after."""
    now = time.time()
    valid = {totp(secret, now + step * 30) for step in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def psql(url, sql):
    """One statement through psql, its rows as text: unaligned, columns separated by tabs."""
    return subprocess.run(["psql", "-X", "-At", "-F", "\t", url, "-c", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def stored_leads(url, source_id):
    """The leads one source stored, by idempotency key: ({key: {lead ids}}, rows, keys stored
    more than once)."""
    rows = [line.split("\t") for line in psql(url, (
        "select idempotency_key, id, count(*) over (partition by idempotency_key) from enclave.leads "
        "where source_id = '%s'") % source_id).splitlines() if line]
    stored = {}
    for key, lead, _ in rows:
        stored.setdefault(key, set()).add(lead)
    return stored, len(rows), sum(1 for _, _, count in rows if int(count) > 1)


def serve_tls(binary, port, directory, what):
    """`enclave serve` over TLS on 127.0.0.1:`port` with the certificate and key in `directory`
    (cert.pem, key.pem), trusting 127.0.0.1 as a proxy (so tests can send X-Forwarded-For), its
    log in `directory`/serve-PORT.log; returned once /healthz answers."""
    cafile = os.path.join(directory, "cert.pem")

    def healthy():
        status, _, _ = TLSClient(port, cafile).request("GET", "/healthz")
        return status == 200
    return serve(binary, ["--port", str(port), "--host", "127.0.0.1", "--tls-cert", cafile,
                          "--tls-key", os.path.join(directory, "key.pem"), "--metrics-port", "0",
                          "--trusted-proxy", "127.0.0.1/32"],
                 os.path.join(directory, "serve-%d.log" % port), healthy, what)


class WebhookReceiver:
    """A practice's webhook endpoint over TLS on 127.0.0.1 (cert.pem and key.pem in `directory`),
    in a thread of its own: keeps the lead id of every delivery (None for other events) and
    answers 204."""

    def __init__(self, directory):
        self.lock = threading.Lock()
        self.lead_ids = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.lead_ids.append(json.loads(body).get("lead_id") if body else None)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *arguments):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.port = server.server_address[1]

    def count(self):
        """Deliveries so far."""
        with self.lock:
            return len(self.lead_ids)

    def delivered(self):
        """The lead ids delivered so far, each as often as it was delivered."""
        with self.lock:
            return list(self.lead_ids)


def demo_credentials(directory):
    """The credentials.json that `enclave demo seed --dir DIRECTORY` wrote."""
    with open(os.path.join(directory, "credentials.json")) as f:
        return json.load(f)


def demo_practice(credentials, agreement="active"):
    """The first demo practice whose agreement with the agency is in this state."""
    return next(p for p in credentials["practices"] if p["agreement"] == agreement)


def demo_call_source(credentials, practice_id):
    """The signed-JSON call source of a demo practice (its id and HMAC secret)."""
    return next(s for s in credentials["sources"]
                if s["practice"].lower() == practice_id.lower() and s["kind"] == "call")


def stalled_get(url, token, cafile, stall_seconds, read_timeout=10.0):
    """A client that stops reading: sends GET `url` over TLS with a 4 KiB receive buffer, reads
    nothing for `stall_seconds`, then reads as fast as it can until the server ends the
    connection (or `read_timeout` passes with nothing). Returns the bytes received, headers
    included: fewer than the response's length when the server cut the stalled client off."""
    parts = urllib.parse.urlsplit(url)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((parts.hostname, parts.port))
    connection = ssl.create_default_context(cafile=cafile).wrap_socket(raw, server_hostname=parts.hostname)
    path = parts.path + ("?" + parts.query if parts.query else "")
    request = "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n"
    connection.sendall((request % (path, parts.netloc, token)).encode())
    time.sleep(stall_seconds)
    connection.settimeout(read_timeout)
    received = 0
    try:
        while True:
            chunk = connection.recv(1 << 16)
            if not chunk:
                break
            received += len(chunk)
    except (OSError, ssl.SSLError):
        pass
    connection.close()
    return received


def keep_alive_gets(url, token, cafile, directory, timeout=30.0):
    """Two GETs of `url` on one kept-alive TLS connection, with a pause between them: writes the
    first status to DIRECTORY/first, waits until DIRECTORY/go exists, sends the second and
    returns both statuses. The connection is never reopened (http.client's auto_open off): if
    the server had closed it, the second request fails instead of silently using a new one."""
    import http.client
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                             context=ssl.create_default_context(cafile=cafile))
    path = parts.path + ("?" + parts.query if parts.query else "")
    headers = {"Authorization": "Bearer " + token}
    connection.request("GET", path, headers=headers)
    first = connection.getresponse()
    first.read()
    connection.auto_open = 0
    with open(os.path.join(directory, "first"), "w") as f:
        f.write(str(first.status))
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(directory, "go")):
        if time.time() > deadline:
            raise SystemExit("keep-alive: no go within %s s" % timeout)
        time.sleep(0.02)
    connection.request("GET", path, headers=headers)
    second = connection.getresponse()
    second.read()
    connection.close()
    return first.status, second.status
