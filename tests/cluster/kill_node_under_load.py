#!/usr/bin/env python3
"""One node of a three-node nats-server cluster killed, or cut off by a network partition, under load.

    kill_node_under_load.py --switchboard BIN [--duration 60] [--workers 8] [--rate 20] [--out FILE]
    kill_node_under_load.py --switchboard BIN --fault partition [--partition-seconds 20] ...

With `--fault partition` (root only: it makes a network namespace) node 3
runs in its own network namespace, joined to the others by a veth pair
(10.77.0.1 on this side, 10.77.0.2 on node 3's; nothing leaves the
machine), is made the leader of SB_EVENTS (leader step-downs until it is),
and instead of being killed has its link cut for `--partition-seconds`:
its routes and every client connected to it go silent at once, as a
pulled cable does. Then the link comes back, and the run also checks that
node 3 rejoined (every replica of SB_EVENTS and SB_MATCHES current again)
and reports how long that took. The namespace is deleted at the end
whatever happens.

Starts three nats-server nodes with deploy/nats/cluster/node-{1,2,3}.conf
(on loopback ports given on the command line, which take precedence over
the files' hosts and ports), waits for JetStream to elect a leader, then
starts `switchboard ingest`, `dispatch` and two `solver` instances (leases
on, one active) as separate processes, each given all three URLs and
`--replicas 3`. It drives them as tests/fault/kill_under_load.py does
(needs, pledges, volunteers, and every proposal answered at once), and a
third of the way in kills with SIGKILL the node that leads SB_EVENTS (with
`--kill-lease-holder`, the solver instance planning the shard too, so the
lease moves under load). The
node stays down; the load goes on. Afterwards it reads the streams back
from the surviving nodes and checks:

- every request answered `ok` has its event in SB_EVENTS at the sequence
  the reply gave (nothing acknowledged lost), and no body is logged twice;
- no match event is published twice, no ended assignment comes back
  to life (no `accepted` after a `released`; a final state after another
  is reported as `late_finals`), and no task has more
  live acceptances than slots;
- proposals kept flowing after the kill (the first within
  PROPOSALS_RESUME_S, waited for after the load if need be);
- the plan passes shared/bench/check_plan.py against the instance rebuilt
  from SB_EVENTS with every live acceptance pinned (but those of a team
  held together incomplete, reported as `held_incomplete`), so no volunteer's
  accepted work exceeds their hours (nobody double-booked);

and reports the time from the kill to the first acknowledged write and to
the first proposal. Exit 0 when every check holds.
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
import subprocess
import sys
import tempfile
import time

import nats

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fault"))
import kill_under_load as fault  # noqa: E402  (its load, ledger and checks)

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
NODE_CONFIG = os.path.join(ROOT, "deploy", "nats", "cluster", "node-{}.conf")
NODES = 3
LEASE_TTL_MS = 3000
# After the kill, the first proposal must come within this long.
PROPOSALS_RESUME_S = 60.0
# The logs count as settled when unchanged this long.
QUIET_S = 3.0


# The partition's network namespace and veth pair (loopback-only: the pair
# joins two namespaces of this machine).
NETNS = "sb-partition"
VETH_HERE, VETH_THERE = "sbpart0", "sbpart1"
ADDRESS_HERE, ADDRESS_THERE = "10.77.0.1", "10.77.0.2"
# How long node 3 may take to rejoin after the link is back.
REJOIN_S = 60.0


def node_command(number, hosts, client_ports, route_ports, monitor_ports, work):
    routes = ",".join(f"nats://{host}:{port}" for host, port in zip(hosts, route_ports))
    index = number - 1
    host = hosts[index]
    command = [fault.nats_server_binary(), "-c", NODE_CONFIG.format(number),
               "-a", host, "-p", str(client_ports[index]), "-m", str(monitor_ports[index]),
               "--cluster", f"nats://{host}:{route_ports[index]}", "--routes", routes,
               "-sd", os.path.join(work, f"js-{number}"), "-l", os.path.join(work, f"nats-{number}.log")]
    if host == ADDRESS_THERE:
        command = ["ip", "netns", "exec", NETNS] + command
    return command


def lease_holder(work):
    """The solver instance planning the shard now, read from the solvers' logs."""
    for name in ("solver-a", "solver-b"):
        with open(os.path.join(work, f"{name}.log"), errors="replace") as log:
            changes = [line for line in log if "now plans the shard" in line or "no longer plans the shard" in line]
        if changes and "now plans the shard" in changes[-1]:
            return name
    return None


