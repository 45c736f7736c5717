"""Parsing the `cairn` command line and running one command; settings are read here, once,
and passed in."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cairn.api.cli import (
    acl,
    agents,
    archive,
    backup,
    catalog,
    everyday,
    planning,
    processes,
    reading,
    services,
    tokens,
)
from cairn.api.cli.logs import configure_logging
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.streams.archive import use_archive_root
from cairn.streams.lifetime import PARENT_PID_VARIABLE, watch_parent

DESCRIPTION = (
    "Run Cairn's processes (up, api, projector, scheduler, worker) and look at its log (status, "
    "tail, replay, rebuild, redis-cli). Without CAIRN_REDIS_URL a command talks to the store "
    "of the `cairn up` that runs with its data directory (CAIRN_DATA_DIR, default ./.cairn)."
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["redis-cli"]:
        # redis-cli's own flags (--raw, -n ...) must reach it as given; argparse would take them.
        args = argparse.Namespace(run=reading.redis_cli, process=False, cli_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        use_archive_root(settings.data_dir.resolve() / "archive")
        if args.process:
            configure_logging(log_format=os.environ.get("CAIRN_LOG_FORMAT") or "text")
            if (parent := os.environ.get(PARENT_PID_VARIABLE, "")).isdigit():
                watch_parent(int(parent))  # where the kernel's death signal is not to be had
        return int(args.run(settings, args) or 0)
    except CairnError as e:
        print(f"cairn: {e.message}", file=sys.stderr)
        for item in e.details.get("errors", []):
            print(f"  {item['path']}: {item['reason']}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"cairn: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description=DESCRIPTION)
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
        processes.run_up,
        "run everything: embedded server (unless CAIRN_REDIS_URL), API, projector, scheduler, "
        "workers",
        process=True,
    )
    up.add_argument("--workers", type=int, default=1, help="local workers to run (0 for none)")
    listening(up)
    api = command("api", processes.run_api, "serve the HTTP API", process=True)
    listening(api)
    projector = command(
        "projector", processes.run_projector, "keep the read models up to date", process=True
    )
    projector.add_argument(
        "--lease-ms",
        type=int,
        default=15_000,
        help="ms a projector holds a partition; another takes over after (default 15000)",
    )
    scheduler = command(
        "scheduler",
        processes.run_scheduler,
        "dispatch work, run ready tasks, reap leases",
        process=True,
    )
    scheduler.add_argument("--tick", type=float, default=0.05, help="seconds between rounds")
    command("pr-watch", processes.run_pr_watch,
            "follow the pull requests jobs opened: checks, reviews, merges (CAIRN_PR_POLL_S)",
            process=True)  # fmt: skip
    worker = command(
        "worker", processes.run_worker, "claim and run jobs this machine can do", process=True
    )
    worker.add_argument(
        "--capabilities", help="comma-separated, e.g. git,gh,codex,noop; default: probe PATH"
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="jobs to run at once (default 1)"
    )
    worker.add_argument("--id", dest="worker_id", help="the worker's name (default: host-pid)")
    worker.add_argument("--lease", type=float, help="lease seconds (default CAIRN_LEASE_S, 120)")
    worker.add_argument(
        "--model",
        help="model for this worker's runtimes when a task names none "
        "(default CAIRN_<RUNTIME>_MODEL, e.g. CAIRN_CLAUDE_MODEL; else the CLI's own)",
    )
    worker.add_argument(
        "--effort",
        help="reasoning effort, likewise (default CAIRN_<RUNTIME>_EFFORT; gemini takes none)",
    )
    worker.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds to let running jobs finish before releasing",
    )
    worker.add_argument(
        "--cancel-grace",
        type=float,
        default=5.0,
        help="after SIGTERM to a cancelled job's agent, seconds before SIGKILL (default 5)",
    )
    command("status", reading.status, "log lengths and projection lag per partition")
    rebuild = command("rebuild", reading.rebuild, "rebuild read models from the log, then switch")
    rebuild.add_argument("--projection", default="all", help="board, queue, imports, proposals, "
                         "templates, schedules or all (the default)")  # fmt: skip
    tail = command("tail", reading.tail, "print the event log (for auditors)")
    tail.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events as they come"
    )
    tail.add_argument("--type", dest="type_glob", help="only event types matching this glob")
    tail.add_argument("--aggregate", help="only this aggregate id")
    tail.add_argument("--project", help="only this project's events")
    tail.add_argument("--json", action="store_true", help="one JSON object a line")
    replay = command("replay", reading.replay, "each event of an aggregate with the state after it")
    replay.add_argument("id", help="the aggregate's id, e.g. a task's")
    planning.add_commands(command)
    catalog.add_commands(command)
    tokens.add_commands(command)
    backup.add_commands(command)
    archive.add_commands(command)
    acl.add_commands(command)
    agents.add_commands(command)
    everyday.add_commands(command)
    services.add_commands(command)
    redis_cli = command(
        "redis-cli", reading.redis_cli, "run redis-cli against the store, e.g. XRANGE KEY - +"
    )
    redis_cli.add_argument(
        "cli_args", nargs=argparse.REMAINDER, help="redis-cli's arguments, passed as given"
    )
    return parser
