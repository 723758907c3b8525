"""The console's browser tests (run by scripts/browser-test, which seeds the demo data and
installs what this needs): headless Chromium through Selenium, axe-core for accessibility."""

import functools
import glob
import hashlib
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from twilio.request_validator import RequestValidator

from enclavekit import free_port, serve, totp
import enclavekit

WORK = os.environ["ENCLAVE_BROWSER_WORK"]
SHOTS = os.environ["ENCLAVE_SCREENSHOTS"]
BIN = os.environ["ENCLAVE_BIN"]
credentials = json.load(open(os.path.join(WORK, "credentials.json")))
users = {u["email"]: u for u in credentials["users"]}
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("browser-test: FAIL: " + message, flush=True)


PORT = free_port()
ORIGIN = "https://localhost:%d" % PORT
insecure = ssl.create_default_context(cafile=os.path.join(WORK, "cert.pem"))


def get(path):
    request = urllib.request.Request(ORIGIN + path)
    try:
        with urllib.request.urlopen(request, context=insecure, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


server = serve(
    BIN, ["--port", str(PORT), "--host", "127.0.0.1", "--tls-cert", os.path.join(WORK, "cert.pem"),
          "--tls-key", os.path.join(WORK, "key.pem"), "--metrics-port", "0", "--idle-timeout", "60"],
    os.path.join(WORK, "serve.log"), lambda: get("/healthz")[0] == 200, "browser-test")


def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors",
                     "--window-size=1280,900", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=options)


axe_findings = {}


def page(driver, name):
    """Screenshot and axe-core for one main page."""
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))
    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    serious = [v["id"] for v in results["violations"] if v.get("impact") in ("serious", "critical")]
    axe_findings[name] = serious
    details = [(v["id"], [n["html"][:120] for n in v["nodes"]][:3]) for v in results["violations"]
               if v.get("impact") in ("serious", "critical")]
    check(not serious, "%s: axe finds %s" % (name, details))


def heading_becomes(driver, expected):
    """Waits until the page's h1 reads `expected`; returns what it reads."""
    def heading():
        try:
            return driver.find_element(By.TAG_NAME, "h1").text
        except Exception:  # not loaded yet
            return None
    try:
        WebDriverWait(driver, 10).until(lambda d: heading() == expected)
    except Exception:
        pass
    return heading()


def statuses_become(driver, expected):
    """Waits until the agreements page shows `expected`; returns what it shows."""
    def statuses():
        try:
            return [e.get_attribute("data-status") for e in driver.find_elements(By.CSS_SELECTOR, ".agreement")]
        except Exception:  # the page is being replaced
            return None
    try:
        WebDriverWait(driver, 10).until(lambda d: statuses() == expected)
    except Exception:
        pass
    return statuses()


def replaced(driver, element, timeout=10):
    """Waits until `element` has left the document, as when a form's answer replaces the page.
    Selenium's staleness_of knows only StaleElementReferenceException; Chrome, asked about a node
    mid-navigation, may instead answer "Node with given id does not belong to the document",
    which says the same thing."""
    def gone(_):
        try:
            element.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in (error.msg or ""):
                return True
            raise
    WebDriverWait(driver, timeout).until(gone)


def shows(driver, selector, text, timeout=10):
    """Waits until the element at `selector` contains `text` (the page may be replaced meanwhile)."""
    def found(d):
        try:
            return any(text in e.text for e in d.find_elements(By.CSS_SELECTOR, selector))
        except Exception:  # the page is being replaced
            return False
    try:
        WebDriverWait(driver, timeout).until(found)
        return True
    except Exception:
        return False


def sign_in_page_is_clean(driver, when):
    """The sign-in page as it first shows: no error message (it once showed the word "nil", an
    absent optional rendered as text)."""
    errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "main .error, main [role=alert]")]
    check(not errors, "the sign-in page %s shows an error: %r" % (when, errors))
    check("nil" not in driver.find_element(By.TAG_NAME, "main").text.split(),
          "the sign-in page %s shows the word nil" % when)


def sign_in(driver, email, at):
    driver.get(ORIGIN + "/sign-in")
    page(driver, "sign-in")
    sign_in_page_is_clean(driver, "at first")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(users[email]["password"])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 10).until(expected_conditions.url_contains("/sign-in/code"))
    page(driver, "code")
    driver.find_element(By.ID, "code").send_keys(totp(users[email]["totpSecret"], at))
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(driver, 10).until(expected_conditions.url_contains("/home"))


def practice_site(directory, api_origin, key):
    """A practice's page with the snippet: its own number marked and in a tel: link, and a form
    with a honeypot."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "index.html"), "w") as page_file:
        page_file.write("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bright Smile Dental</title></head>
<body><main>
<h1>Bright Smile Dental</h1>
<p>Call us: <a id="phone" href="tel:+15550101000">(555) 010-1000</a> or <span id="marked" data-enclave-number>(555) 010-1000</span></p>
<form id="contact" data-enclave-form>
  <label for="name">Name</label><input id="name" name="name">
  <label for="tel">Phone</label><input id="tel" name="phone">
  <input id="website" name="website" data-enclave-honeypot tabindex="-1" autocomplete="off" hidden>
  <button type="submit">Send</button>
</form>
</main>
<script src="%s/v1/capture/snippet/%s.js"></script>
</body></html>""" % (api_origin, key))


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_site(directory, port):
    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(QuietFiles, directory=directory))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site


