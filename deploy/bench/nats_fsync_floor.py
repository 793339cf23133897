#!/usr/bin/env python3
"""What one fsynced JetStream write costs on this machine, without the switchboard.

Starts its own nats-server (the venv's, as `switchboard up` installs it) with
`sync_interval: always` on a scratch store, and measures with nats-py:
  - 8 writes to one stream one after another, pipelined (all sent, then
    all acks awaited), and as one atomic batch (nats-server >= 2.12);
  - one write alone;
  - throughput into one stream and into two streams with 256 in flight,
    and with one in flight.
Usage (the venv deploy/bin/install-prerequisites makes has nats-py):
       ~/.cache/switchboard/venv/bin/python deploy/bench/nats_fsync_floor.py
BENCHMARKS.md ("The fsync floor") reports its output.
"""
import asyncio
import json
import os
import subprocess
import tempfile
import time

import nats

SERVER = os.path.expanduser("~/.cache/switchboard/venv/bin/nats-server")
PORT = 14222
ROUNDS = 50
BATCH = 8


def percentiles(samples):
    samples = sorted(samples)
    return "p50 %.2f ms, p90 %.2f ms" % (
        samples[len(samples) // 2] * 1e3,
        samples[int(len(samples) * 0.9)] * 1e3,
    )


async def timed_rounds(make_round):
    samples = []
    for round_index in range(ROUNDS):
        began = time.perf_counter()
        await make_round(round_index)
        samples.append(time.perf_counter() - began)
    return percentiles(samples)


async def main(store):
    nc = await nats.connect(f"nats://127.0.0.1:{PORT}")
    for name, subjects, atomic in [("T", ["t.>"], True), ("U", ["u.>"], False), ("V", ["v.>"], False)]:
        config = {"name": name, "subjects": subjects, "storage": "file", "allow_atomic": atomic}
        await nc.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps(config).encode())
    body = b"x" * 300

    async def sequential(r):
        for i in range(BATCH):
            await nc.request("t.a", body, timeout=5, headers={"Nats-Msg-Id": f"s{r}-{i}"})

    async def pipelined(r):
        writes = [
            nc.request("t.a", body, timeout=5, headers={"Nats-Msg-Id": f"p{r}-{i}"})
            for i in range(BATCH)
        ]
        await asyncio.gather(*writes)

    async def atomic(r):
        for i in range(1, BATCH):
            await nc.publish("t.a", body, headers={"Nats-Batch-Id": f"b{r}", "Nats-Batch-Sequence": str(i)})
        await nc.request("t.a", body, timeout=5, headers={
            "Nats-Batch-Id": f"b{r}", "Nats-Batch-Sequence": str(BATCH), "Nats-Batch-Commit": "1"})

    async def single(r):
        await nc.request("t.a", body, timeout=5, headers={"Nats-Msg-Id": f"one{r}"})

    print(f"{BATCH} writes one after another: {await timed_rounds(sequential)}")
    print(f"{BATCH} writes pipelined:         {await timed_rounds(pipelined)}")
    print(f"{BATCH} writes as an atomic batch: {await timed_rounds(atomic)}")
    print(f"1 write:                         {await timed_rounds(single)}")

    async def throughput(prefixes, in_flight, count=4000):
        gate = asyncio.Semaphore(in_flight)

        async def one(i):
            async with gate:
                await nc.request(f"{prefixes[i % len(prefixes)]}.x", body, timeout=10)

        began = time.perf_counter()
        await asyncio.gather(*[one(i) for i in range(count)])
        return count / (time.perf_counter() - began)

    print("one stream, 256 in flight:  %.0f writes/s" % await throughput(["u"], 256))
    print("two streams, 256 in flight: %.0f writes/s" % await throughput(["u", "v"], 256))
    print("one stream, 1 in flight:    %.0f writes/s" % await throughput(["u"], 1))
    await nc.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        config = os.path.join(scratch, "server.conf")
        with open(config, "w") as out:
            out.write(f'listen: 127.0.0.1:{PORT}\njetstream {{ store_dir: "{scratch}/store", sync_interval: always }}\n')
        server = subprocess.Popen([SERVER, "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            asyncio.run(main(scratch))
        finally:
            server.terminate()
            server.wait()
