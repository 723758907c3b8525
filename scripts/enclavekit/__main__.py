"""The shared helpers for shell scripts, so that none of them embeds Python of its own:

    scripts/python -m enclavekit free-port [COUNT]            (COUNT distinct ports, a line each)
    scripts/python -m enclavekit totp SECRET
    scripts/python -m enclavekit json-field KEY              (reads a JSON object on stdin)
    scripts/python -m enclavekit seconds-since START         (START from `date +%s.%N`)
    scripts/python -m enclavekit demo DIRECTORY WHAT
    scripts/python -m enclavekit stall URL TOKEN CAFILE SECONDS  (prints the bytes a stalled reader got)
    scripts/python -m enclavekit keep-alive URL TOKEN CAFILE DIRECTORY  (two GETs on one connection)

WHAT is one of: active-practice, active-owner, revoked-practice, call-source, call-secret,
site-key, users, practices.
"""

import json
import sys
import time

from . import demo_call_source, demo_credentials, demo_practice, free_port, keep_alive_gets, stalled_get, totp


def demo(directory, what):
    c = demo_credentials(directory)
    active = demo_practice(c)
    if what == "active-practice":
        return active["id"].lower()
    if what == "active-owner":
        return active["owner"]
    if what == "revoked-practice":
        return demo_practice(c, "revoked")["id"].lower()
    if what == "call-source":
        return demo_call_source(c, active["id"])["id"].lower()
    if what == "call-secret":
        return demo_call_source(c, active["id"])["secret"]
    if what == "site-key":
        return next(s["publicKey"] for s in c.get("sites", []) if s["practice"] == active["id"])
    if what == "users":
        return "\n".join("  %-24s %s" % (u["email"], u["role"]) for u in c["users"])
    if what == "practices":
        return "\n".join("  %-22s %s  %s" % (p["name"], p["id"].lower(), p["agreement"]) for p in c["practices"])
    raise SystemExit("enclavekit demo: unknown field %r" % what)


def main(arguments):
    if arguments[:1] == ["free-port"] and len(arguments) <= 2:
        ports = set()
        while len(ports) < int((arguments[1:] or ["1"])[0]):
            ports.add(free_port())
        print("\n".join(map(str, sorted(ports))))
    elif arguments[:1] == ["totp"] and len(arguments) == 2:
        print(totp(arguments[1], time.time()))
    elif arguments[:1] == ["json-field"] and len(arguments) == 2:
        print(json.load(sys.stdin)[arguments[1]])
    elif arguments[:1] == ["seconds-since"] and len(arguments) == 2:
        print("%.1f" % (time.time() - float(arguments[1])))
    elif arguments[:1] == ["stall"] and len(arguments) == 5:
        print(stalled_get(arguments[1], arguments[2], arguments[3], float(arguments[4])))
    elif arguments[:1] == ["keep-alive"] and len(arguments) == 5:
        print("%d %d" % keep_alive_gets(arguments[1], arguments[2], arguments[3], arguments[4]))
    elif arguments[:1] == ["demo"] and len(arguments) == 3:
        print(demo(arguments[1], arguments[2]))
    else:
        raise SystemExit(__doc__)


main(sys.argv[1:])
