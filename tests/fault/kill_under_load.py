#!/usr/bin/env python3
"""kill -9 under steady load, on loopback, with the real switchboard binary.

    kill_under_load.py --switchboard BIN [--duration 60] [--workers 8] [--rate 20] [--cycles 1] [--out FILE]

Starts nats-server with deploy/nats/switchboard.conf and `switchboard
ingest|solver|ledger|dispatch` as separate processes, drives them with needs,
pledges, volunteers and answers to every proposal (like the README's
clients: retrying the same body on a timeout, as the contract says is
safe), and meanwhile kills with SIGKILL, then restarts: nats-server, each
service in turn, and finally everything at once. Afterwards it reads the
streams back and checks:

- every request answered `ok` has its event in SB_EVENTS at the sequence
  the reply gave, under the subject of its id: no acknowledged event lost;
- no body is logged twice (retries are deduplicated);
- no proposal, acceptance or other change is published twice for the same
  (volunteer, task, round), no ended assignment comes back to
  life (no `accepted` after a `released`; a final state after another is
  reported as `late_finals`), and no task has more live
  acceptances than slots;
- the plan from sb.plan.get passes shared/bench/check_plan.py against the
  instance rebuilt from SB_EVENTS, with every live acceptance pinned but
  those of a team the solver holds together incomplete (its task not in the
  plan, which holds only complete tasks, and fewer live members than
  slots; reported as `held_incomplete`);
- SB_LEDGER folded in order never over-spends a pledge: no balance below
  zero, per pledge available + held + disbursed + returned = pledged, no
  pledge given more than it pledged, no task held twice or above the money
  it asks, no entry id twice;

and reports how long each fault took to recover from. Exit 0 when every
check holds. Needs nats-py and nats-server (the install step's venv).
"""

import argparse
import asyncio
import collections
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import nats
import nats.errors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECKER = os.path.join(ROOT, "..", "shared", "bench", "check_plan.py")
NATS_CONFIG = os.path.join(ROOT, "deploy", "nats", "switchboard.conf")
SERVICES = ["ingest", "solver", "ledger", "dispatch"]
SKILLS = ["translation-es", "legal", "driving", "cooking"]
# How long a client waits for one reply, and how long it keeps resending.
REQUEST_TIMEOUT_S = 5.0
RESEND_FOR_S = 60.0
# How long a killed process stays down before it is started again.
DOWN_S = 1.0
# Everything a check waits for has at most this long.
SETTLE_S = 60.0


def nats_server_binary():
    found = os.environ.get("SWITCHBOARD_NATS_SERVER")
    if found:
        return found
    venv = os.path.expanduser("~/.cache/switchboard/venv/bin/nats-server")
    if os.path.exists(venv):
        return venv
    return shutil.which("nats-server") or sys.exit("no nats-server: run deploy/bin/install-prerequisites")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rfc3339(moment):
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Every child started, so they are all stopped whatever happens.
STARTED = []


class Process:
    """A child process that can be killed with SIGKILL and started again."""

    def __init__(self, name, command, log):
        self.name, self.command, self.log = name, command, log
        self.child = None
        STARTED.append(self)

    def start(self):
        output = open(self.log, "ab")
        self.child = subprocess.Popen(self.command, stdout=output, stderr=output, start_new_session=True)
        output.close()

    def kill(self):
        self.child.send_signal(signal.SIGKILL)
        self.child.wait()

    def stop(self):
        if self.child and self.child.poll() is None:
            self.child.send_signal(signal.SIGINT)
            try:
                self.child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Ledger:
    """Every request and what became of it."""

    def __init__(self):
        self.acknowledged = []  # (subject, id, seq, body bytes)
        self.refused = collections.Counter()
        self.refusal_samples = collections.defaultdict(list)  # (subject, code) -> messages
        self.timeouts = 0
        self.resends = 0
        self.abandoned = 0
        self.sent = 0
        self.first_ok_after = {}  # fault name -> time of the first ok after its restart
        self.watching = {}  # fault name -> (restart time, predicate on subject)

    def ok(self, subject, ident, seq, body):
        now = time.monotonic()
        self.acknowledged.append((subject, ident, seq, body))
        for fault, (restarted, wanted) in list(self.watching.items()):
            if restarted is not None and wanted(subject):
                self.first_ok_after[fault] = now - restarted
                del self.watching[fault]


