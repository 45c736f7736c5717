"""Benchmark the event store, the commands layer and the board projection on one embedded
server, beside the raw-Redis ceiling measured in the same run.

    python scripts/bench_events.py [--quick] [--json] [--cluster]

Figures: xadd_seq_per_s and xadd_pipelined_per_s (raw redis-py: the ceiling), create_task_per_s
(commands layer, 32 concurrent), transition_per_s, projection_events_per_s (catch-up of a
backlog), lag_p99_ms (steady 1,000 commands/s, projector in its own process),
rebuild_s_per_100k_events, redis_bytes_per_event.

--cluster: the same commands and catch-up on one server and on a 3-master Redis Cluster (the
embedded binary in cluster mode) in the same run, from one client process and from two (each
its own share), and dispatch_jobs_per_s: the dispatch bookkeeping's cycle (dispatch a job,
a worker reads it, settle it; 16 at a time, 4 loops), which lives in the one `{dispatch}` slot
(docs/decisions/0002), so on a cluster it runs on one master.
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

from cairn.commands.tasks.task import create_task, transition_task
from cairn.domain.tasks.spec import TaskSpec
from cairn.domain.tasks.states import Flags
from cairn.projections.catalog import all_projections
from cairn.projections.generations import current_space, positions
from cairn.projections.projector import run_projections
from cairn.projections.rebuild import rebuild
from cairn.projections.tasks.board import BoardProjection
from cairn.streams.connection import connect
from cairn.streams.dispatch import Dispatch, Dispatchable, Limits
from cairn.streams.envelope import position_key, text
from cairn.streams.keys import Keys
from cairn.streams.server import start_cluster, start_server
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
    # Their loops each hold a connection in a blocking read: a pool of their own, unbounded as
    # the projector's is ("Too many connections" from the bounded one stalled a projection).
    stop = asyncio.Event()
    others = [p for name, p in all_projections().items() if name != "board"]
    projector = connect(url)
    runner = asyncio.create_task(run_projections(projector, keys, others, stop))
    for name in all_projections():
        await caught_up(client, keys, name)
    stop.set()
    await runner
    await projector.aclose()

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


# ---- one server against a cluster (--cluster) ----------------------------------------------


async def dispatch_cycles(url: str, seconds: float, loops: int = 4, batch: int = 16) -> float:
    """Jobs/s through the dispatch slot's cycle: dispatch `batch` jobs in one script call, read
    them as a worker does, settle them in one call; `loops` at once."""
    client = connect(url, max_connections=loops * 2 + 4)
    dispatch = Dispatch(client, Keys(f"bench{random.randrange(10**6)}", 16))
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(k: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < deadline:
            jobs = [Dispatchable(f"job-00-{k:04d}{n + i:022d}", 1, "noop", "", "p", 0, "")
                    for i in range(batch)]  # fmt: skip
            n += batch
            await dispatch.dispatch(jobs, Limits())
            got = await dispatch.read(f"w{k}", ["noop"], count=batch, block_ms=100)
            await dispatch.settle_many([(m.job_id, m) for m in got])
            done += len(got)

    started = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(loops)))
    rate = done / (time.perf_counter() - started)
    await client.aclose()
    return rate


def create_in_processes(url: str, prefix: str, n: int, processes: int) -> float:
    """create_task/s of `processes` client processes at once, each n / processes tasks, from a
    start time they all wait for (their start-up is not timed) until the last one is done."""
    code = ("import asyncio, sys; sys.path.insert(0, %r); import bench_events as b; "
            "print(asyncio.run(b.create_share(%r, %r, *map(float, sys.argv[1:]))))")  # fmt: skip
    code %= (str(Path(__file__).parent), url, prefix)
    start_at = time.time() + 5
    children = [subprocess.Popen([sys.executable, "-c", code, str(k), str(n // processes),
                                  str(start_at)], stdout=subprocess.PIPE, text=True)
                for k in range(processes)]  # fmt: skip
    finished = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise RuntimeError("a client process failed")
        finished.append(float(out))
    return n / (max(finished) - start_at)


async def create_share(url: str, prefix: str, k: float, n: float, start_at: float) -> float:
    """One client process's share of create_in_processes; the time it finished."""
    client = connect(url, max_connections=CONCURRENCY + 8)
    store = EventStore(client, Keys(prefix, 16))
    await client.ping()
    await asyncio.sleep(max(0.0, start_at - time.time()))

    async def create(i: int) -> None:
        await create_task(store, spec(int(k * n) + i), actor="bench")

    await concurrently(int(n), create)
    await client.aclose()
    return time.time()


async def scaling(url: str, quick: bool) -> dict[str, Any]:
    """The figures --cluster compares, on the store at `url`."""
    n = 6_000 if quick else 30_000
    client = connect(url, max_connections=CONCURRENCY + 8)
    keys = Keys(f"bench{random.randrange(10**6)}", 16)
    store = EventStore(client, keys)
    ids: list[str] = []
    results: dict[str, Any] = {}

    async def create(i: int) -> None:
        ids.append((await create_task(store, spec(i), actor="bench")).id)

    say(f"  create_task x{n}, one client process ...")
    results["create_task_per_s"] = round(await concurrently(n, create))

    async def move(i: int) -> None:
        await transition_task(store, ids[i], "ready", Flags(), actor="bench")

    say(f"  transition x{n} ...")
    results["transition_per_s"] = round(await concurrently(n, move))
    say(f"  projection catch-up of {2 * n} events ...")
    stop = asyncio.Event()
    started = time.perf_counter()
    runner = asyncio.create_task(run_projections(client, keys, [BoardProjection()], stop))
    await caught_up(client, keys)
    results["projection_events_per_s"] = round(2 * n / (time.perf_counter() - started))
    stop.set()
    await runner
    await client.aclose()
    say(f"  create_task x{n}, two client processes ...")
    results["create_task_per_s_2_processes"] = round(
        create_in_processes(url, f"bench{random.randrange(10**6)}", n, 2)
    )
    say("  dispatch cycles ...")
    results["dispatch_jobs_per_s"] = round(await dispatch_cycles(url, 3 if quick else 10))
    return results


def compare_cluster(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data:
        say("one server ...")
        server = start_server(Path(data) / "one", persist=True)
        try:
            results["one_server"] = asyncio.run(scaling(server.url, quick))
        finally:
            server.stop()
        say("a 3-master cluster ...")
        cluster = start_cluster(Path(data) / "cluster", masters=3)
        try:
            results["cluster_3_masters"] = asyncio.run(scaling(cluster.url, quick))
        finally:
            cluster.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cluster", action="store_true",
                        help="one server against a 3-master cluster, in the same run")  # fmt: skip
    args = parser.parse_args()
    if args.cluster:
        compared = compare_cluster(args.quick)
        compared["machine"] = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        if args.json:
            print(json.dumps(compared))
            return
        one, three = compared["one_server"], compared["cluster_3_masters"]
        print(f"{'':>30} {'1 server':>10} {'3 masters':>10} {'ratio':>6}")
        for name in one:
            print(f"{name:>30} {one[name]:>10} {three[name]:>10} {three[name] / one[name]:>6.2f}")
        return
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