def ip(*arguments):
    subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=10)


def make_partitionable():
    """Node 3's namespace and the veth pair to it; any left from an earlier run is removed first."""
    remove_partitionable()
    ip("netns", "add", NETNS)
    ip("link", "add", VETH_HERE, "type", "veth", "peer", "name", VETH_THERE)
    ip("link", "set", VETH_THERE, "netns", NETNS)
    ip("addr", "add", f"{ADDRESS_HERE}/24", "dev", VETH_HERE)
    ip("link", "set", VETH_HERE, "up")
    ip("netns", "exec", NETNS, "ip", "addr", "add", f"{ADDRESS_THERE}/24", "dev", VETH_THERE)
    ip("netns", "exec", NETNS, "ip", "link", "set", VETH_THERE, "up")
    ip("netns", "exec", NETNS, "ip", "link", "set", "lo", "up")


def remove_partitionable():
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, timeout=10)
    subprocess.run(["ip", "link", "del", VETH_HERE], capture_output=True, timeout=10)


async def lead_from(nc, js, stream, wanted):
    """Asks the leader of `stream` to step down until `wanted` leads it (at most ten times)."""
    for _ in range(10):
        leader, _ = await stream_leader(js, stream)
        if leader == wanted:
            return leader
        try:
            await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=5)
        except Exception:
            pass
        await asyncio.sleep(1.0)
    return (await stream_leader(js, stream))[0]


async def wait_for_services(nc):
    """Until the services answer, for up to three times fault.SETTLE_S: on a
    fresh cluster each stream's creation has waited out one 10 s request
    timeout (seen in every run here), so start-up can take over a minute."""
    for attempt in range(3):
        try:
            await fault.wait_until_answering(nc, ["sb.in.withdraw", "sb.in.reply", "sb.plan.get"])
            return
        except RuntimeError:
            if attempt == 2:
                raise


async def all_replicas_current(js, streams):
    for stream in streams:
        try:
            info = await js.stream_info(stream)
        except Exception:
            return False
        replicas = (info.cluster.replicas or []) if info.cluster else []
        if len(replicas) != NODES - 1 or not all(replica.current for replica in replicas):
            return False
    return True


async def wait_for_jetstream(nc):
    deadline = time.monotonic() + fault.SETTLE_S
    js = nc.jetstream()
    while True:
        try:
            await js.account_info()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError("JetStream never elected a meta leader")
            await asyncio.sleep(0.2)


async def stream_leader(js, stream):
    deadline = time.monotonic() + fault.SETTLE_S
    while True:
        try:
            info = await js.stream_info(stream)
            if info.cluster and info.cluster.leader:
                return info.cluster.leader, len(info.cluster.replicas or []) + 1
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{stream} has no leader")
        await asyncio.sleep(0.2)


