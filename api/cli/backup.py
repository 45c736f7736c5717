"""`cairn export FILE` and `cairn import FILE`: the log, every event with its position, to a
file of JSON lines (gzip-compressed when the name ends in .gz) and back into an empty install;
then `cairn rebuild` (or the running projector) makes the read models from it."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from cairn.api.cli.store import keys_of, open_client
from cairn.commands.settings import Settings
from cairn.domain.errors import CairnError


def _open(path: Path, mode: str, named: Path | None = None) -> IO[bytes]:
    """`path` opened in binary, through gzip when its name (or `named`'s) ends in .gz."""
    if (named or path).suffix == ".gz":
        return gzip.open(path, mode + "b")  # type: ignore[return-value]
    return path.open(mode + "b")


def progress_printer(what: str) -> Callable[[int, int], None]:
    """Progress on one line of stderr, at most twice a second."""
    last = [0.0]

    def show(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 0.5 or done == total:
            last[0] = time.monotonic()
            percent = 100 * done // max(total, 1)
            print(f"\r{what}: {done}/{total} events ({percent}%)", file=sys.stderr, flush=True,
                  end="\n" if done == total else "")  # fmt: skip

    return show


def export(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.streams.export import write_export

    path = Path(args.file)
    if path.exists() and not args.force:
        raise CairnError(f"{path} exists: give another name, or --force to overwrite it")
    partial = path.with_name(path.name + ".partial")

    async def run() -> int:
        client = await open_client(settings)
        keys = keys_of(settings)
        try:
            with _open(partial, "w", path) as out:
                return await write_export(client, keys, out.write, progress_printer("exported"))
        finally:
            await client.aclose()

    started = time.monotonic()
    done = asyncio.run(run())
    partial.replace(path)  # whole or not at all
    print(f"\nexported {done} events to {path} in {time.monotonic() - started:.1f}s",
          file=sys.stderr)  # fmt: skip
    return 0


def import_(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.streams.export import import_lines, read_header

    path = Path(args.file)
    keys = keys_of(settings)

    def lines(source: IO[bytes]) -> Iterator[bytes]:
        yield from source

    async def run() -> int:
        client = await open_client(settings)
        try:
            with _open(path, "r") as source:
                header = read_header(source.readline(), keys)
                return await import_lines(client, keys, lines(source), header.events,
                                          progress_printer("imported"))  # fmt: skip
        finally:
            await client.aclose()

    started = time.monotonic()
    written = asyncio.run(run())
    print(f"\nimported {written} events from {path} in {time.monotonic() - started:.1f}s; "
          "run `cairn rebuild` (or start the projector) for the read models",
          file=sys.stderr)  # fmt: skip
    return 0


def add_commands(command: Any) -> None:
    """`cairn export` and `cairn import`, on the main parser's `command` maker."""
    out = command("export", export, "write every event of the log to FILE (JSON lines; .gz "
                  "compresses), for a backup or a move")  # fmt: skip
    out.add_argument("file", help="where to write it (FILE.partial until it is whole)")
    out.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    into = command("import", import_, "read an export into an empty install (run again to go "
                   "on after a stop)")  # fmt: skip
    into.add_argument("file", help="a file `cairn export` wrote")
