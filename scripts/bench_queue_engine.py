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
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from bench_peers import COMMON, HARNESS, PEERS, Peer  # scripts/ is on the path of a script

from cairn.commands.jobs import JobRequest, submit_job
from cairn.commands.settings import Settings
from cairn.domain.job_types import ContractSettings
from cairn.streams.connection import connect
from cairn.streams.envelope import text
from cairn.streams.keys import Keys
from cairn.streams.server import free_port, start_server
from cairn.streams.store import EventStore

LANES = 32  # concurrent submitters, for Cairn and for every peer's producer
# Jobs in flight per Cairn worker process (--concurrency to try another). 16 is the fastest
# of 8 and 16: in --quick runs on the 2-core machine, one worker did 75-91 jobs/s at 16 and
# 43-53 at 8; 32 was no clear gain over 16 within the noise. A no-op job's time is round
# trips, and more jobs in flight overlap more of them.
CONCURRENCY = 16
UNLOADED_JOBS, UNLOADED_RATE = 100, 20
VENVS = Path.home() / ".cache" / "cairn-bench" / "venvs"
ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)


def parse_ts(ts: str) -> float:
    """An event's RFC 3339 `ts` as epoch seconds."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def read_tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# ---- processes ------------------------------------------------------------------------------


@dataclass
class Child:
    """A subprocess we started, its output going to `log`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    finishes: bool = False  # a producer exits 0 when done; a worker should never exit

    def check(self) -> None:
        """Raise with the end of its output if it has exited when it should not have."""
        code = self.process.poll()
        if code is not None and (code != 0 or not self.finishes):
            raise ChildExited(f"{self.name} exited with {code}:\n{read_tail(self.log)}")


class ChildExited(RuntimeError):
    pass


def start_child(
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    log: Path,
    cwd: Path = ROOT,
    finishes: bool = False,
) -> Child:
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Child(name, process, log, finishes)


def stop_children(children: Sequence[Child], timeout: float = 15.0) -> None:
    """SIGTERM each child (a pool's parent stops its own workers), wait, then SIGKILL what is
    left of its process group."""
    for child in children:
        if child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"  {child.name} still running {timeout:.0f}s after SIGTERM: killing it")
        signal_group(child, signal.SIGKILL)  # leftovers of its group, if any
        child.process.wait()


def signal_group(child: Child, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # its own session: the group id is its pid
        os.killpg(child.process.pid, sig)


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


# ---- peers ----------------------------------------------------------------------------------


class PeerFailed(RuntimeError):
    pass


def ensure_venv(peer: Peer) -> Path:
    """The peer's own virtual environment, made and installed unless it already imports."""
    venv = VENVS / peer.name
    python = venv / "bin" / "python"
    if python.exists() and can_import(python, peer.imports):
        return venv
    say(f"  installing {' '.join(peer.packages)} into {venv} ...")
    # The same interpreter as Cairn's, so the comparison is not one between Python versions.
    make = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True
    )
    if make.returncode != 0:
        raise PeerFailed(f"venv creation failed: {make.stderr.strip()[-500:]}")
    try:
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *peer.packages],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise PeerFailed("pip install took over 15 minutes") from None
    if install.returncode != 0 or not can_import(python, peer.imports):
        errors = [line for line in install.stderr.splitlines() if "is ignored" not in line]
        raise PeerFailed(f"pip install {' '.join(peer.packages)} failed: {errors[-5:]}")
    return venv


def can_import(python: Path, modules: str) -> bool:
    probe = subprocess.run([str(python), "-c", f"import {modules}"], capture_output=True)
    return probe.returncode == 0


def read_version(venv: Path, peer: Peer) -> str:
    package = peer.packages[0].split("[")[0]
    code = f"from importlib.metadata import version; print(version({package!r}))"
    shown = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True)
    return shown.stdout.decode().strip()


def write_peer_files(peer: Peer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.py").write_text(COMMON + textwrap.dedent(peer.tasks))
    producer = COMMON + textwrap.dedent(peer.producer) + HARNESS.replace("{lanes}", str(LANES))
    (folder / "produce.py").write_text(producer)


@dataclass
class Postgres:
    """A PostgreSQL server the benchmark started (Debian's packages) in its own folder."""

    bin: Path
    folder: Path
    port: int
    as_user: list[str]  # the prefix that runs its tools as the `postgres` user when we are root

    def url(self, database: str) -> str:
        return f"postgresql://bench@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench",
             "-d", database, "-Atqc", statement], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise PeerFailed(f"psql {statement!r}: {done.stderr.strip()[-300:]}")
        return done.stdout.strip()

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"),
                        "-m", "fast", "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_bin() -> Path:
    """Debian's PostgreSQL (the newest installed), installed with apt-get when we are root."""
    for attempt in range(2):
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                          key=lambda p: int(p.parent.parent.name) if p.parent.parent.name
                          .isdigit() else 0)  # fmt: skip
        if versions:
            return versions[-1].parent
        if attempt or os.geteuid() != 0 or shutil.which("apt-get") is None:
            break
        say("  installing postgresql (apt-get) ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], env=env,
                       capture_output=True, timeout=900)  # fmt: skip
    raise PeerFailed("PostgreSQL is not installed (apt-get install postgresql)")


