"""Benchmark the queue engine end to end: no-op jobs through Cairn's projector, scheduler and
worker processes, and the same no-op workload through peer job queues (taskiq, huey, dramatiq,
celery, arq, rq on the same embedded server; DBOS and Procrastinate, which keep a durable history
per job as Cairn does, on a PostgreSQL from Debian's packages that the script starts), in the
same run.

    python scripts/bench_queue_engine.py [--quick] [--json] [--peers a,b | --no-peers]

Figures: cairn_jobs_per_s (1 worker process) and cairn_jobs_per_s_2w (2), wall time from the
first submit until every job has its `job.succeeded` event; claim_p50_ms and claim_p99_ms, the
time from `job.submitted` to `job.claimed` with jobs submitted one at a time at 20/s (unloaded);
claim_loaded_p50_ms and claim_loaded_p99_ms, the same during the 1-worker throughput run, which
includes the time a job waits behind the backlog; peers, each peer's jobs/s.

What a finished job costs the server, from the 1-worker run: memory_per_job_bytes (INFO
used_memory after the jobs finished less before they were submitted, per job), memory_by_key
(MEMORY USAGE, every element counted, of every key of the run's prefix, grouped by what the key
holds, per job: the log, the aggregate indexes, the read models, the command records kept for
CAIRN_COMMAND_TTL_S) and aof_bytes_per_job (the AOF's growth over the jobs, automatic rewrites
switched off for the run).

How to read it: the peers are the ceiling, measured on the same machine, server and run. A peer
job is one queue message and no history; a Cairn job appends `events_per_job` events (submitted,
claimed, three stages started and finished, succeeded), the full audit trail, and is fenced by a
lease at every step. Each peer is installed in its own virtual environment under
~/.cache/cairn-bench/venvs (reused when it still imports) and runs from generated files; a peer
that cannot be installed or fails is reported as null with the reason in peer_errors.
peer_disk_bytes_per_job: the growth of a PostgreSQL peer's database per job (its history).
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from bench_children import Child, say, start_child, stop_children  # scripts/ is on the path
from bench_peer_runs import run_peers
from bench_peers import LANES, PEERS

from cairn.commands.jobs.job import JobRequest, submit_job
from cairn.commands.settings import Settings
from cairn.domain.jobs.kinds import ContractSettings
from cairn.streams.connection import connect
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.server import start_server
from cairn.streams.store import EventStore

# Jobs in flight per Cairn worker process (--concurrency to try another). 16 is the fastest
# of 8 and 16: in --quick runs on the 2-core machine, one worker did 75-91 jobs/s at 16 and
# 43-53 at 8; 32 was no clear gain over 16 within the noise. A no-op job's time is round
# trips, and more jobs in flight overlap more of them.
CONCURRENCY = 16
UNLOADED_JOBS, UNLOADED_RATE = 100, 20


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def parse_ts(ts: str) -> float:
    """An event's RFC 3339 `ts` as epoch seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# ---- Cairn ----------------------------------------------------------------------------------


