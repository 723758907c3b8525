"""Twilio-format capture checked with the twilio package (run by scripts/capture-test)."""

import base64
import concurrent.futures
import gzip
import http.server
import json
import os
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, VoiceResponse

from enclavekit import free_port, serve, totp
import enclavekit

WORK = os.environ["ENCLAVE_CAPTURE_WORK"]
SUPERUSER = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/enclave_capture"
credentials = json.load(open(os.path.join(WORK, "credentials.json")))
source = next(s for s in credentials["sources"] if s.get("provider") == "twilio")
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("capture-test: FAIL: " + message, flush=True)


PORT = free_port()
# The provider's stand-in for recording media, on loopback: the one host recordings come from,
# for the server's callback check and the worker alike.
STAND_IN_PORT = free_port()
os.environ["ENCLAVE_MEDIA_HOSTS"] = "localhost:%d" % STAND_IN_PORT
ORIGIN = "https://localhost:%d" % PORT
tls = ssl.create_default_context(cafile=os.path.join(WORK, "cert.pem"))


def post(path, params, signature):
    """POSTs a form as Twilio does; returns the status and the body."""
    request = urllib.request.Request(
        ORIGIN + path, data=urllib.parse.urlencode(params).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
                 "User-Agent": "TwilioProxy/1.1", "Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, context=tls, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def healthy():
    with urllib.request.urlopen(ORIGIN + "/healthz", context=tls, timeout=2) as response:
        return response.status == 200


def psql(sql):
    return enclavekit.psql(SUPERUSER, sql)


def parse(text):
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return ElementTree.Element("not-xml")


class StandIn(http.server.BaseHTTPRequestHandler):
    """The provider's recording resource on loopback: checks the account's credentials, serves
    the media, and notes the DELETE."""
    media = b""
    path_expected = ""
    authorization = ""
    seen = []

    def do_GET(self):
        self.answer("GET")

    def do_DELETE(self):
        self.answer("DELETE")

    def answer(self, method):
        StandIn.seen.append((method, self.path, self.headers.get("Authorization") == StandIn.authorization))
        if self.headers.get("Authorization") != StandIn.authorization:
            self.send_response(401)
            self.end_headers()
        elif self.path != StandIn.path_expected:
            self.send_response(404)
            self.end_headers()
        elif method == "DELETE":
            self.send_response(204)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "audio/x-wav")
            self.send_header("Content-Length", str(len(StandIn.media)))
            self.end_headers()
            self.wfile.write(StandIn.media)

    def log_message(self, *args):
        pass


def wave(seconds):
    """A mono 8 kHz 16-bit WAV whose samples differ (not a compressible constant)."""
    samples = b"".join(struct.pack("<h", (i * 7919) % 65536 - 32768) for i in range(8000 * seconds))
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
            + b"data" + struct.pack("<I", len(samples)) + samples)


def api(method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(ORIGIN + path, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, context=tls, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def same_tree(a, b):
    """Element trees equal in tag, attributes, text and children (attribute order aside)."""
    return (a.tag == b.tag and a.attrib == b.attrib and (a.text or "").strip() == (b.text or "").strip()
            and len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b)))


server = serve(
    os.environ["ENCLAVE_BIN"],
    ["--port", str(PORT), "--host", "127.0.0.1", "--tls-cert", os.path.join(WORK, "cert.pem"),
     "--tls-key", os.path.join(WORK, "key.pem"), "--metrics-port", "0"],
    os.path.join(WORK, "serve.log"), healthy, "capture-test")
