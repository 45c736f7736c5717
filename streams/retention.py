"""Retention: moving whole aggregates' events out of the partition logs into the archive
(streams/archive.py), byte for byte, with their ids and positions. Which aggregates are
finished is the caller's to say (`cairn archive` reads the read models); here an aggregate is
moved only when it is safe: its last event is before the cut, every consumer group of its log
has been delivered and has acknowledged its events, and its segment and index rows are on disk
before anything leaves the log. Its index list keeps its length, so its version, and an
aggregate that gets an event while it is being moved is left in the log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from cairn.domain.errors import InfrastructureError
from cairn.streams.archive import MARKER, Archive, ArchivedAggregate, ArchivedEvent, Segment
from cairn.streams.driver import Client
from cairn.streams.envelope import position_key, text
from cairn.streams.functions import ARCHIVE, READ, Function, call_many
from cairn.streams.keys import Keys

ROUND = 5_000  # aggregates per segment: what a round holds in memory
CALL = 200  # aggregates per script call (a read, a move)
_MARKER = MARKER.encode()


@dataclass
class Moved:
    """What an archive run did (or, dry, would do)."""

    aggregates: int = 0
    events: int = 0
    segments: list[Segment] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)  # an event at or after the cut
    unprojected: list[str] = field(default_factory=list)  # not yet applied by every group
    changed: list[str] = field(default_factory=list)  # got an event while being moved


async def archive_aggregates(
    client: Client, keys: Keys, archive: Archive, aggregate_ids: Sequence[str], cut: str, *,
    dry_run: bool = False, progress: Callable[[int, int], None] = lambda done, total: None,
) -> Moved:  # fmt: skip
    """Move the events of `aggregate_ids` whose last event is before `cut` (RFC 3339 UTC, as
    events' `ts`) into the archive, a segment per ROUND aggregates. Dry: read and check
    everything, write nothing."""
    moved = Moved()
    read = READ.bind(client)
    by_partition: dict[int, list[str]] = {}
    for aggregate_id in dict.fromkeys(aggregate_ids):
        by_partition.setdefault(keys.partition_of_id(aggregate_id), []).append(aggregate_id)
    total, done = sum(len(ids) for ids in by_partition.values()), 0
    ready: list[ArchivedAggregate] = []
    for partition, ids in sorted(by_partition.items()):
        applied = await _applied_bound(client, keys.log(partition))
        for start in range(0, len(ids), CALL):
            chunk = ids[start : start + CALL]
            replies = await read(keys=[keys.log(partition), *map(keys.stream, chunk)], args=[1])
            for aggregate_id, flat in zip(chunk, replies, strict=True):
                found = _tail(partition, aggregate_id, flat)
                if found is None:  # archived already, or no events
                    continue
                if found.events[-1].fields["ts"] >= cut:
                    moved.recent.append(aggregate_id)
                elif not applied(found.events[-1].key):
                    moved.unprojected.append(aggregate_id)
                else:
                    ready.append(found)
            done += len(chunk)
            if len(ready) >= ROUND:
                await _archive_round(client, keys, archive, ready, moved, dry_run)
                ready = []
            progress(done, total)
    if ready:
        await _archive_round(client, keys, archive, ready, moved, dry_run)
    return moved


async def _archive_round(
    client: Client, keys: Keys, archive: Archive, ready: list[ArchivedAggregate],
    moved: Moved, dry_run: bool,
) -> None:  # fmt: skip
    """One segment: written and on disk first, then the events leave the log."""
    if not dry_run:
        segment = archive.write_segment(ready)
        moved.segments.append(segment)
        changed, unprojected = await _move(client, keys, ARCHIVE, ready)
        archive.forget(segment.id, changed + unprojected)
        moved.changed += [a.aggregate_id for a in changed]
        moved.unprojected += [a.aggregate_id for a in unprojected]
        left = {id(a) for a in changed + unprojected}
        ready = [a for a in ready if id(a) not in left]
    moved.aggregates += len(ready)
    moved.events += sum(len(a.events) for a in ready)


def _tail(partition: int, aggregate_id: str, flat: list[Any]) -> ArchivedAggregate | None:
    """The aggregate's events still in the log (those after its archived versions), or None."""
    entries = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    archived = 0
    while archived < len(entries) and entries[archived][0] == _MARKER:
        archived += 1
    events = []
    for entry_id, pairs in entries[archived:]:
        if entry_id == _MARKER:  # a marker after a live event: never written so
            raise InfrastructureError(f"{aggregate_id}: its index has an archived version "
                                      "after one in the log; it is left as it is")  # fmt: skip
        try:
            values = [v.decode() for v in pairs]
        except UnicodeDecodeError as e:
            raise InfrastructureError(f"{aggregate_id}: an event is not UTF-8 text; it is "
                                      "left in the log") from e  # fmt: skip
        events.append(ArchivedEvent(partition, text(entry_id),
                                    dict(zip(values[::2], values[1::2], strict=True))))  # fmt: skip
    if not events:
        return None
    return ArchivedAggregate(aggregate_id, partition, archived + 1, events)


async def _applied_bound(client: Client, log: str) -> Callable[[tuple[int, int]], bool]:
    """Whether a position of `log` has been delivered to, and acknowledged by, every consumer
    group on it (the projections have applied it). The move script checks it again, atomically;
    this is to leave such aggregates out of the segment in the first place."""
    try:
        groups: Any = await client.xinfo_groups(log)
    except ResponseError:  # no such stream: nothing reads it
        groups = []
    bounds: list[tuple[tuple[int, int], tuple[int, int] | None]] = []
    for group in groups:
        delivered = position_key(text(group.get("last-delivered-id", b"0-0")))
        oldest = None
        if int(group.get("pending") or 0):
            summary: Any = await client.xpending(log, text(group["name"]))
            oldest = position_key(text(summary["min"]))
        bounds.append((delivered, oldest))

    def applied(key: tuple[int, int]) -> bool:
        return all(key <= d and (o is None or key < o) for d, o in bounds)

    return applied


async def _move(
    client: Client, keys: Keys, move: Function, ready: list[ArchivedAggregate]
) -> tuple[list[ArchivedAggregate], list[ArchivedAggregate]]:
    """Run the move script over `ready` (in the archive now), CALL aggregates a call, a
    partition each; the aggregates it left because they changed, and because a consumer group
    had not applied them yet."""
    batches: list[list[ArchivedAggregate]] = []
    for partition in sorted({a.partition for a in ready}):
        mine = [a for a in ready if a.partition == partition]
        batches += [mine[start : start + CALL] for start in range(0, len(mine), CALL)]
    calls = []
    for batch in batches:
        args: list[Any] = [MARKER]
        for a in batch:
            args += [a.first_version, len(a.events), *(e.position for e in a.events)]
        log = keys.log(batch[0].partition)
        calls.append(([log, *(keys.stream(a.aggregate_id) for a in batch)], args))
    replies = await call_many(client, move, calls)
    changed, unprojected = [], []
    for batch, reply in zip(batches, replies, strict=True):
        if isinstance(reply, BaseException):
            raise InfrastructureError(f"moving events out of the log failed: {reply}")
        changed += [a for a, outcome in zip(batch, reply, strict=True) if int(outcome) == 0]
        unprojected += [a for a, outcome in zip(batch, reply, strict=True) if int(outcome) == 2]
    return changed, unprojected