def psql(sql):
    return enclavekit.psql(SUPERUSER, sql)


SUPERUSER = os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/enclave_browser"


def website_capture():
    """Dynamic number insertion and form capture on a practice's site, in the browser."""
    bright = next(p for p in credentials["practices"] if p["agreement"] == "active")
    site = next(s for s in credentials["sites"] if s["practice"] == bright["id"])
    twilio_source = next(s for s in credentials["sources"]
                         if s["practice"] == bright["id"] and s.get("provider") == "twilio")
    site_port = int(os.environ["ENCLAVE_SITE_PORT"])
    other_port = free_port()
    directory = os.path.join(WORK, "site")
    practice_site(directory, ORIGIN, site["publicKey"])
    servers = [serve_site(directory, site_port), serve_site(directory, other_port)]
    visitor = browser()
    try:
        visitor.get("http://127.0.0.1:%d/index.html?utm_source=google&gclid=TEST123&patient=Jane+Canary" % site_port)
        shown = WebDriverWait(visitor, 15).until(
            lambda d: d.find_element(By.ID, "marked").text if d.find_element(By.ID, "marked").text != "(555) 010-1000"
            else False)
        visitor.save_screenshot(os.path.join(SHOTS, "site.png"))
        digits = "".join(c for c in shown if c.isdigit())
        number = next((n for n in site["numbers"] if n.endswith(digits[-10:])), None)
        check(number is not None, "the page shows %r, not a pool number" % shown)
        link = visitor.find_element(By.ID, "phone").get_attribute("href")
        check(number is not None and link == "tel:" + number, "the practice's tel: link became %r" % link)
        resources = visitor.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        check(not [r for r in resources if "patient" in r or "Canary" in r], "the patient parameter left the browser")

        # A call to that number, posted as Twilio would: the visitor's campaign and click id.
        params = {"AccountSid": twilio_source["account"], "CallSid": "CA" + "b1" * 16, "From": "+15558675309",
                  "To": number or "", "CallerName": "JANE CANARY", "CallStatus": "ringing", "Direction": "inbound"}
        url = ORIGIN + "/v1/capture/twilio/%s/voice" % twilio_source["id"].lower()
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(params).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "X-Twilio-Signature": RequestValidator(twilio_source["secret"]).compute_signature(url, params)})
        with urllib.request.urlopen(request, context=insecure, timeout=30) as response:
            check(response.status == 200, "the Twilio voice request got %d" % response.status)
        attributed = psql("select source || ' ' || gclid from enclave.leads where idempotency_key = 'twilio:%s'"
                          % params["CallSid"])
        check(attributed == "google TEST123", "the call is attributed to %r" % attributed)

        # The form: stored once, sealed; a filled honeypot stores nothing; another origin gets 403.
        forms = "select count(*) from enclave.leads where kind = 'form' and tenant_id = '%s'" % bright["id"].lower()
        before = int(psql(forms))
        time.sleep(2.2)  # a person takes longer than the snippet's minimum
        visitor.find_element(By.ID, "name").send_keys("Jane Canary")
        visitor.find_element(By.ID, "tel").send_keys("(555) 867-5309")
        visitor.find_element(By.CSS_SELECTOR, "#contact button").click()
        WebDriverWait(visitor, 10).until(
            lambda d: d.find_element(By.ID, "contact").get_attribute("data-enclave-sent"))
        check(visitor.find_element(By.ID, "contact").get_attribute("data-enclave-sent") == "yes", "the form was refused")
        check(int(psql(forms)) == before + 1, "the form stored %d leads" % (int(psql(forms)) - before))
        visitor.execute_script("""
            document.getElementById('contact').removeAttribute('data-enclave-sent');
            document.getElementById('website').value = 'http://spam.example';""")
        visitor.find_element(By.CSS_SELECTOR, "#contact button").click()
        WebDriverWait(visitor, 10).until(
            lambda d: d.find_element(By.ID, "contact").get_attribute("data-enclave-sent"))
        check(int(psql(forms)) == before + 1, "a filled honeypot stored a lead")

        visitor.get("http://127.0.0.1:%d/index.html?utm_source=bing" % other_port)
        time.sleep(2.2)
        visitor.find_element(By.ID, "name").send_keys("Other Origin")
        visitor.find_element(By.CSS_SELECTOR, "#contact button").click()
        WebDriverWait(visitor, 10).until(
            lambda d: d.find_element(By.ID, "contact").get_attribute("data-enclave-sent"))
        check(visitor.find_element(By.ID, "contact").get_attribute("data-enclave-sent") == "no",
              "a form from an origin not on the list was accepted")
        check(visitor.find_element(By.ID, "marked").text == "(555) 010-1000",
              "a page on an origin not on the list got a pool number")
        check(int(psql(forms)) == before + 1, "a form from another origin stored a lead")
        status, headers, _ = get("/v1/capture/snippet/%s.js" % site["publicKey"])
        check(status == 200 and "max-age" in headers.get("Cache-Control", ""),
              "the snippet's Cache-Control is %r" % headers.get("Cache-Control"))
    finally:
        visitor.quit()
        for server in servers:
            server.shutdown()

    # "Jane Canary" (from the URL, the caller's name and the form) is nowhere in the database:
    # every table searched as the superuser, and a pg_dump.
    tables = psql("select quote_ident(schemaname) || '.' || quote_ident(tablename) from pg_tables "
                  "where schemaname in ('enclave', 'enclave_private', 'enclave_meta', 'public')").split("\n")
    found = [t for t in tables if t and psql("select count(*) from %s t where t::text ilike '%%canary%%'" % t) != "0"]
    check(not found, "the canary is in clear in %s" % found)
    dump = subprocess.run(["pg_dump", "--no-owner", SUPERUSER], capture_output=True, text=True)
    check(dump.returncode == 0 and "canary" not in dump.stdout.lower(),
          "pg_dump: exit %d, canary %s" % (dump.returncode, "found" if "canary" in dump.stdout.lower() else "absent"))


