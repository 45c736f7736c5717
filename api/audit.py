"""Reading the log for people: `cairn tail` and `cairn replay`."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import AsyncIterator

import msgspec
import orjson

from cairn.domain.errors import NotFound
from cairn.domain.tasks.events import TASK_EVENTS, task_event_from
from cairn.domain.tasks.task import Task, evolve
from cairn.streams.archive import Archive
from cairn.streams.driver import Client
from cairn.streams.envelope import Envelope, position_key
from cairn.streams.keys import Keys
from cairn.streams.store import EventStore


def partitions_of(keys: Keys, aggregate: str | None, project: str | None) -> list[int]:
    """The partitions that hold an aggregate's events, or a project's, or all of them."""
    if aggregate:
        return [keys.partition_of_id(aggregate)]
    if project:
        return [keys.partition_of(project)]
    return list(keys.all_partitions())


async def follow_log(
    client: Client,
    keys: Keys,
    *,
    follow: bool = False,
    type_glob: str | None = None,
    aggregate: str | None = None,
    project: str | None = None,
    archive: Archive | None = None,
) -> AsyncIterator[tuple[int, Envelope]]:
    """Every event of the matching partitions in commit order (archived ones in their places:
    `archive`, else the install's), then (with follow) new ones."""
    store = EventStore(client, keys, archive=archive)
    partitions = partitions_of(keys, aggregate, project)
    in_project: set[str] = set()

    def wanted(event: Envelope) -> bool:
        if project is not None:
            if event.data.get("project") == project:
                in_project.add(event.agg)
            if event.agg not in in_project:
                return False
        if aggregate is not None and event.agg != aggregate:
            return False
        return type_glob is None or fnmatch.fnmatchcase(event.type, type_glob)

    positions = {p: "0-0" for p in partitions}
    backlog: list[tuple[tuple[int, int], int, Envelope]] = []
    for p in partitions:
        while batch := await store.read_log(p, positions[p], count=5000):
            positions[p] = batch[-1].position
            backlog.extend((position_key(e.position), p, e) for e in batch)
    backlog.sort(key=lambda item: item[0])
    for _, p, event in backlog:
        if wanted(event):
            yield p, event
    if follow:
        async for p, event in store.tail(positions):
            if wanted(event):
                yield p, event


# C0 and C1 controls but tab, DEL, bidi embeddings, overrides, isolates and marks, line and
# paragraph separators: anything that would let an event's text move, hide or recolour what a
# terminal shows of the log.
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)


def format_event(partition: int, event: Envelope, *, as_json: bool = False) -> str:
    if as_json:
        record = {"partition": partition, **msgspec.to_builtins(event)}
        return orjson.dumps(record).decode()
    data = orjson.dumps(event.data).decode()
    where = f"p{partition:02d}  {event.type:<24} {event.agg} v{event.ver}"
    return escape_controls(f"{event.ts}  {where}  {event.actor}  {data}")


def escape_controls(line: str) -> str:
    """`line` with every character a terminal would act on written as a \\uXXXX escape."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", line)


async def replay_lines(
    client: Client, keys: Keys, aggregate_id: str, archive: Archive | None = None
) -> list[str]:
    """Each event of an aggregate (archived or not) followed by the aggregate's state after it."""
    if not keys.is_aggregate_id(aggregate_id):
        raise NotFound(f"{aggregate_id!r} is not an aggregate id", aggregate_id=aggregate_id)
    events = await EventStore(client, keys, archive=archive).read_aggregate(aggregate_id)
    if not events:
        raise NotFound(f"{aggregate_id} has no events", aggregate_id=aggregate_id)
    lines = []
    state: Task | None = None
    for e in events:
        lines.append(format_event(keys.partition_of_id(aggregate_id), e))
        if e.type in TASK_EVENTS:
            state = evolve(state, task_event_from(e.type, e.schema, e.data), e.agg, e.ver, e.ts)
            lines.append("    state: " + orjson.dumps(msgspec.to_builtins(state)).decode())
    return lines
