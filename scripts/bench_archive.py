"""Benchmark the server memory a finished job holds over many jobs, without and with archiving:
no-op jobs through Cairn's projector, scheduler and two worker processes, in rounds, on a fresh
embedded server (AOF on) per scenario.

    python scripts/bench_archive.py [--jobs 200000] [--round 20000] [--json]

After each round every job has succeeded; the archiving scenario then archives every finished
job (`cairn archive --older-than 0s`, through the same functions), and both note the server's
used_memory. Figures per scenario: used_memory after each round, bytes per job over the run and
over its last half (flat memory is the second close to 0), and MEMORY USAGE of every key of the
install grouped by what it holds, per job, at the end; for archiving, events archived per
second and the segments' size on disk per job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_children import say, stop_children  # scripts/ is on the path of a script
from bench_peers import LANES
from bench_queue_engine import memory_by_key, start_cairn, submit

from cairn.api.cli.archive import cut_for, finished_aggregates
from cairn.commands.settings import Settings
from cairn.projections.jobs.queue import Queue
from cairn.streams.archive import Archive
from cairn.streams.connection import connect
from cairn.streams.driver import Client
from cairn.streams.keys import Keys
from cairn.streams.retention import archive_aggregates
from cairn.streams.server import start_server
from cairn.streams.store import EventStore

WORKERS, CONCURRENCY = 2, 16


async def used_memory(client: Client) -> int:
    return int((await client.info("memory"))["used_memory"])


async def wait_succeeded(queue: Queue, n: int, children: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (await queue.counts()).get("succeeded", 0) < n:
        for child in children:
            child.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} jobs did not succeed in {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def scenario(
    data_dir: Path, jobs: int, round_size: int, archiving: bool
) -> dict[str, Any]:
    server = start_server(data_dir / "server", persist=True)
    prefix = "archiving" if archiving else "plain"
    keys = Keys(prefix, 16)
    client = connect(server.url, max_connections=LANES + 8)
    archive = Archive(data_dir / "archive" / prefix)
    store = EventStore(client, keys, archive=archive)
    queue, contract = Queue(client, keys), Settings().contract()
    children = start_cairn(server.url, prefix, WORKERS, CONCURRENCY, data_dir)
    rounds: list[dict[str, Any]] = []
    archived_events, archive_s = 0, 0.0
    try:
        await submit(store, contract, 0)  # the warm-up job: processes started, groups made
        await wait_succeeded(queue, 1, children, timeout=120)
        start_memory = await used_memory(client)
        done = 1
        for _ in range(0, jobs, round_size):
            counter = iter(range(done, done + round_size))

            async def lane(numbers: Iterator[int]) -> None:
                for i in numbers:
                    await submit(store, contract, i)

            started = time.monotonic()
            await asyncio.gather(*(lane(counter) for _ in range(LANES)))
            done += round_size
            await wait_succeeded(queue, done, children, timeout=max(300, round_size / 20))
            took = time.monotonic() - started
            figures: dict[str, Any] = {"jobs": done - 1, "jobs_per_s": round(round_size / took)}
            if archiving:
                await asyncio.sleep(0.5)  # every projection applies the last events
                began = time.monotonic()
                ids, tasks = await finished_aggregates(client, keys, cut_for_now(), archive)
                moved = await archive_aggregates(client, keys, archive, ids + tasks, cut_for_now())
                archive_s += time.monotonic() - began
                archived_events += moved.events
                figures["archived_aggregates"] = moved.aggregates
                figures["archive_s"] = round(time.monotonic() - began, 1)
            await asyncio.sleep(1.0)
            figures["used_memory"] = await used_memory(client)
            rounds.append(figures)
            say(f"  {prefix}: {figures}")
        end = rounds[-1]["used_memory"]
        half = {"jobs": 0, "used_memory": start_memory}
        if len(rounds) > 1:
            half = rounds[len(rounds) // 2 - 1]
        result: dict[str, Any] = {
            "rounds": rounds,
            "bytes_per_job": round((end - start_memory) / jobs),
            "bytes_per_job_last_half": round(
                (end - half["used_memory"]) / (rounds[-1]["jobs"] - half["jobs"])
            ),
            "memory_by_key": await memory_by_key(client, prefix, jobs + 1),
        }
        if archiving:
            segments = data_dir / "archive" / prefix / "segments"
            on_disk = sum(f.stat().st_size for f in segments.iterdir())
            index = sum(f.stat().st_size
                        for f in (data_dir / "archive" / prefix).glob("index.sqlite*"))  # fmt: skip
            result["archived_events_per_s"] = round(archived_events / archive_s)
            result["segment_bytes_per_job"] = round(on_disk / jobs)
            result["index_bytes_per_job"] = round(index / jobs)
        return result
    finally:
        stop_children(children)
        await client.aclose()
        server.stop()


def cut_for_now() -> str:
    from datetime import timedelta

    return cut_for(timedelta(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--round", type=int, default=20_000, dest="round_size")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-archive-"))
    began = time.monotonic()
    results: dict[str, Any] = {"jobs": args.jobs, "round": args.round_size}
    try:
        for archiving in (False, True):
            name = "with_archiving" if archiving else "without_archiving"
            say(f"{name}: {args.jobs} no-op jobs in rounds of {args.round_size} ...")
            folder = workdir / name
            folder.mkdir()
            results[name] = asyncio.run(scenario(folder, args.jobs, args.round_size, archiving))
            shutil.rmtree(folder, ignore_errors=True)
    except BaseException:
        say(f"process logs kept in {workdir}")
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    say(f"done in {time.monotonic() - began:.0f}s")
    if args.json:
        print(json.dumps(results))
        return
    for name in ("without_archiving", "with_archiving"):
        figures = results[name]
        print(f"{name}: {figures['bytes_per_job']} bytes per job over the run, "
              f"{figures['bytes_per_job_last_half']} over its last half")  # fmt: skip
        for row in figures["rounds"]:
            print(f"  {row['jobs']:>8} jobs  {row['used_memory'] / 2**20:8.1f} MiB  {row}")
        print(f"  by key, per job: {figures['memory_by_key']}")
        for extra in ("archived_events_per_s", "segment_bytes_per_job", "index_bytes_per_job"):
            if extra in figures:
                print(f"  {extra}: {figures[extra]}")
    print(results["machine"], file=sys.stderr)


if __name__ == "__main__":
    main()
