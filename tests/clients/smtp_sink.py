"""A local SMTP sink for the email tests.

Listens on a free loopback port, prints {"listening": PORT} on stdout, then
one JSON line per message received: envelope recipients, subject, and every
MIME part decoded (content type, file name, text), so a test reads what a
mail client would show rather than the transfer encoding. Stops when stdin
closes, which happens when the test drops the process.

Uses aiosmtpd (PyPI), installed in the test venv by
deploy/bin/install-prerequisites.
"""

import asyncio
import email
import email.policy
import json
import sys

from aiosmtpd.smtp import SMTP

# Not 127.0.0.1: the tests' nats-servers take a free port there by releasing
# it and binding again, and a sink taking that port in between would pose
# as the nats-server. Linux answers on all of 127/8.
HOST = "127.0.0.2"


class Sink:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True) or b""
            parts.append(
                {
                    "content_type": part.get_content_type(),
                    "filename": part.get_filename(),
                    "text": payload.decode(part.get_content_charset() or "utf-8", "replace"),
                }
            )
        record = {
            "mail_from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(message.get("Subject", "")),
            "parts": parts,
        }
        print(json.dumps(record), flush=True)
        return "250 Message accepted for delivery"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="sink.localhost"), host=HOST, port=0
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"listening": port, "host": HOST}), flush=True)
    # The test owns the sink: when it closes stdin (or dies), stop.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