def start_postgres() -> Postgres:
    """initdb in a fresh folder and start PostgreSQL on a free port, as `postgres` when we are
    root (initdb refuses root). Commits are durable within a moment (synchronous_commit=off),
    as Cairn's AOF is (appendfsync everysec): a crash loses at most the last moment."""
    binary = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="cairn-bench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port = free_port()
    made = subprocess.run([*as_user, str(binary / "initdb"), "-D", str(folder / "data"), "-U",
                           "bench", "--auth=trust", "-E", "UTF8", "--no-sync"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if made.returncode != 0:
        raise PeerFailed(f"initdb failed: {made.stderr.strip()[-500:]}")
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c synchronous_commit=off "
               "-c max_connections=200")  # fmt: skip
    started = subprocess.run([*as_user, str(binary / "pg_ctl"), "-D", str(folder / "data"), "-o",
                              options, "-l", str(folder / "server.log"), "-w", "start"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    if started.returncode != 0:
        raise PeerFailed(f"PostgreSQL did not start: {read_tail(folder / 'server.log', 500)}")
    return Postgres(binary, folder, port, as_user)


def run_peer(
    peer: Peer, base_url: str, n: int, workdir: Path, postgres: Postgres | None = None
) -> tuple[float, str, int | None]:
    """jobs/s of n no-op jobs through `peer` (and its version): from the producer's first
    enqueue until the tasks' counter reaches n; and, for a peer on PostgreSQL, its database's
    growth per job (its history, on disk)."""
    venv = ensure_venv(peer)
    folder = workdir / peer.name
    write_peer_files(peer, folder)
    url = f"{base_url}/{peer.db}"
    key = f"bench:{peer.name}:done"
    counter = redis.Redis.from_url(url)
    counter.flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(BENCH_URL=url, BENCH_KEY=key, PYTHONPATH=str(folder),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")  # fmt: skip
    if peer.postgres:
        if postgres is None:
            raise PeerFailed("needs PostgreSQL, which did not start")
        postgres.sql(f"DROP DATABASE IF EXISTS {peer.name}")
        postgres.sql(f"CREATE DATABASE {peer.name}")
        env["BENCH_PG"] = postgres.url(peer.name)
    if peer.setup:
        made = subprocess.run([str(venv / "bin" / peer.setup[0]), *peer.setup[1:]], env=env,
                              cwd=folder, capture_output=True, text=True, timeout=300)  # fmt: skip
        if made.returncode != 0:
            raise PeerFailed(f"{' '.join(peer.setup)} failed: {made.stderr.strip()[-500:]}")
    worker_argv = [str(venv / "bin" / peer.worker[0])]
    worker_argv += [arg.replace("{url}", url) for arg in peer.worker[1:]]
    say(f"{peer.name}: {n} no-op jobs, {peer.settings} ...")
    children = [start_child(f"{peer.name} worker", worker_argv, env, folder / "worker.log", folder)]
    try:
        children.append(
            start_child(f"{peer.name} producer", [str(venv / "bin" / "python"), "produce.py",
                        str(n)], env, folder / "producer.log", folder, finishes=True)
        )  # fmt: skip
        started = wait_peer(counter, f"{key}:started", children, timeout=120)
        size = database_size(postgres, peer)
        wait_count(counter, key, n, children, timeout=max(120, n / 10))
        finished = time.time()
        grown = database_size(postgres, peer)
        per_job = round((grown - size) / n) if grown is not None and size is not None else None
        return n / (finished - started), read_version(venv, peer), per_job
    except ChildExited as e:
        raise PeerFailed(str(e)) from None
    finally:
        # taskiq's worker child does not exit after a SIGTERM (taskiq-python/taskiq#646), so
        # peers get less time than Cairn's processes before the SIGKILL.
        stop_children(children, timeout=5)
        counter.close()


def database_size(postgres: Postgres | None, peer: Peer) -> int | None:
    if postgres is None or not peer.postgres:
        return None
    return int(postgres.sql("SELECT pg_database_size(current_database())", peer.name))


def wait_peer(counter: redis.Redis, key: str, children: Sequence[Child], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (value := counter.get(key)) is None:
        for child in children:
            child.check()
        if time.monotonic() > deadline:
            raise PeerFailed(f"not warmed up in {timeout:.0f}s:\n{read_tail(children[0].log)}")
        time.sleep(0.05)
    return float(value)


def wait_count(
    counter: redis.Redis, key: str, n: int, children: Sequence[Child], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while int(counter.get(key) or 0) < n:
        if time.monotonic() - checked > 0.5:
            for child in children:
                child.check()
            checked = time.monotonic()
        if time.monotonic() > deadline:
            done = int(counter.get(key) or 0)
            raise PeerFailed(f"{done} of {n} jobs done after {timeout:.0f}s")
        time.sleep(0.002)


def run_peers(names: Sequence[str], base_url: str, n: int, workdir: Path) -> dict[str, Any]:
    """Every peer in turn; a failure is recorded and the next one runs."""
    rates: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    versions: dict[str, str] = {}
    disk: dict[str, int | None] = {}
    postgres, postgres_error = None, ""
    if any(peer.postgres and peer.name in names for peer in PEERS):
        try:
            postgres = start_postgres()
        except PeerFailed as e:
            postgres_error = str(e)
    try:
        for peer in PEERS:
            if peer.name not in names:
                continue
            try:
                if peer.postgres and postgres is None:
                    raise PeerFailed(postgres_error)
                rate, versions[peer.name], grown = run_peer(peer, base_url, n, workdir, postgres)
                rates[peer.name] = round(rate)
                if grown is not None:
                    disk[peer.name] = grown
            except Exception as e:  # a peer must never stop the benchmark
                rates[peer.name] = None
                errors[peer.name] = f"{type(e).__name__}: {e}"
                say(f"  {peer.name} failed: {errors[peer.name]}")
    finally:
        if postgres is not None:
            postgres.stop()
    return {"peers": rates, "peer_errors": errors, "peer_versions": versions,
            "peer_disk_bytes_per_job": disk}  # fmt: skip


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