try:
    validator = RequestValidator(source["secret"])
    base = "/v1/capture/twilio/%s" % source["id"].lower()
    call_sid = "CA" + "5e" * 16
    params = {"AccountSid": source["account"], "ApiVersion": "2010-04-01", "CallSid": call_sid,
              "CallStatus": "ringing", "Called": "+15550001234", "CallerName": "JANE CANARY",
              "Direction": "inbound", "From": "+15558675309", "FromCity": "SPRINGFIELD", "To": "+15550001234"}
    url = ORIGIN + base + "/voice"
    signature = validator.compute_signature(url, params)
    check(validator.validate(url, params, signature), "the twilio package does not validate its own signature")

    # Twilio retries when it gets no answer in time: five at once, one lead.
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: post(base + "/voice", params, signature), range(5)))
    check(all(status == 200 for status, _ in answers), "voice answers: %s" % [s for s, _ in answers])
    stored = psql("select count(*) from enclave.leads where idempotency_key = 'twilio:%s'" % call_sid)
    check(stored == "1", "%s leads for one CallSid" % stored)

    # The answer, against TwiML built by the twilio package's own classes.
    expected = VoiceResponse()
    expected.say("This call may be recorded.")
    dial = Dial(record="record-from-answer-dual", action=ORIGIN + base + "/status", method="POST",
                recording_status_callback=ORIGIN + base + "/recording", recording_status_callback_method="POST",
                recording_status_callback_event="completed")
    dial.number(psql("select forward_to from enclave_private.ingest_credentials where source_id = '%s'" % source["id"]))
    expected.append(dial)
    answer = parse(answers[0][1])
    check(same_tree(answer, ElementTree.fromstring(str(expected))),
          "the TwiML differs from the twilio package's: %s" % answers[0][1][:300])

    # Tampered after signing, signed by another token, or sent to another source: 403, nothing stored.
    before = psql("select count(*) from enclave.leads")
    tampered = dict(params, CallSid="CA" + "6f" * 16, From="+15558675310")
    status, body = post(base + "/voice", tampered, signature)
    check(status == 403, "a tampered request got %d" % status)
    check("8675310" not in body and "CANARY" not in body, "the refusal echoes the request")
    forged = RequestValidator("not the auth token 0123456789")
    other = dict(params, CallSid="CA" + "7a" * 16)
    status, _ = post(base + "/voice", other, forged.compute_signature(url, other))
    check(status == 403, "a request signed with another token got %d" % status)
    enclave_source = next(s for s in credentials["sources"] if s["practice"] == source["practice"]
                          and s["kind"] == "call" and not s.get("provider"))
    status, _ = post("/v1/capture/twilio/%s/voice" % enclave_source["id"].lower(), other,
                     RequestValidator(enclave_source["secret"]).compute_signature(
                         ORIGIN + "/v1/capture/twilio/%s/voice" % enclave_source["id"].lower(), other))
    check(status == 403, "a signed JSON source accepted a Twilio request: %d" % status)
    check(psql("select count(*) from enclave.leads") == before, "a refused request stored a lead")

    # The Dial's outcome: the practice did not answer.
    outcome = dict(params, DialCallStatus="no-answer", DialCallDuration="0", CallStatus="in-progress")
    status, body = post(base + "/status", outcome, validator.compute_signature(ORIGIN + base + "/status", outcome))
    check(status == 200 and parse(body).tag == "Response", "status callback: %d %s" % (status, body))
    disposition = psql("select disposition || ' ' || duration_seconds from enclave.leads "
                       "where idempotency_key = 'twilio:%s'" % call_sid)
    check(disposition == "missed 0", "after no-answer the call is %r" % disposition)

    # The recording: the callback queues it; the worker fetches it from the provider's stand-in
    # (allowlisted, on loopback) with the account's credentials, seals it, then deletes it there.
    recording_sid = "RE" + "9c" * 16
    stand_in_port = STAND_IN_PORT
    StandIn.media = wave(5)
    StandIn.path_expected = "/2010-04-01/Accounts/%s/Recordings/%s" % (source["account"], recording_sid)
    StandIn.authorization = "Basic " + base64.b64encode(("%s:%s" % (source["account"], source["secret"])).encode()).decode()
    stand_in = http.server.ThreadingHTTPServer(("127.0.0.1", stand_in_port), StandIn)
    stand_in_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    stand_in_tls.load_cert_chain(os.path.join(WORK, "cert.pem"), os.path.join(WORK, "key.pem"))
    stand_in.socket = stand_in_tls.wrap_socket(stand_in.socket, server_side=True)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    ready = dict(params, RecordingSid=recording_sid, RecordingStatus="completed", RecordingDuration="5",
                 RecordingChannels="2", RecordingUrl="https://localhost:%d%s" % (stand_in_port, StandIn.path_expected))
    elsewhere = dict(ready, RecordingUrl="https://localhost:%d/2010-04-01/Accounts/%s/Recordings/%s" % (
        stand_in_port, "AC" + "0" * 32, recording_sid))
    status, _ = post(base + "/recording", elsewhere, validator.compute_signature(ORIGIN + base + "/recording", elsewhere))
    check(status == 400, "a recording URL of another account got %d" % status)
    off_list = dict(ready, RecordingUrl="https://media.evil.test%s" % StandIn.path_expected)
    status, _ = post(base + "/recording", off_list, validator.compute_signature(ORIGIN + base + "/recording", off_list))
    check(status == 400, "a recording URL on a host off the allowlist got %d" % status)
    for _ in range(2):  # a repeated callback queues nothing more
        status, _ = post(base + "/recording", ready, validator.compute_signature(ORIGIN + base + "/recording", ready))
        check(status == 204, "the recording callback got %d" % status)
    check(psql("select count(*) from enclave.recording_fetches") == "1", "the repeated callback queued twice")
    worker_env = dict(os.environ, ENCLAVE_EGRESS_ALLOW="127.0.0.1/32,::1/128")
    started = time.perf_counter()
    worker = subprocess.run(
        [os.environ["ENCLAVE_BIN"], "recordings", "fetch", "--once", "--ca-file", os.path.join(WORK, "cert.pem")],
        env=worker_env, capture_output=True, text=True, timeout=120)
    print("capture-test: %s (%.2f s)" % (worker.stdout.strip(), time.perf_counter() - started), flush=True)
    check(worker.returncode == 0 and "1 fetched" in worker.stdout and "1 deleted" in worker.stdout,
          "the worker: %s %s" % (worker.stdout.strip(), worker.stderr.strip()[:300]))
    check([m for m, _, _ in StandIn.seen] == ["GET", "DELETE"] and all(ok for _, _, ok in StandIn.seen),
          "the stand-in saw %s" % StandIn.seen)
    stand_in.shutdown()
    check(psql("select step from enclave.recording_fetches") == "done", "the fetch did not finish")
    check(psql("select string_agg(action, ',' order by seq) from enclave.audit_events "
               "where action like 'recording.%'") == "recording.fetched,recording.provider_deleted",
          "the recording steps are not audited")

    # Played back through the API by the practice's owner: byte for byte.
    owner = next(u for u in credentials["users"]
                 if u["email"] == next(p["owner"] for p in credentials["practices"] if p["id"] == source["practice"]))
    status, body = api("POST", "/v1/auth/login", body={"email": owner["email"], "password": owner["password"]})
    token = json.loads(body)["token"] if status == 200 else ""
    status, _ = api("POST", "/v1/auth/mfa", token, {"code": totp(owner["totpSecret"], time.time())})
    check(status == 204, "the owner's MFA got %d" % status)
    lead = psql("select id from enclave.leads where idempotency_key = 'twilio:%s'" % call_sid)
    status, played = api("GET", "/v1/practices/%s/leads/%s/recording" % (source["practice"].lower(), lead), token)
    check(status == 200 and played == StandIn.media,
          "the recording plays back %d: %d bytes, %d sent" % (status, len(played), len(StandIn.media)))

    # The snippet: its size as a site loads it.
    with urllib.request.urlopen(ORIGIN + "/v1/capture/snippet/pk_%s.js" % ("s" * 24), context=tls, timeout=10) as response:
        script = response.read()
    print("capture-test: the snippet is %d bytes, %d gzipped" % (len(script), len(gzip.compress(script, 9))), flush=True)

    # The caller's name and number are sealed: nowhere in clear.
    clear = psql("select count(*) from enclave.leads where position(convert_to('CANARY', 'UTF8') in caller_name) > 0 "
                 "or position(convert_to('8675309', 'UTF8') in caller_number) > 0")
    check(clear == "0", "the caller's name or number is in clear")
finally:
    server.terminate()
    server.wait(timeout=30)

sys.exit(1 if failures else 0)
