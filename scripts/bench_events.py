"""Benchmark the event store, the commands layer and the board projection on one embedded
server, beside the raw-Redis ceiling measured in the same run.

    python scripts/bench_events.py [--quick] [--json]

Figures: xadd_seq_per_s and xadd_pipelined_per_s (raw redis-py: the ceiling), create_task_per_s
(commands layer, 32 concurrent), transition_per_s, projection_events_per_s (catch-up of a
backlog), lag_p99_ms (steady 1,000 commands/s, projector in its own process),
rebuild_s_per_100k_events, redis_bytes_per_event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from cairn.commands.tasks import create_task, transition_task
from cairn.domain.task_spec import TaskSpec
from cairn.domain.task_states import Flags
from cairn.projections.board import BoardProjection
from cairn.projections.catalog import all_projections
from cairn.projections.generations import current_space, positions
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.streams.connection import connect
from cairn.streams.envelope import position_key, text
from cairn.streams.keys import Keys
from cairn.streams.server import start_server
from cairn.streams.store import EventStore

CONCURRENCY = 32


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def raw_xadd(client: aioredis.Redis, n: int, pipelined: bool) -> float:
    key = f"bench:raw:{random.random()}"
    fields = {"type": "task.created", "agg": "task-00-x", "ver": "1", "data": '{"title":"x"}'}
    started = time.perf_counter()
    if pipelined:
        for start in range(0, n, 1000):
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(min(1000, n - start)):
                    pipe.xadd(key, fields)  # type: ignore[arg-type]
                await pipe.execute()
    else:
        for _ in range(n):
            await client.xadd(key, fields)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    await client.delete(key)
    return n / elapsed


def spec(i: int) -> TaskSpec:
    return TaskSpec.model_validate(
        {"title": f"task {i}", "task_type": "feature", "priority": i % 4,
         "project": f"proj{i % 8}", "labels": ["bench"], "description": "benchmark task"}
    )  # fmt: skip


async def concurrently(n: int, make: Any) -> float:
    """Run make(i) for i < n with CONCURRENCY in flight; ops per second."""
    counter = iter(range(n))

    async def lane() -> None:
        for i in counter:
            await make(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return n / (time.perf_counter() - started)


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    client = connect(url, max_connections=CONCURRENCY + 8)
    n_raw = 20_000 if args.quick else 100_000
    n_create = 10_000 if args.quick else 50_000
    results: dict[str, Any] = {}

    say("raw XADD ...")
    results["xadd_seq_per_s"] = round(await raw_xadd(client, n_raw // 4, pipelined=False))
    results["xadd_pipelined_per_s"] = round(await raw_xadd(client, n_raw, pipelined=True))

    keys = Keys(f"bench{random.randrange(10**6)}", 16)
    store = EventStore(client, keys)
    memory_before = (await client.info("memory"))["used_memory"]
    ids: list[str] = []

    async def create(i: int) -> None:
        ids.append((await create_task(store, spec(i), actor="bench")).id)

    say(f"create_task x{n_create} ...")
    results["create_task_per_s"] = round(await concurrently(n_create, create))
    say(f"transition x{len(ids)} ...")

    async def move(i: int) -> None:
        await transition_task(store, ids[i], "ready", Flags(), actor="bench")

    results["transition_per_s"] = round(await concurrently(len(ids), move))
    memory_after = (await client.info("memory"))["used_memory"]
    results["redis_bytes_per_event"] = round((memory_after - memory_before) / (2 * n_create))
    backlog = 2 * n_create

    say(f"projection catch-up of {backlog} events ...")
    stop = asyncio.Event()
    started = time.perf_counter()
    runner = asyncio.create_task(run_projections(client, keys, [BoardProjection()], stop))
    await caught_up(client, keys)
    results["projection_events_per_s"] = round(backlog / (time.perf_counter() - started))
    stop.set()
    await runner
    # Steady lag is measured with every projection caught up (the projector runs them all).
    stop = asyncio.Event()
    others = [p for name, p in all_projections().items() if name != "board"]
    runner = asyncio.create_task(run_projections(client, keys, others, stop))
    for name in all_projections():
        await caught_up(client, keys, name)
    stop.set()
    await runner

    say("rebuild ...")
    started = time.perf_counter()
    rebuilt = await rebuild(client, keys, BoardProjection())
    results["rebuild_s_per_100k_events"] = round(
        (time.perf_counter() - started) * 100_000 / rebuilt, 2
    )

    say("lag at a steady 1,000 commands/s, projector in its own process ...")
    results["lag_p99_ms"], results["lag_p50_ms"] = await steady_lag(
        client, url, keys, seconds=5 if args.quick else 20
    )
    await client.aclose()
    return results


async def caught_up(client: aioredis.Redis, keys: Keys, projection: str = "board") -> None:
    ends = {}
    for p in keys.all_partitions():
        last = await client.xrevrange(keys.log(p), count=1)
        ends[p] = text(last[0][0]) if last else "0-0"
    while await positions(client, keys, projection) != ends:
        await asyncio.sleep(0.005)


async def steady_lag(
    client: aioredis.Redis, url: str, keys: Keys, seconds: int, rate: int = 1000
) -> tuple[float, float]:
    """Commands at `rate`/s; lag = time from the command's return to the projection's
    position passing it, observed by one poller of every partition's checkpoint."""
    env = {**os.environ, "CAIRN_REDIS_URL": url, "CAIRN_PREFIX": keys.prefix,
           "CAIRN_PARTITIONS": str(keys.partitions)}  # fmt: skip
    projector = subprocess.Popen([sys.executable, "-m", "cairn.api.cli", "projector"], env=env)
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=30)
    client = aioredis.Redis(connection_pool=pool)
    store = EventStore(client, keys)
    waiting: list[tuple[int, tuple[int, int], float]] = []
    lags: list[float] = []
    done = asyncio.Event()
    try:
        # Measure the projector at work, not its start: wait until it holds every partition.
        locks = [keys.projection_lock(p, "board") for p in keys.all_partitions()]
        while None in await client.mget(locks):
            await asyncio.sleep(0.05)
        await caught_up(client, keys)

        async def observe() -> None:
            pos_keys = [
                (await current_space(client, keys, "board", p)).position_key
                for p in keys.all_partitions()
            ]
            while not (done.is_set() and not waiting):
                values = await client.mget(pos_keys)
                now = time.perf_counter()
                at = [position_key(text(v)) if v else (0, 0) for v in values]
                still = []
                for partition, position, issued in waiting:
                    if at[partition] >= position:
                        lags.append((now - issued) * 1000)
                    else:
                        still.append((partition, position, issued))
                waiting[:] = still
                await asyncio.sleep(0.001)

        observer = asyncio.create_task(observe())
        interval = 1 / rate
        started = time.perf_counter()
        inflight: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            result = await create_task(store, spec(i), actor="bench")
            partition, _, entry = result.position.partition(":")
            waiting.append((int(partition), position_key(entry), time.perf_counter()))

        for i in range(rate * seconds):
            delay = started + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        await asyncio.gather(*inflight)
        done.set()
        await asyncio.wait_for(observer, 30)
    finally:
        projector.terminate()
        projector.wait(10)
        await client.aclose()
    lags.sort()
    return round(lags[int(len(lags) * 0.99) - 1], 1), round(lags[len(lags) // 2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = start_server(Path(data), persist=True)
        try:
            results = asyncio.run(bench(args, server.url))
        finally:
            server.stop()
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results["server"] = server.binary.name
    results["quick"] = args.quick
    if args.json:
        print(json.dumps(results))
    else:
        for name, value in results.items():
            print(f"{name:>28}: {value}")


if __name__ == "__main__":
    main()
