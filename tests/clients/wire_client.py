#!/usr/bin/env python3
"""A switchboard client written from shared/spec/wire.md alone, with nats-py.

    wire_client.py NATS_URL

A collective posts a need, a volunteer offers time and receives the proposal
on their own subject, accepts it, and the plan shows the assignment. Also
checks an invalid request's error and the micro-service discovery subjects.
Exits non-zero with a message on the first thing that is not as documented.
"""
import asyncio
import datetime as dt
import json
import sys

import nats


def iso(hours):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return (now + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def request(nc, subject, body):
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=10)
    return json.loads(msg.data)


async def main(url):
    nc = await nats.connect(url)
    need = {
        "id": "n-py-clinic", "collective": "c-py", "title": "Clinic from Python",
        "tasks": [{"id": "t-py-intake", "title": "Intake", "skills": {"legal": 2}, "hours": 3.0,
                   "slots": 1, "earliest_start": iso(0), "deadline": iso(72), "region": None,
                   "impact": 9.0}],
    }
    reply = await request(nc, "sb.in.need", need)
    assert reply["ok"] is True and reply["id"] == "n-py-clinic" and reply["seq"] >= 1, reply

    bad = dict(need, tasks=[dict(need["tasks"][0], slots=99)])
    reply = await request(nc, "sb.in.need", bad)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "invalid" and reply["error"]["field"] == "tasks[0].slots", reply

    inbox = await nc.subscribe("sb.to.volunteer.v-py")
    volunteer = {"id": "v-py", "skills": {"legal": 3}, "hours_per_week": 10.0,
                 "available_from": iso(-1), "available_until": iso(21 * 24), "region": "detroit"}
    reply = await request(nc, "sb.in.volunteer", volunteer)
    assert reply["ok"] is True, reply

    msg = await inbox.next_msg(timeout=15)
    proposal = json.loads(msg.data)
    assert proposal["task"] == "t-py-intake" and proposal["why"]["impact"] == 9.0, proposal
    reply = await request(nc, proposal["reply_subject"], proposal["accept"])
    assert reply["ok"] is True, reply
    again = await request(nc, "sb.in.reply", {"volunteer": "v-py", "task": "t-py-intake", "action": "accept"})
    assert again == reply, (again, reply)

    plan = await request(nc, "sb.plan.get", {})
    assert plan["format"] == "switchboard-plan/1", plan
    assert {"volunteer": "v-py", "task": "t-py-intake"} in plan["assignments"], plan

    pings = []
    sub = await nc.subscribe(nc.new_inbox())
    await nc.publish("$SRV.PING", b"", reply=sub.subject)
    try:
        while True:
            pings.append(json.loads((await sub.next_msg(timeout=1)).data)["name"])
    except nats.errors.TimeoutError:
        pass
    assert {"sb-ingest", "sb-dispatch", "sb-solver"} <= set(pings), pings
    await nc.close()
    print("python client: need, volunteer, proposal, accept, plan, errors and discovery all as documented")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
