"""Chaos run: no-op jobs through a real Cairn (projector, scheduler, two workers, an embedded
server with AOF `always`) while the store and the processes are hurt, one fault after another:

  client-kill   CLIENT KILL of every client connection
  stall         SIGSTOP of the server for longer than a lease, then SIGCONT
  server-kill   kill -9 of the server, restarted on the same data
  projector-kill, scheduler-kill, worker-kill
                kill -9 of that Cairn process, started again

    python scripts/chaos.py [--jobs 1000] [--quick] [--json]

It prints, for every submitted job: how many are terminal, lost (ended other than succeeded:
a no-op job can only fail through a fault), stuck (not terminal when the run ends), succeeded
twice, claimed twice (run again after a fault: allowed, reported), and acknowledged submissions
missing from the log; and per fault the recovery time, from the fault's end until the next
job succeeds. Goal: 0 lost, 0 stuck, 0 succeeded twice, 0 acknowledged missing. Exit status
1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cairn.commands.jobs.job import JobRequest, submit_job
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.domain.jobs.job import TERMINAL
from cairn.streams.connection import connect
from cairn.streams.envelope import Envelope
from cairn.streams.keys import Keys
from cairn.streams.server import EmbeddedServer, start_server
from cairn.streams.store import EventStore

LEASE_S = 4.0
PARTITIONS = 4
FAULTS = ("client-kill", "stall", "server-kill", "projector-kill", "scheduler-kill",
          "worker-kill")  # fmt: skip


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Install:
    """The server and the Cairn processes of the run, each of which a fault may kill."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server: EmbeddedServer = start_server(folder / "redis", persist=True)
        self.port = self.server.port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
            "CAIRN_REDIS_URL": self.server.url,
            "CAIRN_PREFIX": "chaos",
            "CAIRN_PARTITIONS": str(PARTITIONS),
            "CAIRN_DATA_DIR": str(folder / "data"),
            "CAIRN_RETRY_BASE_S": "0.5",
            "CAIRN_RETRY_CAP_S": "2",
            "CAIRN_LEASE_S": str(LEASE_S),
        }
        self.argv = {
            "projector": ["projector", "--lease-ms", "3000"],
            "scheduler": ["scheduler"],
            "worker-1": ["worker", "--id", "w1", "--capabilities", "noop", "--concurrency", "8",
                         "--lease", str(LEASE_S), "--grace", "1"],
            "worker-2": ["worker", "--id", "w2", "--capabilities", "noop", "--concurrency", "8",
                         "--lease", str(LEASE_S), "--grace", "1"],
        }  # fmt: skip

    async def always_fsync(self) -> None:
        client = connect(self.server.url)
        await client.config_set("appendfsync", "always")
        await client.aclose()

    def start(self, name: str) -> None:
        with (self.folder / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "cairn.api.cli", *self.argv[name]],
                env=self.env, stdout=log, stderr=log,
            )  # fmt: skip

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.server.stop()


async def patiently(call: Callable[[], Awaitable[Any]], tries: int = 600) -> Any:
    """A read of our own that rides out the faults we cause."""
    for _ in range(tries):
        try:
            return await call()
        except CairnError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the store stayed unreachable for a minute")


async def read_log(store: EventStore) -> list[Envelope]:
    events: list[Envelope] = []
    for p in store.keys.all_partitions():
        after = "0-0"
        while batch := await store.read_log(p, after, count=10_000):
            after = batch[-1].position
            events.extend(batch)
    return events


