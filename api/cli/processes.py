"""The process commands: `cairn up` (everything), and each process on its own."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal

from cairn.api.cli.datadir import find_store
from cairn.api.cli.store import keys_of, open_client
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError
from cairn.streams.connection import connect


def listening(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with --host and --port, where given, over CAIRN_HOST and CAIRN_PORT."""
    host = settings.host if args.host is None else args.host
    port = settings.port if args.port is None else args.port
    if not 0 < port < 65536:
        raise CairnError(f"--port must be between 1 and 65535, not {port}")
    return dataclasses.replace(settings, host=host, port=port)


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.cli.up import supervise

    if args.workers < 0:
        raise CairnError("--workers must be 0 (no local worker) or more")
    return supervise(listening(settings, args), workers=args.workers)


def run_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from cairn.api.app import create_app
    from cairn.api.auth import check_admin_token
    from cairn.api.cli.address import check_port_free
    from cairn.api.http11 import H11Protocol

    settings = listening(settings, args)
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
        http=H11Protocol,  # oversized headers get 431 problem+json, not a reset
    )
    return 0


def run_projector(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.catalog import all_projections
    from cairn.projections.projector import run_projections

    async def run() -> None:
        client = await open_client(settings)
        stop = _stop_on_signals()
        projections = list(all_projections().values())
        await run_projections(client, keys_of(settings), projections, stop, lease_ms=args.lease_ms)
        await client.aclose()

    asyncio.run(run())
    return 0


def run_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.scheduler import Scheduler, SchedulerConfig
    from cairn.streams.dispatch import Limits

    limits = Limits(settings.max_running, settings.repo_concurrency, settings.project_concurrency)
    config = SchedulerConfig(
        limits=limits, tick_s=args.tick, default_lease_ms=int(settings.lease_s * 1000)
    )

    async def run() -> None:
        client = await open_client(settings)
        await Scheduler(client, settings, config).run(_stop_on_signals())
        await client.aclose()

    asyncio.run(run())
    return 0


def run_pr_watch(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.jobs.pulls import Pulls
    from cairn.streams.keys import Keys
    from cairn.worker.pr_watch import PrWatcher, WatchConfig

    pulls = settings.pulls
    config = WatchConfig(poll_s=pulls.poll_s, max_poll_s=pulls.max_poll_s,
                         budget_per_minute=pulls.budget_per_minute)  # fmt: skip

    async def run() -> None:
        client = await open_client(settings)
        opened = Pulls(client, Keys(settings.prefix, settings.partitions)).open
        await PrWatcher(client, settings, config, opened).run(_stop_on_signals())
        await client.aclose()

    asyncio.run(run())
    return 0


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    import socket

    from cairn.worker.agents.invocation import worker_defaults
    from cairn.worker.daemon import Worker, WorkerConfig
    from cairn.worker.probe import agents_bin, parse_capabilities, probe_capabilities, report
    from cairn.worker.sandbox import AGENT_RUNTIMES, prepare_sandbox, set_undumpable

    set_undumpable()  # nothing it starts may read its memory, environment or descriptors

    # The CLIs `cairn agents install` put in the data dir come first, for the probe and for
    # every step (their PATH is the worker's).
    os.environ["PATH"] = f"{agents_bin(settings.data_dir)}{os.pathsep}{os.environ.get('PATH', '')}"
    probed, agents = probe_capabilities(os.environ)
    capabilities = parse_capabilities(args.capabilities) if args.capabilities else probed
    log = logging.getLogger("cairn.worker")
    for line in report(capabilities, agents, probed=not args.capabilities):
        log.info("%s", line)
    sandbox = prepare_sandbox(settings.execution.sandbox, settings.data_dir)
    log.info("%s", sandbox.check.line() if sandbox.enabled else
             "sandbox: off (CAIRN_SANDBOX=off): agent steps run unsandboxed, each run says so")
    if not sandbox.usable:
        refused = [c for c in capabilities if c in AGENT_RUNTIMES]
        capabilities = [c for c in capabilities if c not in AGENT_RUNTIMES]
        if refused:
            log.warning("this worker takes no agent jobs (%s) without its sandbox: install it "
                        "(above), or set CAIRN_SANDBOX=off to run agents unsandboxed",
                        ", ".join(refused))  # fmt: skip
    if not args.capabilities:
        log.info("probed PATH, capabilities: %s", ", ".join(capabilities) or "none")
    if not capabilities:
        raise CairnError(
            "no capabilities: --capabilities names none; pass at least one (say, noop)"
        )
    if args.concurrency < 1:
        raise CairnError("--concurrency must be at least 1")
    if args.cancel_grace < 0:
        raise CairnError("--cancel-grace must be 0 or more seconds")
    config = WorkerConfig(
        worker_id=args.worker_id or f"{socket.gethostname()}-{os.getpid()}",
        capabilities=capabilities,
        concurrency=args.concurrency,
        lease_s=args.lease or settings.lease_s,
        stop_grace_s=args.grace,
        cancel_grace_s=args.cancel_grace,
        defaults=worker_defaults(
            capabilities, model=args.model or None, effort=args.effort or None, env=os.environ
        ),
        agents=agents,
        sandbox=sandbox,
    )

    async def run() -> None:
        client = await open_client(settings)
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
