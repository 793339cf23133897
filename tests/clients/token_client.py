#!/usr/bin/env python3
"""A person's client in another language (Python, nats-py) logging in to
NATS as proto/README.md says: the session token as the connection's token,
the person's own inbox prefix.

    token_client.py NATS_URL SESSION_TOKEN VOLUNTEER_ID

Answers on the volunteer's own subject and reads the reply; is refused
publishing as another volunteer; cannot connect without the token. Exits
non-zero with a message on the first thing that is not as documented.
"""
import asyncio
import json
import sys

import nats
from nats.errors import NoServersError


async def main(url, token, volunteer):
    refusals = []

    async def on_error(error):
        refusals.append(str(error))

    nc = await nats.connect(
        url,
        token=token,
        inbox_prefix=f"_INBOX.volunteer.{volunteer}".encode(),
        error_cb=on_error,
        allow_reconnect=False,
    )
    msg = await nc.request(f"sb.in.reply.{volunteer}", b"{}", timeout=10)
    reply = json.loads(msg.data)
    assert reply["ok"] is False and reply["error"]["field"], reply

    await nc.publish("sb.in.reply.v-someone-else", b"{}")
    await nc.flush()
    for _ in range(50):
        if any("permissions violation" in refusal.lower() for refusal in refusals):
            break
        await asyncio.sleep(0.1)
    else:
        sys.exit(f"publishing as another volunteer was not refused: {refusals}")
    await nc.close()

    try:
        stray = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0,
                                   connect_timeout=5, error_cb=on_error)
    except (NoServersError, nats.errors.Error, OSError):
        stray = None
    if stray is not None and stray.is_connected:
        sys.exit("a connection without the token got in")
    print("token client: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
