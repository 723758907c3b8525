"""Times console pages for scripts/bench-console (standard library only).

    python3 scripts/bench_console.py SMALL_DIR LARGE_DIR

Each directory holds a seeded database's `env` (scripts/dev-postgres env), the demo's
credentials.json and the TLS pair. A server is started on each; both are signed in as the
agency admin; then three rounds time, in turn, GET /home on the small one, GET /home, GET
/agency and a lead page with a recording on the large one (five requests each per round, a new
TLS connection per request). Prints medians and lines `RESULT name value` for scripts/bench all.
"""

import http.client
import json
import os
import re
import ssl
import statistics
import sys
import time
import urllib.parse

from enclavekit import free_port, serve, totp


def exports(path):
    with open(path) as f:
        pairs = (line[len("export "):].split("=", 1) for line in f if line.startswith("export "))
        return {name: value.strip().strip("'") for name, value in pairs}


class Console:
    """One `enclave serve` on one database, and a signed-in agency admin's cookies."""

    def __init__(self, directory):
        self.directory = directory
        self.credentials = json.load(open(os.path.join(directory, "credentials.json")))
        self.context = ssl.create_default_context(cafile=os.path.join(directory, "cert.pem"))
        self.port = free_port()
        self.cookies = {}
        saved = dict(os.environ)
        os.environ.update(exports(os.path.join(directory, "env")))
        try:
            self.server = serve(
                os.environ["ENCLAVE_BIN"],
                ["--port", str(self.port), "--tls-cert", os.path.join(directory, "cert.pem"),
                 "--tls-key", os.path.join(directory, "key.pem"), "--metrics-port", "0"],
                os.path.join(directory, "serve.log"), lambda: self.request("GET", "/healthz")[0] == 200,
                "bench-console")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        admin = next(u for u in self.credentials["users"] if u["role"] == "agency_admin")
        _, html = self.request("GET", "/sign-in")
        self.request("POST", "/sign-in", {"email": admin["email"], "password": admin["password"], "csrf": csrf(html)})
        _, html = self.request("GET", "/sign-in/code")
        status, _ = self.request("POST", "/sign-in/code",
                                 {"code": totp(admin["totpSecret"], time.time()), "csrf": csrf(html)})
        assert status == 303, "sign-in failed: %d" % status

    def request(self, method, path, form=None):
        connection = http.client.HTTPSConnection("localhost", self.port, context=self.context, timeout=60)
        headers = {"Cookie": "; ".join("%s=%s" % item for item in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";")[0]
        connection.close()
        return response.status, data.decode()

    def timed(self, path, runs=5):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            status, _ = self.request("GET", path)
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, "%s answered %d" % (path, status)
        return times

    def lead_page_with_recording(self):
        bench = [p for p in self.credentials["practices"] if p["name"].startswith("Bench Practice")]
        for practice in bench[:20]:
            _, html = self.request("GET", "/practices/%s/leads" % practice["id"].lower())
            for link in re.findall(r'class="lead" href="([^"]+)"', html):
                _, page = self.request("GET", link)
                if "<audio" in page:
                    return link
        raise SystemExit("bench-console: no lead with a recording")

    def agreements(self):
        """The agreements the admin's overview counts (it shows a page of them)."""
        status, overview = self.request("GET", "/agency")
        assert status == 200
        return int(re.search(r"(\d+) agreements", overview).group(1))

    def stop(self):
        self.server.terminate()
        self.server.wait(timeout=30)


def csrf(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


small, large = Console(sys.argv[1]), Console(sys.argv[2])
try:
    lead_page = large.lead_page_with_recording()
    small_rows, rows = small.agreements(), large.agreements()
    extra = len([p for p in large.credentials["practices"] if p["name"].startswith("Bench Practice")])
    assert rows >= extra, "the overview counts %d agreements for %d practices" % (rows, extra)
    measures = {
        "GET /healthz (no database)": lambda: large.timed("/healthz"),
        "GET /home, %d agreements" % small_rows: lambda: small.timed("/home"),
        "GET /home, %d agreements" % rows: lambda: large.timed("/home"),
        "GET /agency, %d agreements" % rows: lambda: large.timed("/agency"),
        "GET lead page with a recording": lambda: large.timed(lead_page),
    }
    rounds = {name: [] for name in measures}
    for _ in range(3):
        for name, measure in measures.items():
            rounds[name].append(statistics.median(measure()))
finally:
    small.stop()
    large.stop()

names = list(measures)
home_small, home, agency = (rounds[names[i]] for i in (1, 2, 3))
print("bench-console: medians of 3 alternating rounds of 5 requests, one client, TLS, new connection per request")
for name in names:
    median = statistics.median(rounds[name])
    print("bench-console: %-36s %8.1f ms   %5.2fx GET /home" % (name, median, median / statistics.median(home)))
print("RESULT console_practices %d" % rows)
print("RESULT console_home_ms %.4f" % statistics.median(home))
print("RESULT console_home_3_ms %.4f" % statistics.median(home_small))
print("RESULT console_agency_ms %.4f" % statistics.median(agency))
print("RESULT agency_vs_home %.4f" % statistics.median(a / h for a, h in zip(agency, home)))
print("RESULT home_large_vs_3 %.4f" % statistics.median(a / h for a, h in zip(home, home_small)))
