"""Times console pages for scripts/bench-console (standard library only)."""

import http.client
import json
import os
import re
import ssl
import statistics
import time
import urllib.parse

from enclavekit import free_port, serve, totp

WORK = os.environ["ENCLAVE_BENCH_WORK"]
credentials = json.load(open(os.path.join(WORK, "credentials.json")))
context = ssl.create_default_context(cafile=os.path.join(WORK, "cert.pem"))


PORT = free_port()
cookies = {}


def request(method, path, form=None):
    connection = http.client.HTTPSConnection("localhost", PORT, context=context, timeout=60)
    headers = {"Cookie": "; ".join("%s=%s" % item for item in cookies.items())}
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
            cookies[key] = rest.split(";")[0]
    connection.close()
    return response.status, data.decode()


server = serve(
    os.environ["ENCLAVE_BIN"],
    ["--port", str(PORT), "--tls-cert", os.path.join(WORK, "cert.pem"), "--tls-key", os.path.join(WORK, "key.pem"),
     "--metrics-port", "0"],
    os.path.join(WORK, "serve.log"), lambda: request("GET", "/healthz")[0] == 200, "bench-console")


def csrf(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


admin = next(u for u in credentials["users"] if u["role"] == "agency_admin")
_, html = request("GET", "/sign-in")
request("POST", "/sign-in", {"email": admin["email"], "password": admin["password"], "csrf": csrf(html)})
_, html = request("GET", "/sign-in/code")
status, _ = request("POST", "/sign-in/code", {"code": totp(admin["totpSecret"], time.time()), "csrf": csrf(html)})
assert status == 303, "sign-in failed: %d" % status

bench = [p for p in credentials["practices"] if p["name"].startswith("Bench Practice")]
lead_page = None
for practice in bench[:20]:
    _, html = request("GET", "/practices/%s/leads" % practice["id"].lower())
    for link in re.findall(r'class="lead" href="([^"]+)"', html):
        _, page = request("GET", link)
        if "<audio" in page:
            lead_page = link
            break
    if lead_page:
        break
assert lead_page, "no lead with a recording"
status, overview = request("GET", "/agency")
rows = overview.count("<tr") - 1
assert status == 200 and rows >= len(bench), "the overview lists %d rows" % rows


def timed(path, runs=15):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        status, _ = request("GET", path)
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200, "%s answered %d" % (path, status)
    return statistics.median(times)


request("GET", "/agency")
results = [("GET /healthz (no database)", timed("/healthz")), ("GET /home", timed("/home")),
           ("GET /agency (%d agreements)" % rows, timed("/agency")),
           ("GET lead page with a recording", timed(lead_page))]
home = results[1][1]
print("bench-console: medians of 15 requests each, one client, TLS, new connection per request")
for name, median in results:
    print("bench-console: %-36s %8.1f ms   %5.2fx GET /home" % (name, median, median / home))
server.terminate()
server.wait(timeout=30)
