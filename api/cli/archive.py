"""`cairn archive --older-than 30d [--dry-run]`: move the events of finished aggregates (jobs in
a terminal state, tasks done or cancelled with no run going) whose last event is older than the
cut out of the store into compressed segments under `<data dir>/archive/<prefix>/`
(streams/archive.py, streams/retention.py). Everything that reads events (tail, replay,
rebuild, export, a task's history, a run's detail) reads them there as before; the read models
keep what they hold."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cairn.api.auth import duration_s
from cairn.api.cli.backup import progress_printer
from cairn.api.cli.store import keys_of, open_client
from cairn.commands.settings import Settings
from cairn.domain.errors import ValidationFailed
from cairn.domain.jobs.job import TERMINAL
from cairn.domain.tasks.states import Status
from cairn.projections import layout
from cairn.projections.generations import current_space
from cairn.projections.jobs.queue import NAME as QUEUE
from cairn.projections.jobs.queue import QueueProjection
from cairn.projections.tasks.board import NAME as BOARD
from cairn.projections.tasks.board import BoardProjection
from cairn.streams.archive import Archive, default_archive
from cairn.streams.driver import Client
from cairn.streams.envelope import text
from cairn.streams.keys import Keys

FINISHED_TASKS = (Status.DONE.value, Status.CANCELLED.value)


def parse_age(value: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, `0s`: ValidationFailed naming --older-than otherwise."""
    seconds = duration_s(value)
    if seconds is None:
        reason = f"{value!r}: give a number and s, m, h, d or w, e.g. 30d"
        raise ValidationFailed("--older-than is not an age",
                               [{"path": "--older-than", "reason": reason}])  # fmt: skip
    return timedelta(seconds=seconds)


def cut_for(age: timedelta, now: datetime | None = None) -> str:
    """The cut as an event's `ts` reads (RFC 3339 UTC, milliseconds)."""
    moment = (now or datetime.now(UTC)) - age
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def finished_aggregates(
    client: Client, keys: Keys, cut: str, archive: Archive | None = None
) -> tuple[list[str], list[str]]:
    """(jobs, tasks) the read models show finished with their last event before `cut`, but for
    those `archive` holds at the version the read model shows (archived already)."""
    jobs: list[tuple[str, int]] = []
    tasks: list[tuple[str, int]] = []
    queue, board = QueueProjection(), BoardProjection()
    for p in keys.all_partitions():
        space = await current_space(client, keys, QUEUE, p)
        for terminal in sorted(TERMINAL):
            members = await client.zrange(layout.job_index(space, "status", terminal), 0, -1)
            ids = [text(m).rsplit("|", 1)[1] for m in members]
            for job in await _documents(client, layout.jobs(space), ids, queue.decode):
                if job.status in TERMINAL and job.updated_at < cut:
                    jobs.append((job.id, job.version))
        space = await current_space(client, keys, BOARD, p)
        for project in sorted(text(m) for m in await client.smembers(layout.projects(space))):
            for status in FINISHED_TASKS:
                members = await client.zrange(layout.column(space, project, status), 0, -1)
                ids = [text(m).rsplit("|", 1)[1] for m in members]
                for task in await _documents(client, layout.tasks(space), ids, board.decode):
                    if task.status in FINISHED_TASKS and task.active_job_id is None \
                            and task.updated_at < cut:  # fmt: skip
                        tasks.append((task.id, task.version))
    done = archive.archived_versions([i for i, _ in jobs + tasks]) if archive else {}
    return ([i for i, v in jobs if done.get(i, 0) < v], [i for i, v in tasks if done.get(i, 0) < v])


async def _documents(client: Client, key: str, ids: list[str], decode: Any) -> list[Any]:
    found = []
    for start in range(0, len(ids), 1000):
        docs = await client.hmget(key, ids[start : start + 1000])
        found += [decode(doc) for doc in docs if doc]
    return found


def archive(settings: Settings, args: argparse.Namespace) -> int:
    from cairn.streams.retention import archive_aggregates

    age = parse_age(args.older_than)
    keys = keys_of(settings)
    where = default_archive(keys.prefix) or Archive(settings.data_dir / "archive" / keys.prefix)

    async def run() -> tuple[Any, int, int]:
        client = await open_client(settings)
        try:
            cut = cut_for(age)
            jobs, tasks = await finished_aggregates(client, keys, cut, where)
            if args.dry_run:
                moved = await archive_aggregates(client, keys, where, jobs + tasks, cut,
                                                 dry_run=True)  # fmt: skip
            else:
                with where.writing():
                    checked = progress_printer("checked")
                    moved = await archive_aggregates(client, keys, where, jobs + tasks, cut,
                                                     progress=checked)  # fmt: skip
            return moved, len(jobs), len(tasks)
        finally:
            await client.aclose()

    started = time.monotonic()
    moved, jobs, tasks = asyncio.run(run())
    verb = "would archive" if args.dry_run else "archived"
    elapsed = time.monotonic() - started
    print(f"{verb} {moved.aggregates} aggregates, {moved.events} events (of {jobs} finished jobs "
          f"and {tasks} finished tasks before the cut, not yet archived) in {elapsed:.1f}s")
    if moved.segments:
        raw = sum(s.raw_bytes for s in moved.segments)
        size = sum(s.bytes for s in moved.segments)
        print(f"into {len(moved.segments)} segment(s) under {where.root}: {raw:,} bytes of "
              f"events in {size:,} bytes on disk")  # fmt: skip
    left = {"got an event while being moved": moved.changed,
            "not yet applied by every projection": moved.unprojected,
            "had an event at or after the cut": moved.recent}  # fmt: skip
    for why, ids in left.items():
        if ids:
            print(f"left in the log: {len(ids)} that {why} (e.g. {ids[0]})", file=sys.stderr)
    if not args.dry_run:
        from cairn.worker.agents.sessions import SESSION_KEEP_S, prune_sessions

        gone = prune_sessions(settings.data_dir)
        print(f"removed the agent sessions of {gone} job(s) kept past "
              f"{SESSION_KEEP_S // 86400} days (follow-ups of them start afresh)")  # fmt: skip
    return 0


def add_commands(command: Any) -> None:
    """`cairn archive`, on the main parser's `command` maker."""
    run = command("archive", archive, "move the events of finished jobs and tasks older than a "
                  "cut out of the store into compressed segments under the data directory; "
                  "everything that reads events still reads them")  # fmt: skip
    run.add_argument("--older-than", required=True, metavar="AGE",
                     help="the cut, by an aggregate's last event: 30d, 12h, 90m, 0s")  # fmt: skip
    run.add_argument("--dry-run", action="store_true",
                     help="say what would be archived; write nothing")  # fmt: skip