async def run(arguments):
    rng = random.Random(arguments.seed)
    work = tempfile.mkdtemp(prefix="sb-cluster-")
    partition = arguments.fault == "partition"
    hosts = ["127.0.0.1"] * NODES
    if partition:
        make_partitionable()
        hosts = [ADDRESS_HERE] * (NODES - 1) + [ADDRESS_THERE]
    client_ports = [fault.free_port() for _ in range(NODES)]
    route_ports = [fault.free_port() for _ in range(NODES)]
    monitor_ports = [fault.free_port() for _ in range(NODES)]
    urls = ",".join(f"nats://{host}:{port}" for host, port in zip(hosts, client_ports))
    nodes = {
        f"nats-{number}": fault.Process(f"nats-{number}", node_command(number, hosts, client_ports, route_ports,
                                                                      monitor_ports, work),
                                        os.path.join(work, f"nats-{number}.out"))
        for number in range(1, NODES + 1)
    }
    for node in nodes.values():
        node.start()

    async def quiet(*_):
        """Disconnections are the point of this run; nats-py would print each."""

    # Pings every 2 s: a partitioned server is noticed in seconds, not nats-py's default minutes.
    nc = await nats.connect(servers=urls.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.1,
                            connect_timeout=2, allow_reconnect=True, name="cluster-load", error_cb=quiet,
                            disconnected_cb=quiet, ping_interval=2, max_outstanding_pings=2)
    await wait_for_jetstream(nc)
    common = ["--nats", urls, "--replicas", "3"]
    services = {
        "ingest": ["ingest"],
        "dispatch": ["dispatch"],
        "solver-a": ["solver", "--lease", "--lease-ttl-ms", str(LEASE_TTL_MS), "--instance", "solver-a"],
        "solver-b": ["solver", "--lease", "--lease-ttl-ms", str(LEASE_TTL_MS), "--instance", "solver-b"],
    }
    processes = {
        name: fault.Process(name, [arguments.switchboard] + command + common + ["--state", os.path.join(work, name)],
                            os.path.join(work, f"{name}.log"))
        for name, command in services.items()
    }
    for process in processes.values():
        process.start()
    js = nc.jetstream()
    await wait_for_services(nc)
    leader, replicas = await stream_leader(js, "SB_EVENTS")
    if partition:
        leader = await lead_from(nc, js, "SB_EVENTS", "nats-3")

    ledger = fault.Ledger()
    answering = set()
    subscription = await fault.answer_proposals(nc, ledger, rng, answering)
    proposal_times = []

    async def on_proposal(_message):
        proposal_times.append(time.monotonic())

    proposals = await nc.subscribe("sb.match.proposed", cb=on_proposal)
    start = dt.datetime.now(dt.timezone.utc)
    began = time.monotonic()
    stop_at = began + arguments.duration
    pause_s = arguments.workers / arguments.rate
    workers = [asyncio.ensure_future(fault.worker(nc, ledger, number, start, stop_at, random.Random(rng.random()),
                                                  pause_s))
               for number in range(arguments.workers)]

    await asyncio.sleep(arguments.duration / 3)
    acknowledged_before = len(ledger.acknowledged)
    proposals_before = len(proposal_times)
    cut_off = "nats-3" if partition else leader
    if partition:
        ip("link", "set", VETH_HERE, "down")
    else:
        nodes[leader].kill()
    holder_killed = None
    if arguments.kill_lease_holder:
        # The lease must move under load: the instance planning now dies
        # with the node, and the standby takes over from the stream.
        holder_killed = lease_holder(work)
        if holder_killed:
            processes[holder_killed].kill()
    killed_at = time.monotonic()
    ledger.watching["node"] = (killed_at, lambda subject: subject.startswith("sb.in."))
    new_leader, _ = await stream_leader(js, "SB_EVENTS")
    rejoined_s = None
    if partition:
        await asyncio.sleep(max(0.0, killed_at + arguments.partition_seconds - time.monotonic()))
        ip("link", "set", VETH_HERE, "up")
        healed_at = time.monotonic()
        while time.monotonic() < healed_at + REJOIN_S:
            if await all_replicas_current(js, ["SB_EVENTS", "SB_MATCHES"]):
                rejoined_s = round(time.monotonic() - healed_at, 2)
                break
            await asyncio.sleep(0.5)

    await asyncio.gather(*workers)
    load_seconds = time.monotonic() - began
    # Matching must resume after the kill: a short run's load can end before
    # the standby has taken over and planned, so wait for its first proposal
    # (bounded) before judging the logs settled.
    while (not any(moment > killed_at for moment in proposal_times)
           and time.monotonic() < killed_at + PROPOSALS_RESUME_S):
        await asyncio.sleep(0.2)
    # Settled: both logs unchanged for QUIET_S with nothing being answered,
    # and then the plan the same twice (the solvers answer between runs).
    deadline = time.monotonic() + fault.SETTLE_S
    previous = None
    ends = None
    while time.monotonic() < deadline:
        while answering:
            await asyncio.gather(*list(answering))
        now_ends = [(await js.stream_info(stream)).state.last_seq for stream in ("SB_EVENTS", "SB_MATCHES")]
        plan_message = await nc.request("sb.plan.get", b"{}", timeout=fault.SETTLE_S)
        if plan_message.data == previous and now_ends == ends and not answering:
            break
        previous, ends = plan_message.data, now_ends
        await asyncio.sleep(QUIET_S)
    await subscription.unsubscribe()
    await proposals.unsubscribe()
    plan = json.loads(previous)

    events = await fault.read_stream(js, "SB_EVENTS")
    matches = await fault.read_stream(js, "SB_MATCHES")
    lost = []
    for subject, ident, seq, body in ledger.acknowledged:
        stored = events.get(seq)
        kind = subject.split(".")[2]
        expected = {"need": "need", "pledge": "pledge", "volunteer": "volunteer", "reply": "answered"}[kind]
        if stored is None or stored[0].split(".")[2] != expected or ident not in stored[0].split(".")[3:]:
            lost.append({"subject": subject, "id": ident, "seq": seq, "found": stored[0] if stored else None})
    bodies = collections.Counter(hashlib.sha256(subject.encode() + b"\0" + data).hexdigest()
                                 for subject, data in events.values())
    doubled_events = sum(1 for count in bodies.values() if count > 1)
    live, repeated, _ = fault.live_acceptances(matches)
    transitions = fault.illegal_transitions(matches)
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
    # Teams the solver holds together incomplete are not in its plan.
    held = fault.held_back(live, plan, slots)
    instance = fault.rebuild_instance(events, start, live - held)
    instance_path = os.path.join(work, "instance.json")
    plan_path = os.path.join(work, "plan.json")
    with open(instance_path, "w") as file:
        json.dump(instance, file)
    with open(plan_path, "w") as file:
        json.dump(plan, file)
    checked = subprocess.run([sys.executable, fault.CHECKER, instance_path, plan_path], capture_output=True,
                             text=True)
    after_kill = [moment for moment in proposal_times if moment > killed_at]
    lease_holders = collections.Counter()
    for name in ("solver-a", "solver-b"):
        with open(os.path.join(work, f"{name}.log"), errors="replace") as log:
            lease_holders[name] = sum(1 for line in log if "now plans the shard" in line)

    for process in processes.values():
        process.stop()
    for node in nodes.values():
        node.stop()
    await nc.close()

    result = {
        "duration_s": round(load_seconds, 1),
        "workers": arguments.workers,
        "offered_per_s": arguments.rate,
        "replicas": replicas,
        "fault": arguments.fault,
        "killed": cut_off,
        "stream_leader_at_fault": leader,
        "partition_s": arguments.partition_seconds if partition else None,
        "rejoined_after_heal_s": rejoined_s,
        "new_stream_leader": new_leader,
        "requests": ledger.sent,
        "acknowledged": len(ledger.acknowledged),
        "acknowledged_before_kill": acknowledged_before,
        "acknowledged_per_s": round(len(ledger.acknowledged) / load_seconds, 1),
        "refused": dict(ledger.refused),
        "timeouts_and_unavailable": ledger.timeouts,
        "resends": ledger.resends,
        "abandoned": ledger.abandoned,
        "events_in_log": len(events),
        "acknowledged_present": len(ledger.acknowledged) - len(lost),
        "lost_acknowledged": lost,
        "events_logged_twice": doubled_events,
        "match_events": len(matches),
        "proposals": len(proposal_times),
        "proposals_before_kill": proposals_before,
        "proposals_after_kill": len(after_kill),
        "first_acknowledged_after_kill_s": round(ledger.first_ok_after["node"], 2)
        if "node" in ledger.first_ok_after else None,
        "first_proposal_after_kill_s": round(after_kill[0] - killed_at, 2) if after_kill else None,
        "match_events_published_twice": [list(key) for key in repeated],
        "illegal_transitions": [list(entry) for entry in illegal],
        "late_finals": [list(entry) for entry in late_finals],
        "overstaffed_tasks": overstaffed,
        "live_acceptances": len(live),
        "held_incomplete": sorted([list(pair) for pair in held]),
        "solver_takeovers": dict(lease_holders),
        "lease_holder_killed": holder_killed,
        "check_plan": {"exit": checked.returncode, "output": (checked.stdout + checked.stderr).strip()[-2000:]},
        "work_dir": work,
    }
    result["passed"] = (not lost and doubled_events == 0 and not repeated and not illegal and not overstaffed
                        and replicas == 3
                        and checked.returncode == 0 and len(after_kill) > 0
                        and result["first_acknowledged_after_kill_s"] is not None
                        and (not partition or rejoined_s is not None)
                        and (not arguments.kill_lease_holder or holder_killed is not None))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switchboard", required=True, help="the switchboard binary")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rate", type=float, default=20.0, help="requests offered per second, all workers together")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", help="write the result here as JSON too")
    parser.add_argument("--fault", choices=["kill", "partition"], default="kill",
                        help="SIGKILL the leader of SB_EVENTS, or cut node 3 (made its leader) off the network")
    parser.add_argument("--kill-lease-holder", action="store_true",
                        help="at the fault, also SIGKILL the solver instance holding the lease, so it moves under load")
    parser.add_argument("--partition-seconds", type=float, default=20.0, help="how long the partition lasts")
    arguments = parser.parse_args()
    try:
        result = asyncio.run(run(arguments))
    finally:
        for process in fault.STARTED:
            process.stop()
        if arguments.fault == "partition":
            remove_partitionable()
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