class Run:
    def __init__(self, install: Install, jobs: int, rate: float) -> None:
        self.install, self.jobs, self.rate = install, jobs, rate
        self.keys = Keys("chaos", PARTITIONS)
        self.client = connect(install.server.url)
        self.store = EventStore(self.client, self.keys)
        self.acknowledged: list[str] = []
        self.recoveries: list[tuple[str, float | None]] = []
        self.settings = Settings(prefix="chaos", partitions=PARTITIONS)

    async def submit_all(self) -> None:
        """Submit at `rate` jobs a second; a submission is acknowledged once it returns (a
        failed one is retried with the same idempotency key, so it lands once)."""
        rng = random.Random(7)
        contract = self.settings.contract()
        for i in range(self.jobs):
            request = JobRequest("noop", {"sleepMs": rng.randint(50, 500)}, max_attempts=5,
                                 project=f"p{i % 8}")  # fmt: skip
            key = f"chaos-{i}"
            while True:
                try:
                    result = await submit_job(self.store, request, contract, actor="chaos",
                                              idempotency_key=key)  # fmt: skip
                    break
                except CairnError:
                    await asyncio.sleep(0.2)
            self.acknowledged.append(result.id)
            await asyncio.sleep(1 / self.rate)

    async def successes(self) -> int:
        async def count() -> int:
            n = 0
            for p in self.keys.all_partitions():
                after = "0-0"
                while batch := await self.client.xrange(self.keys.log(p), min=f"({after}",
                                                        count=10_000):  # fmt: skip
                    after = batch[-1][0].decode()
                    n += sum(1 for _, f in batch if f[b"type"] == b"job.succeeded")
            return n

        return int(await patiently(count))

    async def fault(self, kind: str) -> None:
        install = self.install
        say(f"chaos: {kind}")
        if kind == "client-kill":
            admin = connect(install.server.url)
            await patiently(lambda: admin.client_kill_filter(_type="normal", skipme=True))
            await admin.aclose()
        elif kind == "stall":
            install.server.process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(LEASE_S + 1.5)
            install.server.process.send_signal(signal.SIGCONT)
        elif kind == "server-kill":
            install.server.process.send_signal(signal.SIGKILL)
            install.server.process.wait()
            await asyncio.sleep(1.0)
            install.server = start_server(install.folder / "redis", port=install.port)
            await patiently(install.always_fsync)
        else:
            name = {"projector-kill": "projector", "scheduler-kill": "scheduler",
                    "worker-kill": random.choice(["worker-1", "worker-2"])}[kind]  # fmt: skip
            install.kill(name)
            await asyncio.sleep(0.5)
            install.start(name)

    async def recovery(self, kind: str, before: int, deadline_s: float = 60) -> None:
        """Seconds from the fault's end until another job succeeds (None if none did)."""
        started = time.monotonic()
        while time.monotonic() - started < deadline_s:
            if await self.successes() > before:
                took = time.monotonic() - started
                self.recoveries.append((kind, round(took, 2)))
                return
            if len(self.acknowledged) == self.jobs and before >= len(self.acknowledged):
                break
            await asyncio.sleep(0.05)
        self.recoveries.append((kind, None))

    async def faults(self, every_s: float, submitting: asyncio.Task[None]) -> None:
        order = list(FAULTS)
        i = 0
        while not submitting.done():
            await asyncio.sleep(every_s)
            if submitting.done():
                break
            kind = order[i % len(order)]
            i += 1
            await self.fault(kind)
            await self.recovery(kind, await self.successes())

    async def settle(self, timeout_s: float) -> None:
        """Wait until every acknowledged job is terminal (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = await patiently(lambda: read_log(self.store))
            done = {e.agg for e in events if _terminal(e)}
            if set(self.acknowledged) <= done:
                return
            await asyncio.sleep(1)

    async def report(self) -> dict[str, Any]:
        events = await patiently(lambda: read_log(self.store))
        submitted = {e.agg for e in events if e.type == "job.submitted"}
        status: dict[str, str] = {}
        for e in events:
            if e.agg in submitted:
                status[e.agg] = _status_after(status.get(e.agg, "queued"), e)
        succeeded = Counter(e.agg for e in events if e.type == "job.succeeded")
        claimed = Counter(e.agg for e in events if e.type == "job.claimed")
        final = Counter(status.values())
        return {
            "jobs": self.jobs,
            "acknowledged": len(self.acknowledged),
            "terminal": sum(n for s, n in final.items() if s in TERMINAL),
            "succeeded": final["succeeded"],
            "lost": sum(n for s, n in final.items() if s in TERMINAL and s != "succeeded"),
            "stuck": sum(n for s, n in final.items() if s not in TERMINAL),
            "succeeded_twice": sum(1 for n in succeeded.values() if n > 1),
            "claimed_twice": sum(1 for n in claimed.values() if n > 1),
            "acknowledged_missing": len(set(self.acknowledged) - submitted),
            "final_statuses": dict(final),
            "faults": len(self.recoveries),
            "recovery_s": [{"fault": k, "seconds": s} for k, s in self.recoveries],
        }


def _terminal(e: Envelope) -> bool:
    if e.type in {"job.succeeded", "job.cancelled", "job.dead_lettered"}:
        return True
    return e.type == "job.failed" and not e.data.get("retry_at")


def _status_after(status: str, e: Envelope) -> str:
    """A job's status after event `e`, from the event types alone (enough for this run)."""
    if e.type == "job.failed":
        return "queued" if e.data.get("retry_at") else "failed"
    return {
        "job.claimed": "running", "job.succeeded": "succeeded", "job.cancelled": "cancelled",
        "job.dead_lettered": "dead_letter", "job.lease_expired": "queued",
        "job.released": "queued", "job.cancel_requested": "cancel_requested",
    }.get(e.type, status)  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="cairn-chaos-"))
    install = Install(folder)
    await install.always_fsync()
    for name in install.argv:
        install.start(name)
    run = Run(install, args.jobs, args.rate)
    started = time.monotonic()
    try:
        submitting = asyncio.create_task(run.submit_all())
        await run.faults(args.every, submitting)
        await submitting
        say(f"chaos: all {args.jobs} submitted; waiting for every job to end")
        await run.settle(args.settle)
        report = await run.report()
        report["seconds"] = round(time.monotonic() - started, 1)
        report["folder"] = str(folder)
        return report
    finally:
        await run.client.aclose()
        install.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="no-op jobs to submit")
    parser.add_argument("--rate", type=float, default=8.0, help="submissions a second")
    parser.add_argument("--every", type=float, default=8.0, help="seconds between faults")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait, after the last submission, for every job to end")
    parser.add_argument("--quick", action="store_true",
                        help="a short pass for CI: 300 jobs at 8/s, a fault every 4 s")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.rate, args.every = 300, 8.0, 4.0
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key in ("jobs", "acknowledged", "terminal", "succeeded", "lost", "stuck",
                    "succeeded_twice", "claimed_twice", "acknowledged_missing", "faults",
                    "seconds"):  # fmt: skip
            print(f"{key:>22}: {report[key]}")
        print(f"{'final statuses':>22}: {report['final_statuses']}")
        by_kind: dict[str, list[float | None]] = {}
        for item in report["recovery_s"]:
            by_kind.setdefault(item["fault"], []).append(item["seconds"])
        for kind, seconds in by_kind.items():
            shown = ", ".join("none" if s is None else f"{s:.2f}" for s in seconds)
            print(f"{'recovery ' + kind:>22}: {shown} s")
    missed = any(report[k] for k in ("lost", "stuck", "succeeded_twice", "acknowledged_missing"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