async def request(nc, ledger, subject, body, ident):
    """Sends `body` until it is answered (resending the same body on a
    timeout or no-responders, as the contract allows), then records it."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    deadline = time.monotonic() + RESEND_FOR_S
    ledger.sent += 1
    first = True
    while time.monotonic() < deadline:
        if not first:
            ledger.resends += 1
        first = False
        try:
            message = await nc.request(subject, payload, timeout=REQUEST_TIMEOUT_S)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError, nats.errors.OutboundBufferLimitError):
            ledger.timeouts += 1
            await asyncio.sleep(0.2)
            continue
        reply = json.loads(message.data)
        if reply.get("ok"):
            ledger.ok(subject, ident, reply["seq"], payload)
            return reply
        code = reply["error"]["code"]
        if code == "unavailable":
            ledger.timeouts += 1
            await asyncio.sleep(0.2)
            continue
        ledger.refused[code] += 1
        samples = ledger.refusal_samples[f"{subject} {code}"]
        if len(samples) < 3:
            samples.append(reply["error"]["message"])
        return reply
    ledger.abandoned += 1
    return None


def need_body(ident, start, rng):
    tasks = []
    for index in range(rng.randint(1, 2)):
        money = rng.choice([0, 0, 0, 2500])
        tasks.append({
            "id": f"{ident}-t{index}",
            "title": f"task {index} of {ident}",
            "skills": {rng.choice(SKILLS): rng.randint(1, 3)},
            "hours": 2.0,
            "slots": rng.randint(1, 2),
            "earliest_start": rfc3339(start),
            "deadline": rfc3339(start + dt.timedelta(days=7)),
            "region": None,
            "impact": float(rng.randint(1, 50)),
            "money_cents": money,
            "tags": ["fault"],
        })
    return {"id": ident, "collective": f"c-{rng.randint(1, 5)}", "title": f"need {ident}", "tasks": tasks}


def volunteer_body(ident, start, rng):
    return {
        "id": ident,
        "skills": {skill: rng.randint(1, 5) for skill in rng.sample(SKILLS, 2)},
        "hours_per_week": 10.0,
        "available_from": rfc3339(start - dt.timedelta(hours=1)),
        "available_until": rfc3339(start + dt.timedelta(days=21)),
        "region": None,
        "trust": 0,
    }


async def worker(nc, ledger, number, start, stop_at, rng, pause_s):
    count = 0
    while time.monotonic() < stop_at:
        count += 1
        await asyncio.sleep(pause_s)
        roll = rng.random()
        if roll < 0.45:
            ident = f"n-{number}-{count}"
            await request(nc, ledger, "sb.in.need", need_body(ident, start, rng), ident)
        elif roll < 0.55:
            ident = f"p-{number}-{count}"
            body = {"id": ident, "amount_cents": rng.choice([2500, 5000, 10000]), "tags": ["fault"]}
            await request(nc, ledger, "sb.in.pledge", body, ident)
        else:
            ident = f"v-{number}-{count}"
            await request(nc, ledger, "sb.in.volunteer", volunteer_body(ident, start, rng), ident)


async def answer_proposals(nc, ledger, rng, answering):
    """Every volunteer answers each proposal once: mostly accept, some decline."""
    seen = set()
    tasks = set()

    async def on_message(message):
        proposal = json.loads(message.data)
        if proposal.get("kind") != "proposal" or proposal["message_id"] in seen:
            return
        seen.add(proposal["message_id"])
        body = proposal["accept"] if rng.random() < 0.8 else proposal["decline"]
        task = asyncio.ensure_future(request(nc, ledger, "sb.in.reply", body, body["task"]))
        answering.add(task)
        task.add_done_callback(answering.discard)

    return await nc.subscribe("sb.to.volunteer.*", cb=on_message)


async def wait_until_answering(nc, subjects, timeout=1.0):
    deadline = time.monotonic() + SETTLE_S
    for subject in subjects:
        while True:
            try:
                await nc.request(subject, b"{}", timeout=timeout)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{subject} never answered")
                await asyncio.sleep(0.05)


async def read_stream(js, stream):
    info = await js.stream_info(stream)
    messages = {}
    if info.state.last_seq == 0:
        return messages
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        stored = await js.get_msg(stream, seq)
        messages[seq] = (stored.subject, stored.data)
    return messages


def held_back(live, plan, slots):
    """Live acceptances of teams the solver holds together incomplete: their
    task is not in the plan (which holds only complete tasks) and has fewer
    live members than slots. They are not pinned for the judge, and are
    reported; the rest of the live acceptances must all be in the plan."""
    planned = {assignment["task"] for assignment in plan.get("assignments", [])}
    members = collections.Counter(task for _, task in live)
    return {(volunteer, task) for volunteer, task in live
            if task not in planned and members[task] < slots.get(task, 0)}


def rebuild_instance(events, now, pinned):
    volunteers, needs, pledges, done = {}, {}, {}, set()
    withdrawn = set()
    for seq in sorted(events):
        subject, data = events[seq]
        body = json.loads(data)
        kind = subject.split(".")[2]
        if kind == "volunteer":
            volunteers[body["id"]] = body
        elif kind == "need":
            needs[body["id"]] = body
        elif kind == "pledge":
            pledges[body["id"]] = body
        elif kind == "completed":
            done.add(body["task"])
        elif kind == "withdrawn":
            withdrawn.add((body["kind"], body["id"]))
    tasks = []
    for need in needs.values():
        if ("need", need["id"]) in withdrawn:
            continue
        for task in need["tasks"]:
            if ("task", task["id"]) in withdrawn or task["id"] in done:
                continue
            tasks.append(dict(task, need=need["id"], collective=need["collective"]))
    return {
        "format": "switchboard-instance/1",
        "now": rfc3339(now),
        "volunteers": [v for v in volunteers.values() if ("volunteer", v["id"]) not in withdrawn],
        "tasks": tasks,
        "pledges": [p for p in pledges.values() if ("pledge", p["id"]) not in withdrawn],
        "done": sorted(done),
        "pinned": [{"volunteer": v, "task": t} for v, t in sorted(pinned)],
    }


def money_problems(entries, events):
    """Folds SB_LEDGER in order as an independent check of the ledger's
    invariants; returns what broke (empty when nothing did) and totals."""
    pledged_amount, money_asked = {}, {}
    for subject, data in events.values():
        body = json.loads(data)
        if subject.startswith("sb.ev.pledge."):
            pledged_amount[body["id"]] = max(pledged_amount.get(body["id"], 0), body["amount_cents"])
        elif subject.startswith("sb.ev.need."):
            for task in body["tasks"]:
                money_asked[task["id"]] = task.get("money_cents", 0)
    accounts = collections.defaultdict(lambda: {"pledged": 0, "available": 0, "held": {}, "disbursed": 0, "returned": 0})
    held_for = {}
    ids = collections.Counter()
    problems = []
    for seq in sorted(entries):
        entry = json.loads(entries[seq][1])
        ids[entry["id"]] += 1
        if ids[entry["id"]] == 2:
            problems.append(f"entry id {entry['id']} twice")
        kind, task = entry["kind"], entry.get("task")
        if kind == "held":
            if held_for.get(task):
                problems.append(f"{task} held twice")
            total = sum(move["amount_cents"] for move in entry["movements"])
            if total > money_asked.get(task, 0):
                problems.append(f"{task} held {total}, asks {money_asked.get(task, 0)}")
            held_for[task] = {move["pledge"]: move["amount_cents"] for move in entry["movements"]}
        for move in entry["movements"]:
            account, amount = accounts[move["pledge"]], move["amount_cents"]
            if kind == "pledged":
                account["pledged"] += amount
                account["available"] += amount
            elif kind == "held":
                account["available"] -= amount
                account["held"][task] = amount
            elif kind in ("released", "disbursed"):
                if account["held"].pop(task, None) != amount:
                    problems.append(f"{kind} of {task} from {move['pledge']} is not what was held")
                if kind == "released":
                    account["available"] += amount
                else:
                    account["disbursed"] += amount
            elif kind == "withdrawn":
                account["available"] -= amount
                account["returned"] += amount
            if account["available"] < 0:
                problems.append(f"pledge {move['pledge']} over-spent at entry {entry['id']}")
        if kind in ("released", "disbursed"):
            held_for.pop(task, None)
    for pledge, account in accounts.items():
        parts = account["available"] + sum(account["held"].values()) + account["disbursed"] + account["returned"]
        if parts != account["pledged"]:
            problems.append(f"pledge {pledge}: accounts sum to {parts}, pledged {account['pledged']}")
        if account["pledged"] - account["returned"] > pledged_amount.get(pledge, 0):
            problems.append(f"pledge {pledge} holds more than its donor pledged")
    totals = {
        "entries": len(entries),
        "held_now_cents": sum(sum(a["held"].values()) for a in accounts.values()),
        "tasks_held": sum(1 for moves in held_for.values() if moves),
        "pledged_cents": sum(a["pledged"] for a in accounts.values()),
    }
    return problems, totals


# The assignment state machine of proto/README.md: what may follow each
# state within one round (a new round starts with a new proposal).
LEGAL_AFTER = {
    None: {"proposed"},
    "proposed": {"accepted", "declined", "expired", "released"},
    "accepted": {"checked_in", "released", "completed"},
    "checked_in": {"released", "completed"},
}


def illegal_transitions(matches):
    """Replays SB_MATCHES: every transition that is not legal from the state
    before it in its round (for example `accepted` after `released`), as
    (sequence, volunteer, task, round, before, after)."""
    state = {}
    illegal = []
    for seq in sorted(matches):
        subject, data = matches[seq]
        body = json.loads(data)
        kind = subject.split(".")[2]
        pair = (body["volunteer"], body["task"])
        round_ = body.get("round", 0)
        before_round, before = state.get(pair, (None, None))
        if kind == "proposed":
            if before_round is not None and round_ <= before_round:
                illegal.append((seq, *pair, round_, before, kind))
            state[pair] = (round_, "proposed")
            continue
        if round_ != before_round or kind not in LEGAL_AFTER.get(before, set()):
            illegal.append((seq, *pair, round_, before, kind))
            continue
        state[pair] = (round_, kind)
    return illegal


def live_acceptances(matches):
    """Replays SB_MATCHES: the (volunteer, task) pairs accepted and not since
    released, expired, declined or completed; and any repeated publication."""
    state = {}
    repeated = []
    seen = collections.Counter()
    for seq in sorted(matches):
        subject, data = matches[seq]
        body = json.loads(data)
        kind = subject.split(".")[2]
        key = (kind, body["volunteer"], body["task"], body.get("round", 0))
        seen[key] += 1
        if seen[key] == 2:
            repeated.append(key)
        pair = (body["volunteer"], body["task"])
        if kind in ("accepted", "checked_in"):
            state[pair] = "live"
        elif kind in ("released", "completed", "declined", "expired"):
            state.pop(pair, None)
    return {pair for pair, status in state.items() if status == "live"}, repeated, seen


async def run(arguments):
    rng = random.Random(arguments.seed)
    work = tempfile.mkdtemp(prefix="sb-fault-")
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    server = Process("nats-server", [nats_server_binary(), "-c", NATS_CONFIG, "-a", "127.0.0.1", "-p", str(port),
                                     "-sd", os.path.join(work, "js"), "-l", os.path.join(work, "nats.log")],
                     os.path.join(work, "nats.out"))
    services = {
        name: Process(name, [arguments.switchboard, name, "--nats", url, "--state", os.path.join(work, name)],
                      os.path.join(work, f"{name}.log"))
        for name in SERVICES
    }
    server.start()
    for process in services.values():
        process.start()
    async def quiet(*_):
        """Disconnections are the point of this run; nats-py would print each."""

    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=2,
                            allow_reconnect=True, name="fault-load", error_cb=quiet, disconnected_cb=quiet)
    js = nc.jetstream()
    await wait_until_answering(nc, ["sb.in.withdraw", "sb.in.reply", "sb.in.disburse", "sb.plan.get"])

    ledger = Ledger()
    answering = set()
    subscription = await answer_proposals(nc, ledger, rng, answering)
    start = dt.datetime.now(dt.timezone.utc)
    began = time.monotonic()
    stop_at = began + arguments.duration
    # Each worker pauses so that together they offer about --rate requests a second.
    pause_s = arguments.workers / arguments.rate
    workers = [asyncio.ensure_future(worker(nc, ledger, number, start, stop_at, random.Random(rng.random()), pause_s))
               for number in range(arguments.workers)]

    # The faults, spread over the run: (name, processes, the endpoints that
    # must answer again, which acknowledged request proves writes work again).
    takes = lambda prefix: (lambda subject: subject.startswith(prefix))
    every_endpoint = ["sb.in.withdraw", "sb.in.reply", "sb.in.disburse", "sb.plan.get"]
    faults = [
        ("nats-server", [server], every_endpoint, takes("sb.in.")),
        ("ingest", [services["ingest"]], ["sb.in.withdraw"], takes("sb.in.need")),
        ("solver", [services["solver"]], ["sb.plan.get"], None),
        ("ledger", [services["ledger"]], ["sb.in.disburse"], None),
        ("dispatch", [services["dispatch"]], ["sb.in.reply"], takes("sb.in.reply")),
        ("everything", [server] + list(services.values()), every_endpoint, takes("sb.in.")),
    ]
    if arguments.cycles > 1:
        faults = [(f"{name}#{cycle + 1}", processes, endpoints, proof)
                  for cycle in range(arguments.cycles) for name, processes, endpoints, proof in faults]
    serving = {}
    spacing = arguments.duration / (len(faults) + 1)
    for index, (name, processes, endpoints, proof) in enumerate(faults):
        await asyncio.sleep(max(0.0, began + spacing * (index + 1) - time.monotonic()))
        for process in processes:
            process.kill()
        await asyncio.sleep(DOWN_S)
        for process in processes:
            process.start()
        restarted = time.monotonic()
        if proof is not None:
            ledger.watching[name] = (restarted, proof)
        await wait_until_answering(nc, endpoints, timeout=0.25)
        serving[name] = round(time.monotonic() - restarted, 2)

    await asyncio.gather(*workers)
    load_seconds = time.monotonic() - began
    # Let the last answers arrive and the plan settle.
    deadline = time.monotonic() + SETTLE_S
    previous = None
    while time.monotonic() < deadline:
        while answering:
            await asyncio.gather(*list(answering))
        # The solver answers between matching runs, which grow with the world.
        plan_message = await nc.request("sb.plan.get", b"{}", timeout=SETTLE_S)
        if plan_message.data == previous and not answering:
            break
        previous = plan_message.data
        await asyncio.sleep(1.0)
    await subscription.unsubscribe()
    plan = json.loads(previous)

    events = await read_stream(js, "SB_EVENTS")
    matches = await read_stream(js, "SB_MATCHES")
    entries = await read_stream(js, "SB_LEDGER")
    money_broken, money_totals = money_problems(entries, events)

    # No acknowledged event lost: the reply's sequence holds an event about that id.
    lost = []
    for subject, ident, seq, body in ledger.acknowledged:
        stored = events.get(seq)
        kind = subject.split(".")[2]
        expected = {"need": "need", "pledge": "pledge", "volunteer": "volunteer", "reply": "answered"}[kind]
        if stored is None or stored[0].split(".")[2] != expected or ident not in stored[0].split(".")[3:]:
            lost.append({"subject": subject, "id": ident, "seq": seq, "found": stored[0] if stored else None})
    # No body logged twice.
    bodies = collections.Counter(hashlib.sha256(subject.encode() + b"\0" + data).hexdigest()
                                 for subject, data in events.values())
    doubled_events = sum(1 for count in bodies.values() if count > 1)
    # No match event twice; no task over-staffed.
    live, repeated, _ = live_acceptances(matches)
    transitions = illegal_transitions(matches)
    # Work brought back to life after it ended (an accept after a release)
    # double-books; a final state followed by another (a release after a
    # decline, by a solver without leases that had not read the decline)
    # changes nothing, and is reported apart.
    illegal = [entry for entry in transitions if entry[-1] in ("proposed", "accepted", "checked_in", "completed")]
    late_finals = [entry for entry in transitions if entry not in illegal]
    slots = {}
    for subject, data in events.values():
        if subject.startswith("sb.ev.need."):
            for task in json.loads(data)["tasks"]:
                slots[task["id"]] = task["slots"]
    per_task = collections.Counter(task for _, task in live)
    overstaffed = {task: count for task, count in per_task.items() if count > slots.get(task, 0)}

    # The plan against the instance rebuilt from the log, every live
    # acceptance pinned but those of teams held together incomplete.
    now = start
    held = held_back(live, plan, slots)
    instance = rebuild_instance(events, now, live - held)
    instance_path = os.path.join(work, "instance.json")
    plan_path = os.path.join(work, "plan.json")
    with open(instance_path, "w") as file:
        json.dump(instance, file)
    with open(plan_path, "w") as file:
        json.dump(plan, file)
    checked = subprocess.run([sys.executable, CHECKER, instance_path, plan_path], capture_output=True, text=True)

    for process in services.values():
        process.stop()
    server.stop()
    await nc.close()

    result = {
        "duration_s": round(load_seconds, 1),
        "workers": arguments.workers,
        "offered_per_s": arguments.rate,
        "requests": ledger.sent,
        "acknowledged": len(ledger.acknowledged),
        "acknowledged_per_s": round(len(ledger.acknowledged) / load_seconds, 1),
        "refused": dict(ledger.refused),
        "refusal_samples": dict(ledger.refusal_samples),
        "timeouts_and_unavailable": ledger.timeouts,
        "resends": ledger.resends,
        "abandoned": ledger.abandoned,
        "events_in_log": len(events),
        "match_events": len(matches),
        "proposals": sum(1 for subject, _ in matches.values() if subject == "sb.match.proposed"),
        "live_acceptances": len(live),
        "lost_acknowledged": lost,
        "events_logged_twice": doubled_events,
        "match_events_published_twice": [list(key) for key in repeated],
        "illegal_transitions": [list(entry) for entry in illegal],
        "late_finals": [list(entry) for entry in late_finals],
        "overstaffed_tasks": overstaffed,
        "held_incomplete": sorted([list(pair) for pair in held]),
        "plan_assignments": len(plan.get("assignments", [])),
        "money": money_totals,
        "money_problems": money_broken[:20],
        "check_plan": {"exit": checked.returncode, "output": (checked.stdout + checked.stderr).strip()[-2000:]},
        # From the restart until its endpoints answer again, and until the
        # load's first acknowledged write of the kind the fault stopped.
        "serving_again_s": serving,
        "first_acknowledged_s": {name: round(ledger.first_ok_after[name], 2) if name in ledger.first_ok_after
                                 else None for name, _, _, proof in faults if proof is not None},
        "work_dir": work,
    }
    passed = (not lost and doubled_events == 0 and not repeated and not illegal and not overstaffed
              and not money_broken
              and checked.returncode == 0 and len(serving) == len(faults)
              and all(value is not None for value in result["first_acknowledged_s"].values()))
    result["passed"] = passed
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switchboard", required=True, help="the switchboard binary")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rate", type=float, default=20.0, help="requests offered per second, all workers together")
    parser.add_argument("--cycles", type=int, default=1, help="times the six faults are repeated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", help="write the result here as JSON too")
    arguments = parser.parse_args()
    try:
        result = asyncio.run(run(arguments))
    finally:
        for process in STARTED:
            process.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if arguments.out:
        with open(arguments.out, "w") as file:
            file.write(text + "\n")
    if result["passed"]:
        shutil.rmtree(result["work_dir"], ignore_errors=True)
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
