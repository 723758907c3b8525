#!/usr/bin/env python3
"""A real SMTP server on loopback for the mail tests and the demo (aiosmtpd): each message
received is written, as received, to a file in the directory given. Prints "ready <port>" once
listening; runs until its standard input closes, or with --forever until killed.

    smtp_sink.py <directory> [--host H] [--port N] [--forever] [--tls CERT KEY] [--auth USER:PASSWORD]

With --tls it offers STARTTLS and requires it; with --auth it requires AUTH (over TLS only)."""
import os
import socket
import sys
import threading
import uuid

import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(self.directory, f"{uuid.uuid4()}.eml")
        with open(name + ".tmp", "wb") as out:
            out.write(b"X-Rcpt-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            out.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name)
        return "250 Message accepted"


def main():
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    if not port:
        with socket.socket() as probe:
            probe.bind((sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv else "127.0.0.1", 0))
            port = probe.getsockname()[1]
    host = sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv else "127.0.0.1"
    options = {}
    if "--tls" in sys.argv:
        at = sys.argv.index("--tls")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[at + 1], sys.argv[at + 2])
        options.update(tls_context=context, require_starttls=True)
    if "--auth" in sys.argv:
        user, password = sys.argv[sys.argv.index("--auth") + 1].split(":", 1)

        def authenticator(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
            return AuthResult(success=ok)

        options.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    controller = Controller(Store(directory), hostname=host, port=port, **options)
    controller.start()
    print(f"ready {port}", flush=True)
    if "--forever" in sys.argv:
        threading.Event().wait()
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
