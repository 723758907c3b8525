"""Twilio-format capture checked with the twilio package (run by scripts/capture-test)."""

import concurrent.futures
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, VoiceResponse

from testkit import free_port, serve

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
    return subprocess.run(["psql", "-X", "-At", SUPERUSER, "-c", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def parse(text):
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return ElementTree.Element("not-xml")


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

    # The caller's name and number are sealed: nowhere in clear.
    clear = psql("select count(*) from enclave.leads where position(convert_to('CANARY', 'UTF8') in caller_name) > 0 "
                 "or position(convert_to('8675309', 'UTF8') in caller_number) > 0")
    check(clear == "0", "the caller's name or number is in clear")
finally:
    server.terminate()
    server.wait(timeout=30)

sys.exit(1 if failures else 0)