lakeside = next(p for p in credentials["practices"] if p["agreement"] == "proposed")
lakeside["id"] = lakeside["id"].lower()
owner_email = lakeside["owner"]
member_email = next(u["email"] for u in credentials["users"] if u["role"] == "agency_member")
try:
    website_capture()
except Exception:
    server.terminate()
    raise
now = time.time()
owner = browser()
member = browser()
try:
    # The owner signs in with password and code and approves through the re-authentication dialog.
    sign_in(owner, owner_email, now)
    page(owner, "home-owner")
    owner.find_element(By.CSS_SELECTOR, "a[href='/practices/%s/agreements']" % lakeside["id"]).click()
    page(owner, "agreements")
    terms = owner.find_element(By.CSS_SELECTOR, ".agreement").text
    digest = owner.find_element(By.CSS_SELECTOR, ".agreement .digest").text
    check(len(digest) == 64 and all(c in "0123456789abcdef" for c in digest), "the document hash shown is %r" % digest)
    check("Brightline Marketing" in terms, "the pending agreement does not name its agency: %r" % terms[:80])
    owner.find_element(By.CSS_SELECTOR, "button.approve").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "reauth")))
    page(owner, "reauthenticate")
    owner.find_element(By.ID, "password").send_keys(users[owner_email]["password"])
    owner.find_element(By.ID, "code").send_keys(totp(users[owner_email]["totpSecret"], now + 30))
    confirm = owner.find_element(By.CSS_SELECTOR, "#reauth button[type=submit]")
    confirm.click()
    statuses = statuses_become(owner, ["active"])
    check(statuses == ["active"], "after approval the agreement is %s" % statuses)

    # The agency member now sees that practice's leads and plays a recording.
    sign_in(member, member_email, now)
    page(member, "home-member")
    member.find_element(By.CSS_SELECTOR, "a[href='/practices/%s/leads']" % lakeside["id"]).click()
    page(member, "leads")
    links = [a.get_attribute("href") for a in member.find_elements(By.CSS_SELECTOR, "a.lead")]
    check(len(links) > 0, "the member sees no leads after approval")
    played = False
    shown = []
    for link in links:
        member.get(link)
        shown += [dd.text for dd in member.find_elements(By.CSS_SELECTOR, ".fields dd") if dd.text not in ("—",)]
        if member.find_elements(By.ID, "player"):
            page(member, "lead")
            played = member.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const audio = document.getElementById('player');
                audio.muted = true;
                audio.addEventListener('error', () => done(false));
                audio.addEventListener('playing', () => done(audio.duration > 0));
                audio.play().catch(() => done(false));
            """)
            break
    check(played, "the member could not play a recording")
    resources = member.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    check(all(r.startswith(ORIGIN) for r in resources), "resources from another origin: %s" % resources)

    # Transcripts (issue 30; the worker ran over the demo's calls before this test): the member
    # filters by a tag and reads only the redacted transcript; the owner reads both, the tags and
    # the suggestion, changes the keyword sets, and counts tags per day on the dashboard.
    member.get(ORIGIN + "/practices/%s/leads" % lakeside["id"])
    member.find_element(By.CSS_SELECTOR, "#tag option[value=insurance]").click()
    member.find_element(By.CSS_SELECTOR, "form[aria-label='Filter leads'] button").click()
    WebDriverWait(member, 10).until(lambda d: "tag=insurance" in d.current_url)
    tagged = [tr.text for tr in member.find_elements(By.CSS_SELECTOR, "tbody tr")]
    check(tagged and all("insurance" in row for row in tagged), "the insurance filter shows %s" % tagged)
    member.find_element(By.CSS_SELECTOR, "a.lead").click()
    WebDriverWait(member, 10).until(expected_conditions.presence_of_element_located((By.ID, "transcript-heading")))
    page(member, "lead-transcript-redacted")
    caller = member.find_element(By.CSS_SELECTOR, ".fields dd:nth-of-type(3)").text
    redacted = member.find_element(By.ID, "transcript-redacted").text
    check(not member.find_elements(By.ID, "transcript-full"), "the agency member sees the full transcript")
    check("[NAME]" in redacted and not any(c.isdigit() for c in redacted),
          "the redacted transcript reads %r" % redacted[:80])
    check(all(part not in redacted for part in caller.split()), "the caller's name is in the redacted transcript")
    lead_url = member.current_url
    owner.get(lead_url)
    page(owner, "lead-transcript-full")
    full = owner.find_element(By.ID, "transcript-full").text
    check(caller.split()[0] in full, "the owner's transcript does not name the caller")
    insights = owner.find_element(By.ID, "insights").text
    check("insurance" in insights and "suggested" in insights, "the lead's tags read %r" % insights)
    owner.get(ORIGIN + "/practices/%s/keywords" % lakeside["id"])
    page(owner, "keywords")
    owner.find_element(By.ID, "name").send_keys("follow up")
    owner.find_element(By.ID, "phrases").send_keys("follow up\ncall me back")
    owner.find_element(By.CSS_SELECTOR, "form[action$='/keywords'] button[type=submit]").click()
    check(shows(owner, "main", "call me back"), "the new keyword set is not listed")
    owner.get(ORIGIN + "/practices/%s" % lakeside["id"])
    counted = owner.find_element(By.ID, "tags-heading").find_element(By.XPATH, "..").text
    check("insurance" in counted and "emergency" in counted, "the dashboard's tags: %r" % counted[:200])

    # Who can reach the practice: the member, through the agency, with a last access.
    owner.get(ORIGIN + "/practices/%s/reach" % lakeside["id"])
    page(owner, "reach")
    reach_rows = [r.text for r in owner.find_elements(By.CSS_SELECTOR, "tr.reach")]
    check(any(member_email in r and "never" not in r for r in reach_rows), "who can reach: %s" % reach_rows)
    owner.get(ORIGIN + "/practices/%s/agreements" % lakeside["id"])

    # The owner revokes (re-authenticated a moment ago); the member's next click shows the
    # access-ended page and no PHI.
    revoke = owner.find_element(By.CSS_SELECTOR, "button.revoke")
    revoke.click()
    statuses = statuses_become(owner, ["revoked"])
    check(statuses == ["revoked"], "after revocation the agreement is %s" % statuses)
    member.find_element(By.LINK_TEXT, "All leads").click()
    heading = heading_becomes(member, "Access to this practice has ended")
    check(heading == "Access to this practice has ended", "after revocation the member sees %r" % heading)
    page(member, "access-ended")
    source = member.page_source
    leaked = [value for value in shown if len(value) > 4 and value in source]
    check(not leaked, "PHI on the access-ended page: %d values" % len(leaked))

    # The owner's audit trail names the agency member's reads in the accounting of disclosures.
    owner.get(ORIGIN + "/practices/%s/audit" % lakeside["id"])
    page(owner, "audit")
    disclosed = owner.find_element(By.ID, "disclosures-heading").find_element(By.XPATH, "..").text
    check(member_email in disclosed, "the member's reads are not in the accounting of disclosures")

    # The trail as CSV: a download the browser saves (the owner re-authenticated for the
    # revocation a moment ago, so no dialog), recorded in the trail as audit.exported.
    downloads = os.path.join(WORK, "downloads")
    os.makedirs(downloads, exist_ok=True)
    owner.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    owner.find_element(By.CSS_SELECTOR, "#export button").click()
    saved = []
    for _ in range(100):
        saved = glob.glob(os.path.join(downloads, "audit-%s-*.csv" % lakeside["id"]))
        if saved:
            break
        time.sleep(0.1)
    check(len(saved) == 1, "the CSV download saved %s" % saved)
    if saved:
        lines = open(saved[0], newline="").read().split("\r\n")
        check(lines[0].startswith('"seq","at","actor","action"'), "the CSV starts %r" % lines[0][:40])
        actions = [line.split(",")[3].strip('"') for line in lines[1:] if line]
        check("baa.approved" in actions and "baa.revoked" in actions, "the CSV's actions: %s" % sorted(set(actions)))
        check(all(not value or value.isdigit() for value in [line.split(",")[0].strip('"') for line in lines[1:]]),
              "the CSV has a malformed row")
    owner.get(ORIGIN + "/practices/%s/audit?action=audit.exported" % lakeside["id"])
    exported = owner.find_element(By.ID, "events-heading").find_element(By.XPATH, "..").text
    check("audit.exported" in exported and owner_email in exported, "the download is not in the trail")

    # A patient's request (issue 29): the owner finds the caller of the newest lead by their
    # number, typed in another format and posted (never in a URL), logs their request for an
    # access report, and reads the report as a page to print: the agency member's reads and
    # playback, with the agency. Printed, the console around it is gone.
    practice_index = next(i for i, p in enumerate(credentials["practices"]) if p is lakeside)
    owner.get(ORIGIN + "/practices/%s/patients" % lakeside["id"])
    page(owner, "patients")
    owner.find_element(By.ID, "phone").send_keys("(555) %03d-0000" % (200 + practice_index))
    owner.find_element(By.CSS_SELECTOR, "form[action$='/patients/lookup'] button").click()
    check(shows(owner, "#found-count", "1 lead found"), "the lookup found %r" % owner.find_element(By.TAG_NAME, "main").text[:200])
    check("0000" not in owner.current_url, "the number reached a URL: %s" % owner.current_url)
    page(owner, "patients-found")
    owner.find_element(By.CSS_SELECTOR, "form[action$='/patients/requests'] button").click()
    check(shows(owner, "tr.request[data-kind=access_report]", "open"), "the request is not listed")
    owner.find_element(By.CSS_SELECTOR, "tr.request[data-kind=access_report] a[href$='/report']").click()
    heading = heading_becomes(owner, "Who saw this patient's information")
    page(owner, "patient-report")
    events = [tr.text for tr in owner.find_elements(By.CSS_SELECTOR, "tr.event")]
    check(any(member_email in e and "Brightline Marketing" in e and "recording played" in e for e in events),
          "the report does not show the member's playback: %s" % events)
    check(any(member_email in e and "opened" in e for e in events), "the report does not show the member's read")
    owner.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    check(not owner.find_element(By.CSS_SELECTOR, "header.bar").is_displayed()
          and owner.find_element(By.CSS_SELECTOR, "table.report").is_displayed(),
          "printed, the report keeps the console's bar or loses its table")
    owner.save_screenshot(os.path.join(SHOTS, "patient-report-print.png"))
    owner.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

    # What a lead is worth: the owner marks one qualified with a value; the ROI report counts
    # it, takes a month's spend, and downloads as CSV.
    owner.get(ORIGIN + "/practices/%s/leads" % lakeside["id"])
    owner.find_element(By.CSS_SELECTOR, "a.lead").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "qualify")))
    check("worth" not in owner.find_element(By.ID, "qualification").text,
          "an unmarked lead reads %r" % owner.find_element(By.ID, "qualification").text)
    owner.find_element(By.CSS_SELECTOR, "#as option[value=qualified]").click()
    owner.find_element(By.ID, "value").clear()
    owner.find_element(By.ID, "value").send_keys("1250.50")
    owner.find_element(By.CSS_SELECTOR, "#qualify button").click()
    check(shows(owner, "#qualification", "1250.50"), "the lead's value is not shown")
    check("qualified" in owner.find_element(By.ID, "qualification").text, "the lead was not marked")
    owner.get(ORIGIN + "/practices/%s/roi" % lakeside["id"])
    owner.find_element(By.ID, "spend-source").send_keys("google")
    owner.find_element(By.ID, "amount").send_keys("3000")
    owner.find_element(By.CSS_SELECTOR, "#spend button").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "roi")))
    page(owner, "roi")
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in owner.find_elements(By.CSS_SELECTOR, "#roi tbody tr")]
    check(sum(float(c[4]) for c in cells) == 1250.50, "the report's value is %s" % [c[4] for c in cells])
    check(sum(float(c[5]) for c in cells if c[1] == "google") > 0, "the report shows no google spend")
    owner.find_element(By.ID, "roi-csv").click()
    roi_csv = []
    for _ in range(100):
        roi_csv = glob.glob(os.path.join(downloads, "roi-%s-*.csv" % lakeside["id"]))
        if roi_csv:
            break
        time.sleep(0.1)
    check(len(roi_csv) == 1 and open(roi_csv[0]).read().startswith('"practice_id","week","source"'), "the ROI CSV: %s" % roi_csv)

    # Tracking sources: a new one shows its secret once; rotating shows another.
    owner.get(ORIGIN + "/practices/%s/sources" % lakeside["id"])
    page(owner, "sources")
    owner.find_element(By.ID, "label").send_keys("Billboard line")
    owner.find_element(By.CSS_SELECTOR, "form[action$='/sources'] button").click()
    first = WebDriverWait(owner, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "ingest-secret"))).text
    page(owner, "secret")
    owner.find_element(By.LINK_TEXT, "Done").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "button.rotate")))
    owner.find_elements(By.CSS_SELECTOR, "button.rotate")[-1].click()
    second = WebDriverWait(owner, 10).until(
        expected_conditions.presence_of_element_located((By.ID, "ingest-secret"))).text
    check(first.startswith("whsec_") and second.startswith("whsec_") and first != second,
          "source secrets: %r then %r" % (first[:6], second[:6]))

    # A pool for the new line and a website using it: the page shows the pool and the script tag.
    owner.find_element(By.LINK_TEXT, "Done").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "property")))
    owner.find_elements(By.CSS_SELECTOR, ".pool-form textarea")[-1].send_keys("+1 555 030 0001\n+1 555 030 0002")
    owner.find_elements(By.CSS_SELECTOR, ".pool-form button")[-1].click()
    try:
        WebDriverWait(owner, 10).until(lambda d: "+15550300002" in d.page_source)
    except Exception:
        check(False, "after adding pool numbers the page is %r: %r" % (
            heading_becomes(owner, ""), owner.find_element(By.TAG_NAME, "main").text[:300]))
        raise
    owner.find_element(By.ID, "site-name").send_keys("Lakeside website")
    owner.find_element(By.ID, "origins").send_keys("https://www.lakeside.example")
    owner.find_elements(By.CSS_SELECTOR, "#calls option")[-1].click()
    owner.find_element(By.CSS_SELECTOR, "#property button").click()
    # The page is replaced after the submission: wait for the new one's tag, not the old one's.
    check(shows(owner, ".script-tag", "/v1/capture/snippet/pk_"), "the website's script tag never showed")

    # Webhooks: an endpoint covered by a BAA needs a re-authentication in the last five minutes;
    # with the session's made stale, the dialog asks for password and a code, then it is added.
    subprocess.run(["psql", "-X", "-q", os.environ["ENCLAVE_SUPERUSER_DATABASE_URL"].rsplit("/", 1)[0] + "/enclave_browser",
                    "-c", "update enclave.sessions set authenticated_at = now() - interval '6 minutes'"], check=True)
    owner.get(ORIGIN + "/practices/%s/webhooks" % lakeside["id"])
    page(owner, "webhooks")
    owner.find_element(By.ID, "url").send_keys("https://receiver.example/enclave")
    owner.find_element(By.ID, "covered").click()
    owner.find_element(By.CSS_SELECTOR, "form[action$='/webhooks'] button").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "reauth")))
    time.sleep(max(0, now + 31 - time.time()))  # the next code must be newer than the last one used
    owner.find_element(By.ID, "password").send_keys(users[owner_email]["password"])
    owner.find_element(By.ID, "code").send_keys(totp(users[owner_email]["totpSecret"], now + 60))
    owner.find_element(By.CSS_SELECTOR, "#reauth button[type=submit]").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "ingest-secret")))
    owner.find_element(By.LINK_TEXT, "Done").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".endpoint")))
    check("covered by a BAA" in owner.find_element(By.CSS_SELECTOR, ".endpoint").text, "the endpoint is not covered")
    deleting = owner.find_element(By.CSS_SELECTOR, ".endpoint button.danger")
    deleting.click()
    # The old page has a #url too: wait for it to be replaced before looking at the new one.
    replaced(owner, deleting)
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "url")))
    check(not owner.find_elements(By.CSS_SELECTOR, ".endpoint"), "the deleted endpoint is still listed")

    # Compliance: a break-glass access (opened here in the database, as a responder would) shows
    # as a banner until the owner acknowledges it; the covered webhook above raised an alert that
    # links to its audit events; a legal hold and the retention settings are set from the page;
    # "download our data" saves an age-encrypted tar.
    psql("insert into enclave.break_glass (practice_id, responder_id, session_id, reason, expires_at) "
         "select '%s', u.id, s.id, 'on-call: the practice reports its phones are down', now() + interval '30 minutes' "
         "from enclave.users u join enclave.sessions s on s.user_id = u.id where u.email = '%s' limit 1"
         % (lakeside["id"], member_email))
    owner.get(ORIGIN + "/home")
    banner = owner.find_elements(By.CSS_SELECTOR, ".break-glass-banner")
    check(len(banner) == 1 and member_email in banner[0].text, "the break-glass banner: %r" % [b.text for b in banner])
    page(owner, "home-break-glass")
    banner[0].find_element(By.TAG_NAME, "a").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "glass-heading")))
    page(owner, "compliance")
    alerts = [a.text for a in owner.find_elements(By.CSS_SELECTOR, ".alert-item")]
    check(any("covered by a BAA" in a for a in alerts), "the compliance page's alerts: %r" % alerts)
    owner.find_element(By.CSS_SELECTOR, ".break-glass button").click()
    check(shows(owner, ".break-glass", "(acknowledged)"), "the break-glass was not acknowledged")
    owner.get(ORIGIN + "/home")
    check(not owner.find_elements(By.CSS_SELECTOR, ".break-glass-banner"), "the banner stays after acknowledging")
    owner.get(ORIGIN + "/practices/%s/compliance" % lakeside["id"])
    owner.find_element(By.CSS_SELECTOR, ".alert-item a").click()
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.TAG_NAME, "table")))
    page(owner, "alert")
    check("webhook.created" in owner.find_element(By.TAG_NAME, "table").text, "the alert's events are not shown")
    owner.get(ORIGIN + "/practices/%s/compliance" % lakeside["id"])
    owner.find_element(By.ID, "hold-reason").send_keys("litigation hold 2026-114")
    owner.find_element(By.CSS_SELECTOR, "form[action$='/holds'] button").click()
    check(shows(owner, "main", "litigation hold 2026-114"), "the legal hold is not listed")
    owner.find_element(By.ID, "recordingsDays").send_keys("365")
    owner.find_element(By.ID, "readsPerHour").clear()
    owner.find_element(By.ID, "readsPerHour").send_keys("150")
    form_field = owner.find_element(By.ID, "recordingsDays")
    owner.find_element(By.CSS_SELECTOR, "form[action$='/compliance'] button").click()
    replaced(owner, form_field)
    WebDriverWait(owner, 10).until(expected_conditions.presence_of_element_located((By.ID, "recordingsDays")))
    check(owner.find_element(By.ID, "recordingsDays").get_attribute("value") == "365"
          and owner.find_element(By.ID, "readsPerHour").get_attribute("value") == "150",
          "the retention settings were not saved")
    owner.find_element(By.ID, "passphrase").send_keys("our own long passphrase")
    owner.find_element(By.CSS_SELECTOR, "form[action$='/export'] button").click()
    exports = []
    for _ in range(300):
        exports = [f for f in glob.glob(os.path.join(downloads, "enclave-%s-*.tar.age" % lakeside["id"]))]
        if exports:
            break
        time.sleep(0.1)
    check(len(exports) == 1 and open(exports[0], "rb").read(22) == b"age-encryption.org/v1\n",
          "the export download: %s" % exports)

    # A form posted without its CSRF token gets 403 and changes nothing: the session survives.
    owner.get(ORIGIN + "/home")
    owner.execute_script("document.querySelector('form[action=\"/sign-out\"] input[name=csrf]').remove()")
    owner.find_element(By.CSS_SELECTOR, "form[action='/sign-out'] button").click()
    check(heading_becomes(owner, "This form has expired") == "This form has expired", "a form without CSRF was accepted")
    owner.get(ORIGIN + "/home")
    check("/home" in owner.current_url and owner.find_elements(By.CSS_SELECTOR, "form[action='/sign-out']"),
          "the session ended after a refused form")
    # The owner signs out: the signed-out page, then a sign-in page without an error message (it
    # once showed "nil").
    owner.find_element(By.CSS_SELECTOR, "form[action='/sign-out'] button").click()
    WebDriverWait(owner, 10).until(expected_conditions.url_contains("/signed-out"))
    owner.find_element(By.LINK_TEXT, "Sign in again").click()
    WebDriverWait(owner, 10).until(expected_conditions.url_contains("/sign-in"))
    sign_in_page_is_clean(owner, "after signing out")

    # The Content-Security-Policy: nothing inline, nothing from another origin.
    status, headers, _ = get("/sign-in")
    policy = headers.get("Content-Security-Policy", "")
    check("unsafe-inline" not in policy and "default-src 'none'" in policy, "the CSP is %r" % policy)
    check(headers.get("Cache-Control") == "no-store", "sign-in page Cache-Control %r" % headers.get("Cache-Control"))

    # The agency admin's overview of every practice the agency has an agreement with.
    admin = browser()
    try:
        admin_at = time.time()
        sign_in(admin, next(u["email"] for u in credentials["users"] if u["role"] == "agency_admin"), admin_at)
        admin.find_element(By.LINK_TEXT, "Agency overview").click()
        page(admin, "agency")
        rows = admin.find_elements(By.CSS_SELECTOR, "tbody tr")
        check(len(rows) == 3, "the agency overview lists %d agreements" % len(rows))
        # Removing an assignment is sensitive: signing in was not a re-authentication.
        admin.find_element(By.CSS_SELECTOR, "button.unassign").click()
        WebDriverWait(admin, 10).until(expected_conditions.presence_of_element_located((By.ID, "reauth")))
        admin_user = next(u for u in credentials["users"] if u["role"] == "agency_admin")
        admin.find_element(By.ID, "password").send_keys(admin_user["password"])
        admin.find_element(By.ID, "code").send_keys(totp(admin_user["totpSecret"], admin_at + 30))
        admin.find_element(By.CSS_SELECTOR, "#reauth button[type=submit]").click()
        WebDriverWait(admin, 10).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "button.assign")))
        check(not admin.find_elements(By.CSS_SELECTOR, "button.unassign"), "the assignment was not removed")
        # Proposing again to the practice whose agreement was revoked (fresh now: no dialog).
        northside = next(p for p in credentials["practices"] if p["agreement"] == "revoked")["id"].lower()
        admin.find_element(By.ID, "practice-id").send_keys(northside)
        admin.find_element(By.ID, "document").send_keys(hashlib.sha256(b"a new agreement").hexdigest())
        admin.find_element(By.CSS_SELECTOR, "form[action='/agency/proposals'] button").click()
        WebDriverWait(admin, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "table tbody tr")) == 4)
        page(admin, "agency-after")
        # Return on ad spend across the agency's practices, with the practice named on each row.
        admin.find_element(By.LINK_TEXT, "Return on ad spend, all practices").click()
        check(heading_becomes(admin, "Return on ad spend") == "Return on ad spend", "the agency's ROI page")
        page(admin, "roi-agency")
        check("Every practice you reach now" in admin.find_element(By.TAG_NAME, "main").text,
              "the agency's ROI page is not the report across practices")
    finally:
        admin.quit()

    # A new user enrolls TOTP from the QR code: decoded from the page, not read from the text.
    staff = browser()
    try:
        staff.get(ORIGIN + "/sign-in")
        staff.find_element(By.ID, "email").send_keys("staff@brightsmile.demo")
        staff.find_element(By.ID, "password").send_keys("staff password 2026")
        staff.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("/enroll"))
        page(staff, "enroll")
        image = os.path.join(WORK, "qr.png")
        staff.find_element(By.CSS_SELECTOR, "#qr svg").screenshot(image)
        decoded = subprocess.run(["zbarimg", "--quiet", "--raw", image], capture_output=True, text=True).stdout.strip()
        check(decoded.startswith("otpauth://totp/"), "the QR code decodes to %r" % decoded[:20])
        secret = decoded.split("secret=")[1].split("&")[0] if "secret=" in decoded else ""
        check(secret == staff.find_element(By.ID, "secret").text, "the QR code and the text secret differ")
        staff.find_element(By.ID, "code").send_keys(totp(secret, time.time()))
        staff.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("/home"))
        active = next(p for p in credentials["practices"] if p["agreement"] == "active")["id"].lower()
        staff.find_element(By.CSS_SELECTOR, "a[href='/practices/%s']" % active).click()
        page(staff, "dashboard")
        totals = {name: int(staff.find_element(By.ID, "total-" + name).text)
                  for name in ("leads", "answered", "missed", "forms")}
        check(totals["leads"] > 0 and totals["answered"] > 0 and totals["missed"] > 0 and totals["forms"] > 0,
              "the dashboard's totals: %s" % totals)
        per_day = sum(int(td.text) for td in staff.find_elements(
            By.CSS_SELECTOR, "section[aria-labelledby=days-heading] tbody td:nth-child(5)"))
        check(per_day == totals["missed"], "missed calls per day add up to %d, not %d" % (per_day, totals["missed"]))
        by_campaign = sum(int(row.find_elements(By.TAG_NAME, "td")[-1].text)
                          for row in staff.find_elements(
                              By.CSS_SELECTOR, "section[aria-labelledby=campaigns-heading] table.matrix tbody tr"))
        check(by_campaign == totals["leads"], "leads by campaign add up to %d, not %d" % (by_campaign, totals["leads"]))
        check(len(staff.find_elements(By.CSS_SELECTOR, ".chart svg rect")) > 0, "the dashboard draws no chart")
        staff.get(ORIGIN + "/practices/%s/leads?kind=call" % active)
        kinds = {td.text for td in staff.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(2)")}
        check(kinds == {"call"}, "filtering by calls shows %s" % kinds)
        first_source = staff.find_element(By.CSS_SELECTOR, "tbody tr td:nth-child(4)").text
        staff.get(ORIGIN + "/practices/%s/leads" % active)
        staff.find_element(By.ID, "source").send_keys(first_source)
        staff.find_element(By.CSS_SELECTOR, "form[aria-label='Filter leads'] button").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("source="))
        sources = {td.text for td in staff.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(4)")}
        check(sources == {first_source}, "filtering by source %r shows %s" % (first_source, sources))

        # On a phone: the same pages, nothing wider than the screen.
        staff.set_window_size(390, 844)
        for name, path in (("phone-dashboard", "/practices/%s" % active), ("phone-leads", "/practices/%s/leads" % active),
                           ("phone-home", "/home")):
            staff.get(ORIGIN + path)
            page(staff, name)
            wide = staff.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            check(wide <= 0, "%s is %dpx wider than a phone's screen" % (name, wide))
        staff.get(ORIGIN + "/practices/%s/leads?kind=call" % active)
        staff.find_element(By.CSS_SELECTOR, "a.lead").click()
        page(staff, "phone-lead")
        staff.set_window_size(1280, 900)
        staff.get(ORIGIN + "/practices/%s/leads?kind=call" % active)
        staff.find_element(By.CSS_SELECTOR, "a.lead").click()
        check(bool(staff.find_elements(By.CSS_SELECTOR, ".fields")), "the new staff member sees no lead")
        lead_url = staff.current_url
        number = staff.find_element(By.XPATH, "//dt[text()='Caller number']/following-sibling::dd[1]").text
        staff.get(ORIGIN + "/practices/%s/leads" % active)
        staff.find_element(By.ID, "caller").send_keys(number)
        staff.find_element(By.CSS_SELECTOR, "form[aria-label='Find a caller'] button").click()
        # The results page, not the list it replaces (reading before it loads raced under load).
        try:
            WebDriverWait(staff, 10).until(expected_conditions.url_contains("caller="))
        except Exception:
            pass
        found = staff.find_elements(By.CSS_SELECTOR, "a.lead")
        check(len(found) >= 1 and "caller=" in staff.current_url, "searching by caller number finds nothing")
        check(number not in staff.title, "PHI in the page title")
        staff.get(lead_url)

        # After the idle timeout (60 s here), the page leaves PHI behind; the next click lands on
        # sign-in; going back does not show the lead.
        time.sleep(65)
        check("/signed-out" in staff.current_url and not staff.find_elements(By.CSS_SELECTOR, ".fields"),
              "after the idle timeout the page is %s" % staff.current_url)
        page(staff, "signed-out")
        staff.find_element(By.LINK_TEXT, "Sign in again").click()
        check("/sign-in" in staff.current_url, "the next click after the timeout went to %s" % staff.current_url)
        sign_in_page_is_clean(staff, "after the session ended")
        staff.back()
        staff.back()
        check(not staff.find_elements(By.CSS_SELECTOR, ".fields"), "going back shows the lead page")
        staff.get(lead_url)
        check("/sign-in" in staff.current_url, "the lead's URL after the timeout shows %s" % staff.current_url)

        # The account page: sessions, and a password change behind password and code.
        later = time.time()
        staff.find_element(By.ID, "email").send_keys("staff@brightsmile.demo")
        staff.find_element(By.ID, "password").send_keys("staff password 2026")
        staff.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("/sign-in/code"))
        staff.find_element(By.ID, "code").send_keys(totp(secret, later))
        staff.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("/home"))
        staff.find_element(By.LINK_TEXT, "Account").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("/account"))
        page(staff, "account")
        staff.find_element(By.ID, "current").send_keys("staff password 2026")
        staff.find_element(By.ID, "new").send_keys("a new staff password 2026")
        staff.find_element(By.CSS_SELECTOR, "form[action='/account/password'] #code").send_keys(totp(secret, later + 30))
        staff.find_element(By.CSS_SELECTOR, "form[action='/account/password'] button").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("/sign-in"))
        staff.find_element(By.ID, "email").send_keys("staff@brightsmile.demo")
        staff.find_element(By.ID, "password").send_keys("a new staff password 2026")
        staff.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(staff, 10).until(expected_conditions.url_contains("/sign-in/code"))
    finally:
        staff.quit()

finally:
    owner.quit()
    member.quit()
    server.terminate()
    server.wait(timeout=30)

print("browser-test: pages checked with axe-core: %d (%s)" % (len(axe_findings), ", ".join(sorted(axe_findings))),
      flush=True)
sys.exit(1 if failures else 0)