@dataclass
class Tracker:
    """Follows every partition log of one prefix: when each job was submitted, claimed and
    finished (event times, epoch seconds)."""

    store: EventStore
    positions: dict[int, str] = field(default_factory=dict)
    submitted: dict[str, float] = field(default_factory=dict)
    claimed: dict[str, float] = field(default_factory=dict)
    succeeded: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    async def catch_up(self) -> None:
        for partition in self.store.keys.all_partitions():
            while True:
                after = self.positions.get(partition, "0-0")
                events = await self.store.read_log(partition, after, count=5000)
                if not events:
                    break
                self.positions[partition] = events[-1].position
                for event in events:
                    self.note(event.type, event.agg, event.ts, event.data)

    def note(self, kind: str, job_id: str, ts: str, data: dict[str, Any]) -> None:
        if kind == "job.submitted":
            self.submitted[job_id] = parse_ts(ts)
        elif kind == "job.claimed":
            self.claimed.setdefault(job_id, parse_ts(ts))  # the first claim: a retry is later
        elif kind == "job.succeeded":
            self.succeeded[job_id] = parse_ts(ts)
        elif kind in ("job.failed", "job.lease_expired", "job.dead_lettered", "job.cancelled"):
            self.failed[job_id] = f"{kind} {data}"  # a no-op job has no reason to

    async def wait_for(self, ids: Sequence[str], children: Sequence[Child], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            await self.catch_up()
            if self.failed:
                job_id, why = next(iter(self.failed.items()))
                raise RuntimeError(f"{len(self.failed)} jobs went wrong, {job_id}: {why}")
            left = [i for i in ids if i not in self.succeeded]
            if not left:
                return
            for child in children:
                child.check()
            if time.monotonic() > deadline:
                claimed = sum(i in self.claimed for i in ids)
                raise TimeoutError(
                    f"after {timeout:.0f}s {len(ids) - len(left)} of {len(ids)} jobs succeeded "
                    f"({claimed} claimed); first missing {left[0]}; process logs in "
                    f"{children[0].log.parent}"
                )
            await asyncio.sleep(0.05)

    def claim_ms(self, ids: Sequence[str]) -> list[float]:
        return [(self.claimed[i] - self.submitted[i]) * 1000 for i in ids]


async def server_figures(client: Any) -> tuple[int, int]:
    """The server's used memory and its AOF's size, in bytes."""
    memory, persistence = await client.info("memory"), await client.info("persistence")
    return int(memory["used_memory"]), int(persistence.get("aof_current_size", 0))


def key_group(key: str) -> str:
    """What a key of a Cairn install holds, for the memory breakdown."""
    if key.endswith(":log"):
        return "log"
    for part, group in ((":s:", "aggregate index"), (":cmd:", "command records"),
                        (":{dispatch}:", "dispatch"), (":out:", "output streams")):  # fmt: skip
        if part in key:
            return group
    if ":rm:queue:" in key:
        if key.endswith(":jobs"):
            return "queue documents"
        return "queue indexes" if ":idx:" in key or ":runnable" in key else "queue other"
    return "other read models" if ":rm:" in key else "other"


async def memory_by_key(client: Any, prefix: str, jobs: int) -> dict[str, float]:
    """MEMORY USAGE of every key of `prefix` (all elements counted), grouped, per job."""
    names = [text(k) async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    totals: dict[str, int] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        async with client.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.memory_usage(name, samples=0)
            sizes = await pipe.execute()
        for name, size in zip(chunk, sizes, strict=True):
            group = key_group(name)
            totals[group] = totals.get(group, 0) + int(size or 0)
    per_job = {group: round(total / jobs, 1) for group, total in sorted(totals.items())}
    per_job["total"] = round(sum(totals.values()) / jobs, 1)
    return per_job


def start_cairn(
    url: str, prefix: str, workers: int, concurrency: int, data_dir: Path
) -> list[Child]:
    env = {**os.environ, "CAIRN_REDIS_URL": url, "CAIRN_PREFIX": prefix,
           "CAIRN_DATA_DIR": str(data_dir / prefix)}  # fmt: skip
    cli = [sys.executable, "-m", "cairn.api.cli"]
    roles = [("projector", ["projector"]), ("scheduler", ["scheduler", "--tick", "0.01"])]
    roles += [
        (f"worker w{k}", ["worker", "--id", f"w{k}", "--capabilities", "noop",
                          "--concurrency", str(concurrency), "--lease", "30"])
        for k in range(workers)
    ]  # fmt: skip
    return [
        start_child(name, cli + args, env, data_dir / f"{prefix}-{name.replace(' ', '-')}.log")
        for name, args in roles
    ]


async def submit(store: EventStore, contract: ContractSettings, i: int) -> str:
    request = JobRequest("noop", {}, project=f"p{i % 8}")
    return (await submit_job(store, request, contract, actor="bench")).id


async def run_cairn(
    url: str, data_dir: Path, n: int, workers: int, concurrency: int, unloaded: bool
) -> dict[str, Any]:
    """One scenario, on its own prefix with fresh processes: a warm-up job, then n jobs
    submitted by LANES lanes while the workers run (as the peers' producers do), then, if
    asked, jobs one at a time at UNLOADED_RATE for the claim latency of an idle engine."""
    prefix = f"bench{workers}w{os.getpid()}"
    client = connect(url, max_connections=LANES + 8)
    store = EventStore(client, Keys(prefix, 16))
    contract = Settings().contract()
    tracker = Tracker(store)
    children = start_cairn(url, prefix, workers, concurrency, data_dir)
    results: dict[str, Any] = {}
    try:
        warm = await submit(store, contract, 0)
        await tracker.wait_for([warm], children, timeout=60)
        results["events_per_job"] = len(await store.read_aggregate(warm))

        say(f"cairn, {workers} worker process(es): {n} no-op jobs ...")
        counter = iter(range(n))
        ids: list[str] = []

        async def lane() -> None:
            for i in counter:
                ids.append(await submit(store, contract, i))

        memory_before, aof_before = await server_figures(client)
        started = time.time()
        await asyncio.gather(*(lane() for _ in range(LANES)))
        await tracker.wait_for(ids, children, timeout=max(120, n / 10))
        finished = max(tracker.succeeded[i] for i in ids)  # the event's time, not our poll's
        results["jobs_per_s"] = round(n / (finished - started))
        await asyncio.sleep(1.5)  # the last writes (settles, acknowledgements) land in the AOF
        memory_after, aof_after = await server_figures(client)
        results["memory_per_job_bytes"] = round((memory_after - memory_before) / n)
        results["aof_bytes_per_job"] = round((aof_after - aof_before) / n)
        results["memory_by_key"] = await memory_by_key(client, prefix, n + 1)  # and the warm-up
        # With a backlog, a job's claim latency is mostly the time it queued behind the others.
        loaded = tracker.claim_ms(ids)
        results["claim_loaded_p50_ms"] = percentile(loaded, 0.5)
        results["claim_loaded_p99_ms"] = percentile(loaded, 0.99)

        if unloaded:
            say(f"cairn, unloaded claim latency: {UNLOADED_JOBS} jobs at {UNLOADED_RATE}/s ...")
            ids = []
            paced = time.monotonic()
            for i in range(UNLOADED_JOBS):
                await asyncio.sleep(max(0.0, paced + i / UNLOADED_RATE - time.monotonic()))
                ids.append(await submit(store, contract, i))
            await tracker.wait_for(ids, children, timeout=60)
            idle = tracker.claim_ms(ids)
            results["claim_p50_ms"] = percentile(idle, 0.5)
            results["claim_p99_ms"] = percentile(idle, 0.99)
    finally:
        stop_children(children)
        await client.aclose()
    return results


# ---- the run --------------------------------------------------------------------------------


async def run_cairn_scenarios(url: str, data_dir: Path, n: int, concurrency: int) -> dict[str, Any]:
    one = await run_cairn(url, data_dir, n, workers=1, concurrency=concurrency, unloaded=True)
    two = await run_cairn(url, data_dir, n, workers=2, concurrency=concurrency, unloaded=False)
    return {
        "cairn_jobs_per_s": one["jobs_per_s"],
        "cairn_jobs_per_s_2w": two["jobs_per_s"],
        "claim_p50_ms": one["claim_p50_ms"],
        "claim_p99_ms": one["claim_p99_ms"],
        "claim_loaded_p50_ms": one["claim_loaded_p50_ms"],
        "claim_loaded_p99_ms": one["claim_loaded_p99_ms"],
        "events_per_job": one["events_per_job"],
        "memory_per_job_bytes": one["memory_per_job_bytes"],
        "memory_by_key": one["memory_by_key"],
        "aof_bytes_per_job": one["aof_bytes_per_job"],
        "cairn_concurrency": concurrency,
    }


def print_table(results: dict[str, Any]) -> None:
    cairn, cairn_2w = results["cairn_jobs_per_s"], results["cairn_jobs_per_s_2w"]
    print(f"no-op jobs, n={results['jobs']}, {results['machine']}")
    print("the ceiling: the peers, on the same machine and server in this run")
    print(f"{'':>24} {'jobs/s':>8}  {'cairn 1w / it':>13}  settings")
    concurrency = results["cairn_concurrency"]
    print(f"{'cairn, 1 worker':>24} {cairn:>8}  {'':>13}  --concurrency {concurrency}")
    print(f"{'cairn, 2 workers':>24} {cairn_2w:>8}  {'':>13}  --concurrency {concurrency} each")
    settings = {peer.name: peer.settings for peer in PEERS}
    for name, rate in results["peers"].items():
        version = results["peer_versions"].get(name, "")
        label = f"{name} {version}".strip()
        if rate is None:
            print(f"{label:>24} {'failed':>8}  {'':>13}  {results['peer_errors'][name][:60]}")
        else:
            print(f"{label:>24} {rate:>8}  {cairn / rate:>12.2f}x  {settings[name]}")
    for name, size in results.get("peer_disk_bytes_per_job", {}).items():
        print(f"{name} keeps {size} bytes per job in its PostgreSQL database")
    print(f"claim latency, unloaded ({UNLOADED_RATE}/s): p50 {results['claim_p50_ms']} ms, "
          f"p99 {results['claim_p99_ms']} ms")  # fmt: skip
    print(f"claim latency, under the 1-worker backlog: p50 {results['claim_loaded_p50_ms']} ms, "
          f"p99 {results['claim_loaded_p99_ms']} ms (mostly queueing)")  # fmt: skip
    print(f"events per Cairn job: {results['events_per_job']} (the full audit trail); "
          "a peer job leaves no history")  # fmt: skip
    print(
        f"a finished Cairn job holds {results['memory_per_job_bytes']} bytes of server memory "
        f"(INFO) and wrote {results['aof_bytes_per_job']} bytes to the AOF; by key, per job:"
    )
    for group, size in results["memory_by_key"].items():
        print(f"{group:>24} {size:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 jobs rather than 5,000")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--peers", help="comma-separated subset of: "
                        + ", ".join(p.name for p in PEERS))  # fmt: skip
    parser.add_argument("--no-peers", action="store_true", help="Cairn only")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY,
                        help="jobs in flight per Cairn worker process")  # fmt: skip
    args = parser.parse_args()
    known = [p.name for p in PEERS]
    names = [] if args.no_peers else (args.peers.split(",") if args.peers else known)
    if unknown := sorted(set(names) - set(known)):
        parser.error(f"unknown peers {unknown}; known: {', '.join(known)}")
    n = 500 if args.quick else 5000
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    try:
        server = start_server(workdir / "server", persist=True)
        try:
            # The AOF's growth is measured: no automatic rewrite may shrink it meanwhile.
            plain = redis.Redis.from_url(server.url)
            plain.config_set("auto-aof-rewrite-percentage", 0)
            plain.close()
            results: dict[str, Any] = asyncio.run(
                run_cairn_scenarios(server.url, workdir, n, args.concurrency)
            )
            results.update(run_peers(names, server.url.rsplit("/", 1)[0], n, workdir))
        finally:
            server.stop()
    except BaseException:
        say(f"process logs kept in {workdir}")
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    python = platform.python_version()
    results["jobs"] = n
    results["quick"] = args.quick
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {python}"
    say(f"done in {time.monotonic() - began:.0f}s")
    if args.json:
        print(json.dumps(results))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
