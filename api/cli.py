"""The `cairn` command: run the processes (up, api, projector) and look at the log (status,
tail, replay, rebuild). Settings are read here, once, and passed in."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import redis.asyncio as aioredis

from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.streams.connection import connect
from cairn.streams.keys import Keys


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.run(settings, args) or 0)
    except CairnError as e:
        print(f"cairn: {e.message}", file=sys.stderr)
        for item in e.details.get("errors", []):
            print(f"  {item['path']}: {item['reason']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Callable[..., Any], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(run=run)
        return p

    up = command(
        "up", _up, "run everything: embedded server (unless CAIRN_REDIS_URL), API, projector"
    )
    up.add_argument("--workers", type=int, default=1, help="local workers to run (0 for none)")
    command("api", _api, "serve the HTTP API (CAIRN_HOST, CAIRN_PORT)")
    projector = command("projector", _projector, "keep the read models up to date")
    projector.add_argument("--lease-ms", type=int, default=15_000)
    scheduler = command("scheduler", _scheduler, "dispatch work, run ready tasks, reap leases")
    scheduler.add_argument("--tick", type=float, default=0.05, help="seconds between rounds")
    worker = command("worker", _worker, "claim and run jobs this machine can do")
    worker.add_argument("--capabilities", help="comma-separated; default: probe PATH")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--id", dest="worker_id", help="default: host-pid")
    worker.add_argument("--lease", type=float, help="lease seconds (default CAIRN_LEASE_S, 120)")
    worker.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds to let running jobs finish before releasing",
    )
    command("status", _status, "log lengths and projection lag per partition")
    rebuild = command("rebuild", _rebuild, "rebuild read models from the log, then switch")
    rebuild.add_argument("--projection", default="all", help="board, queue or all")
    tail = command("tail", _tail, "print the event log (for auditors)")
    tail.add_argument("--follow", "-f", action="store_true")
    tail.add_argument("--type", dest="type_glob", help="only event types matching this glob")
    tail.add_argument("--aggregate", help="only this aggregate id")
    tail.add_argument("--project", help="only this project's events")
    tail.add_argument("--json", action="store_true", help="one JSON object a line")
    replay = command("replay", _replay, "each event of an aggregate with the state after it")
    replay.add_argument("id")
    return parser


def _client(settings: Settings) -> aioredis.Redis:
    if not settings.redis_url:
        raise CairnError("CAIRN_REDIS_URL is not set (it is set for you under `cairn up`)")
    return connect(settings.redis_url)


def _keys(settings: Settings) -> Keys:
    return Keys(settings.prefix, settings.partitions)


# ---- processes ----------------------------------------------------------------------------


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.supervisor import run_up

    return run_up(settings, workers=args.workers)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from cairn.api.app import create_app

    uvicorn.run(
        create_app(settings, _client(settings)),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )
    return 0


def _projector(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.catalog import all_projections
    from cairn.projections.runner import run_projections

    async def run() -> None:
        client = _client(settings)
        stop = _stop_on_signals()
        projections = list(all_projections().values())
        await run_projections(client, _keys(settings), projections, stop, lease_ms=args.lease_ms)
        await client.aclose()

    asyncio.run(run())
    return 0


def _scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.scheduler import Scheduler, SchedulerConfig
    from cairn.streams.dispatch import Limits

    limits = Limits(settings.max_running, settings.repo_concurrency, settings.project_concurrency)
    config = SchedulerConfig(
        limits=limits, tick_s=args.tick, default_lease_ms=int(settings.lease_s * 1000)
    )

    async def run() -> None:
        client = _client(settings)
        await Scheduler(client, settings, config).run(_stop_on_signals())
        await client.aclose()

    asyncio.run(run())
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    import socket

    from cairn.worker.daemon import Worker, WorkerConfig
    from cairn.worker.probe import parse_capabilities, probe_capabilities

    if args.capabilities:
        capabilities = parse_capabilities(args.capabilities)
    else:
        capabilities = probe_capabilities()
        print(
            f"cairn worker: probed PATH, capabilities: {', '.join(capabilities) or 'none'}",
            file=sys.stderr,
            flush=True,
        )
    if not capabilities:
        raise CairnError(
            "no capabilities: --capabilities names none; pass at least one (say, noop)"
        )
    if args.concurrency < 1:
        raise CairnError("--concurrency must be at least 1")
    config = WorkerConfig(
        worker_id=args.worker_id or f"{socket.gethostname()}-{os.getpid()}",
        capabilities=capabilities,
        concurrency=args.concurrency,
        lease_s=args.lease or settings.lease_s,
        stop_grace_s=args.grace,
    )

    async def run() -> None:
        client = _client(settings)
        await Worker(client, settings, config).run(_stop_on_signals())
        await client.aclose()

    asyncio.run(run())
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# ---- looking at the log -------------------------------------------------------------------


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.catalog import all_projections
    from cairn.projections.runner import current_space
    from cairn.streams.groups import group_lag

    async def run() -> None:
        client, keys = _client(settings), _keys(settings)
        print(f"{'partition':>9} {'events':>9} {'projection':>12} {'lag':>7} {'pending':>8}")
        totals = dict.fromkeys(all_projections(), 0)
        for p in keys.all_partitions():
            length = await client.xlen(keys.log(p))
            groups = await group_lag(client, keys.log(p))
            for name in totals:
                space = await current_space(client, keys, name, p)
                info = groups.get(space.group, {})
                lag = info.get("lag")
                lag = length if lag is None and not info else lag
                totals[name] += int(lag or 0)
                shown = lag if lag is not None else "?"
                print(
                    f"{p:>9} {length:>9} {space.group:>12} {shown:>7} {info.get('pending', 0):>8}"
                )
        for name, lag in totals.items():
            print(f"{name} projection lag: {lag} events")
        await client.aclose()

    asyncio.run(run())
    return 0


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.catalog import all_projections
    from cairn.projections.runner import rebuild

    known = all_projections()
    names = list(known) if args.projection == "all" else [args.projection]
    if any(name not in known for name in names):
        raise CairnError(f"unknown projection {args.projection!r}; known: all, {', '.join(known)}")

    async def run() -> None:
        client = _client(settings)
        for name in names:
            started = time.monotonic()
            done = await rebuild(client, _keys(settings), known[name], _progress_printer(name))
            elapsed = time.monotonic() - started
            print(
                f"\nrebuilt {name} from {done} events in {elapsed:.2f}s and switched over",
                file=sys.stderr,
            )
        await client.aclose()

    asyncio.run(run())
    return 0


def _progress_printer(name: str) -> Callable[[int, int], None]:
    """Print rebuild progress on one line, at most twice a second."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 0.5 or done == total:
            last[0] = time.monotonic()
            percent = 100 * done // max(total, 1)
            print(
                f"\rrebuilding {name}: {done}/{total} events ({percent}%)",
                end="",
                file=sys.stderr,
                flush=True,
            )

    return progress


def _tail(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.audit import follow_log, format_event

    async def run() -> None:
        client = _client(settings)
        with suppress(asyncio.CancelledError):
            async for partition, event in follow_log(
                client,
                _keys(settings),
                follow=args.follow,
                type_glob=args.type_glob,
                aggregate=args.aggregate,
                project=args.project,
            ):
                print(format_event(partition, event, as_json=args.json), flush=True)
        await client.aclose()

    with suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.audit import replay_lines

    async def run() -> int:
        client = _client(settings)
        try:
            lines = await replay_lines(client, _keys(settings), args.id)
        finally:
            await client.aclose()
        for line in lines:
            print(line)
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
